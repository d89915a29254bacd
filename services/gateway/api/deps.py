"""Dependencies the routes declare, as `Annotated` aliases."""

from collections.abc import AsyncIterator
from typing import Annotated, Final

from fastapi import Depends, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.accounts import MAX_CREDENTIAL_CHARS

from ..client_address import request_limit_key
from ..console.cookies import CSRF_HEADER, UNSAFE_METHODS, check_csrf, cookie_policy
from ..credentials import AuthUnavailableError, Principal
from ..errors import ApiError
from ..rate_limit import account_key, credential_key, rejected_key
from ..state import Gateway

MAX_PAGE_SIZE: Final = 100
# PostgreSQL's OFFSET is a bigint: a larger offset would fail in the database instead of in validation.
MAX_PAGE_OFFSET: Final = 2**63 - 1

PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page")]
PageOffset = Annotated[int, Query(ge=0, le=MAX_PAGE_OFFSET, description="Items to skip")]

_bearer = HTTPBearer(
    auto_error=False, description="An API key or a session token, as `Authorization: Bearer <credential>`"
)


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        status.HTTP_401_UNAUTHORIZED, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"}
    )


def _credential(request: Request, credentials: HTTPAuthorizationCredentials | None) -> tuple[str, bool]:
    """The bearer credential, else the console's session cookie (checked against CSRF), and which it was."""
    if credentials is not None and credentials.credentials:
        return _bounded(credentials.credentials), False
    cookie = request.cookies.get(cookie_policy(request).session)
    if not cookie:
        raise _unauthorized("a valid API key is required: Authorization: Bearer <key>")
    if request.method in UNSAFE_METHODS:
        check_csrf(request, request.headers.get(CSRF_HEADER))
    return _bounded(cookie), True


def _bounded(credential: str) -> str:
    if len(credential) > MAX_CREDENTIAL_CHARS:
        raise _unauthorized(
            f"the credential is longer than any key or token ({MAX_CREDENTIAL_CHARS} characters)"
        )
    return credential


async def get_principal(
    request: Request,
    gateway: GatewayDep,
    response: Response,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller, within its rate limit; 401 without a valid credential, 403 for a session
    cookie without CSRF proof, 429 over the limit."""
    credential, from_cookie = _credential(request, credentials)
    # A credential this replica must ask the auth service about: refused at once from an address whose
    # credentials keep being rejected (guessing keys, or a flood to load the auth service).
    address = None
    if not gateway.credentials.knows(credential):
        address = request_limit_key(request, gateway.settings.trusted_proxies)
        refusal = await gateway.rate_limiter.refusing(
            rejected_key(address), gateway.settings.rejected_credentials_per_minute
        )
        if refusal is not None:
            gateway.metrics.quota_rejections.labels("rejected_credentials").inc()
            raise ApiError(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "rate_limited",
                f"more than {refusal.limit} invalid credentials a minute from your address; "
                f"retry after {refusal.retry_after_s} s",
                headers=refusal.headers(),
            )
    try:
        principal = await gateway.credentials.principal(credential)
    except AuthUnavailableError as exc:
        gateway.metrics.auth_checks.labels("unavailable").inc()
        raise ApiError(
            status.HTTP_503_SERVICE_UNAVAILABLE, "auth_unavailable", "credentials cannot be checked right now"
        ) from exc
    if principal is None:
        gateway.metrics.auth_checks.labels("rejected").inc()
        if address is not None:
            await gateway.rate_limiter.check(
                rejected_key(address), gateway.settings.rejected_credentials_per_minute
            )
        if from_cookie:
            raise _unauthorized("your session has ended; log in again")
        raise _unauthorized("the API key or session is not valid (unknown, revoked or expired)")
    gateway.metrics.auth_checks.labels("accepted").inc()
    limit = principal.limits.rate_limit_per_minute
    # One cell per credential and one per account: keys and sessions do not multiply an account's rate.
    decision = await gateway.rate_limiter.check(credential_key(principal.credential_id), limit)
    if decision.allowed:
        decision = await gateway.rate_limiter.check(account_key(principal.owner), limit)
    if not decision.allowed:
        gateway.metrics.quota_rejections.labels("rate_limit").inc()
        raise ApiError(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "rate_limited",
            f"more than {decision.limit} requests per minute with this credential or account; "
            f"retry after {decision.retry_after_s} s",
            headers=decision.headers(),
        )
    response.headers.update(decision.headers())
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def get_current_owner(principal: CurrentPrincipal) -> str:
    return principal.owner


CurrentOwner = Annotated[str, Depends(get_current_owner)]


async def get_session(gateway: GatewayDep) -> AsyncIterator[AsyncSession]:
    async with gateway.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
