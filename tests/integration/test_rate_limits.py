"""The GCRA cells in PostgreSQL: exact under concurrency (as through many gateway replicas), refilling with
time, and pruned once spent."""

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.gateway.db.rate_limits import forget_past_cells, take
from services.gateway.rate_limit import Cell, RateLimiter

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.db_fixtures"]


def new_key() -> str:
    return f"test:{uuid.uuid4()}"


async def test_concurrent_requests_on_separate_connections_take_exactly_the_limit(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    limiter, key = RateLimiter(db_sessions), new_key()

    decisions = await asyncio.gather(*(limiter.check(key, 5) for _ in range(30)))

    assert sum(decision.allowed for decision in decisions) == 5
    assert sorted(decision.remaining for decision in decisions if decision.allowed) == [0, 1, 2, 3, 4]
    waits = [decision.retry_after_s for decision in decisions if not decision.allowed]
    # One interval (12 s), less the time the 30 requests took.
    assert all(6 <= wait <= 12 for wait in waits), waits


async def test_a_cell_refills_one_request_per_interval(db_session: AsyncSession) -> None:
    # No burst, one request per half second: back-to-back requests are refused whatever the machine's load,
    # and one interval later the next one fits.
    key = new_key()
    assert (await take(session=db_session, key=key, interval_s=0.5, burst_s=0.0)).allowed
    refused = await take(session=db_session, key=key, interval_s=0.5, burst_s=0.0)
    assert not refused.allowed and 0.0 < refused.ahead_s <= 0.5

    await asyncio.sleep(0.6)

    assert (await take(session=db_session, key=key, interval_s=0.5, burst_s=0.0)).allowed
    assert not (await take(session=db_session, key=key, interval_s=0.5, burst_s=0.0)).allowed


async def test_keys_are_counted_apart(db_sessions: async_sessionmaker[AsyncSession]) -> None:
    limiter, first, second = RateLimiter(db_sessions), new_key(), new_key()
    assert (await limiter.check(first, 1)).allowed
    assert not (await limiter.check(first, 1)).allowed
    assert (await limiter.check(second, 1)).allowed


async def test_spent_cells_are_pruned_and_live_ones_kept(db_session: AsyncSession) -> None:
    spent, live = new_key(), new_key()
    cell = Cell(60)
    await take(session=db_session, key=spent, interval_s=0.001, burst_s=cell.burst_s)
    await take(session=db_session, key=live, interval_s=cell.interval_s, burst_s=cell.burst_s)
    await asyncio.sleep(0.01)

    await forget_past_cells(session=db_session)

    keys = set((await db_session.execute(text("SELECT key FROM rate_limit_cell"))).scalars())
    assert spent not in keys and live in keys


async def test_take_refuses_nonsense_parameters(db_session: AsyncSession) -> None:
    with pytest.raises(ValueError):
        await take(session=db_session, key=new_key(), interval_s=0, burst_s=1)


async def test_the_cells_are_kept_out_of_the_write_ahead_log(db_session: AsyncSession) -> None:
    persistence = await db_session.execute(
        text("SELECT relpersistence::text FROM pg_class WHERE relname = 'rate_limit_cell'")
    )
    assert persistence.scalar_one() == "u"  # UNLOGGED
