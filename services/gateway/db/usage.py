"""Monthly usage per owner: charged when an analysis is created, given back when it fails.

Both happen inside the caller's transaction (with the job's insert or its failure), so usage and jobs
never disagree. A charge is one conditional upsert: PostgreSQL locks the counter row and re-checks the
limit against the latest count, so two requests can never both take the last unit.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.models import UsageCounter


class QuotaResource(StrEnum):
    ANALYSES = "analyses"
    VIDEO_SECONDS = "video_seconds"


@dataclass(frozen=True)
class QuotaLimits:
    analyses: int
    video_seconds: float


@dataclass(frozen=True)
class Usage:
    period: date
    analyses: int
    video_seconds: float

    @property
    def resets_at(self) -> datetime:
        return period_end(self.period)


class QuotaExceededError(Exception):
    def __init__(self, resource: QuotaResource, limit: float, used: Usage, requested: float) -> None:
        self.resource = resource
        self.limit = limit
        self.used = used
        self.requested = requested
        needs = f", this analysis needs {requested:g}" if requested > 0 else ""
        super().__init__(
            f"the monthly quota of {limit:g} {resource.value.replace('_', ' ')} is used up "
            f"({_used_of(used, resource):g} used{needs}); "
            f"it resets at {used.resets_at.isoformat()}"
        )


def _used_of(usage: Usage, resource: QuotaResource) -> float:
    return usage.analyses if resource is QuotaResource.ANALYSES else usage.video_seconds


def current_period(now: datetime | None = None) -> date:
    """The first day of the month (UTC) that `now` falls in."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).date().replace(day=1)


def period_end(period: date) -> datetime:
    """When the month that starts at `period` ends and its usage resets."""
    year, month = (period.year + 1, 1) if period.month == 12 else (period.year, period.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


async def get_usage(*, session: AsyncSession, owner: str, period: date) -> Usage:
    row = (
        await session.exec(
            select(UsageCounter)
            .where(UsageCounter.owner == owner, UsageCounter.period == period)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        return Usage(period=period, analyses=0, video_seconds=0.0)
    return Usage(period=period, analyses=row.analyses, video_seconds=row.video_seconds)


async def check_room(*, session: AsyncSession, owner: str, period: date, limits: QuotaLimits) -> None:
    """QuotaExceededError when the owner's month has no analysis or no second left: asked before a file is
    received or fetched, whose length is not known yet (`charge` decides once it is)."""
    used = await get_usage(session=session, owner=owner, period=period)
    if used.analyses + 1 > limits.analyses:
        raise QuotaExceededError(QuotaResource.ANALYSES, limits.analyses, used, 1)
    if used.video_seconds >= limits.video_seconds:
        raise QuotaExceededError(QuotaResource.VIDEO_SECONDS, limits.video_seconds, used, 0)


async def charge(
    *, session: AsyncSession, owner: str, period: date, video_seconds: float, limits: QuotaLimits
) -> Usage:
    """Take one analysis and `video_seconds` from the owner's month, or raise QuotaExceededError.

    Runs in the caller's transaction and does not commit; the caller rolls back on the error.
    """
    if video_seconds < 0:
        raise ValueError(f"video_seconds must not be negative, got {video_seconds}")
    fits_empty_month = limits.analyses >= 1 and video_seconds <= limits.video_seconds
    if fits_empty_month:
        statement = (
            insert(UsageCounter)
            .values(owner=owner, period=period, analyses=1, video_seconds=video_seconds)
            .on_conflict_do_update(
                index_elements=["owner", "period"],
                set_={
                    "analyses": col(UsageCounter.analyses) + 1,
                    "video_seconds": col(UsageCounter.video_seconds) + video_seconds,
                },
                where=(col(UsageCounter.analyses) + 1 <= limits.analyses)
                & (col(UsageCounter.video_seconds) + video_seconds <= limits.video_seconds),
            )
            .returning(col(UsageCounter.analyses), col(UsageCounter.video_seconds))
        )
        taken = (await session.exec(statement)).one_or_none()
        if taken is not None:
            return Usage(period=period, analyses=taken[0], video_seconds=taken[1])
    used = await get_usage(session=session, owner=owner, period=period)
    if used.analyses + 1 > limits.analyses:
        raise QuotaExceededError(QuotaResource.ANALYSES, limits.analyses, used, 1)
    raise QuotaExceededError(QuotaResource.VIDEO_SECONDS, limits.video_seconds, used, video_seconds)


async def refund(*, session: AsyncSession, owner: str, period: date, video_seconds: float) -> None:
    """Give back one analysis and its seconds, in the caller's transaction."""
    await session.exec(
        update(UsageCounter)
        .where(col(UsageCounter.owner) == owner, col(UsageCounter.period) == period)
        .values(
            analyses=func.greatest(col(UsageCounter.analyses) - 1, 0),
            video_seconds=func.greatest(col(UsageCounter.video_seconds) - video_seconds, 0.0),
        )
        .execution_options(synchronize_session=False)
    )


async def charge_more(*, session: AsyncSession, owner: str, period: date, video_seconds: float) -> None:
    """Add seconds to a charge already made, whatever the limit (the work is done), in the caller's
    transaction: what a file measured beyond what its header declared when it was charged."""
    if video_seconds <= 0:
        return
    await session.exec(
        update(UsageCounter)
        .where(col(UsageCounter.owner) == owner, col(UsageCounter.period) == period)
        .values(video_seconds=col(UsageCounter.video_seconds) + video_seconds)
        .execution_options(synchronize_session=False)
    )
