"""The gateway's one LISTEN connection against a real PostgreSQL: channels, a lost connection, shutdown."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.gateway.pg_listener import PgListener

pytest_plugins = ["tests.integration.db_fixtures"]
pytestmark = pytest.mark.integration

LIMIT_S = 10.0


@dataclass
class Heard:
    payloads: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    lost: int = 0
    lost_changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_lost(self) -> None:
        self.lost += 1
        self.lost_changed.set()

    async def lost_reaches(self, count: int) -> None:
        async with asyncio.timeout(LIMIT_S):
            while self.lost < count:
                self.lost_changed.clear()
                await self.lost_changed.wait()


def channel_names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"test_jobs_{suffix}", f"test_hooks_{suffix}"


@pytest.fixture
async def two_channels(migrated_database_url: str) -> AsyncIterator[tuple[PgListener, dict[str, Heard]]]:
    listener = PgListener(migrated_database_url, retry_s=0.05)
    heard = {name: Heard() for name in channel_names()}
    for name, sink in heard.items():
        listener.listen(name, on_notify=sink.payloads.put_nowait, on_lost=sink.on_lost)
    await listener.start()
    yield listener, heard
    await listener.stop()


async def notify(engine: AsyncEngine, channel: str, payload: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(select(func.pg_notify(channel, payload)))


async def listening_backends(engine: AsyncEngine, channels: list[str]) -> int:
    async with engine.connect() as connection:
        query = text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND ("
            + " OR ".join(f"query LIKE '%{name}%'" for name in channels)
            + ")"
        )
        return int(await connection.scalar(query) or 0)


async def test_each_channel_hears_its_own_notifications_over_one_connection(
    two_channels: tuple[PgListener, dict[str, Heard]], db_engine: AsyncEngine
) -> None:
    listener, heard = two_channels
    jobs, hooks = heard
    assert listener.listening
    assert await listening_backends(db_engine, [jobs, hooks]) == 1

    await notify(db_engine, jobs, "job-1")
    await notify(db_engine, hooks, "")
    await notify(db_engine, jobs, "job-2")

    async with asyncio.timeout(LIMIT_S):
        assert [await heard[jobs].payloads.get() for _ in range(2)] == ["job-1", "job-2"]
        assert await heard[hooks].payloads.get() == ""
    assert heard[jobs].payloads.empty() and heard[hooks].payloads.empty()
    assert heard[jobs].lost == heard[hooks].lost == 0


async def test_a_lost_connection_tells_every_channel_and_comes_back(
    two_channels: tuple[PgListener, dict[str, Heard]], db_engine: AsyncEngine
) -> None:
    listener, heard = two_channels
    jobs, hooks = heard
    async with db_engine.connect() as admin:
        killed = await admin.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                f"WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%{hooks}%'"
            )
        )
    assert killed == 1

    # Once when it drops, once more when it is back: notifications in between reached no one.
    for sink in heard.values():
        await sink.lost_reaches(2)
    assert listener.listening

    await notify(db_engine, jobs, "after")
    async with asyncio.timeout(LIMIT_S):
        assert await heard[jobs].payloads.get() == "after"


async def test_stopping_wakes_every_channel_and_closes_the_connection(
    migrated_database_url: str, db_engine: AsyncEngine
) -> None:
    listener = PgListener(migrated_database_url)
    jobs, hooks = channel_names()
    sinks = {jobs: Heard(), hooks: Heard()}
    for name, sink in sinks.items():
        listener.listen(name, on_notify=sink.payloads.put_nowait, on_lost=sink.on_lost)
    await listener.start()
    await listener.stop()

    assert not listener.listening
    assert [sink.lost for sink in sinks.values()] == [1, 1]
    assert await listening_backends(db_engine, [jobs, hooks]) == 0


async def test_an_unreachable_database_does_not_stop_the_gateway_from_starting() -> None:
    listener = PgListener("postgresql+asyncpg://nobody@127.0.0.1:1/none", connect_timeout_s=1.0, retry_s=60.0)
    sink = Heard()
    listener.listen("test_jobs", on_notify=sink.payloads.put_nowait, on_lost=sink.on_lost)
    await listener.start()
    assert not listener.listening
    await listener.stop()
    assert sink.lost == 1


async def test_channels_are_registered_once_and_before_the_start(migrated_database_url: str) -> None:
    listener = PgListener(migrated_database_url)
    listener.listen("test_jobs", on_notify=lambda _: None, on_lost=lambda: None)
    with pytest.raises(ValueError, match="already"):
        listener.listen("test_jobs", on_notify=lambda _: None, on_lost=lambda: None)
    await listener.start()
    try:
        with pytest.raises(RuntimeError, match="before"):
            listener.listen("test_hooks", on_notify=lambda _: None, on_lost=lambda: None)
    finally:
        await listener.stop()
