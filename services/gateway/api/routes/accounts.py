"""The account routes, relayed to the auth service so that clients see one API at one address.

The gateway validates each body against the same models the auth service uses (emotion_contract.accounts),
forwards it with the caller's Authorization header, and returns the auth service's answer as it is.
Registration and login are rate-limited per client address here, to slow password guessing.
"""

import uuid
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Request, Response, status

from emotion_contract.accounts import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    Registration,
    SessionToken,
    User,
)
from emotion_contract.credentials import Credentials

from ...client_address import request_limit_key
from ...credentials import AuthUnavailableError
from ...errors import ApiError, error_responses
from ...state import Gateway
from ..deps import CurrentPrincipal, GatewayDep

AUTH_SERVICE_ERRORS: Final = (status.HTTP_429_TOO_MANY_REQUESTS, status.HTTP_503_SERVICE_UNAVAILABLE)
_FORWARDED_HEADERS: Final = ("content-type", "www-authenticate", "retry-after")

router = APIRouter(tags=["accounts"])

Authorization = Annotated[str | None, Header(description="Bearer <session token or API key>")]


def _credentials_json(body: Credentials) -> dict[str, str]:
    return {"email": str(body.email), "password": body.password.get_secret_value()}


async def _relay(
    gateway: Gateway, method: str, path: str, *, authorization: str | None, json: Any = None
) -> Response:
    try:
        answer = await gateway.auth.send(method, path, authorization=authorization, json=json)
    except AuthUnavailableError as exc:
        raise ApiError(status.HTTP_503_SERVICE_UNAVAILABLE, "auth_unavailable", str(exc)) from exc
    kept = {name: value for name, value in answer.headers.items() if name.lower() in _FORWARDED_HEADERS}
    return Response(answer.content, status_code=answer.status_code, headers=kept)


async def _limit_attempts(gateway: Gateway, request: Request, email: str) -> None:
    address = request_limit_key(request, gateway.settings.trusted_proxies)
    decision = await gateway.account_attempts.check(address, email)
    if not decision.allowed:
        gateway.metrics.quota_rejections.labels("account_rate_limit").inc()
        raise ApiError(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "rate_limited",
            f"too many sign-ups or logins from this address or for this account; retry after "
            f"{decision.retry_after_s} s",
            headers=decision.headers(),
        )


@router.post(
    "/users",
    status_code=status.HTTP_201_CREATED,
    response_model=Registration,
    responses=error_responses(
        status.HTTP_409_CONFLICT, status.HTTP_422_UNPROCESSABLE_CONTENT, *AUTH_SERVICE_ERRORS
    ),
)
async def register(body: Credentials, request: Request, gateway: GatewayDep) -> Response:
    """Create an account. The answer carries its first API key, shown this once."""
    await _limit_attempts(gateway, request, str(body.email))
    return await _relay(gateway, "POST", "/v1/users", authorization=None, json=_credentials_json(body))


@router.post(
    "/sessions",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionToken,
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_403_FORBIDDEN,
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        *AUTH_SERVICE_ERRORS,
    ),
)
async def log_in(body: Credentials, request: Request, gateway: GatewayDep) -> Response:
    """Log in with email and password; the session token works wherever an API key does."""
    await _limit_attempts(gateway, request, str(body.email))
    return await _relay(gateway, "POST", "/v1/sessions", authorization=None, json=_credentials_json(body))


@router.delete(
    "/sessions/current",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, *AUTH_SERVICE_ERRORS),
)
async def log_out(_: CurrentPrincipal, gateway: GatewayDep, authorization: Authorization = None) -> Response:
    """End the session whose token this request carries."""
    answer = await _relay(gateway, "DELETE", "/v1/sessions/current", authorization=authorization)
    if answer.status_code == status.HTTP_204_NO_CONTENT and authorization:
        gateway.credentials.forget(authorization.removeprefix("Bearer ").strip())
    return answer


@router.get(
    "/users/me",
    response_model=User,
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, *AUTH_SERVICE_ERRORS),
)
async def who_am_i(_: CurrentPrincipal, gateway: GatewayDep, authorization: Authorization = None) -> Response:
    """Your account and its limits."""
    return await _relay(gateway, "GET", "/v1/users/me", authorization=authorization)


@router.get(
    "/keys",
    response_model=ApiKeyList,
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, *AUTH_SERVICE_ERRORS),
)
async def list_keys(
    _: CurrentPrincipal, gateway: GatewayDep, authorization: Authorization = None
) -> Response:
    """Your API keys: prefix, name, created, last used, revoked. Never the keys themselves."""
    return await _relay(gateway, "GET", "/v1/keys", authorization=authorization)


@router.post(
    "/keys",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_403_FORBIDDEN,
        status.HTTP_409_CONFLICT,
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        *AUTH_SERVICE_ERRORS,
    ),
)
async def create_key(
    body: ApiKeyCreate, _: CurrentPrincipal, gateway: GatewayDep, authorization: Authorization = None
) -> Response:
    """Create an API key, from a logged-in session only (403 `session_required` with an API key: a key
    that could mint keys would outlive its own revocation). The answer carries the whole key, shown this
    once; 409 `too_many_keys` when the account already holds as many unrevoked keys as it may."""
    return await _relay(gateway, "POST", "/v1/keys", authorization=authorization, json=body.model_dump())


@router.delete(
    "/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND, *AUTH_SERVICE_ERRORS),
)
async def revoke_key(
    key_id: uuid.UUID, _: CurrentPrincipal, gateway: GatewayDep, authorization: Authorization = None
) -> Response:
    """Revoke an API key. Every gateway replica refuses it within its cache lifetime (at most 5 s)."""
    answer = await _relay(gateway, "DELETE", f"/v1/keys/{key_id}", authorization=authorization)
    if answer.status_code == status.HTTP_204_NO_CONTENT:
        gateway.credentials.forget_credential_id(key_id)
    return answer
