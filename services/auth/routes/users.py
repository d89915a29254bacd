"""Registration, and the caller's own account."""

from fastapi import APIRouter, status

from emotion_contract.accounts import Registration, User
from emotion_contract.credentials import Credentials

from .. import repository
from ..deps import CurrentPrincipal, SessionDep, StateDep
from ..errors import ApiError, error_responses
from ..views import key_created, user_view

router = APIRouter(prefix="/users", tags=["accounts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(status.HTTP_409_CONFLICT, status.HTTP_422_UNPROCESSABLE_CONTENT),
)
async def register(body: Credentials, state: StateDep, session: SessionDep) -> Registration:
    """Open an account. Its first API key (named "default") is in the answer, and shown only this once."""
    password_hash = await state.passwords.hash_async(body.password.get_secret_value())
    try:
        user, key, minted = await repository.register_user(
            session=session, email=body.email, password_hash=password_hash, hasher=state.keys
        )
    except repository.EmailTakenError as exc:
        state.metrics.registrations.labels("email_taken").inc()
        raise ApiError(status.HTTP_409_CONFLICT, "email_taken", "an account with this email exists") from exc
    state.metrics.registrations.labels("created").inc()
    return Registration(user=user_view(user, state.settings), api_key=key_created(key, minted))


@router.get("/me", responses=error_responses(status.HTTP_401_UNAUTHORIZED))
async def me(principal: CurrentPrincipal, state: StateDep) -> User:
    """The caller's account, with the limits in effect for it."""
    return user_view(principal.user, state.settings)
