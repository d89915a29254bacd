"""A generic cell rate algorithm (GCRA) whose state is a row per key in PostgreSQL, so that every gateway
replica counts against the same limit.

Each key keeps one timestamp, its theoretical arrival time (TAT). A request is allowed when the TAT runs
no more than `burst_s` ahead of now, and moves it on by `interval_s`. One statement decides, under the
row's lock, so concurrent requests through any number of replicas never take more than the limit. The
database clock is the only clock, so replicas with skewed clocks agree. It is read when the statement runs
(clock_timestamp(), not the transaction's start, now()): a request that waited for the row's lock then
counts from the moment it got it.
"""

from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

_TAKE = text(
    """
    INSERT INTO rate_limit_cell AS cell (key, tat)
    VALUES (:key, clock_timestamp() + make_interval(secs => :interval_s))
    ON CONFLICT (key) DO UPDATE
        SET tat = greatest(cell.tat, clock_timestamp()) + make_interval(secs => :interval_s)
        WHERE greatest(cell.tat, clock_timestamp()) <= clock_timestamp() + make_interval(secs => :burst_s)
    RETURNING extract(epoch FROM tat - clock_timestamp())
    """
)
# A statement of its own: under READ COMMITTED it sees what concurrent requests committed meanwhile, where
# a subquery of the INSERT would see the cell as it was when that statement began.
_AHEAD = text("SELECT extract(epoch FROM tat - clock_timestamp()) FROM rate_limit_cell WHERE key = :key")
_FORGET_PAST = text("DELETE FROM rate_limit_cell WHERE tat < now()")


@dataclass(frozen=True)
class Take:
    allowed: bool
    ahead_s: float
    """How far the key's TAT runs ahead of now: after this request when allowed, as it stands when not."""


async def take(*, session: AsyncSession, key: str, interval_s: float, burst_s: float) -> Take:
    """Count one request of `key` if the cell allows it; commits."""
    if interval_s <= 0 or burst_s < 0:
        raise ValueError(f"interval_s must be positive and burst_s not negative, got {interval_s}, {burst_s}")
    params = {"key": key, "interval_s": interval_s, "burst_s": burst_s}
    taken_ahead_s = (await session.execute(_TAKE, params)).scalar_one_or_none()
    if taken_ahead_s is not None:
        await session.commit()
        return Take(allowed=True, ahead_s=float(taken_ahead_s))
    # Refused: one more statement, for how long to wait.
    ahead_s = (await session.execute(_AHEAD, {"key": key})).scalar_one_or_none()
    await session.commit()
    if ahead_s is None:  # pruned in between: it had run out, so the next request fits at once
        return Take(allowed=False, ahead_s=burst_s)
    return Take(allowed=False, ahead_s=max(0.0, float(ahead_s)))


async def ahead(*, session: AsyncSession, key: str) -> float | None:
    """How far the key's TAT runs ahead of now, counting nothing; None without a cell. Commits."""
    ahead_s = (await session.execute(_AHEAD, {"key": key})).scalar_one_or_none()
    await session.commit()
    return None if ahead_s is None else float(ahead_s)


async def forget_past_cells(*, session: AsyncSession) -> int:
    """Delete the cells whose TAT has passed: such a cell says no more than no cell at all."""
    result = await session.execute(_FORGET_PAST)
    await session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
