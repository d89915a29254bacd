"""Dependencies the routes declare, as `Annotated` aliases."""

import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Final

from fastapi import Depends, Header, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from .credentials import Principal, authenticate
from .errors import ApiError
from .state import AuthState

INTERNAL_TOKEN_HEADER: Final = "X-Internal-Token"

_bearer = HTTPBearer(
    auto_error=False, description="A session token or an API key, as `Authorization: Bearer <credential>`"
)


def get_state(request: Request) -> AuthState:
    state: AuthState = request.app.state.auth
    return state


StateDep = Annotated[AuthState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def unauthorized(code: str, message: str) -> ApiError:
    return ApiError(status.HTTP_401_UNAUTHORIZED, code, message, headers={"WWW-Authenticate": "Bearer"})


async def get_principal(
    state: StateDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, by a session token or an API key; 401 without a valid one."""
    if credentials is None or not credentials.credentials:
        raise unauthorized(
            "unauthorized", "a session token or an API key is required: Authorization: Bearer <credential>"
        )
    principal = await authenticate(credentials.credentials, state=state, session=session)
    if principal is None:
        raise unauthorized(
            "unauthorized", "the session token or API key is not valid (unknown, revoked or expired)"
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_internal_token(
    state: StateDep, token: Annotated[str | None, Header(alias=INTERNAL_TOKEN_HEADER)] = None
) -> None:
    """403 unless the request carries the configured internal token (when one is configured)."""
    expected = state.settings.internal_token
    if expected is None:
        return
    if token is None or not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        raise ApiError(
            status.HTTP_403_FORBIDDEN,
            "forbidden",
            f"introspection needs the right {INTERNAL_TOKEN_HEADER} header",
        )
