"""One transaction per job change, against a real PostgreSQL and a real Kafka-protocol broker: each change
is committed with its Kafka outbox row and its NOTIFY, or with neither; the relay publishes the outbox and
empties it, and leaves it whole when the broker does not take it."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date

import pytest
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.analyses import AnalysisStatus
from emotion_contract.events import AnalysisRequested, Event, Stage, Topic
from services.gateway.db.jobs import (
    JOB_CHANNEL,
    KAFKA_OUTBOX_CHANNEL,
    QuotaCharge,
    change_job,
    create_job,
    get_job,
    requested_event,
)
from services.gateway.db.usage import QuotaExceededError, QuotaLimits
from services.gateway.job_machine import Fail, Progress, Redrive, Requeue
from services.gateway.kafka_relay import KafkaOutboxRelay
from services.gateway.pg_listener import PgListener
from shared.db import JobCreate, KafkaOutboxEvent
from shared.service import publish
from tests.integration.gateway_fixtures import reading_requested

pytest_plugins = ["tests.integration.db_fixtures"]
pytestmark = pytest.mark.integration

QUIET_S = 0.5


@dataclass
class Heard:
    jobs: list[str] = field(default_factory=list)
    outbox: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def job(self, payload: str) -> None:
        self.jobs.append(payload)
        self.changed.set()

    def relay(self, _payload: str) -> None:
        self.outbox += 1
        self.changed.set()

    async def settle(self) -> None:
        """Let what was committed arrive: NOTIFYs come at commit, through another connection."""
        await asyncio.sleep(QUIET_S)


@pytest.fixture
async def heard(migrated_database_url: str) -> AsyncIterator[Heard]:
    heard = Heard()
    listener = PgListener(migrated_database_url, retry_s=0.05)
    listener.listen(JOB_CHANNEL, on_notify=heard.job, on_lost=lambda: None)
    listener.listen(KAFKA_OUTBOX_CHANNEL, on_notify=heard.relay, on_lost=lambda: None)
    await listener.start()
    yield heard
    await listener.stop()


def upload(owner: str) -> JobCreate:
    key = f"uploads/{owner}/{uuid.uuid4().hex}/talk.mp4"
    return JobCreate(bucket="uploads", object_key=key, filename="talk.mp4", size_bytes=1234)


async def outbox(session: AsyncSession) -> list[AnalysisRequested]:
    rows = (await session.exec(select(KafkaOutboxEvent).order_by(col(KafkaOutboxEvent.created_at)))).all()
    assert {row.topic for row in rows} <= {Topic.ANALYSIS_REQUESTED.value}
    return [AnalysisRequested.model_validate(row.payload) for row in rows]


async def test_a_new_job_is_committed_with_its_request_and_its_notification(
    db_session: AsyncSession, heard: Heard
) -> None:
    job, created = await create_job(session=db_session, owner="owner-a", job_in=upload("a"))
    await heard.settle()

    assert created and heard.jobs == [str(job.id)] and heard.outbox == 1
    [request] = await outbox(db_session)
    assert request == requested_event(job).model_copy(update={"occurred_at": request.occurred_at})
    assert request.event_id == requested_event(job).event_id and request.attempt == 1

    again, created = await create_job(
        session=db_session,
        owner="owner-a",
        job_in=upload("a").model_copy(update={"object_key": job.object_key}),
    )
    await heard.settle()
    assert not created and again.id == job.id
    assert heard.jobs == [str(job.id)] and len(await outbox(db_session)) == 1


async def test_each_change_notifies_once_and_only_a_new_attempt_asks_kafka_again(
    db_session: AsyncSession, heard: Heard
) -> None:
    job, _ = await create_job(session=db_session, owner="owner-b", job_in=upload("b"))
    assert await change_job(session=db_session, job_id=job.id, change=Progress(Stage.TRANSCRIBE, attempt=1))
    redriven = await change_job(session=db_session, job_id=job.id, change=Redrive(seen_attempt=1))
    assert redriven is not None and redriven.attempt == 2
    # None of these applies: nothing is written, nobody is woken.
    assert await change_job(session=db_session, job_id=job.id, change=Progress(Stage.FUSE, attempt=1)) is None
    assert await change_job(session=db_session, job_id=job.id, change=Redrive(seen_attempt=1)) is None
    await heard.settle()

    assert heard.jobs == [str(job.id)] * 3 and heard.outbox == 2
    assert [event.attempt for event in await outbox(db_session)] == [1, 2]


async def test_a_change_that_rolls_back_leaves_no_event_and_wakes_nobody(
    db_session: AsyncSession, heard: Heard
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    limits = QuotaLimits(analyses=1, video_seconds=100)
    quota = QuotaCharge(period=date(2026, 12, 1), video_seconds=5.0, limits=limits)
    job, _ = await create_job(session=db_session, owner=owner, job_in=upload(owner), quota=quota)
    job_id = job.id  # the rollback expires the loaded row
    unqueued = Fail(stage=Stage.UPLOAD, code="queue_unavailable", reason="refused", refund=False)
    assert await change_job(session=db_session, job_id=job_id, change=unqueued)
    await heard.settle()
    before = (list(heard.jobs), heard.outbox, len(await outbox(db_session)))

    with pytest.raises(QuotaExceededError):  # its own first charge was kept: the month's one analysis
        await change_job(session=db_session, job_id=job_id, change=Requeue("queue_unavailable"), quota=quota)
    await heard.settle()

    assert (heard.jobs, heard.outbox, len(await outbox(db_session))) == before
    stored = await get_job(session=db_session, job_id=job_id)
    assert stored is not None and (stored.status, stored.attempt) == (AnalysisStatus.FAILED, 1)


async def test_the_relay_publishes_the_outbox_in_order_and_empties_it(
    db_sessions: async_sessionmaker[AsyncSession], kafka_bootstrap: str
) -> None:
    async with db_sessions() as session:
        job, _ = await create_job(session=session, owner="owner-c", job_in=upload("c"))
        await change_job(session=session, job_id=job.id, change=Redrive(seen_attempt=1))
    broker = KafkaBroker(kafka_bootstrap)
    await broker.start()
    try:

        async def send(event: Event) -> None:
            await publish(broker, event)

        registry = CollectorRegistry()
        relay = KafkaOutboxRelay(sessions=db_sessions, publish=send, registry=registry)
        async with reading_requested(kafka_bootstrap) as events:
            assert await relay.relay_once() == 2
            arrived = await events.wait_for(job.id, count=2)
    finally:
        await broker.stop()

    assert [event.attempt for event in arrived] == [1, 2]
    async with db_sessions() as session:
        assert await outbox(session) == []
        assert await relay.relay_once() == 0
    assert registry.get_sample_value("ea_kafka_outbox_published_total") == 2


async def test_a_broker_that_does_not_take_the_event_leaves_it_in_the_outbox(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with db_sessions() as session:
        job, _ = await create_job(session=session, owner="owner-d", job_in=upload("d"))
    unreachable = KafkaBroker("127.0.0.1:1")  # never started: nothing takes what it is given

    async def send(event: Event) -> None:
        async with asyncio.timeout(2.0):
            await publish(unreachable, event)

    registry = CollectorRegistry()
    relay = KafkaOutboxRelay(sessions=db_sessions, publish=send, registry=registry)
    with pytest.raises(Exception):  # noqa: B017 (whatever the client raises, the row must stay)
        await relay.relay_once()

    async with db_sessions() as session:
        assert [event.job_id for event in await outbox(session)] == [job.id]
        current = await change_job(
            session=session, job_id=job.id, change=Progress(Stage.TRANSCRIBE, attempt=1)
        )
    assert current is not None and current.status is AnalysisStatus.PROCESSING
    assert registry.get_sample_value("ea_kafka_outbox_publish_failures_total") == 1
