"""One PostgreSQL LISTEN connection per gateway process, shared by every channel that wakes something.

The job watchers and the webhook dispatcher register a channel each before `start`. A lost connection is
re-established in the background; meanwhile, and once more when it is back, every channel is told it may
have missed notifications (`on_lost`), so that its waiters look for themselves instead of waiting.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped, unused-ignore]  # typed only in newer releases
from sqlalchemy.engine import make_url

from shared.db.session import parse_database_url

CONNECT_TIMEOUT_S: Final = 10.0
RETRY_S: Final = 1.0

logger = logging.getLogger(__name__)


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq DSN of a `postgresql+asyncpg://` SQLAlchemy URL."""
    parsed = parse_database_url(database_url)
    return make_url(parsed).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True)
class Channel:
    name: str
    on_notify: Callable[[str], None]
    """Called with the payload of each notification."""
    on_lost: Callable[[], None]
    """Called when notifications may have been missed: the connection dropped, came back, or closed."""


class PgListener:
    def __init__(
        self, database_url: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S, retry_s: float = RETRY_S
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._connect_timeout_s = connect_timeout_s
        self._retry_s = retry_s
        self._channels: dict[str, Channel] = {}
        self._connection: asyncpg.Connection | None = None
        self._dropped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def listen(self, channel: str, *, on_notify: Callable[[str], None], on_lost: Callable[[], None]) -> None:
        if self._task is not None:
            raise RuntimeError("channels are registered before the listener starts")
        if channel in self._channels:
            raise ValueError(f"channel {channel!r} already has a listener")
        self._channels[channel] = Channel(channel, on_notify, on_lost)

    @property
    def listening(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def start(self) -> None:
        """Connect (or keep trying in the background: waiters poll meanwhile) and stay connected."""
        if self._task is not None:
            raise RuntimeError("the listener is already started")
        connected = await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._stay_connected(connected))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.remove_termination_listener(self._on_terminated)
            if not connection.is_closed():
                with contextlib.suppress(OSError, asyncpg.PostgresError):
                    await connection.close()
        self._all_lost()

    async def _stay_connected(self, connected: bool) -> None:
        while True:
            if connected:
                await self._dropped.wait()
                self._dropped.clear()
            await asyncio.sleep(self._retry_s)
            connected = await self._connect()
            if connected:
                logger.info("LISTEN connection re-established")
                self._all_lost()  # notifications sent while it was down reached no one

    async def _connect(self) -> bool:
        try:
            connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout_s)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            logger.warning("cannot LISTEN (waiters poll meanwhile): %s", exc)
            return False
        try:
            for channel in self._channels.values():
                await connection.add_listener(channel.name, self._on_notification)
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("cannot LISTEN (waiters poll meanwhile): %s", exc)
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                await connection.close()
            return False
        connection.add_termination_listener(self._on_terminated)
        self._connection = connection
        return True

    def _on_notification(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        self._channels[channel].on_notify(payload)

    def _on_terminated(self, _connection: Any) -> None:
        logger.warning("lost the LISTEN connection; reconnecting")
        self._connection = None
        self._all_lost()
        self._dropped.set()

    def _all_lost(self) -> None:
        for channel in self._channels.values():
            channel.on_lost()
