"""The upload URLs an account holds: granted under a cap, spent when analysed, forgotten once their object
would have expired unclaimed.

A URL lets its holder put one file of up to the upload limit in the bucket, which stays until it is analysed
or removed unclaimed (`EA_UNCLAIMED_UPLOAD_TTL_S`): without a cap, an account could park 120 files of
512 MiB a minute there. The count and the insert run under a per-owner advisory lock, so parallel requests
cannot both take the last one.
"""

from datetime import timedelta

from sqlalchemy import delete, func, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import UploadGrant

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('upload-grant:' || :owner, 0))")


class TooManyUploadUrls(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this account holds {limit} upload URLs whose files were not analysed yet; analyse them, or "
            "wait for the unused ones to expire"
        )
        self.limit = limit


async def grant_upload(
    *, session: AsyncSession, owner: str, key: str, limit: int, forget_after: timedelta
) -> None:
    """Record an upload URL for `key`; TooManyUploadUrls when the owner already holds `limit` not analysed
    within `forget_after`. Commits."""
    await session.exec(_LOCK, params={"owner": owner})  # type: ignore[call-overload]
    await session.exec(
        delete(UploadGrant).where(
            col(UploadGrant.owner) == owner, col(UploadGrant.issued_at) < func.now() - forget_after
        )
    )
    held = (
        await session.exec(select(func.count()).select_from(UploadGrant).where(UploadGrant.owner == owner))
    ).one()
    if held >= limit:
        await session.rollback()
        raise TooManyUploadUrls(limit)
    session.add(UploadGrant(key=key, owner=owner))
    await session.commit()


async def spend_upload(*, session: AsyncSession, key: str) -> None:
    """The URL's file is analysed (or refused for good): it no longer counts. Commits."""
    await session.exec(delete(UploadGrant).where(col(UploadGrant.key) == key))
    await session.commit()


async def forget_old_grants(*, session: AsyncSession, older_than: timedelta) -> int:
    """Remove the grants whose files would have been removed unclaimed by now; how many. Commits."""
    removed = await session.exec(
        delete(UploadGrant)
        .where(col(UploadGrant.issued_at) < func.now() - older_than)
        .returning(col(UploadGrant.key))
    )
    count = len(removed.all())
    await session.commit()
    return count
