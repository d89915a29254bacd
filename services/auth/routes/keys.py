"""The caller's API keys: list, create (the key is shown once), revoke."""

import uuid

from fastapi import APIRouter, Response, status

from emotion_contract.accounts import ApiKeyCreate, ApiKeyCreated, ApiKeyList, CredentialKind

from .. import repository
from ..deps import CurrentPrincipal, SessionDep, StateDep
from ..errors import ApiError, error_responses
from ..views import key_created, key_info

router = APIRouter(prefix="/keys", tags=["keys"])


@router.get("", responses=error_responses(status.HTTP_401_UNAUTHORIZED))
async def list_keys(principal: CurrentPrincipal, session: SessionDep) -> ApiKeyList:
    """The caller's keys, revoked ones included, oldest first; never the keys themselves."""
    keys = await repository.list_api_keys(session=session, user_id=principal.user.id)
    return ApiKeyList(items=[key_info(key) for key in keys])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_403_FORBIDDEN,
        status.HTTP_409_CONFLICT,
        status.HTTP_422_UNPROCESSABLE_CONTENT,
    ),
)
async def create_key(
    principal: CurrentPrincipal, state: StateDep, session: SessionDep, body: ApiKeyCreate | None = None
) -> ApiKeyCreated:
    """A new key; the whole key is in this answer only. Only from a logged-in session (403
    `session_required` with an API key): a key that could mint keys would outlive its own revocation
    through them."""
    if principal.kind is not CredentialKind.SESSION:
        raise ApiError(
            status.HTTP_403_FORBIDDEN,
            "session_required",
            "API keys are created from a logged-in session (POST /v1/sessions), not with another key",
        )
    name = (body or ApiKeyCreate()).name
    try:
        key, minted = await repository.create_api_key(
            session=session,
            user_id=principal.user.id,
            name=name,
            hasher=state.keys,
            max_active=state.settings.max_api_keys_per_user,
        )
    except repository.TooManyKeysError as exc:
        raise ApiError(status.HTTP_409_CONFLICT, "too_many_keys", str(exc)) from exc
    return key_created(key, minted)


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
async def revoke_key(key_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep) -> Response:
    """Revoke one of the caller's keys (revoking it again changes nothing)."""
    revoked = await repository.revoke_api_key(session=session, user_id=principal.user.id, key_id=key_id)
    if revoked is None:
        raise ApiError(status.HTTP_404_NOT_FOUND, "key_not_found", "you have no API key with this id")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
