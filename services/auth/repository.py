"""The auth service's reads and writes of user_account, auth_session and api_key.

Each public function commits its own work; `register_user` writes the account and its first key in one
transaction, so an account never exists without a key. Emails are stored lower-cased, and looked up so.
"""

import uuid
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.account_models import ApiKey, AuthSession, UserAccount

from .api_keys import KeyHasher, MintedKey

# A fresh key's 8-character prefix may (rarely) equal an existing one; a new draw then fixes it.
MAX_KEY_DRAWS: Final = 5
LAST_USED_RESOLUTION: Final = timedelta(seconds=60)
_NO_SYNC: Final = {"synchronize_session": False}
# With expire_on_commit=False a session keeps rows it loaded earlier; a read must overwrite them.
_FRESH: Final = {"populate_existing": True}


class EmailTakenError(Exception):
    def __init__(self, email: str) -> None:
        super().__init__(f"an account with the email {email!r} exists already")
        self.email = email


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def _insert_user(session: AsyncSession, *, email: str, password_hash: str) -> UserAccount:
    # ON CONFLICT DO NOTHING rather than catching the unique violation: the transaction stays usable,
    # and a concurrent registration of the same email waits for the first to commit, then finds it.
    statement = (
        insert(UserAccount)
        .values(id=uuid.uuid4(), email=normalize_email(email), password_hash=password_hash)
        .on_conflict_do_nothing(index_elements=[col(UserAccount.email)])
        .returning(UserAccount)
    )
    user: UserAccount | None = (await session.exec(statement)).scalar_one_or_none()
    if user is None:
        await session.rollback()
        raise EmailTakenError(normalize_email(email))
    return user


async def _insert_key(
    session: AsyncSession, *, user_id: uuid.UUID, name: str, hasher: KeyHasher
) -> tuple[ApiKey, MintedKey]:
    for _ in range(MAX_KEY_DRAWS):
        minted = hasher.mint()
        statement = (
            insert(ApiKey)
            .values(
                id=uuid.uuid4(), user_id=user_id, name=name, prefix=minted.prefix, key_hash=minted.key_hash
            )
            .on_conflict_do_nothing()
            .returning(ApiKey)
        )
        row: ApiKey | None = (await session.exec(statement)).scalar_one_or_none()
        if row is not None:
            return row, minted
    raise RuntimeError(f"no unused key prefix in {MAX_KEY_DRAWS} draws")


async def register_user(
    *, session: AsyncSession, email: str, password_hash: str, hasher: KeyHasher, key_name: str = "default"
) -> tuple[UserAccount, ApiKey, MintedKey]:
    """A new account with its first API key, in one transaction; EmailTakenError when the email has one."""
    user = await _insert_user(session, email=email, password_hash=password_hash)
    key, minted = await _insert_key(session, user_id=user.id, name=key_name, hasher=hasher)
    await session.commit()
    return user, key, minted


async def find_user_by_email(*, session: AsyncSession, email: str) -> UserAccount | None:
    statement = select(UserAccount).where(UserAccount.email == normalize_email(email))
    return (await session.exec(statement.execution_options(**_FRESH))).one_or_none()


async def update_password_hash(*, session: AsyncSession, user_id: uuid.UUID, password_hash: str) -> None:
    await session.exec(
        update(UserAccount)
        .where(col(UserAccount.id) == user_id)
        .values(password_hash=password_hash)
        .execution_options(**_NO_SYNC)
    )
    await session.commit()


async def create_session(*, session: AsyncSession, user_id: uuid.UUID, expires_at: datetime) -> AuthSession:
    row = AuthSession(user_id=user_id, expires_at=expires_at)
    session.add(row)
    await session.commit()
    return row


async def get_session(*, session: AsyncSession, session_id: uuid.UUID) -> AuthSession | None:
    statement = select(AuthSession).where(AuthSession.id == session_id)
    return (await session.exec(statement.execution_options(**_FRESH))).one_or_none()


async def find_live_session(
    *, session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[AuthSession, UserAccount] | None:
    """The session with its user while it is neither revoked nor expired (by the database's clock)."""
    statement = (
        select(AuthSession, UserAccount)
        .join(UserAccount, col(UserAccount.id) == col(AuthSession.user_id))
        .where(
            AuthSession.id == session_id,
            AuthSession.user_id == user_id,
            col(AuthSession.revoked_at).is_(None),
            col(AuthSession.expires_at) > func.now(),
        )
        .execution_options(**_FRESH)
    )
    row = (await session.exec(statement)).one_or_none()
    return None if row is None else (row[0], row[1])


async def revoke_session(*, session: AsyncSession, session_id: uuid.UUID) -> bool:
    """End the session; False when it does not exist or had ended already."""
    result = await session.exec(
        update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=func.now())
        .returning(col(AuthSession.id))
        .execution_options(**_NO_SYNC)
    )
    revoked = result.scalar_one_or_none() is not None
    await session.commit()
    return revoked


class TooManyKeysError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"an account may have {limit} active API keys; revoke one before creating another")
        self.limit = limit


async def create_api_key(
    *, session: AsyncSession, user_id: uuid.UUID, name: str, hasher: KeyHasher, max_active: int
) -> tuple[ApiKey, MintedKey]:
    """A new key for the user: the stored row, and the minted key whose `key` is shown this once;
    TooManyKeysError when the user already has `max_active` unrevoked keys."""
    # The user's row is locked while its keys are counted, so concurrent requests cannot pass the cap.
    await session.exec(select(UserAccount.id).where(UserAccount.id == user_id).with_for_update())
    active = await session.exec(
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.user_id == user_id, col(ApiKey.revoked_at).is_(None))
    )
    if active.one() >= max_active:
        await session.rollback()
        raise TooManyKeysError(max_active)
    key, minted = await _insert_key(session, user_id=user_id, name=name, hasher=hasher)
    await session.commit()
    return key, minted


async def list_api_keys(*, session: AsyncSession, user_id: uuid.UUID) -> list[ApiKey]:
    """The user's keys, revoked ones included, oldest first."""
    statement = (
        select(ApiKey)
        .where(ApiKey.user_id == user_id)
        .order_by(col(ApiKey.created_at), col(ApiKey.id))
        .execution_options(**_FRESH)
    )
    return list((await session.exec(statement)).all())


async def revoke_api_key(*, session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    """Revoke one of the user's keys (again: a no-op); None when the user has no key with this id."""
    result = await session.exec(
        update(ApiKey)
        .where(col(ApiKey.id) == key_id, col(ApiKey.user_id) == user_id)
        .values(revoked_at=func.coalesce(col(ApiKey.revoked_at), func.now()))
        .returning(ApiKey)
        .execution_options(**_NO_SYNC, **_FRESH)
    )
    key: ApiKey | None = result.scalar_one_or_none()
    await session.commit()
    return key


async def find_active_key_by_hash(
    *, session: AsyncSession, key_hash: str
) -> tuple[ApiKey, UserAccount] | None:
    """The unrevoked key with this hash, and its user (who may be disabled: the caller decides)."""
    statement = (
        select(ApiKey, UserAccount)
        .join(UserAccount, col(UserAccount.id) == col(ApiKey.user_id))
        .where(ApiKey.key_hash == key_hash, col(ApiKey.revoked_at).is_(None))
        .execution_options(**_FRESH)
    )
    row = (await session.exec(statement)).one_or_none()
    return None if row is None else (row[0], row[1])


async def touch_last_used(
    *, session: AsyncSession, key_id: uuid.UUID, resolution: timedelta = LAST_USED_RESOLUTION
) -> bool:
    """Record a use of the key, unless one was recorded within `resolution`; whether a row was written.

    A busy key would otherwise write (and lock) its row on every check.
    """
    last_used = col(ApiKey.last_used_at)
    result = await session.exec(
        update(ApiKey)
        .where(col(ApiKey.id) == key_id, or_(last_used.is_(None), last_used < func.now() - resolution))
        .values(last_used_at=func.now())
        .returning(col(ApiKey.id))
        .execution_options(**_NO_SYNC)
    )
    touched = result.scalar_one_or_none() is not None
    await session.commit()
    return touched
