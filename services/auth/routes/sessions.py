"""Logging in (a session JWT for email and password) and out (revoking that session)."""

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Response, status

from emotion_contract.accounts import CredentialKind, SessionToken
from emotion_contract.credentials import Credentials

from .. import repository
from ..deps import CurrentPrincipal, SessionDep, StateDep, unauthorized
from ..errors import ApiError, error_responses
from ..tokens import SessionClaims

router = APIRouter(prefix="/sessions", tags=["sessions"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN, status.HTTP_422_UNPROCESSABLE_CONTENT
    ),
)
async def login(body: Credentials, state: StateDep, session: SessionDep) -> SessionToken:
    """A session token for the account's email and password."""
    password = body.password.get_secret_value()
    user = await repository.find_user_by_email(session=session, email=body.email)
    # Give the connection back to the pool while the hash is checked (tens of milliseconds by design).
    await session.close()
    # An unknown email is checked against a dummy hash: the same work, the same answer.
    if not await state.passwords.verify_async(user.password_hash if user else None, password) or user is None:
        state.metrics.logins.labels("invalid_credentials").inc()
        raise unauthorized("invalid_credentials", "the email or the password is wrong")
    # Only after the password matched: a disabled account is no secret from its owner.
    if user.disabled:
        state.metrics.logins.labels("account_disabled").inc()
        raise ApiError(status.HTTP_403_FORBIDDEN, "account_disabled", "this account is disabled")
    if state.passwords.needs_rehash(user.password_hash):
        rehashed = await state.passwords.hash_async(password)
        await repository.update_password_hash(session=session, user_id=user.id, password_hash=rehashed)
    issued_at = datetime.now(UTC).replace(microsecond=0)
    expires_at = issued_at + timedelta(seconds=state.settings.session_ttl_s)
    row = await repository.create_session(session=session, user_id=user.id, expires_at=expires_at)
    token = state.tokens.encode(
        SessionClaims(user_id=user.id, session_id=row.id, issued_at=issued_at, expires_at=expires_at)
    )
    state.metrics.logins.labels("ok").inc()
    return SessionToken(access_token=token, expires_at=expires_at)


@router.delete(
    "/current",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(status.HTTP_401_UNAUTHORIZED),
)
async def logout(principal: CurrentPrincipal, session: SessionDep) -> Response:
    """End the session whose token authenticates this request; the token is not accepted afterwards."""
    if principal.kind is not CredentialKind.SESSION:
        raise unauthorized("session_required", "logging out needs the session token, not an API key")
    await repository.revoke_session(session=session, session_id=principal.credential_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
