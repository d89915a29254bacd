"""Job-change notifications over PostgreSQL LISTEN/NOTIFY, fanned out to the requests waiting on a job.

Whoever changes a job runs `notify_job_updated` after committing. Each gateway process holds one LISTEN
connection; a request waiting on a job subscribes before it reads the job, so a change between its read
and its wait still wakes it. Waiters also wake every `fallback_s`, in case a notification was lost
(e.g. while the LISTEN connection was being re-established).
"""

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # typed only in newer releases
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.session import parse_database_url

CHANNEL: Final = "ea_job_updates"
RECONNECT_PAUSE_S: Final = 1.0

logger = logging.getLogger(__name__)


async def notify_job_updated(session: AsyncSession, job_id: uuid.UUID) -> None:
    """Tell every gateway process that the job changed; call after the change is committed."""
    connection = await session.connection()
    await connection.execute(select(func.pg_notify(CHANNEL, str(job_id))))
    await session.commit()


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq DSN of a `postgresql+asyncpg://` SQLAlchemy URL."""
    parsed = parse_database_url(database_url)
    return make_url(parsed).set(drivername="postgresql").render_as_string(hide_password=False)


class Subscription:
    def __init__(self, event: asyncio.Event, fallback_s: float) -> None:
        self._event = event
        self._fallback_s = fallback_s

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for a notification, at most the fallback period (or `timeout_s` if shorter).

        True when notified. Either way the caller re-reads the job.
        """
        limit = self._fallback_s if timeout_s is None else min(timeout_s, self._fallback_s)
        try:
            async with asyncio.timeout(max(limit, 0.0)):
                await self._event.wait()
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True


class JobUpdates:
    """One LISTEN connection per process and the waiters on each job id."""

    def __init__(self, database_url: str, *, fallback_s: float = 5.0) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._fallback_s = fallback_s
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._connection: asyncpg.Connection | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def listening(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def start(self) -> None:
        await self._listen()

    async def stop(self) -> None:
        self._closing = True
        if self._reconnect is not None:
            self._reconnect.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()
        self._wake_all()

    @contextlib.contextmanager
    def subscribe(self, job_id: uuid.UUID) -> Iterator[Subscription]:
        event = asyncio.Event()
        key = str(job_id)
        self._waiters[key].add(event)
        try:
            yield Subscription(event, self._fallback_s)
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[key]

    async def _listen(self) -> None:
        connection = await asyncpg.connect(self._dsn)
        connection.add_termination_listener(self._on_terminated)
        await connection.add_listener(CHANNEL, self._on_notification)
        self._connection = connection

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        for event in self._waiters.get(payload, ()):
            event.set()

    def _on_terminated(self, _connection: Any) -> None:
        self._connection = None
        if not self._closing:
            logger.warning("lost the LISTEN connection; reconnecting")
            # Changes may have gone unnoticed while it was down.
            self._wake_all()
            self._reconnect = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        while not self._closing:
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError) as exc:
                logger.warning("LISTEN reconnect failed: %s", exc)
                await asyncio.sleep(RECONNECT_PAUSE_S)
            else:
                self._wake_all()
                return

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()
