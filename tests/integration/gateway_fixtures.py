"""The gateway and the real auth service in-process (uvicorn, free ports) against the real broker, S3 server
and PostgreSQL, with helpers for the REST flow. Use from a test module with
    pytest_plugins = ["tests.integration.gateway_fixtures"]
Module-scoped fixtures give each module its own database, gateway and auth service.

PYTEST_DONT_REWRITE: test modules import the helpers before pytest loads this as a plugin.
"""

import asyncio
import contextlib
import time
import uuid
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped, unused-ignore]
from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from devstack import LocalStack
from devstack.config import StackSettings
from emotion_contract.events import (
    AnalysisRequested,
    Event,
    Topic,
)
from emotion_contract.labels import Modality
from emotion_contract.results import (
    AnalysisResult,
    ModalityPrediction,
    UtteranceResult,
    emotion_scores,
    sentiment_scores,
)
from services.auth.main import create_app as create_auth_app
from services.auth.settings import Settings as AuthSettings
from services.gateway.main import create_app
from services.gateway.settings import Settings
from services.gateway.state import Gateway
from shared.db.migrate import upgrade
from shared.service import publish
from tests.media_factory import bars_video
from tests.servers import free_port, serve_app

# Test-only argon2 cost: the real parameters' 64 MiB and three passes per login would only slow the tests.
# Unrevoked API keys an account may hold in these tests' auth service (the first made at sign-up included).
KEY_CAP = 4
CHEAP_PASSWORD_HASHING = {
    "password_time_cost": 1,
    "password_memory_cost_kib": 1024,
    "password_parallelism": 1,
}
MAX_UPLOAD_BYTES = 256 * 1024
AUTH_CACHE_TTL_S = 1.0
# Long enough that a test waiting on a change only passes when LISTEN/NOTIFY woke it.
WATCH_FALLBACK_S = 30.0
# The gateway's consumer group joins Tansu in a few seconds; status changes may take that long at first.
STATUS_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def gateway_database_url(stack: LocalStack) -> Iterator[str]:
    """A database of the gateway's own: the session's `database_url` is for tests that want it empty."""
    name = f"test_gateway_{uuid.uuid4().hex[:12]}"
    yield stack.create_database(name)
    stack.drop_database(name)


@pytest.fixture(scope="module")
async def auth_url(settings: StackSettings, gateway_database_url: str) -> AsyncIterator[str]:
    """The real auth service, in-process on a free port, sharing the gateway's database."""
    await upgrade(gateway_database_url)
    auth_settings = AuthSettings.model_validate(
        {
            **settings.model_dump(),
            "database_url": gateway_database_url,
            **CHEAP_PASSWORD_HASHING,
            "max_api_keys_per_user": KEY_CAP,
        }
    )
    async with serve_app(create_auth_app(auth_settings)) as url:
        yield url


URL_FETCH_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
def gateway_settings(
    settings: StackSettings, gateway_database_url: str, auth_url: str, stack: LocalStack
) -> Settings:
    return Settings.model_validate(
        {
            **settings.model_dump(),
            # Clients upload through the stack's front, which takes S3's POST uploads (rclone does not).
            "public_s3_endpoint": stack.public_s3_url,
            "database_url": gateway_database_url,
            "auth_url": auth_url,
            # Short, so that the test of how late a revocation takes effect waits only this long.
            "auth_cache_ttl_s": AUTH_CACHE_TTL_S,
            "webhook_allow_private_targets": True,  # the tests' receivers listen on loopback
            "url_fetch_allow_private_targets": True,  # and so do the servers analyses are fetched from
            "outbound_ports": [],  # on whatever ports they were given
            "url_fetch_timeout_s": URL_FETCH_TIMEOUT_S,
            "webhook_backoff_base_s": 0.2,
            "webhook_poll_interval_s": 0.2,
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
    # /metrics on a port of its own; the tests' other gateway replicas serve none.
    app = create_app(gateway_settings.model_copy(update={"metrics_port": free_port()}))
    async with serve_app(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def gateway(gateway_app: tuple[FastAPI, str]) -> Gateway:
    state: Gateway = gateway_app[0].state.gateway
    return state


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    password: str
    key: str


async def register(base_url: str) -> Account:
    """A new account, signed up through the gateway."""
    email, password = f"user-{uuid.uuid4().hex[:12]}@example.com", "correct horse battery"
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post("/v1/users", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(id=body["user"]["id"], email=email, password=password, key=body["api_key"]["key"])


@pytest.fixture(scope="module")
async def account(gateway_app: tuple[FastAPI, str]) -> Account:
    return await register(gateway_app[1])


@pytest.fixture
async def client(gateway_app: tuple[FastAPI, str], account: Account) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {account.key}"}
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
            try:
                event = AnalysisRequested.model_validate_json(record.value)
            except ValidationError:
                continue  # an unreadable message another test put on the topic (test_service_kit.py)
            self.events.append(event)
            self.changed.set()


@contextlib.asynccontextmanager
async def reading_requested(bootstrap: str) -> AsyncIterator[RequestedEvents]:
    """Every AnalysisRequested on the broker at `bootstrap`, from the beginning, while the block runs."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    topic = Topic.ANALYSIS_REQUESTED.value
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    events = RequestedEvents()
    reading = asyncio.create_task(events.consume(consumer))
    try:
        yield events
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await consumer.stop()


@pytest.fixture(scope="module")
async def requested(kafka_bootstrap: str) -> AsyncIterator[RequestedEvents]:
    async with reading_requested(kafka_bootstrap) as events:
        yield events


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


async def upload(client: httpx.AsyncClient, filename: str, data: bytes) -> str:
    """The first two steps of the three-step flow: get an upload URL, POST the bytes to it."""
    response = await client.post("/v1/upload-url", json={"filename": filename, "content_type": "video/mp4"})
    assert response.status_code == 200, response.text
    body = response.json()
    async with httpx.AsyncClient() as s3:
        posted = await post_upload(s3, body, data)
    assert posted.status_code == 204, posted.text
    key: str = body["key"]
    return key


async def post_upload(s3: httpx.AsyncClient, ticket: dict[str, Any], data: bytes) -> httpx.Response:
    """S3's POST Object, as a browser sends it: the ticket's signed fields, then the file."""
    return await s3.post(ticket["upload_url"], data=ticket["fields"], files={"file": ("upload", data)})


async def analyse(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    response = await client.post("/v1/analyses", json={"key": key})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def new_analysis(client: httpx.AsyncClient, video: bytes) -> uuid.UUID:
    key = await upload(client, "clip.mp4", video)
    return uuid.UUID((await analyse(client, key))["id"])


async def wait_until(
    client: httpx.AsyncClient, job_id: uuid.UUID, check: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + STATUS_TIMEOUT_S
    while True:
        body: dict[str, Any] = (await client.get(f"/v1/analyses/{job_id}")).json()
        if check(body):
            return body
        assert time.monotonic() < deadline, f"analysis never reached the expected state: {body}"
        await asyncio.sleep(0.1)


def result_of_one_utterance() -> AnalysisResult:
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


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]
