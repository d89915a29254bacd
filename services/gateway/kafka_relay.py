"""The Kafka outbox relay: publishes the events job changes committed to `kafka_outbox`, then deletes them.

The job change and its event are one transaction (`db.jobs`), so the gateway never publishes beside a
commit: a broker outage delays the pipeline and loses nothing. Every gateway replica may run a relay; rows
are claimed with SKIP LOCKED, so replicas share them without publishing one twice at once. Delivery is at
least once (a relay that dies between publishing and deleting publishes again), which the consumers
already tolerate: an event's id is stable and every handler is idempotent.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.events import AnalysisRequested, Event, Topic
from shared.db.models import KafkaOutboxEvent

from .db.jobs import KAFKA_OUTBOX_CHANNEL
from .pg_listener import PgListener

DEFAULT_BATCH_SIZE: Final = 64
# What job changes write to the outbox: a new attempt to analyse.
EVENT_TYPES: Final[dict[str, type[Event]]] = {Topic.ANALYSIS_REQUESTED.value: AnalysisRequested}

logger = logging.getLogger(__name__)

Publisher = Callable[[Event], Awaitable[None]]


class KafkaOutboxRelay:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        publish: Publisher,
        registry: CollectorRegistry,
        listener: PgListener | None = None,
        poll_interval_s: float = 2.0,
        retry_after_s: float = 1.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._sessions = sessions
        self._publish = publish
        self._poll_interval_s = poll_interval_s
        self._retry_after_s = retry_after_s
        self._batch_size = batch_size
        self._wake = asyncio.Event()
        if listener is not None:
            listener.listen(
                KAFKA_OUTBOX_CHANNEL, on_notify=lambda _payload: self._wake.set(), on_lost=self._wake.set
            )
        self.published = Counter(
            "ea_kafka_outbox_published", "Events the relay published from the Kafka outbox", registry=registry
        )
        self.failures = Counter(
            "ea_kafka_outbox_publish_failures",
            "Publishes from the Kafka outbox the broker did not take (the event stays, to be tried again)",
            registry=registry,
        )

    async def run(self) -> None:
        """Relay until cancelled: woken by NOTIFY, else every poll interval; after a failed publish, again
        once `retry_after_s` has passed."""
        while True:
            self._wake.clear()  # before the claim: a notification during the batch starts the next one now
            try:
                relayed = await self.relay_once()
            except Exception:
                logger.exception("the Kafka outbox relay failed; its events stay and are tried again")
                await asyncio.sleep(self._retry_after_s)
                continue
            if relayed < self._batch_size:
                await self._wait(self._poll_interval_s)

    async def relay_once(self) -> int:
        """Publish one batch, oldest first, and delete what was published; how many were published.

        A publish the broker refuses ends the batch: what was published before it is deleted, the rest
        stays, and the error is raised."""
        async with self._sessions() as session:
            statement = (
                select(KafkaOutboxEvent)
                .order_by(col(KafkaOutboxEvent.created_at))
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = list((await session.exec(statement)).all())
            published: list[KafkaOutboxEvent] = []
            try:
                for row in rows:
                    await self._publish(EVENT_TYPES[row.topic].model_validate(row.payload))
                    published.append(row)
            except Exception:
                self.failures.inc()
                raise
            finally:
                if published:
                    ids = [row.event_id for row in published]
                    await session.exec(
                        delete(KafkaOutboxEvent).where(col(KafkaOutboxEvent.event_id).in_(ids))
                    )
                await session.commit()
                self.published.inc(len(published))
        return len(published)

    async def _wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()
