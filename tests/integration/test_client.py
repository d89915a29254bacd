"""The Python client (sync and async) and the remote CLI against the real gateway and auth service, broker,
PostgreSQL and S3 server. The pipeline's services do not run here: the tests publish their status events."""

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import webvtt
from fastapi import FastAPI
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from emotion_analyzer import (
    Analysis,
    AnalysisStatus,
    ApiError,
    AsyncEmotionAnalyzer,
    Conflict,
    EmotionAnalyzer,
    Forbidden,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
    UnsupportedMediaType,
    WaitTimeout,
    WebhookVerificationError,
    verify_webhook,
)
from emotion_analyzer.models import Delivery, DeliveryStatus, Stage, WebhookEventType
from emotion_contract.events import AnalysisCompleted, AnalysisFailed, AnalysisProgress, Event
from services.gateway.state import Gateway
from tests.integration.gateway_fixtures import STATUS_TIMEOUT_S, result_of_one_utterance
from tests.servers import free_port, serve_app
from tests.webhook_receiver import Receiver, running_receiver

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.gateway_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
ARRIVAL_TIMEOUT_S = 20.0
CLI_TIMEOUT_S = 60.0
Publish = Callable[[Event], Any]
T = TypeVar("T")


# --- fixtures and helpers ------------------------------------------------------------------------------


@pytest.fixture
def base_url(gateway_app: tuple[FastAPI, str]) -> str:
    return gateway_app[1]


@pytest.fixture
def video_file(media_dir: Path, video: bytes) -> Path:
    return media_dir / "bars.mp4"  # written by the `video` fixture


@pytest.fixture
def wav_file(media_dir: Path, wav: bytes) -> Path:
    return media_dir / "tone.wav"  # written by the `wav` fixture


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as receiver:
        yield receiver


def new_email() -> str:
    return f"client-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture
async def api(base_url: str) -> AsyncIterator[AsyncEmotionAnalyzer]:
    """A client of a new account, signed up through the client itself."""
    async with AsyncEmotionAnalyzer(base_url) as client:
        await client.sign_up(new_email(), PASSWORD)
        yield client


@pytest.fixture
async def sync_api(base_url: str) -> AsyncIterator[EmotionAnalyzer]:
    """A sync client of a new account. Its calls run in a worker thread (`in_thread`): the gateway serves
    from this test's event loop, which a blocking call on it would stall."""
    with EmotionAnalyzer(base_url) as client:
        await in_thread(client.sign_up, new_email(), PASSWORD)
        yield client


async def in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(function, *args, **kwargs)


async def set_limits(gateway: Gateway, email: str, **limits: int) -> None:
    """An operator's per-account plan; set before the account's first authenticated request is cached."""
    assignments = ", ".join(f"{name} = :{name}" for name in limits)
    async with gateway.engine.begin() as connection:
        await connection.execute(
            text(f"UPDATE user_account SET {assignments} WHERE email = :email"), {**limits, "email": email}
        )


class Watch:
    """The states a waiting client reports through `on_status`, from any thread."""

    def __init__(self) -> None:
        self.seen: list[Analysis] = []
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()

    def __call__(self, analysis: Analysis) -> None:
        self.seen.append(analysis)
        self._loop.call_soon_threadsafe(self._changed.set)

    async def until(self, check: Callable[[Analysis], bool]) -> Analysis:
        async with asyncio.timeout(STATUS_TIMEOUT_S):
            while not any(check(analysis) for analysis in self.seen):
                self._changed.clear()
                await self._changed.wait()
        return next(analysis for analysis in self.seen if check(analysis))

    @property
    def states(self) -> list[tuple[AnalysisStatus, Stage | None]]:
        return [(analysis.status, analysis.stage) for analysis in self.seen]


def processing(analysis: Analysis) -> bool:
    return analysis.status is AnalysisStatus.PROCESSING


def at_stage(stage: Stage) -> Callable[[Analysis], bool]:
    return lambda analysis: analysis.stage is stage


def request_count(gateway: Gateway, route: str) -> float:
    labels = {"method": "GET", "route": route, "status": "200"}
    return gateway.registry.get_sample_value("ea_gateway_request_seconds_count", labels) or 0.0


LONG_POLL_ROUTE = "/v1/analyses/{analysis_id}"


async def settled(api: AsyncEmotionAnalyzer, webhook_id: uuid.UUID, delivery_id: uuid.UUID) -> Delivery:
    async with asyncio.timeout(ARRIVAL_TIMEOUT_S):
        while True:
            delivery = await api.webhooks.delivery(webhook_id, delivery_id)
            if delivery.status is not DeliveryStatus.PENDING:
                return delivery
            await asyncio.sleep(0.1)


# --- accounts and keys ---------------------------------------------------------------------------------


async def test_sync_sign_up_log_in_key_lifecycle_and_log_out(base_url: str) -> None:
    def scenario() -> None:
        email = new_email()
        with EmotionAnalyzer(base_url) as api:
            registration = api.sign_up(email, PASSWORD)
            assert api.api_key == registration.api_key.key
            assert api.me().email == email == registration.user.email
            with pytest.raises(Conflict) as taken:
                api.sign_up(email.upper(), PASSWORD)
            assert taken.value.code == "email_taken" and taken.value.status == 409

            with pytest.raises(Forbidden) as by_key:
                api.keys.create("ci")  # keys are made from a logged-in session, never by a key
            assert by_key.value.code == "session_required"
            key = api.api_key
            api.log_in(email, PASSWORD)
            created = api.keys.create("ci")
            api.api_key = key
            assert created.key.startswith(created.prefix) and created.name == "ci"
            assert {key.name for key in api.keys.list().items} == {"default", "ci"}
            with EmotionAnalyzer(base_url, created.key) as ci:
                assert ci.list().total == 0
                api.keys.revoke(created.id)
                with pytest.raises(Unauthorized) as revoked:
                    ci.list()
                assert revoked.value.code == "unauthorized"
            revoked_key = next(key for key in api.keys.list().items if key.id == created.id)
            assert revoked_key.revoked_at is not None

            with pytest.raises(Unauthorized) as wrong:
                api.log_in(email, "not the password")
            assert wrong.value.code == "invalid_credentials"
            session = api.log_in(email, PASSWORD)
            assert api.api_key == session.access_token
            assert api.usage().analyses.used == 0
            api.log_out()
            assert api.api_key is None
            with EmotionAnalyzer(base_url, session.access_token) as ended, pytest.raises(Unauthorized):
                ended.usage()

    await in_thread(scenario)


async def test_async_sign_up_log_in_keys_and_log_out(base_url: str) -> None:
    email = new_email()
    async with AsyncEmotionAnalyzer(base_url) as api:
        registration = await api.sign_up(email, PASSWORD)
        assert (await api.me()).id == registration.user.id
        await api.log_in(email, PASSWORD)
        created = await api.keys.create("async")
        async with AsyncEmotionAnalyzer(f"{base_url}/v1/", created.key) as other:  # with the prefix: the same
            assert (await other.usage()).analyses.remaining == registration.user.limits.monthly_analyses
            await api.keys.revoke(created.id)
            with pytest.raises(Unauthorized):
                await other.usage()
        assert {key.name for key in (await api.keys.list()).items} == {"default", "async"}
        await api.log_out()
        with pytest.raises(Unauthorized) as anonymous:
            await api.usage()
        assert anonymous.value.status == 401


# --- uploads, waiting, reading, deleting ---------------------------------------------------------------


async def test_sync_presigned_upload_wait_over_events_get_list_delete(
    sync_api: EmotionAnalyzer, gateway: Gateway, video_file: Path, video: bytes, pipeline: Publish
) -> None:
    progress: list[tuple[int, int]] = []
    created = await in_thread(
        sync_api.analyze_file, video_file, progress=lambda sent, total: progress.append((sent, total))
    )
    size = len(video)
    assert progress[0] == (0, size) and progress[-1] == (size, size)
    assert created.status is AnalysisStatus.QUEUED and created.filename == "bars.mp4"
    assert created.size_bytes == size and created.result is None

    watch = Watch()
    polls_before = request_count(gateway, LONG_POLL_ROUTE)
    waiting = asyncio.create_task(in_thread(sync_api.wait, created.id, 60.0, on_status=watch))
    await watch.until(lambda analysis: analysis.status is AnalysisStatus.QUEUED)  # the stream is open
    await pipeline(AnalysisProgress(job_id=created.id, stage=Stage.TRANSCRIBE, service="transcriber"))
    await watch.until(processing)
    with pytest.raises(Conflict) as busy:
        await in_thread(sync_api.delete, created.id)
    assert busy.value.code == "analysis_in_progress"
    await pipeline(AnalysisCompleted(job_id=created.id, result=result_of_one_utterance()))
    finished = await waiting

    assert finished.status is AnalysisStatus.COMPLETED and finished.result == result_of_one_utterance()
    assert watch.states == [
        (AnalysisStatus.QUEUED, None),
        (AnalysisStatus.PROCESSING, Stage.TRANSCRIBE),
        (AnalysisStatus.COMPLETED, Stage.FUSE),  # a completed analysis ends at fuse
    ]
    assert request_count(gateway, LONG_POLL_ROUTE) == polls_before  # followed the events, never polled

    assert await in_thread(sync_api.get, created.id) == finished
    page = await in_thread(sync_api.list, limit=10)
    assert [item.id for item in page.items] == [created.id] and page.total == 1
    assert page.items[0].result is None  # lists carry no results
    await in_thread(sync_api.delete, created.id)
    with pytest.raises(NotFound) as gone:
        await in_thread(sync_api.get, created.id)
    assert gone.value.code == "analysis_not_found" and str(created.id) in gone.value.message


async def test_async_uploads_both_ways_paging_and_wait_over_events(
    api: AsyncEmotionAnalyzer, video_file: Path, wav_file: Path, pipeline: Publish
) -> None:
    multipart = await api.analyze_file(wav_file, presigned=False)
    key = await api.upload(video_file)
    presigned = await api.analyze(key)
    assert await api.analyze(key) == presigned  # the same key twice: the first analysis
    assert (multipart.filename, presigned.filename) == ("tone.wav", "bars.mp4")

    first_page = await api.list(limit=1)
    assert first_page.total == 2 and [item.id for item in first_page.items] == [presigned.id]  # newest first
    assert [analysis.id async for analysis in api.iter_analyses(page_size=1)] == [presigned.id, multipart.id]

    watch = Watch()
    waiting = asyncio.create_task(api.wait(multipart.id, 60.0, on_status=watch))
    await watch.until(lambda analysis: analysis.status is AnalysisStatus.QUEUED)
    for stage in (Stage.TRANSCRIBE, Stage.ENCODE_AUDIO, Stage.FUSE):
        await pipeline(AnalysisProgress(job_id=multipart.id, stage=stage, service="test"))
        await watch.until(at_stage(stage))
    await pipeline(AnalysisCompleted(job_id=multipart.id, result=result_of_one_utterance()))
    finished = await waiting
    assert finished.result == result_of_one_utterance()
    assert [stage for _, stage in watch.states] == [
        None,
        Stage.TRANSCRIBE,
        Stage.ENCODE_AUDIO,
        Stage.FUSE,
        Stage.FUSE,
    ]
    assert (await api.get(presigned.id)).status is AnalysisStatus.QUEUED


class BreakingProxy:
    """A reverse proxy on loopback that ends every event stream after its first event, as a proxy with a
    short idle timeout does, and records the requests it forwards."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[str] = []
        self.arrived = asyncio.Event()
        self.app = Starlette(routes=[Route("/{path:path}", self.forward, methods=["GET", "POST", "DELETE"])])

    async def until(self, count: int) -> None:
        async with asyncio.timeout(STATUS_TIMEOUT_S):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()

    async def forward(self, request: Request) -> Response:
        self.requests.append(f"{request.method} {request.url.path}?{request.url.query}")
        self.arrived.set()
        headers = {name: value for name, value in request.headers.items() if name.lower() != "host"}
        http = httpx.AsyncClient(base_url=self.upstream, timeout=90)
        target = f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path
        body = await request.body()
        upstream = await http.send(
            http.build_request(request.method, target, headers=headers, content=body), stream=True
        )
        if not request.url.path.endswith("/events"):
            answer = await upstream.aread()
            await http.aclose()
            kept = {"content-type": upstream.headers.get("content-type", "application/json")}
            return Response(answer, status_code=upstream.status_code, headers=kept)

        async def first_event() -> AsyncIterator[str]:
            try:
                async for line in upstream.aiter_lines():
                    yield line + "\n"
                    if line == "":
                        return
            finally:
                await upstream.aclose()
                await http.aclose()

        return StreamingResponse(first_event(), media_type="text/event-stream")


async def test_a_callback_url_goes_with_the_file_both_ways_and_its_secret_comes_back_once(
    api: AsyncEmotionAnalyzer, video_file: Path, sync_api: EmotionAnalyzer
) -> None:
    hook = "https://example.com/hooks/done"  # checked when given; nothing is sent before the analysis ends
    presigned = await api.analyze_file(video_file, callback_url=hook)
    multipart = await api.analyze_file(video_file, presigned=False, callback_url=hook)
    # The sync client blocks: off the loop that serves the gateway.
    plain = await asyncio.to_thread(sync_api.analyze_file, video_file, callback_url=None)
    sync_hooked = await asyncio.to_thread(sync_api.analyze_file, video_file, callback_url=hook)
    assert sync_hooked.callback is not None and sync_hooked.callback.url == hook

    for analysis in (presigned, multipart):
        assert analysis.callback is not None and analysis.callback.url == hook
        assert analysis.callback.secret.startswith("whsec_")
        assert (await api.get(analysis.id)).callback is None
        deliveries = await api.webhooks.deliveries(analysis.callback.webhook_id)
        assert deliveries.items == []
    assert plain.callback is None
    with pytest.raises(InvalidRequest) as refused:
        await api.analyze_file(video_file, callback_url="ftp://example.com/hooks")
    assert refused.value.code == "invalid_callback_url"


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_wait_long_polls_when_the_event_stream_ends_early(
    kind: str, api: AsyncEmotionAnalyzer, gateway_app: tuple[FastAPI, str], wav_file: Path, pipeline: Publish
) -> None:
    proxy = BreakingProxy(gateway_app[1])
    created = await api.analyze_file(wav_file, presigned=False)
    watch = Watch()
    async with serve_app(proxy.app) as proxied_url:
        if kind == "async":
            async with AsyncEmotionAnalyzer(proxied_url, api.api_key) as through_proxy:
                waiting = asyncio.create_task(through_proxy.wait(created.id, 60.0, on_status=watch))
                await proxy.until(2)  # the event stream, then the first long poll
                await pipeline(AnalysisCompleted(job_id=created.id, result=result_of_one_utterance()))
                finished = await waiting
        else:
            with EmotionAnalyzer(proxied_url, api.api_key) as sync_through_proxy:
                sync_waiting = asyncio.create_task(
                    in_thread(sync_through_proxy.wait, created.id, 60.0, on_status=watch)
                )
                await proxy.until(2)
                await pipeline(AnalysisCompleted(job_id=created.id, result=result_of_one_utterance()))
                finished = await sync_waiting
    assert finished.status is AnalysisStatus.COMPLETED and finished.result == result_of_one_utterance()
    assert watch.states == [(AnalysisStatus.QUEUED, None), (AnalysisStatus.COMPLETED, Stage.FUSE)]
    events, *polls = proxy.requests
    assert events == f"GET /v1/analyses/{created.id}/events?"
    assert polls and all(poll.startswith(f"GET /v1/analyses/{created.id}?wait=") for poll in polls)


class OutageProxy(BreakingProxy):
    """The breaking proxy, which while `down` answers 503 itself, as a load balancer does in front of a
    gateway that restarts."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.down = True

    async def forward(self, request: Request) -> Response:
        if not self.down:
            return await super().forward(request)
        self.requests.append(f"{request.method} {request.url.path} 503")
        self.arrived.set()
        body = {"error": {"code": "unavailable", "message": "no upstream"}}
        return Response(json.dumps(body), status_code=503, media_type="application/json")


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_wait_rides_out_5xx_and_a_gateway_that_is_gone_for_a_while(
    kind: str, api: AsyncEmotionAnalyzer, gateway_app: tuple[FastAPI, str], wav_file: Path, pipeline: Publish
) -> None:
    proxy = OutageProxy(gateway_app[1])
    created = await api.analyze_file(wav_file, presigned=False)
    port = free_port()
    async with contextlib.AsyncExitStack() as clients:
        url = f"http://127.0.0.1:{port}"
        if kind == "async":
            client = await clients.enter_async_context(AsyncEmotionAnalyzer(url, api.api_key))
            waiting = asyncio.create_task(client.wait(created.id, 60.0))
        else:
            sync_client = clients.enter_context(EmotionAnalyzer(url, api.api_key))
            waiting = asyncio.create_task(in_thread(sync_client.wait, created.id, 60.0))
        async with serve_app(proxy.app, port=port):
            await proxy.until(3)  # requests to follow the analysis, each answered 503
        await asyncio.sleep(1.5)  # nothing listens: connections are refused
        assert not waiting.done()
        proxy.down = False
        async with serve_app(proxy.app, port=port):
            await proxy.until(4)
            await pipeline(AnalysisCompleted(job_id=created.id, result=result_of_one_utterance()))
            finished = await waiting
    assert finished.status is AnalysisStatus.COMPLETED and finished.result == result_of_one_utterance()
    answered_503 = [request for request in proxy.requests if request.endswith(" 503")]
    assert len(answered_503) >= 3 and all(created.id.hex[:8] in request for request in answered_503)


async def test_wait_gives_up_after_its_timeout_with_the_last_state_seen(
    api: AsyncEmotionAnalyzer, sync_api: EmotionAnalyzer, wav_file: Path
) -> None:
    created = await api.analyze_file(wav_file, presigned=False)
    with pytest.raises(WaitTimeout) as waited:
        await api.wait(created.id, 0.5)
    assert isinstance(waited.value.last_seen, Analysis)
    assert waited.value.last_seen.status is AnalysisStatus.QUEUED

    mine = await in_thread(sync_api.analyze_file, wav_file, presigned=False)
    with pytest.raises(WaitTimeout) as sync_waited:
        await in_thread(sync_api.wait, mine.id, 0.5)
    assert sync_waited.value.analysis_id == str(mine.id)


async def test_a_failed_analysis_is_what_wait_returns_and_its_units_come_back(
    api: AsyncEmotionAnalyzer, sync_api: EmotionAnalyzer, wav_file: Path, pipeline: Publish
) -> None:
    created = await api.analyze_file(wav_file, presigned=False)
    assert (await api.usage()).analyses.used == 1
    waiting = asyncio.create_task(api.wait(created.id, 60.0))
    mine = await in_thread(sync_api.analyze_file, wav_file, presigned=False)
    sync_waiting = asyncio.create_task(in_thread(sync_api.wait, mine.id, 60.0))
    for job_id in (created.id, mine.id):
        await pipeline(
            AnalysisFailed(job_id=job_id, stage=Stage.TRANSCRIBE, code="no_audio_track", reason="no audio")
        )

    for failed in (await waiting, await sync_waiting):
        assert failed.status is AnalysisStatus.FAILED and failed.result is None
        assert failed.error is not None
        assert (failed.error.code, failed.error.stage, failed.error.message) == (
            "no_audio_track",
            Stage.TRANSCRIBE,
            "no audio",
        )
    assert (await api.usage()).analyses.used == 0


# --- errors --------------------------------------------------------------------------------------------


async def test_error_answers_are_exceptions_carrying_the_api_codes(
    api: AsyncEmotionAnalyzer, base_url: str, tmp_path: Path
) -> None:
    unknown = uuid.uuid4()
    with pytest.raises(NotFound) as missing:
        await api.get(unknown)
    assert (missing.value.status, missing.value.code) == (404, "analysis_not_found")
    with pytest.raises(NotFound) as missing_key:
        await api.analyze("uploads/nobody/0123/clip.mp4")
    assert missing_key.value.code == "unknown_key"
    with pytest.raises(NotFound) as missing_webhook:
        await api.webhooks.get(unknown)
    assert missing_webhook.value.code == "webhook_not_found"

    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    with pytest.raises(UnsupportedMediaType) as refused:
        await api.analyze_file(notes)
    assert refused.value.code == "unsupported_media_type"

    async with AsyncEmotionAnalyzer(base_url, "ea_not_a_real_key") as stranger:
        with pytest.raises(Unauthorized) as unauthorized:
            await stranger.list()
    assert unauthorized.value.code == "unauthorized"
    assert unauthorized.value.headers["www-authenticate"] == "Bearer"
    assert isinstance(unauthorized.value, ApiError) and "unauthorized" in str(unauthorized.value)


async def test_over_the_quota_is_quota_exceeded_and_over_the_rate_is_rate_limited(
    base_url: str, gateway: Gateway, wav_file: Path
) -> None:
    async with AsyncEmotionAnalyzer(base_url) as api:
        registration = await api.sign_up(new_email(), PASSWORD)
        await set_limits(gateway, registration.user.email, monthly_analyses=1)
        await api.analyze_file(wav_file, presigned=False)
        with pytest.raises(QuotaExceeded) as over:
            await api.analyze_file(wav_file, presigned=False)
    assert (over.value.status, over.value.code) == (429, "quota_exceeded")
    assert isinstance(over.value, RateLimited) and over.value.retry_after is not None
    assert over.value.retry_after > 0

    loop = asyncio.get_running_loop()

    def hurried() -> RateLimited:
        with EmotionAnalyzer(base_url) as sync_api:
            email = new_email()
            sync_api.sign_up(email, PASSWORD)
            asyncio.run_coroutine_threadsafe(
                set_limits(gateway, email, rate_limit_per_minute=1), loop
            ).result()
            sync_api.list()
            with pytest.raises(RateLimited) as limited:
                sync_api.list()
            return limited.value

    limited = await in_thread(hurried)
    assert limited.code == "rate_limited" and not isinstance(limited, QuotaExceeded)
    assert limited.retry_after is not None and 0 < limited.retry_after <= 60


# --- webhooks ------------------------------------------------------------------------------------------


async def test_webhooks_create_test_deliveries_redeliver_and_verify_what_arrived(
    api: AsyncEmotionAnalyzer, receiver: Receiver, wav_file: Path, pipeline: Publish
) -> None:
    url = receiver.endpoint()
    webhook = await api.webhooks.create(url, ["analysis.completed"], description="ci")
    assert webhook.secret.startswith("whsec_") and webhook.events == [WebhookEventType.ANALYSIS_COMPLETED]
    receiver.expect(url, webhook.secret)  # the receiver checks with `standardwebhooks` as well
    assert [item.id for item in (await api.webhooks.list()).items] == [webhook.id]
    assert (await api.webhooks.get(webhook.id)).description == "ci"

    queued = await api.webhooks.test(webhook.id)
    [test_event] = await receiver.arrivals(url, 1, ARRIVAL_TIMEOUT_S)
    payload = verify_webhook(webhook.secret, test_event.headers, test_event.body)
    assert payload["type"] == "webhook.test" and test_event.verified
    assert test_event.headers["webhook-id"] == str(queued.event_id)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(webhook.secret, test_event.headers, test_event.body + b" ")

    delivery = await settled(api, webhook.id, queued.delivery_id)
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts[0].status_code == 200
    again = await api.webhooks.redeliver(webhook.id, delivery.id)
    assert again.event_id == queued.event_id
    resent = (await receiver.arrivals(url, 2, ARRIVAL_TIMEOUT_S))[1]
    assert resent.headers["webhook-id"] == test_event.headers["webhook-id"]
    assert verify_webhook(webhook.secret, resent.headers, resent.body) == payload

    created = await api.analyze_file(wav_file, presigned=False)
    await pipeline(AnalysisCompleted(job_id=created.id, result=result_of_one_utterance()))
    completed = (await receiver.arrivals(url, 3, ARRIVAL_TIMEOUT_S))[2]
    announced = verify_webhook(webhook.secret, completed.headers, completed.body)
    assert announced["type"] == "analysis.completed" and announced["data"]["id"] == str(created.id)
    assert announced["data"]["result"] == result_of_one_utterance().model_dump(mode="json")

    deliveries = await api.webhooks.deliveries(webhook.id, limit=10)
    assert deliveries.total == 2  # the test event (sent twice) and the completion
    assert {item.event_type for item in deliveries.items} == {
        WebhookEventType.WEBHOOK_TEST,
        WebhookEventType.ANALYSIS_COMPLETED,
    }
    await api.webhooks.delete(webhook.id)
    with pytest.raises(NotFound) as deleted:
        await api.webhooks.get(webhook.id)
    assert deleted.value.code == "webhook_not_found"


async def test_the_sync_client_manages_webhooks_too(sync_api: EmotionAnalyzer, receiver: Receiver) -> None:
    def scenario() -> tuple[str, str]:
        url = receiver.endpoint()
        webhook = sync_api.webhooks.create(url)
        assert set(webhook.events) == {WebhookEventType.ANALYSIS_COMPLETED, WebhookEventType.ANALYSIS_FAILED}
        assert sync_api.webhooks.get(webhook.id).url == url
        sync_api.webhooks.test(webhook.id)
        return url, webhook.secret

    url, secret = await in_thread(scenario)
    [arrived] = await receiver.arrivals(url, 1, ARRIVAL_TIMEOUT_S)
    assert verify_webhook(secret, arrived.headers, arrived.body)["type"] == "webhook.test"
    webhooks = await in_thread(sync_api.webhooks.list)
    delivered = await in_thread(sync_api.webhooks.deliveries, webhooks.items[0].id)
    assert delivered.items[0].event_id == uuid.UUID(arrived.headers["webhook-id"])
    await in_thread(sync_api.webhooks.delete, webhooks.items[0].id)
    assert (await in_thread(sync_api.webhooks.list)).items == []


# --- the remote CLI ------------------------------------------------------------------------------------


async def run_cli(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "analyzer.cli",
        "analyze",
        *args,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def only_analysis(api: AsyncEmotionAnalyzer) -> uuid.UUID:
    """The analysis the command created, once it exists."""
    async with asyncio.timeout(CLI_TIMEOUT_S):
        while True:
            page = await api.list()
            if page.items:
                return page.items[0].id
            await asyncio.sleep(0.1)


async def finished_cli(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    async with asyncio.timeout(CLI_TIMEOUT_S):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_the_remote_cli_prints_the_apis_result_draws_the_timeline_and_writes_subtitles(
    api: AsyncEmotionAnalyzer, base_url: str, video_file: Path, tmp_path: Path, pipeline: Publish
) -> None:
    picture, subtitles = tmp_path / "timeline.png", tmp_path / "talk.vtt"
    assert api.api_key is not None
    env = {"EA_SERVER": base_url, "EA_API_KEY": api.api_key}
    process = await run_cli(
        str(video_file), "--json", "--plot", str(picture), "--vtt", str(subtitles), env=env
    )
    job_id = await only_analysis(api)
    await pipeline(AnalysisProgress(job_id=job_id, stage=Stage.TRANSCRIBE, service="transcriber"))
    async with asyncio.timeout(STATUS_TIMEOUT_S):
        while True:
            if (await api.get(job_id)).status is AnalysisStatus.PROCESSING:
                break
            await asyncio.sleep(0.1)
    await pipeline(AnalysisCompleted(job_id=job_id, result=result_of_one_utterance()))
    code, stdout, stderr = await finished_cli(process)

    assert code == 0, stderr
    async with httpx.AsyncClient(base_url=base_url) as http:
        raw = await http.get(f"/v1/analyses/{job_id}", headers={"Authorization": f"Bearer {api.api_key}"})
    assert json.loads(stdout) == raw.json()["result"]
    assert "transcribe: transcribing speech" in stderr  # the stage, from the status events
    assert picture.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and picture.stat().st_size > 10_000
    [cue] = webvtt.read(str(subtitles)).captions
    assert cue.text.splitlines() == ["hello there", "[joy 55% · positive 60%]"]


async def test_the_remote_cli_exits_2_with_the_code_of_a_failed_or_refused_analysis(
    api: AsyncEmotionAnalyzer, base_url: str, wav_file: Path, tmp_path: Path, pipeline: Publish
) -> None:
    assert api.api_key is not None
    flags = ("--server", base_url, "--key", api.api_key, "--multipart")
    process = await run_cli(str(wav_file), *flags, env={})
    job_id = await only_analysis(api)
    await pipeline(
        AnalysisFailed(job_id=job_id, stage=Stage.TRANSCRIBE, code="corrupt_media", reason="cannot decode")
    )
    code, stdout, stderr = await finished_cli(process)
    assert code == 2 and stdout == ""
    assert "corrupt_media" in stderr and "cannot decode" in stderr

    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    code, _, stderr = await finished_cli(await run_cli(str(notes), *flags[:4], env={}))
    assert code == 2 and "unsupported_media_type" in stderr

    code, _, stderr = await finished_cli(
        await run_cli(str(wav_file), "--server", base_url, env={"EA_API_KEY": ""})
    )
    assert code == 2 and "API key" in stderr
