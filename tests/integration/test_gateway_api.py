"""The gateway's REST API in-process (uvicorn, a free port) against the real broker, S3 server and PostgreSQL.

The pipeline's services are not running: the tests publish their status events to Kafka themselves and
read what the gateway publishes with an aiokafka consumer.
"""

import asyncio
import contextlib
import json
import socket
import time
import uuid
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped, unused-ignore]
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from sqlalchemy import func, select, text

from services.gateway.main import create_app
from services.gateway.settings import Settings
from services.gateway.state import Gateway
from services.gateway.sweeper import SWEEPER_LOCK_KEY, run_sweeper, sweep_if_leader, sweep_once
from shared.db.migrate import upgrade
from shared.events import (
    AnalysisCompleted,
    AnalysisFailed,
    AnalysisProgress,
    AnalysisRequested,
    Event,
    Stage,
    Topic,
)
from shared.labels import Modality
from shared.localstack import LocalStack
from shared.results import (
    AnalysisResult,
    ModalityPrediction,
    UtteranceResult,
    emotion_scores,
    sentiment_scores,
)
from shared.service import publish
from shared.settings import DEV_API_KEY, ServiceSettings
from shared.storage import ObjectStore
from tests.media_factory import bars_video

pytestmark = pytest.mark.integration

API_KEY = "gateway-test-key"
MAX_UPLOAD_BYTES = 256 * 1024
# Long enough that a test waiting on a change only passes when LISTEN/NOTIFY woke it.
WATCH_FALLBACK_S = 30.0
# The gateway's consumer group joins Tansu in a few seconds; status changes may take that long at first.
STATUS_TIMEOUT_S = 20.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def gateway_database_url(stack: LocalStack) -> Iterator[str]:
    """A database of the gateway's own: the session's `database_url` is for tests that want it empty."""
    name = f"test_gateway_{uuid.uuid4().hex[:12]}"
    yield stack.create_database(name)
    stack.drop_database(name)


@pytest.fixture(scope="module")
def gateway_settings(settings: ServiceSettings, gateway_database_url: str) -> Settings:
    return Settings.model_validate(
        {
            **settings.model_dump(),
            "database_url": gateway_database_url,
            "api_key": API_KEY,
            "max_upload_bytes": MAX_UPLOAD_BYTES,
            "watch_fallback_s": WATCH_FALLBACK_S,
            "kafka_session_timeout_ms": 6_000,
            # The background sweeper stays out of the way; the sweeper test drives sweeps itself.
            "stuck_job_timeout_s": 3600.0,
            "sweep_interval_s": 3600.0,
        }
    )


@pytest.fixture(scope="module")
async def gateway_app(gateway_settings: Settings) -> AsyncIterator[tuple[FastAPI, str]]:
    """The app served by uvicorn on a free port, after the migrations `python -m services.gateway` runs."""
    await upgrade(gateway_settings.database_url)
    app = create_app(gateway_settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    serving = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        if serving.done() or time.monotonic() > deadline:
            serving.result()  # raises what stopped the start
            pytest.fail("the gateway did not start within 30 s")
        await asyncio.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await serving


@pytest.fixture(scope="module")
def gateway(gateway_app: tuple[FastAPI, str]) -> Gateway:
    state: Gateway = gateway_app[0].state.gateway
    return state


@pytest.fixture
async def client(gateway_app: tuple[FastAPI, str]) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=gateway_app[1], headers=headers, timeout=30) as http:
        yield http


class RequestedEvents:
    """Every AnalysisRequested on the topic, read from the beginning by a group-less aiokafka consumer."""

    def __init__(self) -> None:
        self.events: list[AnalysisRequested] = []
        self.changed = asyncio.Event()

    def of(self, job_id: uuid.UUID) -> list[AnalysisRequested]:
        return [event for event in self.events if event.job_id == job_id]

    async def wait_for(
        self, job_id: uuid.UUID, count: int = 1, timeout_s: float = 10.0
    ) -> list[AnalysisRequested]:
        async with asyncio.timeout(timeout_s):
            while len(self.of(job_id)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.of(job_id)

    async def consume(self, consumer: AIOKafkaConsumer) -> None:
        async for record in consumer:
            self.events.append(AnalysisRequested.model_validate_json(record.value))
            self.changed.set()


@pytest.fixture(scope="module")
async def requested(kafka_bootstrap: str) -> AsyncIterator[RequestedEvents]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    topic = Topic.ANALYSIS_REQUESTED.value
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    events = RequestedEvents()
    reading = asyncio.create_task(events.consume(consumer))
    yield events
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reading
    await consumer.stop()


@pytest.fixture(scope="module")
async def pipeline(kafka_bootstrap: str) -> AsyncIterator[Callable[[Event], Any]]:
    """Publishes status events the way the pipeline's services do (`shared.service.publish`)."""
    broker = KafkaBroker(kafka_bootstrap)
    await broker.start()

    async def send(event: Event) -> None:
        await publish(broker, event)

    yield send
    await broker.stop()


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-media")


@pytest.fixture(scope="module")
def video(media_dir: Path) -> bytes:
    return bars_video(media_dir / "bars.mp4", duration_s=0.5).read_bytes()


@pytest.fixture(scope="module")
def wav(media_dir: Path) -> bytes:
    path = media_dir / "tone.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16_000)
        writer.writeframes(b"\x00\x10" * 8000)
    return path.read_bytes()


async def _upload(client: httpx.AsyncClient, filename: str, data: bytes) -> str:
    """The first two steps of the three-step flow: get an upload URL, PUT the bytes to it."""
    response = await client.post("/v1/upload-url", json={"filename": filename, "content_type": "video/mp4"})
    assert response.status_code == 200, response.text
    body = response.json()
    async with httpx.AsyncClient() as s3:
        put = await s3.put(body["upload_url"], content=data)
    assert put.status_code == 200, put.text
    key: str = body["key"]
    return key


async def _analyse(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    response = await client.post("/v1/analyses", json={"key": key})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _new_analysis(client: httpx.AsyncClient, video: bytes) -> uuid.UUID:
    key = await _upload(client, "clip.mp4", video)
    return uuid.UUID((await _analyse(client, key))["id"])


async def _wait_until(
    client: httpx.AsyncClient, job_id: uuid.UUID, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + STATUS_TIMEOUT_S
    while True:
        body: dict[str, Any] = (await client.get(f"/v1/analyses/{job_id}")).json()
        if check(body):
            return body
        assert time.monotonic() < deadline, f"analysis never reached the expected state: {body}"
        await asyncio.sleep(0.1)


def _result() -> AnalysisResult:
    emotions = emotion_scores([0.05, 0.05, 0.05, 0.55, 0.2, 0.05, 0.05])
    sentiments = sentiment_scores([0.1, 0.3, 0.6])
    utterance = UtteranceResult(
        index=0,
        start_time=0.0,
        end_time=0.5,
        text="hello there",
        emotions=emotions,
        sentiments=sentiments,
        modalities={
            Modality.TEXT: ModalityPrediction(available=True, emotions=emotions, sentiments=sentiments)
        },
    )
    return AnalysisResult(model_version="test-1", duration_s=0.5, language="en", utterances=[utterance])


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_three_step_flow_queues_the_analysis(
    client: httpx.AsyncClient, video: bytes, requested: RequestedEvents
) -> None:
    key = await _upload(client, "My Talk (final).MP4", video)
    assert key.startswith("uploads/static/") and key.endswith("/My_Talk_final.mp4")

    analysis = await _analyse(client, key)

    assert analysis["status"] == "queued" and analysis["stage"] is None and analysis["result"] is None
    assert analysis["size_bytes"] == len(video) and analysis["filename"] == "My_Talk_final.mp4"
    [event] = await requested.wait_for(uuid.UUID(analysis["id"]))
    assert (event.bucket, event.object_key, event.size_bytes, event.attempt) == (
        "uploads",
        key,
        len(video),
        1,
    )


async def test_multipart_upload_stores_the_file_and_queues_it(
    client: httpx.AsyncClient, wav: bytes, requested: RequestedEvents, object_store: ObjectStore
) -> None:
    response = await client.post("/v1/analyses", files={"file": ("voice memo.wav", wav, "audio/wav")})

    assert response.status_code == 201, response.text
    analysis = response.json()
    assert response.headers["location"].endswith(f"/v1/analyses/{analysis['id']}")
    [event] = await requested.wait_for(uuid.UUID(analysis["id"]))
    assert event.object_key.startswith("uploads/static/") and event.filename == "voice_memo.wav"
    assert object_store.read_head("uploads", event.object_key, len(wav) + 10) == wav


async def test_the_same_key_twice_returns_the_same_analysis_and_queues_it_once(
    client: httpx.AsyncClient, video: bytes, requested: RequestedEvents
) -> None:
    key = await _upload(client, "twice.mp4", video)
    first = await _analyse(client, key)

    again = await client.post("/v1/analyses", json={"key": key})

    assert again.status_code == 200 and again.json()["id"] == first["id"]
    await requested.wait_for(uuid.UUID(first["id"]))
    await asyncio.sleep(0.5)  # a second event would have arrived by now
    assert len(requested.of(uuid.UUID(first["id"]))) == 1


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-key", f"Bearer {DEV_API_KEY}", f"Basic {API_KEY}"]
)
async def test_requests_without_the_api_key_are_refused(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=headers) as anonymous:
        responses = [
            await anonymous.post("/v1/upload-url", json={"filename": "a.mp4"}),
            await anonymous.post("/v1/analyses", json={"key": "uploads/static/x/a.mp4"}),
            await anonymous.get("/v1/analyses"),
            await anonymous.get(f"/v1/analyses/{uuid.uuid4()}"),
        ]
    assert [_error(response) for response in responses] == [(401, "unauthorized")] * 4
    assert responses[0].headers["www-authenticate"] == "Bearer"


async def test_unknown_keys_are_404(
    client: httpx.AsyncClient, video: bytes, object_store: ObjectStore
) -> None:
    never_uploaded = f"uploads/static/{uuid.uuid4().hex}/clip.mp4"
    # An object that exists but under another owner's prefix.
    foreign = f"uploads/someone-else/{uuid.uuid4().hex}/clip.mp4"
    put = object_store.presigned_put_url("uploads", foreign, timedelta(minutes=1))
    async with httpx.AsyncClient() as s3:
        assert (await s3.put(put, content=video)).status_code == 200

    for key in (never_uploaded, foreign, "../../etc/passwd.mp4"):
        response = await client.post("/v1/analyses", json={"key": key})
        assert _error(response) == (404, "unknown_key"), key


async def test_an_empty_file_is_422(client: httpx.AsyncClient) -> None:
    key = await _upload(client, "empty.mp4", b"")
    assert _error(await client.post("/v1/analyses", json={"key": key})) == (422, "empty_file")
    multipart = await client.post("/v1/analyses", files={"file": ("empty.wav", b"", "audio/wav")})
    assert _error(multipart) == (422, "empty_file")


async def test_a_file_that_is_not_media_is_415(client: httpx.AsyncClient) -> None:
    text = b"just some notes, not a video\n" * 100
    key = await _upload(client, "notes.mp4", text)
    assert _error(await client.post("/v1/analyses", json={"key": key})) == (415, "not_media")
    multipart = await client.post("/v1/analyses", files={"file": ("notes.wav", text, "audio/wav")})
    assert _error(multipart) == (415, "not_media")


async def test_a_file_over_the_limit_is_413_and_removed(
    client: httpx.AsyncClient, video: bytes, object_store: ObjectStore
) -> None:
    too_big = video + bytes(MAX_UPLOAD_BYTES + 1 - len(video))
    key = await _upload(client, "big.mp4", too_big)

    assert _error(await client.post("/v1/analyses", json={"key": key})) == (413, "file_too_large")
    assert not object_store.exists("uploads", key)
    multipart = await client.post("/v1/analyses", files={"file": ("big.mp4", too_big, "video/mp4")})
    assert _error(multipart) == (413, "file_too_large")


async def test_unsupported_extensions_are_415(client: httpx.AsyncClient, video: bytes) -> None:
    response = await client.post("/v1/upload-url", json={"filename": "slides.pdf"})
    assert _error(response) == (415, "unsupported_media_type")
    multipart = await client.post("/v1/analyses", files={"file": ("clip.exe", video, "video/mp4")})
    assert _error(multipart) == (415, "unsupported_media_type")


async def test_errors_have_one_shape(client: httpx.AsyncClient) -> None:
    missing_field = await client.post("/v1/analyses", json={})
    bad_wait = await client.get(f"/v1/analyses/{uuid.uuid4()}", params={"wait": 61})
    no_route = await client.get("/v1/nothing-here")
    other_owner_or_unknown = await client.get(f"/v1/analyses/{uuid.uuid4()}")

    assert _error(missing_field) == (422, "validation_error")
    assert missing_field.json()["error"]["details"][0]["loc"] == ["body", "key"]
    assert _error(bad_wait) == (422, "validation_error")
    assert _error(no_route) == (404, "not_found")
    assert _error(other_owner_or_unknown) == (404, "analysis_not_found")


async def test_status_events_move_the_analysis_to_completed(
    client: httpx.AsyncClient, video: bytes, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await _new_analysis(client, video)

    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.TRANSCRIBE, service="transcriber"))
    processing = await _wait_until(client, job_id, lambda body: body["status"] == "processing")
    assert processing["stage"] == "transcribe" and processing["result"] is None

    result = _result()
    await pipeline(AnalysisCompleted(job_id=job_id, result=result))
    completed = (await client.get(f"/v1/analyses/{job_id}", params={"wait": STATUS_TIMEOUT_S})).json()

    assert completed["status"] == "completed" and completed["completed_at"] is not None
    assert AnalysisResult.model_validate(completed["result"]) == result
    listed = (await client.get("/v1/analyses", params={"limit": 100})).json()
    assert str(job_id) in [item["id"] for item in listed["items"]] and listed["total"] >= 1


async def test_a_failure_event_fails_the_analysis_with_stage_and_reason(
    client: httpx.AsyncClient, video: bytes, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await _new_analysis(client, video)

    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.ENCODE_AUDIO, service="audio_encoder"))
    reason = "the video has no audio track"
    await pipeline(
        AnalysisFailed(job_id=job_id, stage=Stage.ENCODE_AUDIO, code="no_audio_track", reason=reason)
    )
    failed = (await client.get(f"/v1/analyses/{job_id}", params={"wait": STATUS_TIMEOUT_S})).json()

    assert failed["status"] == "failed" and failed["stage"] == "encode_audio"
    assert failed["error"] == {"code": "no_audio_track", "stage": "encode_audio", "message": reason}


async def test_long_poll_returns_as_soon_as_the_analysis_completes(
    client: httpx.AsyncClient, video: bytes, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await _new_analysis(client, video)
    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.FUSE, service="fusion"))
    await _wait_until(client, job_id, lambda body: body["stage"] == "fuse")

    started = time.monotonic()
    timed_out = (await client.get(f"/v1/analyses/{job_id}", params={"wait": 0.5})).json()
    assert timed_out["status"] == "processing" and 0.5 <= time.monotonic() - started < 3

    polling = asyncio.create_task(client.get(f"/v1/analyses/{job_id}", params={"wait": 60}))
    try:
        await asyncio.sleep(0.5)
        assert not polling.done()
        await pipeline(AnalysisCompleted(job_id=job_id, result=_result()))
        response = await asyncio.wait_for(polling, timeout=10)  # far below the fallback re-check
    finally:
        polling.cancel()

    assert response.json()["status"] == "completed"


async def test_waiting_survives_a_lost_listen_connection(
    client: httpx.AsyncClient, video: bytes, gateway: Gateway, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await _new_analysis(client, video)
    async with gateway.engine.connect() as admin:
        killed = await admin.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )
        )
    assert killed == 1

    polling = asyncio.create_task(client.get(f"/v1/analyses/{job_id}", params={"wait": 60}))
    try:
        await asyncio.sleep(0.3)
        await pipeline(AnalysisCompleted(job_id=job_id, result=_result()))
        response = await asyncio.wait_for(polling, timeout=STATUS_TIMEOUT_S)
    finally:
        polling.cancel()
    assert response.json()["status"] == "completed" and gateway.updates.listening


async def test_event_stream_delivers_changes_and_ends_on_completion(
    client: httpx.AsyncClient, video: bytes, pipeline: Callable[[Event], Any]
) -> None:
    job_id = await _new_analysis(client, video)
    received: list[tuple[str, dict[str, Any]]] = []
    arrived = asyncio.Event()

    async def follow() -> None:
        async with client.stream("GET", f"/v1/analyses/{job_id}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            name = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    name = line.removeprefix("event:").strip()
                elif line.startswith("data:"):
                    received.append((name, json.loads(line.removeprefix("data:"))))
                    arrived.set()

    following = asyncio.create_task(follow())

    async def wait_for_events(count: int) -> None:
        async with asyncio.timeout(STATUS_TIMEOUT_S):
            while len(received) < count:
                arrived.clear()
                await arrived.wait()

    try:
        await wait_for_events(1)
        await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.TRANSCRIBE, service="transcriber"))
        await wait_for_events(2)
        await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.ENCODE_VIDEO, service="video_encoder"))
        await wait_for_events(3)
        await pipeline(AnalysisCompleted(job_id=job_id, result=_result()))
        await asyncio.wait_for(following, timeout=10)  # the stream ends by itself after the final event
    finally:
        following.cancel()

    assert [(name, body["status"], body["stage"]) for name, body in received] == [
        ("status", "queued", None),
        ("status", "processing", "transcribe"),
        ("status", "processing", "encode_video"),
        ("completed", "completed", "fuse"),
    ]
    assert all("result" not in body for _, body in received[:-1])
    assert received[-1][1]["result"]["model_version"] == "test-1"


async def test_event_stream_of_an_unknown_analysis_is_404(client: httpx.AsyncClient) -> None:
    assert _error(await client.get(f"/v1/analyses/{uuid.uuid4()}/events")) == (404, "analysis_not_found")


async def test_sweeper_redrives_a_stuck_analysis_then_fails_it(
    client: httpx.AsyncClient,
    video: bytes,
    gateway: Gateway,
    pipeline: Callable[[Event], Any],
    requested: RequestedEvents,
) -> None:
    job_id = await _new_analysis(client, video)
    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.TRANSCRIBE, service="transcriber"))
    await _wait_until(client, job_id, lambda body: body["stage"] == "transcribe")

    async def sweep() -> Any:
        return await sweep_once(
            sessions=gateway.sessions, publish=gateway.publish, stuck_after_s=0.2, max_attempts=2
        )

    await asyncio.sleep(0.3)
    report = await sweep_if_leader(gateway.engine, sweep)

    assert report is not None and job_id in [job.id for job in report.redriven]
    redriven = (await client.get(f"/v1/analyses/{job_id}")).json()
    assert (redriven["status"], redriven["stage"], redriven["attempt"]) == ("queued", None, 2)
    assert [event.attempt for event in await requested.wait_for(job_id, count=2)] == [1, 2]

    # The first attempt's late failure says nothing about the second.
    await pipeline(AnalysisFailed(job_id=job_id, stage=Stage.TRANSCRIBE, code="internal_error", reason="old"))
    await pipeline(
        AnalysisProgress(job_id=job_id, attempt=2, stage=Stage.ENCODE_VIDEO, service="video_encoder")
    )
    await _wait_until(client, job_id, lambda body: body["stage"] == "encode_video")

    sweeping = asyncio.create_task(run_sweeper(gateway.engine, sweep, interval_s=0.1))
    try:
        failed = (await client.get(f"/v1/analyses/{job_id}", params={"wait": 10})).json()
    finally:
        sweeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping
    assert (failed["status"], failed["attempt"]) == ("failed", 2)
    assert failed["error"]["code"] == "timeout" and failed["error"]["stage"] == "encode_video"
    assert "encode_video" in failed["error"]["message"]


async def test_only_one_replica_sweeps_at_a_time(gateway: Gateway) -> None:
    async def sweep() -> Any:
        raise AssertionError("swept without the lock")

    async with gateway.engine.connect() as other_replica:
        assert await other_replica.scalar(select(func.pg_try_advisory_lock(SWEEPER_LOCK_KEY)))
        await other_replica.commit()
        assert await sweep_if_leader(gateway.engine, sweep) is None
        await other_replica.scalar(select(func.pg_advisory_unlock(SWEEPER_LOCK_KEY)))
        await other_replica.commit()


async def test_health_readiness_metrics_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "object_store": "ok"}

    metrics = (await client.get("/metrics")).text
    assert 'ea_gateway_request_seconds_count{method="POST",route="/v1/analyses",status="201"}' in metrics
    assert 'ea_gateway_jobs_created_total{upload="multipart"} 1.0' in metrics
    assert 'ea_gateway_events_consumed_total{outcome="applied",type="AnalysisCompleted"}' in metrics

    schema = (await client.get("/openapi.json")).json()
    assert {
        "/v1/upload-url",
        "/v1/analyses",
        "/v1/analyses/{analysis_id}",
        "/v1/analyses/{analysis_id}/events",
    } <= set(schema["paths"])
    assert (await client.get("/docs")).status_code == 200
