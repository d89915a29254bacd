"""Whose a bearer credential is: an API key (by its keyed hash) or a session JWT (by its live session).

A credential is active only while its user is not disabled; an unknown, revoked, expired or forged one
is simply not active, without saying which (the caller learns nothing it could probe with).
"""

import uuid
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.accounts import CredentialKind, Introspection
from shared.db.account_models import UserAccount

from . import repository
from .api_keys import is_api_key
from .state import AuthState
from .tokens import InvalidTokenError
from .views import limits_of


@dataclass(frozen=True)
class Principal:
    user: UserAccount
    kind: CredentialKind
    credential_id: uuid.UUID


def kind_of(token: str) -> CredentialKind:
    """The kind a token has the form of (anything not shaped like an API key is tried as a JWT)."""
    return CredentialKind.API_KEY if is_api_key(token) else CredentialKind.SESSION


async def authenticate(token: str, *, state: AuthState, session: AsyncSession) -> Principal | None:
    """The principal the token stands for now, or None. Using an API key records its last use."""
    if kind_of(token) is CredentialKind.API_KEY:
        found_key = await repository.find_active_key_by_hash(session=session, key_hash=state.keys.hash(token))
        if found_key is None:
            return None
        key, user = found_key
        if not state.keys.matches(token, key.key_hash) or user.disabled:
            return None
        await repository.touch_last_used(session=session, key_id=key.id)
        return Principal(user=user, kind=CredentialKind.API_KEY, credential_id=key.id)
    try:
        claims = state.tokens.decode(token)
    except InvalidTokenError:
        return None
    found_session = await repository.find_live_session(
        session=session, session_id=claims.session_id, user_id=claims.user_id
    )
    if found_session is None or found_session[1].disabled:
        return None
    auth_session, user = found_session
    return Principal(user=user, kind=CredentialKind.SESSION, credential_id=auth_session.id)


def introspection_of(principal: Principal | None, state: AuthState) -> Introspection:
    if principal is None:
        return Introspection(active=False)
    return Introspection(
        active=True,
        user_id=principal.user.id,
        kind=principal.kind,
        credential_id=principal.credential_id,
        limits=limits_of(principal.user, state.settings),
    )
