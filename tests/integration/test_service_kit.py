"""The kit every worker is wired from (`ServiceKit`): on the real broker and S3 server, an event whose stage
keeps failing is redelivered a bounded number of times, then dead-lettered with its job failed, so that it
no longer holds up its partition; on faststream's `TestKafkaBroker` (S3 real), each path of `run_stage`
and of the consumers it wires: the returned event published, failures, the lifespan's context."""

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import pytest
from aiokafka import AIOKafkaConsumer  # type: ignore[import-untyped, unused-ignore]
from faststream import Context
from faststream.kafka import TestKafkaBroker

from devstack import LocalStack
from emotion_contract.errors import FailureCode
from emotion_contract.events import (
    AnalysisCompleted,
    AnalysisFailed,
    AnalysisProgress,
    AnalysisRequested,
    AudioFeaturesReady,
    DeadLettered,
    Event,
    Stage,
    Topic,
    TranscriptReady,
    VideoFeaturesReady,
)
from emotion_contract.results import AnalysisResult, UtteranceResult, emotion_scores, sentiment_scores
from shared.claim_check import ClaimCheck, ClaimCheckError, ClaimTicket, forget_job
from shared.deliveries import DeliveryLedger
from shared.media.container import MediaError
from shared.service import DELIVERY_FAILED, ServiceKit, publish, subscriber_options
from shared.settings import PipelineSettings
from shared.storage import ObjectStore

pytestmark = pytest.mark.integration

ARRIVAL_TIMEOUT_S = 60.0


async def _watch(
    bootstrap: str, topic: Topic, job_ids: uuid.UUID | set[uuid.UUID], found: list[bytes]
) -> None:
    keys = {str(job).encode() for job in (job_ids if isinstance(job_ids, set) else {job_ids})}
    consumer = AIOKafkaConsumer(topic.value, bootstrap_servers=bootstrap, auto_offset_reset="latest")
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            found.extend(
                record.value for records in batches.values() for record in records if record.key in keys
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
    yield ServiceKit(settings, Stage.TRANSCRIBE)


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
    async def on_requested(event: AnalysisRequested) -> Event | None:
        if event.job_id != job_id:
            return None  # another test's job on the shared topic

        async def never_heals() -> Event:
            tries.append(time.monotonic())
            raise ConnectionError("the object store is unreachable")

        return await kit.run_stage(event, Stage.TRANSCRIBE, never_heals)

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
    assert (letter.consumer, letter.topic, letter.deliveries, letter.code) == (
        kit.settings.service_name,
        Topic.ANALYSIS_REQUESTED.value,
        2,
        DELIVERY_FAILED,
    )
    assert letter.message_id == event.event_id and "media/x/y" not in dead[0].decode()  # ids, not the body
    assert letter.last_error is not None and "unreachable" in letter.last_error  # the operators' view
    # The count is gone once the event is dealt with.
    ledger = DeliveryLedger(object_store, "uploads", kit.settings.service_name, 2)
    assert ledger.begin(event.event_id).number == 1


PART_TOPICS = (Topic.ANALYSIS_REQUESTED, Topic.TRANSCRIPT_READY, Topic.FEATURES_VIDEO, Topic.FEATURES_AUDIO)


async def test_a_message_no_one_can_read_is_dead_lettered_once_with_its_job_failed_on_every_topic(
    kit: ServiceKit, stack: LocalStack, object_store: ObjectStore
) -> None:
    """On each topic a worker consumes: bad JSON, a body that is no event of the topic, a claim ticket
    pointing at another job's body, and one whose body was deleted with its analysis. Each is read once,
    dead-lettered by its place and reason (never its body), its job failed, and the partition moves on: a
    good event behind them is handled."""
    claims = ClaimCheck(object_store, "uploads", threshold_bytes=4 * 1024)
    other = uuid.uuid4()
    stolen = f"_payloads/{other}/transcript.ready/secret.json"
    object_store.put_bytes("uploads", stolen, b'{"text": "another tenant\'s words"}', "application/json")

    def ticket(job: uuid.UUID, key: str, body: bytes) -> bytes:
        sha = hashlib.sha256(body).hexdigest()
        envelope = {"bucket": "uploads", "key": key, "size": len(body), "sha256": sha}
        return json.dumps({"claim_check": envelope, "job_id": str(job), "attempt": 1}).encode()

    def poison(kind: str, job: uuid.UUID) -> bytes:
        match kind:
            case "bad JSON":
                return b"{not json"
            case "no event of the topic":
                return json.dumps({"job_id": str(job), "attempt": 1, "bucket": 5}).encode()
            case "another job's body":
                return ticket(job, stolen, b'{"text": "another tenant\'s words"}')
            case _:  # a body deleted with its analysis
                return ticket(job, f"_payloads/{job}/transcript.ready/deleted.json", b"{}")

    codes = {
        "bad JSON": FailureCode.EVENT_UNREADABLE,
        "no event of the topic": FailureCode.EVENT_UNREADABLE,
        "another job's body": FailureCode.PAYLOAD_UNREADABLE,
        "deleted body": FailureCode.PAYLOAD_UNREADABLE,
    }
    cases: dict[uuid.UUID, tuple[Topic, bytes, str]] = {}
    for topic in PART_TOPICS:
        for kind, code in codes.items():
            job = uuid.uuid4()
            cases[job] = (topic, poison(kind, job), code.value)
    good = _request()
    handled: list[uuid.UUID] = []

    @kit.consumer(*(topic.value for topic in PART_TOPICS))
    async def on_part(
        event: AnalysisRequested | TranscriptReady | VideoFeaturesReady | AudioFeaturesReady,
    ) -> Event | None:
        handled.append(event.job_id)  # with other tests' events: a new group reads the topics from the start
        return None

    failed: list[bytes] = []
    dead: list[bytes] = []
    watchers = [
        asyncio.create_task(_watch(stack.kafka_bootstrap, Topic.ANALYSIS_FAILED, set(cases), failed)),
        asyncio.create_task(_watch(stack.kafka_bootstrap, Topic.DEAD_LETTER, set(cases), dead)),
    ]
    await asyncio.sleep(2)  # the watchers start at the end of the topics
    try:
        async with kit.broker:
            await kit.broker.start()
            for job, (topic, raw, _) in cases.items():
                await kit.broker.publish(raw, topic=topic.value, key=str(job).encode())
            await claims.publish(kit.broker, good)
            await _until(lambda: len(failed) == len(dead) == len(cases) and good.job_id in handled)
    finally:
        for watcher in watchers:
            watcher.cancel()

    assert good.job_id in handled and not set(handled) & set(cases)
    failures = {f.job_id: f for f in (AnalysisFailed.model_validate_json(raw) for raw in failed)}
    letters = {d.job_id: d for d in (DeadLettered.model_validate_json(raw) for raw in dead)}
    for job, (topic, _, expected) in cases.items():
        failure = failures[job]
        assert (failure.code, failure.stage, failure.attempt) == (expected, Stage.TRANSCRIBE, 1)
        letter = letters[job]
        assert (letter.topic, letter.code, letter.deliveries) == (topic.value, expected, 1)
        assert letter.partition is not None and letter.offset is not None
    assert not any(b"another tenant" in raw for raw in dead + failed)


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


# --- on faststream's TestKafkaBroker ------------------------------------------------------------------


def _request() -> AnalysisRequested:
    return AnalysisRequested(
        job_id=uuid.uuid4(),
        bucket="uploads",
        object_key="media/x/clip.mp4",
        filename="clip.mp4",
        size_bytes=1,
    )


def _listen(kit: ServiceKit, *topics: Topic) -> dict[Topic, list[dict[str, Any]]]:
    heard: dict[Topic, list[dict[str, Any]]] = {topic: [] for topic in topics}
    for topic in topics:
        kit.broker.subscriber(topic.value, group_id=f"listener-{topic.value}")(_collector(heard[topic]))
    return heard


def _collector(into: list[dict[str, Any]]) -> Callable[[dict[str, Any]], Awaitable[None]]:
    async def on_event(body: dict[str, Any]) -> None:  # one parameter: the whole message body
        into.append(body)

    return on_event


async def test_a_consumer_publishes_the_event_its_stage_returns_with_the_lifespans_resources(
    kit: ServiceKit,
) -> None:
    heard = _listen(kit, Topic.ANALYSIS_PROGRESS, Topic.ANALYSIS_COMPLETED)
    forgotten: list[uuid.UUID] = []

    async def forget(event: AnalysisRequested, version: str) -> None:
        forgotten.append(event.job_id)

    @kit.consumer(Topic.ANALYSIS_REQUESTED.value, after_publish=forget)
    async def on_requested(event: AnalysisRequested, version: Annotated[str, Context("version")]) -> Event:
        async def work() -> Event:
            result = AnalysisResult(model_version=version, duration_s=1.0, utterances=[])
            return AnalysisCompleted(job_id=event.job_id, attempt=event.attempt, result=result)

        return await kit.run_stage(event, Stage.FUSE, work)

    event = _request()
    async with kit.provide("version", "bundle-7"), TestKafkaBroker(kit.broker) as broker:
        await publish(broker, event)

    [progress] = [AnalysisProgress.model_validate(body) for body in heard[Topic.ANALYSIS_PROGRESS]]
    assert (progress.job_id, progress.stage, progress.service) == (
        event.job_id,
        Stage.FUSE,
        kit.settings.service_name,
    )
    [completed] = [AnalysisCompleted.model_validate(body) for body in heard[Topic.ANALYSIS_COMPLETED]]
    assert completed.job_id == event.job_id and completed.result.model_version == "bundle-7"
    assert forgotten == [event.job_id]  # after the publish
    assert "version" not in kit.broker.context.context  # the lifespan's block is over


async def test_a_consumer_that_returns_nothing_publishes_nothing(kit: ServiceKit) -> None:
    heard = _listen(kit, Topic.ANALYSIS_PROGRESS, Topic.ANALYSIS_FAILED)
    after: list[object] = []

    async def never(event: AnalysisRequested) -> None:
        after.append(event)

    @kit.consumer(Topic.ANALYSIS_REQUESTED.value, after_publish=never)
    async def on_requested(event: AnalysisRequested) -> None:
        return None

    async with TestKafkaBroker(kit.broker) as broker:
        await publish(broker, _request())
    assert heard == {Topic.ANALYSIS_PROGRESS: [], Topic.ANALYSIS_FAILED: []} and after == []


async def test_a_stage_that_cannot_work_returns_the_jobs_failure_and_announces_nothing_when_told(
    kit: ServiceKit,
) -> None:
    heard = _listen(kit, Topic.ANALYSIS_PROGRESS, Topic.ANALYSIS_FAILED)

    @kit.consumer(Topic.ANALYSIS_REQUESTED.value)
    async def on_requested(event: AnalysisRequested) -> Event:
        async def broken() -> Event:
            raise MediaError(FailureCode.CORRUPT_MEDIA, "the file's video stream is damaged")

        return await kit.run_stage(event, Stage.ENCODE_VIDEO, broken, announce=False)

    event = _request()
    async with TestKafkaBroker(kit.broker) as broker:
        await publish(broker, event)

    assert heard[Topic.ANALYSIS_PROGRESS] == []
    [failed] = [AnalysisFailed.model_validate(body) for body in heard[Topic.ANALYSIS_FAILED]]
    assert (failed.job_id, failed.stage, failed.code) == (event.job_id, Stage.ENCODE_VIDEO, "corrupt_media")
    assert failed.reason == "the file's video stream is damaged"


async def test_a_transient_failure_is_raised_for_redelivery_until_the_event_is_dead_lettered(
    kit: ServiceKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shared.service.TRANSIENT_RETRY_PAUSE_S", 0.0)
    heard = _listen(kit, Topic.ANALYSIS_FAILED, Topic.DEAD_LETTER)
    tries: list[uuid.UUID] = []

    @kit.consumer(Topic.ANALYSIS_REQUESTED.value)
    async def on_requested(event: AnalysisRequested) -> Event:
        async def unreachable() -> Event:
            tries.append(event.job_id)
            raise ConnectionError("the object store is unreachable")

        return await kit.run_stage(event, Stage.TRANSCRIBE, unreachable)

    event = _request()
    async with TestKafkaBroker(kit.broker) as broker:
        for _ in range(kit.settings.max_deliveries):  # the broker delivers it again after each raise
            with pytest.raises(ConnectionError):
                await publish(broker, event)
        assert heard[Topic.ANALYSIS_FAILED] == []
        await publish(broker, event)  # one delivery too many: not run, dead-lettered

    assert len(tries) == kit.settings.max_deliveries
    [letter] = [DeadLettered.model_validate(body) for body in heard[Topic.DEAD_LETTER]]
    assert letter.deliveries == kit.settings.max_deliveries and "unreachable" in (letter.last_error or "")
    [failed] = [AnalysisFailed.model_validate(body) for body in heard[Topic.ANALYSIS_FAILED]]
    assert failed.code == DELIVERY_FAILED
