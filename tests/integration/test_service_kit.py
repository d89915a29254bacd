"""The stage runner every worker shares (`ServiceKit.run_stage`), on the real broker and S3 server: an event
whose stage keeps failing is redelivered a bounded number of times, then dead-lettered with its job failed,
so that it no longer holds up its partition."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped, unused-ignore]

from devstack import LocalStack
from emotion_contract.events import (
    AnalysisCompleted,
    AnalysisFailed,
    AnalysisRequested,
    DeadLettered,
    Event,
    Stage,
    Topic,
)
from emotion_contract.results import AnalysisResult, UtteranceResult, emotion_scores, sentiment_scores
from shared.claim_check import ClaimCheck, ClaimCheckError, ClaimTicket, forget_job
from shared.deliveries import DeliveryLedger
from shared.service import DELIVERY_FAILED, ServiceKit, publish, subscriber_options
from shared.settings import PipelineSettings
from shared.storage import ObjectStore

pytestmark = pytest.mark.integration

ARRIVAL_TIMEOUT_S = 60.0


async def _watch(bootstrap: str, topic: Topic, job_id: uuid.UUID, found: list[bytes]) -> None:
    consumer = AIOKafkaConsumer(topic.value, bootstrap_servers=bootstrap, auto_offset_reset="latest")
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            found.extend(
                record.value
                for records in batches.values()
                for record in records
                if record.key == str(job_id).encode()
            )
    finally:
        await consumer.stop()


@pytest.fixture
async def kit(stack: LocalStack) -> AsyncIterator[ServiceKit]:
    settings = PipelineSettings.model_validate(
        {
            **stack.settings().model_dump(),
            "service_name": f"kit-test-{uuid.uuid4().hex[:8]}",
            "max_deliveries": 2,
            "kafka_session_timeout_ms": 6000,
        }
    )
    yield ServiceKit(settings)


async def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_an_event_that_keeps_failing_is_dead_lettered_and_its_job_failed(
    kit: ServiceKit, stack: LocalStack, object_store: ObjectStore
) -> None:
    job_id = uuid.uuid4()
    tries: list[float] = []

    @kit.consumer(Topic.ANALYSIS_REQUESTED.value)
    async def on_requested(event: AnalysisRequested) -> None:
        if event.job_id != job_id:
            return  # another test's job on the shared topic

        async def never_heals() -> Event:
            tries.append(time.monotonic())
            raise ConnectionError("the object store is unreachable")

        await kit.run_stage(event, Stage.TRANSCRIBE, never_heals)

    failed: list[bytes] = []
    dead: list[bytes] = []
    watchers = [
        asyncio.create_task(_watch(stack.kafka_bootstrap, Topic.ANALYSIS_FAILED, job_id, failed)),
        asyncio.create_task(_watch(stack.kafka_bootstrap, Topic.DEAD_LETTER, job_id, dead)),
    ]
    await asyncio.sleep(2)  # the watchers start at the end of the topics
    event = AnalysisRequested(
        job_id=job_id, bucket="uploads", object_key="media/x/y/clip.mp4", filename="clip.mp4", size_bytes=10
    )
    try:
        async with kit.broker:
            await kit.broker.start()
            await publish(kit.broker, event)
            await _until(lambda: bool(failed) and bool(dead))
    finally:
        for watcher in watchers:
            watcher.cancel()

    assert len(tries) == 2  # max_deliveries; the third delivery is dead-lettered without running
    [failure] = [AnalysisFailed.model_validate_json(raw) for raw in failed]
    assert (failure.stage, failure.code) == (Stage.TRANSCRIBE, DELIVERY_FAILED)
    assert "after 2 tries" in failure.reason and "unreachable" not in failure.reason  # the tenant's view
    [letter] = [DeadLettered.model_validate_json(raw) for raw in dead]
    assert (letter.consumer, letter.topic, letter.deliveries) == (
        kit.settings.service_name,
        Topic.ANALYSIS_REQUESTED,
        2,
    )
    assert AnalysisRequested.model_validate(letter.event) == event
    assert letter.last_error is not None and "unreachable" in letter.last_error  # the operators' view
    # The count is gone once the event is dealt with.
    ledger = DeliveryLedger(object_store, "uploads", kit.settings.service_name, 2)
    assert ledger.begin(event.event_id).number == 1


def test_a_crash_counts_as_a_delivery(object_store: ObjectStore) -> None:
    """The count is written before the work starts, so a worker killed mid-way still spends a delivery."""
    ledger = DeliveryLedger(object_store, "uploads", f"crashing-{uuid.uuid4().hex[:8]}", 2)
    event_id = uuid.uuid4()
    first = ledger.begin(event_id)  # ...and the process dies here, twice
    second = ledger.begin(event_id)
    third = ledger.begin(event_id)
    assert [first.number, second.number, third.number] == [1, 2, 3]
    assert not ledger.exhausted(second) and ledger.exhausted(third) and third.last_error is None
    ledger.failed(event_id, third, "ConnectionError()")
    assert ledger.begin(event_id).last_error == "ConnectionError()"
    ledger.done(event_id)
    ledger.done(event_id)  # twice is harmless
    assert ledger.begin(event_id).number == 1


async def test_a_large_event_travels_as_a_ticket_and_arrives_whole(
    kit: ServiceKit, stack: LocalStack, object_store: ObjectStore
) -> None:
    """Past the threshold the message holds a ticket (where, size, SHA-256); the consumer's decoder hands
    the handler the event itself. A body that is not what the ticket says is refused."""
    claims = ClaimCheck(object_store, "uploads", threshold_bytes=4 * 1024)
    job_id = uuid.uuid4()
    many = [
        UtteranceResult(
            index=i,
            start_time=float(i),
            end_time=i + 0.9,
            text=f"utterance number {i} with a few words in it",
            emotions=emotion_scores([0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.1]),
            sentiments=sentiment_scores([0.2, 0.3, 0.5]),
            modalities={},
        )
        for i in range(200)
    ]
    big = AnalysisCompleted(
        job_id=job_id,
        result=AnalysisResult(model_version="t", duration_s=200.0, language="en", utterances=many),
    )
    small = AnalysisFailed(job_id=job_id, stage=Stage.FUSE, code="x", reason="y")
    raw: list[bytes] = []
    received: list[Event] = []

    async def on_event(event: AnalysisCompleted | AnalysisFailed) -> None:
        if event.job_id == job_id:
            received.append(event)

    topics = (Topic.ANALYSIS_COMPLETED.value, Topic.ANALYSIS_FAILED.value)
    kit.broker.subscriber(*topics, **subscriber_options(kit.settings, claims))(on_event)

    watchers = [
        asyncio.create_task(_watch(stack.kafka_bootstrap, Topic.ANALYSIS_COMPLETED, job_id, raw)),
    ]
    await asyncio.sleep(2)
    try:
        async with kit.broker:
            await kit.broker.start()
            await claims.publish(kit.broker, big)
            await claims.publish(kit.broker, small)
            await _until(lambda: len(received) == 2 and bool(raw))
    finally:
        for watcher in watchers:
            watcher.cancel()

    assert sorted(received, key=lambda e: e.TOPIC.value) == [big, small]
    [message] = raw
    ticket = ClaimTicket.model_validate(json.loads(message)["claim_check"])
    assert len(message) < 1024 < len(big.model_dump_json()) == ticket.size
    assert ticket.key.startswith(f"_payloads/{job_id}/analysis.completed/")
    # A body changed behind its ticket is refused, not trusted.
    object_store.put_bytes("uploads", ticket.key, b'{"job_id": "tampered"}', "application/json")
    with pytest.raises(ClaimCheckError):
        claims.redeem(ticket)
    assert forget_job(object_store, "uploads", job_id) == 1
    with pytest.raises(ClaimCheckError):
        claims.redeem(ticket)
