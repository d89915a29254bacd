"""Webhooks against a real PostgreSQL and real HTTP receivers on loopback (uvicorn, a free port).

The receiver checks every request's signature with `standardwebhooks`, the reference implementation,
and can be told to fail or hang on a path's first requests.
"""

import asyncio
import contextlib
import socket
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.events import Stage
from emotion_contract.results import AnalysisResult, UtteranceResult, emotion_scores, sentiment_scores
from emotion_contract.webhooks import DeliveryStatus, WebhookEventType
from services.gateway.db.jobs import change_job, create_job, get_job
from services.gateway.db.webhook_deliveries import (
    AttemptResult,
    ClaimedDelivery,
    DeliveryRecord,
    claim_due_deliveries,
    count_deliveries,
    get_delivery,
    list_deliveries,
    record_attempt,
    record_test_event,
    redeliver,
)
from services.gateway.db.webhook_outbox import job_event_id
from services.gateway.db.webhook_subscriptions import (
    TooManyWebhooksError,
    count_subscriptions,
    create_subscription,
    delete_subscription,
    get_subscription,
    list_subscriptions,
)
from services.gateway.job_machine import Complete, Fail, Progress
from services.gateway.pg_listener import PgListener
from services.gateway.schemas import analysis_of
from services.gateway.settings import Settings
from services.gateway.webhooks.answers import KEPT_BYTES
from services.gateway.webhooks.dispatcher import WebhookDispatcher
from services.gateway.webhooks.targets import AddressInfo
from shared.db import JobCreate, WebhookDelivery, WebhookEvent, WebhookSubscription
from tests.servers import free_port
from tests.webhook_receiver import GZIP_BOMB_BYTES, Plan, Receiver, gzip_bomb, running_receiver

pytest_plugins = ["tests.integration.db_fixtures"]
pytestmark = pytest.mark.integration

OWNER = "owner-a"
OTHER_OWNER = "owner-b"
ALL_EVENTS = [
    WebhookEventType.ANALYSIS_PROGRESS,
    WebhookEventType.ANALYSIS_COMPLETED,
    WebhookEventType.ANALYSIS_FAILED,
]
# A bound on how long a test waits for the dispatcher before it fails, never a claim about its speed.
SETTLE_LIMIT_S = 30.0
METRIC = "ea_webhook_deliveries_total"

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as receiver:
        yield receiver


HarnessFactory = Callable[..., "Harness"]


@pytest.fixture
async def make_harness() -> AsyncIterator[HarnessFactory]:
    """Dispatchers (each with its own HTTP client) made by the test, closed after it."""
    made: list[Harness] = []

    def make(sessions: Sessions, settings: Settings, **options: Any) -> Harness:
        registry = CollectorRegistry()
        dispatcher = WebhookDispatcher(sessions=sessions, settings=settings, registry=registry, **options)
        made.append(Harness(dispatcher, registry))
        return made[-1]

    yield make
    for harness in made:
        await harness.dispatcher.aclose()


@pytest.fixture
def webhook_settings(migrated_database_url: str) -> Settings:
    return _settings(migrated_database_url)


def _settings(database_url: str, **overrides: Any) -> Settings:
    return Settings.model_validate(
        {
            "database_url": database_url,
            "webhook_allow_private_targets": True,  # the receiver is on loopback
            "outbound_ports": [],  # on a port of its own
            "webhook_timeout_s": 5.0,
            "webhook_lease_s": 10.0,
            "webhook_max_attempts": 5,
            "webhook_backoff_base_s": 0.05,
            "webhook_backoff_max_s": 0.2,
            "webhook_poll_interval_s": 0.05,
            **overrides,
        }
    )


@dataclass
class Harness:
    dispatcher: WebhookDispatcher
    registry: CollectorRegistry

    def count(self, outcome: str) -> float:
        return self.registry.get_sample_value(METRIC, {"outcome": outcome}) or 0.0


async def _dispatch_until(dispatcher: WebhookDispatcher, done: Callable[[], Awaitable[bool]]) -> None:
    """Run the dispatcher batch after batch (as its loop would) until `done`."""
    async with asyncio.timeout(SETTLE_LIMIT_S):
        while not await done():
            await dispatcher.run_once()
            await asyncio.sleep(0.01)


async def _settled(sessions: Sessions, delivery_id: uuid.UUID, owner: str = OWNER) -> DeliveryRecord:
    async with sessions() as session:
        record = await get_delivery(session=session, owner=owner, delivery_id=delivery_id)
    assert record is not None
    return record


async def _settle(
    dispatcher: WebhookDispatcher, sessions: Sessions, delivery_id: uuid.UUID
) -> DeliveryRecord:
    async def finished() -> bool:
        record = await _settled(sessions, delivery_id)
        return record.delivery.status is not DeliveryStatus.PENDING

    await _dispatch_until(dispatcher, finished)
    return await _settled(sessions, delivery_id)


async def _subscribe(
    sessions: Sessions,
    url: str,
    events: list[WebhookEventType] | None = None,
    owner: str = OWNER,
) -> WebhookSubscription:
    async with sessions() as session:
        return await create_subscription(
            session=session, owner=owner, url=url, events=events or ALL_EVENTS, description="test"
        )


async def _new_job(sessions: Sessions, owner: str = OWNER) -> uuid.UUID:
    job_in = JobCreate(
        bucket="uploads",
        object_key=f"{owner}/{uuid.uuid4().hex}/clip.mp4",
        filename="clip.mp4",
        size_bytes=99,
    )
    async with sessions() as session:
        job, _ = await create_job(session=session, owner=owner, job_in=job_in)
    return job.id


async def _test_delivery(sessions: Sessions, subscription: WebhookSubscription) -> WebhookDelivery:
    async with sessions() as session:
        delivery = await record_test_event(
            session=session, owner=subscription.owner, subscription_id=subscription.id
        )
    assert delivery is not None
    return delivery


async def _deliveries(sessions: Sessions, subscription: WebhookSubscription) -> list[DeliveryRecord]:
    async with sessions() as session:
        records = await list_deliveries(
            session=session, owner=subscription.owner, subscription_id=subscription.id, limit=100
        )
    assert records is not None
    return records


def _result() -> AnalysisResult:
    utterance = UtteranceResult(
        index=0,
        start_time=0.0,
        end_time=1.5,
        text="hello there",
        emotions=emotion_scores([0.05, 0.05, 0.05, 0.5, 0.1, 0.15, 0.1]),
        sentiments=sentiment_scores([0.1, 0.2, 0.7]),
    )
    return AnalysisResult(model_version="bundle-1", duration_s=1.5, language="en", utterances=[utterance])


async def test_job_changes_queue_one_delivery_per_wanting_subscription_exactly_once(
    db_sessions: Sessions,
) -> None:
    everything = await _subscribe(db_sessions, "https://a.example.com/all")
    completions = await _subscribe(
        db_sessions, "https://a.example.com/done", [WebhookEventType.ANALYSIS_COMPLETED]
    )
    others = await _subscribe(db_sessions, "https://b.example.com/all", owner=OTHER_OWNER)
    completed_job, failed_job = await _new_job(db_sessions), await _new_job(db_sessions)
    async with db_sessions() as session:
        transcribing = Progress(stage=Stage.TRANSCRIBE, attempt=1)
        assert await change_job(session=session, job_id=completed_job, change=transcribing)
        # Redelivered, it changes nothing, so it queues nothing more.
        assert await change_job(session=session, job_id=completed_job, change=transcribing) is None
        assert await change_job(session=session, job_id=completed_job, change=Complete(result=_result()))
        assert not await change_job(session=session, job_id=completed_job, change=Complete(result=_result()))
        assert await change_job(
            session=session, job_id=failed_job, change=Fail(stage=Stage.UPLOAD, code="bad", reason="x")
        )
        assert not await change_job(
            session=session, job_id=failed_job, change=Fail(stage=Stage.UPLOAD, code="bad", reason="x")
        )

    def kinds(records: list[DeliveryRecord]) -> list[tuple[WebhookEventType, uuid.UUID | None]]:
        return sorted((record.event.type, record.event.job_id) for record in records)

    assert kinds(await _deliveries(db_sessions, everything)) == sorted(
        [
            (WebhookEventType.ANALYSIS_PROGRESS, completed_job),
            (WebhookEventType.ANALYSIS_COMPLETED, completed_job),
            (WebhookEventType.ANALYSIS_FAILED, failed_job),
        ]
    )
    assert kinds(await _deliveries(db_sessions, completions)) == [
        (WebhookEventType.ANALYSIS_COMPLETED, completed_job)
    ]
    assert await _deliveries(db_sessions, others) == []
    # Both subscriptions got the one completion event: the same webhook-id.
    completed_event = job_event_id(completed_job, WebhookEventType.ANALYSIS_COMPLETED, 1, Stage.FUSE)
    async with db_sessions() as session:
        events = (await session.exec(select(WebhookEvent).where(WebhookEvent.job_id == completed_job))).all()
    assert completed_event in {event.id for event in events} and len(events) == 2


async def test_deliveries_are_signed_and_carry_the_analysis_at_each_event(
    db_sessions: Sessions, receiver: Receiver, webhook_settings: Settings, make_harness: HarnessFactory
) -> None:
    subscription = await _subscribe(db_sessions, receiver.endpoint())
    receiver.expect(subscription.url, subscription.secret)
    job_id = await _new_job(db_sessions)
    async with db_sessions() as session:
        await change_job(session=session, job_id=job_id, change=Progress(stage=Stage.TRANSCRIBE, attempt=1))
        await change_job(session=session, job_id=job_id, change=Progress(stage=Stage.ENCODE_AUDIO, attempt=1))
        await change_job(session=session, job_id=job_id, change=Complete(result=_result()))
        job = await get_job(session=session, job_id=job_id)
    assert job is not None
    harness = make_harness(db_sessions, webhook_settings)

    async def all_sent() -> bool:
        records = await _deliveries(db_sessions, subscription)
        return all(record.delivery.status is DeliveryStatus.DELIVERED for record in records)

    await _dispatch_until(harness.dispatcher, all_sent)

    received = receiver.at(subscription.url)
    assert len(received) == 3 and all(request.verified for request in received)
    by_id = {request.headers["webhook-id"]: request.json for request in received}
    progress_ids = [
        job_event_id(job_id, WebhookEventType.ANALYSIS_PROGRESS, 1, stage)
        for stage in (Stage.TRANSCRIBE, Stage.ENCODE_AUDIO)
    ]
    transcribing, encoding = (by_id[str(event_id)] for event_id in progress_ids)
    assert transcribing["type"] == encoding["type"] == "analysis.progress"
    # Each shows its own stage, though the job had completed before either was sent.
    assert (transcribing["data"]["stage"], transcribing["data"]["status"]) == ("transcribe", "processing")
    assert (encoding["data"]["stage"], encoding["data"]["status"]) == ("encode_audio", "processing")
    completed = by_id[str(job_event_id(job_id, WebhookEventType.ANALYSIS_COMPLETED, 1, Stage.FUSE))]
    assert completed["type"] == "analysis.completed"
    assert completed["data"] == analysis_of(job).model_dump(mode="json")
    assert all(request.headers["content-type"] == "application/json" for request in received)
    records = await _deliveries(db_sessions, subscription)
    assert all([attempt.status_code for attempt in record.attempts] == [200] for record in records)
    assert all(record.attempts[0].response_body == "ok" for record in records)
    assert harness.count("delivered") == 3


async def test_failed_attempts_are_retried_with_the_same_webhook_id_until_delivered(
    db_sessions: Sessions, receiver: Receiver, webhook_settings: Settings, make_harness: HarnessFactory
) -> None:
    subscription = await _subscribe(db_sessions, receiver.endpoint(Plan(fail_first=2)))
    receiver.expect(subscription.url, subscription.secret)
    delivery = await _test_delivery(db_sessions, subscription)
    harness = make_harness(db_sessions, webhook_settings)

    record = await _settle(harness.dispatcher, db_sessions, delivery.id)

    assert record.delivery.status is DeliveryStatus.DELIVERED and record.delivery.attempts == 3
    assert [attempt.number for attempt in record.attempts] == [1, 2, 3]
    assert [attempt.status_code for attempt in record.attempts] == [503, 503, 200]
    assert [attempt.succeeded for attempt in record.attempts] == [False, False, True]
    assert record.attempts[0].response_body == "try again later" and record.attempts[0].error is None
    for before, after in zip(record.attempts, record.attempts[1:], strict=False):
        assert after.started_at > before.started_at
    received = receiver.at(subscription.url)
    assert len(received) == 3 and all(request.verified for request in received)
    assert {request.headers["webhook-id"] for request in received} == {str(delivery.event_id)}
    assert received[0].json["type"] == "webhook.test"
    assert received[0].json["data"]["webhook_id"] == str(subscription.id)
    assert (harness.count("retry"), harness.count("delivered")) == (2, 1)


async def test_a_gzip_bomb_answer_is_neither_asked_for_nor_inflated(
    db_sessions: Sessions, receiver: Receiver, webhook_settings: Settings, make_harness: HarnessFactory
) -> None:
    subscription = await _subscribe(db_sessions, receiver.endpoint(Plan(gzip_bomb=True)))
    delivery = await _test_delivery(db_sessions, subscription)
    harness = make_harness(db_sessions, webhook_settings)
    gzip_bomb()  # built before measuring
    tracemalloc.start()
    try:
        record = await _settle(harness.dispatcher, db_sessions, delivery.id)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert record.delivery.status is DeliveryStatus.DELIVERED
    [request] = receiver.at(subscription.url)
    assert request.headers["accept-encoding"] == "identity"
    assert record.attempts[0].response_body == "\ufffd" * KEPT_BYTES  # the zeros, as stored text
    assert peak < GZIP_BOMB_BYTES / 8, f"peak {peak / 2**20:.0f} MiB while reading the answer"


async def test_a_delivery_fails_after_its_last_attempt(
    db_sessions: Sessions, receiver: Receiver, migrated_database_url: str, make_harness: HarnessFactory
) -> None:
    subscription = await _subscribe(db_sessions, receiver.endpoint(Plan(fail_first=100)))
    delivery = await _test_delivery(db_sessions, subscription)
    harness = make_harness(db_sessions, _settings(migrated_database_url, webhook_max_attempts=2))

    record = await _settle(harness.dispatcher, db_sessions, delivery.id)

    assert record.delivery.status is DeliveryStatus.FAILED
    assert [attempt.status_code for attempt in record.attempts] == [503, 503]
    assert (harness.count("retry"), harness.count("failed")) == (1, 1)
    # Nothing is left to send: another round claims nothing.
    assert await harness.dispatcher.run_once() == 0


async def test_a_timeout_is_recorded_as_an_attempt(
    db_sessions: Sessions, receiver: Receiver, migrated_database_url: str, make_harness: HarnessFactory
) -> None:
    subscription = await _subscribe(db_sessions, receiver.endpoint(Plan(hang_first=1)))
    delivery = await _test_delivery(db_sessions, subscription)
    settings = _settings(migrated_database_url, webhook_timeout_s=0.3, webhook_max_attempts=2)
    harness = make_harness(db_sessions, settings)

    record = await _settle(harness.dispatcher, db_sessions, delivery.id)

    assert record.delivery.status is DeliveryStatus.DELIVERED
    timed_out, answered = record.attempts
    assert timed_out.status_code is None and timed_out.error is not None and "timeout" in timed_out.error
    assert answered.status_code == 200 and answered.error is None


async def test_an_unreachable_receiver_is_recorded_and_retried_later(
    db_sessions: Sessions, webhook_settings: Settings, make_harness: HarnessFactory
) -> None:
    subscription = await _subscribe(db_sessions, f"http://127.0.0.1:{free_port()}/nobody-listens")
    delivery = await _test_delivery(db_sessions, subscription)
    harness = make_harness(db_sessions, webhook_settings)

    assert await harness.dispatcher.run_once() == 1

    record = await _settled(db_sessions, delivery.id)
    assert record.delivery.status is DeliveryStatus.PENDING and record.delivery.attempts == 1
    assert record.delivery.locked_until is None and record.delivery.next_attempt_at > delivery.next_attempt_at
    (attempt,) = record.attempts
    assert attempt.status_code is None and attempt.error is not None and "ConnectError" in attempt.error


async def test_redelivery_sends_the_same_event_again(
    db_sessions: Sessions, receiver: Receiver, webhook_settings: Settings, make_harness: HarnessFactory
) -> None:
    subscription = await _subscribe(db_sessions, receiver.endpoint())
    receiver.expect(subscription.url, subscription.secret)
    delivery = await _test_delivery(db_sessions, subscription)
    harness = make_harness(db_sessions, webhook_settings)
    await _settle(harness.dispatcher, db_sessions, delivery.id)

    async with db_sessions() as session:
        assert await redeliver(session=session, owner=OTHER_OWNER, delivery_id=delivery.id) is None
        again = await redeliver(
            session=session, owner=OWNER, delivery_id=delivery.id, subscription_id=subscription.id
        )
    assert (
        again is not None and again.status is DeliveryStatus.PENDING and again.event_id == delivery.event_id
    )
    record = await _settle(harness.dispatcher, db_sessions, delivery.id)

    assert record.delivery.status is DeliveryStatus.DELIVERED
    assert [attempt.number for attempt in record.attempts] == [1, 2]
    received = receiver.at(subscription.url)
    assert len(received) == 2 and all(request.verified for request in received)
    assert received[0].headers["webhook-id"] == received[1].headers["webhook-id"] == str(delivery.event_id)
    assert received[0].body == received[1].body


async def test_claims_of_a_crashed_dispatcher_are_sent_after_their_lease(
    db_sessions: Sessions, receiver: Receiver, webhook_settings: Settings, make_harness: HarnessFactory
) -> None:
    subscription = await _subscribe(db_sessions, receiver.endpoint())
    receiver.expect(subscription.url, subscription.secret)
    delivery = await _test_delivery(db_sessions, subscription)
    # A dispatcher claims the delivery with a short lease, then dies before recording anything.
    async with db_sessions() as session:
        (abandoned,) = await claim_due_deliveries(session=session, limit=10, lease_s=0.5)
    lease_end = abandoned.claimed_until
    assert abandoned.delivery.id == delivery.id
    harness = make_harness(db_sessions, webhook_settings)

    record = await _settle(harness.dispatcher, db_sessions, delivery.id)

    assert record.delivery.status is DeliveryStatus.DELIVERED
    (attempt,) = record.attempts
    # Sent by the second dispatcher, and only once the crashed one's lease had run out.
    assert attempt.number == 1 and attempt.started_at >= lease_end
    received = receiver.at(subscription.url)
    assert len(received) == 1 and received[0].verified


async def test_concurrent_claims_never_share_a_delivery(db_sessions: Sessions) -> None:
    subscription = await _subscribe(db_sessions, "https://a.example.com/hook")
    queued = {(await _test_delivery(db_sessions, subscription)).id for _ in range(12)}

    async def claim() -> set[uuid.UUID]:
        async with db_sessions() as session:
            claimed = await claim_due_deliveries(session=session, limit=12, lease_s=60)
        return {item.delivery.id for item in claimed}

    first, second, third = await asyncio.gather(claim(), claim(), claim())
    assert not first & second and not first & third and not second & third
    assert first | second | third == queued
    # Leased now: nothing is due until the leases run out.
    assert await claim() == set()


async def test_claims_go_to_owners_in_turn_with_a_cap_on_each_owners_sends(db_sessions: Sessions) -> None:
    """One owner's backlog, queued first, does not fill a claim: each owner's earliest come first, and no
    owner has more than `per_owner` leased at once."""
    greedy = await _subscribe(db_sessions, "https://a.example.com/hook")
    modest = await _subscribe(db_sessions, "https://b.example.com/hook", owner=OTHER_OWNER)
    for _ in range(10):
        await _test_delivery(db_sessions, greedy)
    others = {(await _test_delivery(db_sessions, modest)).id for _ in range(2)}

    async def claim(limit: int) -> list[ClaimedDelivery]:
        async with db_sessions() as session:
            return await claim_due_deliveries(session=session, limit=limit, lease_s=60, per_owner=3)

    first = await claim(4)
    owners = [c.subscription.owner for c in first]
    assert sorted(owners) == sorted([OWNER, OWNER, OTHER_OWNER, OTHER_OWNER])
    assert others <= {c.delivery.id for c in first}
    # The greedy owner has 2 leased of its 3: one more, whatever the limit; the other has nothing due.
    assert [c.subscription.owner for c in await claim(10)] == [OWNER]
    assert await claim(10) == []


async def test_a_tarpit_receiver_holds_only_its_owners_share_of_the_sends(
    db_sessions: Sessions, receiver: Receiver, migrated_database_url: str, make_harness: HarnessFactory
) -> None:
    """Three send slots; one owner's receiver hangs on every request, and its deliveries were queued first.
    The other owner's deliveries still arrive at once, while the tarpit never holds more than its two."""
    tarpit = await _subscribe(db_sessions, receiver.endpoint(Plan(hang_first=100)))
    quick = await _subscribe(db_sessions, receiver.endpoint(), owner=OTHER_OWNER)
    receiver.expect(quick.url, quick.secret)
    for _ in range(6):
        await _test_delivery(db_sessions, tarpit)
    for _ in range(3):
        await _test_delivery(db_sessions, quick)
    settings = _settings(migrated_database_url, webhook_timeout_s=20.0, webhook_lease_s=30.0)
    harness = make_harness(db_sessions, settings, concurrency=3)
    running = asyncio.create_task(harness.dispatcher.run())
    try:
        await receiver.arrivals(quick.url, 3, timeout_s=10.0)
        assert len(receiver.at(tarpit.url)) == 2
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        receiver.release.set()  # the hanging requests end; later tests' receivers hang again
        await asyncio.sleep(0.1)
        receiver.release.clear()
    assert all(r.verified for r in receiver.at(quick.url))


async def test_a_stale_claim_does_not_decide_after_a_redelivery(db_sessions: Sessions) -> None:
    subscription = await _subscribe(db_sessions, "https://a.example.com/hook")
    delivery = await _test_delivery(db_sessions, subscription)
    async with db_sessions() as session:
        (claimed,) = await claim_due_deliveries(session=session, limit=1, lease_s=60)
        await redeliver(session=session, owner=OWNER, delivery_id=delivery.id)
        # The old send fails: recorded, but the redelivery (not yet sent) still stands.
        number = await record_attempt(
            session=session,
            delivery_id=delivery.id,
            claimed_until=claimed.claimed_until,
            attempt=AttemptResult(started_at=claimed.delivery.created_at, duration_ms=5.0, error="timeout"),
            status=DeliveryStatus.FAILED,
        )
    record = await _settled(db_sessions, delivery.id)
    assert number == 1 and record.delivery.status is DeliveryStatus.PENDING and len(record.attempts) == 1
    async with db_sessions() as session:
        (claimed_again,) = await claim_due_deliveries(session=session, limit=1, lease_s=60)
        # A success counts whoever's claim it was.
        assert (
            await record_attempt(
                session=session,
                delivery_id=delivery.id,
                claimed_until=claimed.claimed_until,
                attempt=AttemptResult(
                    started_at=claimed.delivery.created_at, duration_ms=5.0, status_code=204
                ),
                status=DeliveryStatus.DELIVERED,
            )
            == 2
        )
        # The newer claim's late failure cannot undo it.
        await record_attempt(
            session=session,
            delivery_id=delivery.id,
            claimed_until=claimed_again.claimed_until,
            attempt=AttemptResult(started_at=claimed.delivery.created_at, duration_ms=5.0, status_code=500),
            status=DeliveryStatus.PENDING,
            retry_in_s=1.0,
        )
    record = await _settled(db_sessions, delivery.id)
    assert record.delivery.status is DeliveryStatus.DELIVERED and record.delivery.locked_until is None
    assert [attempt.succeeded for attempt in record.attempts] == [False, True, False]


async def test_a_private_target_is_refused_and_recorded_without_retries(
    db_sessions: Sessions, receiver: Receiver, migrated_database_url: str, make_harness: HarnessFactory
) -> None:
    subscription = await _subscribe(db_sessions, receiver.endpoint())
    delivery = await _test_delivery(db_sessions, subscription)
    settings = _settings(migrated_database_url, webhook_allow_private_targets=False)
    harness = make_harness(db_sessions, settings)

    record = await _settle(harness.dispatcher, db_sessions, delivery.id)

    assert record.delivery.status is DeliveryStatus.FAILED
    (attempt,) = record.attempts
    assert attempt.status_code is None and attempt.error is not None
    assert "127.0.0.1" in attempt.error and "not a public address" in attempt.error
    assert receiver.at(subscription.url) == []
    assert harness.count("refused") == 1


async def test_a_delivery_connects_to_the_very_address_that_was_checked(
    db_sessions: Sessions, receiver: Receiver, webhook_settings: Settings, make_harness: HarnessFactory
) -> None:
    # A name only the dispatcher's resolver knows: had the connection looked the name up again (where a
    # rebinding DNS server could answer differently from the check), it would have found nothing.
    endpoint = httpx.URL(receiver.endpoint())
    url = str(endpoint.copy_with(host="receiver.invalid"))
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[AddressInfo]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]

    subscription = await _subscribe(db_sessions, url)
    receiver.expect(subscription.url, subscription.secret)
    delivery = await _test_delivery(db_sessions, subscription)
    harness = make_harness(db_sessions, webhook_settings, resolve=resolve)

    record = await _settle(harness.dispatcher, db_sessions, delivery.id)

    assert record.delivery.status is DeliveryStatus.DELIVERED
    assert lookups == ["receiver.invalid"]
    (received,) = receiver.at(url)
    assert received.verified and received.headers["host"] == f"receiver.invalid:{endpoint.port}"


async def test_the_dispatcher_loop_wakes_on_a_notification(
    db_sessions: Sessions, receiver: Receiver, migrated_database_url: str, make_harness: HarnessFactory
) -> None:
    subscription = await _subscribe(db_sessions, receiver.endpoint())
    receiver.expect(subscription.url, subscription.secret)
    listener = PgListener(migrated_database_url)
    # Polling alone would take an hour: only the NOTIFY of the new event can make this pass.
    harness = make_harness(
        db_sessions, _settings(migrated_database_url, webhook_poll_interval_s=3600.0), listener=listener
    )
    await listener.start()
    running = asyncio.create_task(harness.dispatcher.run())
    try:
        async with asyncio.timeout(SETTLE_LIMIT_S):
            assert listener.listening
            # Most likely past the loop's first (empty) round by now, so that NOTIFY is what wakes it;
            # had the round not ended yet, it would find the event itself, and the test still holds.
            await asyncio.sleep(0.1)
            job_id = await _new_job(db_sessions)
            async with db_sessions() as session:
                await change_job(
                    session=session, job_id=job_id, change=Progress(stage=Stage.TRANSCRIBE, attempt=1)
                )
            await receiver.arrivals(subscription.url, 1)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await listener.stop()
    (request,) = receiver.at(subscription.url)
    assert request.verified and request.json["data"]["stage"] == "transcribe"
    assert not listener.listening


async def test_owners_see_and_touch_only_their_own_webhooks(db_sessions: Sessions) -> None:
    mine = await _subscribe(db_sessions, "https://a.example.com/hook")
    theirs = await _subscribe(db_sessions, "https://b.example.com/hook", owner=OTHER_OWNER)
    delivery = await _test_delivery(db_sessions, mine)
    async with db_sessions() as session:
        assert [s.id for s in await list_subscriptions(session=session, owner=OWNER)] == [mine.id]
        assert await count_subscriptions(session=session, owner=OWNER) == 1
        assert await get_subscription(session=session, owner=OTHER_OWNER, subscription_id=mine.id) is None
        assert await list_deliveries(session=session, owner=OTHER_OWNER, subscription_id=mine.id) is None
        assert await count_deliveries(session=session, owner=OTHER_OWNER, subscription_id=mine.id) == 0
        assert await get_delivery(session=session, owner=OTHER_OWNER, delivery_id=delivery.id) is None
        assert (
            await get_delivery(
                session=session, owner=OWNER, delivery_id=delivery.id, subscription_id=theirs.id
            )
            is None
        )
        assert await redeliver(session=session, owner=OTHER_OWNER, delivery_id=delivery.id) is None
        assert await record_test_event(session=session, owner=OTHER_OWNER, subscription_id=mine.id) is None
        assert not await delete_subscription(session=session, owner=OTHER_OWNER, subscription_id=mine.id)
        assert await get_subscription(session=session, owner=OWNER, subscription_id=mine.id) is not None
        # Deleting a subscription drops its deliveries with it.
        assert await delete_subscription(session=session, owner=OWNER, subscription_id=mine.id)
        assert await get_subscription(session=session, owner=OWNER, subscription_id=mine.id) is None
        remaining = await session.exec(select(WebhookDelivery).where(col(WebhookDelivery.id) == delivery.id))
        assert remaining.one_or_none() is None


async def test_deliveries_page_newest_first(db_sessions: Sessions) -> None:
    subscription = await _subscribe(db_sessions, "https://a.example.com/hook")
    queued = [(await _test_delivery(db_sessions, subscription)).id for _ in range(5)]
    async with db_sessions() as session:
        first = await list_deliveries(
            session=session, owner=OWNER, subscription_id=subscription.id, limit=2, offset=0
        )
        rest = await list_deliveries(
            session=session, owner=OWNER, subscription_id=subscription.id, limit=10, offset=2
        )
        total = await count_deliveries(session=session, owner=OWNER, subscription_id=subscription.id)
    assert first is not None and rest is not None and total == 5
    assert [record.delivery.id for record in first + rest] == queued[::-1]


async def test_subscriptions_refuse_empty_or_test_event_choices(db_sessions: Sessions) -> None:
    with pytest.raises(ValueError, match="at least one"):
        await _subscribe_raw(db_sessions, [])
    with pytest.raises(ValueError, match="only by the test endpoint"):
        await _subscribe_raw(db_sessions, [WebhookEventType.WEBHOOK_TEST])
    async with db_sessions() as session:
        assert await count_subscriptions(session=session, owner=OWNER) == 0


async def _subscribe_raw(sessions: Sessions, events: list[WebhookEventType]) -> None:
    async with sessions() as session:
        await create_subscription(session=session, owner=OWNER, url="https://a.example.com/", events=events)


async def test_concurrent_subscriptions_never_pass_the_owners_cap(db_sessions: Sessions) -> None:
    """Counted and inserted under the owner's lock: twelve at once with room for five make exactly five."""
    owner = f"cap-{uuid.uuid4().hex[:12]}"

    async def subscribe(i: int) -> bool:
        async with db_sessions() as session:
            try:
                await create_subscription(
                    session=session, owner=owner, url=f"https://{i}.example.com/", events=ALL_EVENTS, limit=5
                )
            except TooManyWebhooksError:
                return False
            return True

    made = await asyncio.gather(*(subscribe(i) for i in range(12)))
    assert sum(made) == 5
    async with db_sessions() as session:
        assert await count_subscriptions(session=session, owner=owner) == 5
    # Another owner has room of its own.
    async with db_sessions() as session:
        await create_subscription(
            session=session, owner=OWNER + "-other", url="https://x.example.com/", events=ALL_EVENTS, limit=5
        )
