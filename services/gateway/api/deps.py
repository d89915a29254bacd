"""Dependencies the routes declare, as `Annotated` aliases."""

import hmac
from collections.abc import AsyncIterator
from typing import Annotated, Final

from fastapi import Depends, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from ..errors import ApiError
from ..state import Gateway

# Every holder of the one configured API key is the same owner until accounts arrive.
STATIC_OWNER: Final = "static"

_bearer = HTTPBearer(auto_error=False, description="The API key, as `Authorization: Bearer <key>`")


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def get_current_owner(
    gateway: GatewayDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The owner the request's API key belongs to; 401 without a valid key."""
    expected = gateway.settings.api_key.get_secret_value().encode()
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise ApiError(
            status.HTTP_401_UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return STATIC_OWNER


CurrentOwner = Annotated[str, Depends(get_current_owner)]


async def get_session(gateway: GatewayDep) -> AsyncIterator[AsyncSession]:
    async with gateway.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
