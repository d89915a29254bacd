"""Job-change notifications over PostgreSQL LISTEN/NOTIFY, fanned out to the requests waiting on a job.

Every job change NOTIFYs its id in its own transaction (`db.jobs`), which PostgreSQL delivers when, and
only if, it commits. The process's one LISTEN connection (`PgListener`) carries the channel; a request
waiting on a job subscribes before it reads the job, so a change between its read and its wait still
wakes it. Waiters also wake every `fallback_s`, and all of them
whenever the listener may have missed a notification.
"""

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import Iterator

from .db.jobs import JOB_CHANNEL
from .pg_listener import PgListener


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
    """The requests waiting on each job id, woken through the listener's job channel."""

    def __init__(self, listener: PgListener, *, fallback_s: float = 5.0) -> None:
        self._listener = listener
        self._fallback_s = fallback_s
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        listener.listen(JOB_CHANNEL, on_notify=self._on_notification, on_lost=self._wake_all)

    @property
    def listening(self) -> bool:
        return self._listener.listening

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

    def _on_notification(self, payload: str) -> None:
        for event in self._waiters.get(payload, ()):
            event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()
