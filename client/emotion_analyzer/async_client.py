"""The asyncio twin of `EmotionAnalyzer`: the same methods, to await (see `emotion_analyzer.client`)."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TypeVar

import httpx

from . import _calls as calls
from ._calls import DEFAULT_EVENTS, DEFAULT_TIMEOUT_S, DEFAULT_WAIT_S, USER_AGENT, Call, Id, api_base
from ._files import ProgressCallback, UploadForm, content_type_of
from ._waiting import STREAM_IDLE_S, Backoff, Follower, StatusCallback, log_retry, passing
from .errors import ApiError, WaitTimeout, error_from_response, raise_for_error, upload_error_from_response
from .models import (
    Analysis,
    AnalysisList,
    ApiKeyCreated,
    ApiKeyList,
    Delivery,
    DeliveryList,
    DeliveryQueued,
    Registration,
    SessionToken,
    UsageReport,
    User,
    Webhook,
    WebhookCreated,
    WebhookEventType,
    WebhookList,
)
from .sse import SseParser

T = TypeVar("T")
logger = logging.getLogger(__name__)


class _Send(Protocol):
    def __call__(self, call: Call[T], /) -> Awaitable[T]: ...


class AsyncKeys:
    """Your API keys. A new key is shown once, in the answer that creates it."""

    def __init__(self, send: _Send) -> None:
        self._send = send

    async def list(self) -> ApiKeyList:
        return await self._send(calls.list_keys())

    async def create(self, name: str = "default") -> ApiKeyCreated:
        return await self._send(calls.create_key(name))

    async def revoke(self, key_id: Id) -> None:
        await self._send(calls.revoke_key(key_id))


class AsyncWebhooks:
    """Your webhook subscriptions and their deliveries. The signing secret is shown once, at creation."""

    def __init__(self, send: _Send) -> None:
        self._send = send

    async def create(
        self,
        url: str,
        events: Sequence[WebhookEventType | str] = DEFAULT_EVENTS,
        *,
        description: str | None = None,
    ) -> WebhookCreated:
        return await self._send(calls.create_webhook(url, events, description))

    async def list(self) -> WebhookList:
        return await self._send(calls.list_webhooks())

    async def get(self, webhook_id: Id) -> Webhook:
        return await self._send(calls.get_webhook(webhook_id))

    async def delete(self, webhook_id: Id) -> None:
        await self._send(calls.delete_webhook(webhook_id))

    async def test(self, webhook_id: Id) -> DeliveryQueued:
        """Queue a `webhook.test` event for this webhook."""
        return await self._send(calls.send_test_event(webhook_id))

    async def deliveries(self, webhook_id: Id, *, limit: int = 20, offset: int = 0) -> DeliveryList:
        """Newest first, each with every attempt made."""
        return await self._send(calls.list_deliveries(webhook_id, limit, offset))

    async def delivery(self, webhook_id: Id, delivery_id: Id) -> Delivery:
        return await self._send(calls.get_delivery(webhook_id, delivery_id))

    async def redeliver(self, webhook_id: Id, delivery_id: Id) -> DeliveryQueued:
        """Send a delivery again now, with the same `webhook-id`."""
        return await self._send(calls.redeliver(webhook_id, delivery_id))


class AsyncEmotionAnalyzer:
    """The API at `server` (e.g. `http://127.0.0.1:8000`, with or without `/v1`), for asyncio.

    `api_key` is sent as `Authorization: Bearer`; `sign_up` and `log_in` set it to the new key or session.
    """

    def __init__(
        self, server: str, api_key: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.server = server
        self.api_key = api_key
        self._timeout_s = timeout
        self._http = httpx.AsyncClient(
            base_url=api_base(server), timeout=timeout, headers={"User-Agent": USER_AGENT}
        )
        # Presigned URLs carry their own signature: the object store must not see the API credential.
        self._storage = httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT})
        self.keys = AsyncKeys(self._send)
        self.webhooks = AsyncWebhooks(self._send)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._storage.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def _send(self, call: Call[T], /) -> T:
        response = await self._http.request(
            call.method,
            call.path,
            json=call.json,
            params=call.params,
            headers=self._auth(),
            timeout=httpx.Timeout(self._timeout_s, read=call.read_timeout_s or self._timeout_s),
        )
        raise_for_error(response)
        return call.parse(response)

    # --- accounts --------------------------------------------------------------------------------------

    async def sign_up(self, email: str, password: str) -> Registration:
        """Create an account; this client then uses its first API key (also in the answer, shown once)."""
        registration = await self._send(calls.sign_up(email, password))
        self.api_key = registration.api_key.key
        return registration

    async def log_in(self, email: str, password: str) -> SessionToken:
        """Start a session; this client then sends its token, which works wherever a key does."""
        session = await self._send(calls.log_in(email, password))
        self.api_key = session.access_token
        return session

    async def log_out(self) -> None:
        """End the session this client holds (from `log_in`)."""
        await self._send(calls.log_out())
        self.api_key = None

    async def me(self) -> User:
        return await self._send(calls.me())

    async def usage(self) -> UsageReport:
        """This month's analyses and video seconds against the account's quota."""
        return await self._send(calls.usage())

    # --- uploads and analyses --------------------------------------------------------------------------

    async def upload(
        self, path: str | Path, *, content_type: str | None = None, progress: ProgressCallback | None = None
    ) -> str:
        """Upload a file straight to the object store under a signed policy; returns the key to analyse."""
        path = Path(path)
        content_type = content_type or content_type_of(path)
        ticket = await self._send(calls.upload_url(path.name, content_type))
        form = UploadForm(ticket.fields, path, content_type)
        headers = await asyncio.to_thread(form.headers)
        response = await self._storage.post(
            ticket.upload_url, content=form.async_chunks(progress), headers=headers
        )
        if response.is_error:
            raise upload_error_from_response(response)
        return ticket.key

    async def analyze(
        self, key: str, *, callback_url: str | None = None, speakers: int | None = None
    ) -> Analysis:
        """Analyse an uploaded file. The same key twice gives the first analysis back. With `callback_url`,
        its completion or failure is POSTed there, signed like a webhook (`analysis.callback.secret`).
        `speakers`: how many people speak in it, when you know (else the service estimates it)."""
        return await self._send(calls.create_analysis(key, callback_url, speakers))

    async def analyze_url(
        self, url: str, *, callback_url: str | None = None, speakers: int | None = None
    ) -> Analysis:
        """Analyse the video or audio file at `url`, which the service fetches itself (public hosts only, no
        web pages, the upload limits). `callback_url`, `speakers`: as `analyze`'s."""
        return await self._send(calls.create_analysis_of_url(url, callback_url, speakers))

    async def analyze_file(
        self,
        path: str | Path,
        *,
        presigned: bool = True,
        content_type: str | None = None,
        progress: ProgressCallback | None = None,
        callback_url: str | None = None,
        speakers: int | None = None,
    ) -> Analysis:
        """Upload and analyse a file: over a presigned URL (with progress), or in one multipart request.
        `callback_url`, `speakers`: as `analyze`'s."""
        path = Path(path)
        if presigned:
            key = await self.upload(path, content_type=content_type, progress=progress)
            return await self.analyze(key, callback_url=callback_url, speakers=speakers)
        file = await asyncio.to_thread(path.open, "rb")
        try:
            response = await self._http.post(
                "/analyses",
                files={"file": (path.name, file, content_type or content_type_of(path))},
                data=calls.multipart_fields(callback_url, speakers),
                headers=self._auth(),
            )
        finally:
            await asyncio.to_thread(file.close)
        raise_for_error(response)
        return Analysis.model_validate_json(response.content)

    async def get(self, analysis_id: Id) -> Analysis:
        return await self._send(calls.get_analysis(analysis_id))

    async def list(self, *, limit: int = 20, offset: int = 0) -> AnalysisList:
        """One page of your analyses, newest first, without their results."""
        return await self._send(calls.list_analyses(limit, offset))

    async def iter_analyses(self, *, page_size: int = 100) -> AsyncIterator[Analysis]:
        """Every analysis of yours, newest first, a page at a time."""
        offset = 0
        while True:
            page = await self.list(limit=page_size, offset=offset)
            for analysis in page.items:
                yield analysis
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    async def delete(self, analysis_id: Id) -> None:
        """Delete a finished analysis and its uploaded file."""
        await self._send(calls.delete_analysis(analysis_id))

    async def wait(
        self,
        analysis_id: Id,
        timeout: float | None = DEFAULT_WAIT_S,  # noqa: ASYNC109  # the same call as the sync client's
        *,
        on_status: StatusCallback | None = None,
    ) -> Analysis:
        """Return the analysis once it completes or fails (check `status`); WaitTimeout after `timeout`
        seconds (None: no limit). Follows the server-sent events, and long-polls if the stream breaks.
        `on_status` sees each change of status or stage (a long poll answers only at the end, or after a
        minute: while polling, only those states are seen)."""
        follower = Follower(analysis_id, on_status)
        try:
            async with asyncio.timeout(timeout):
                finished = await self._follow_events(analysis_id, follower)
                backoff = Backoff()
                while finished is None:
                    try:
                        analysis = await self._send(
                            calls.get_analysis(analysis_id, wait_s=calls.MAX_LONG_POLL_S)
                        )
                    except (httpx.TransportError, ApiError) as exc:
                        if not passing(exc):
                            raise
                        delay_s = backoff.delay(exc)
                        log_retry(follower.analysis_id, exc, delay_s)
                        await asyncio.sleep(delay_s)
                        continue
                    backoff.reset()
                    follower.saw(analysis)
                    finished = analysis if analysis.done else None
                return finished
        except TimeoutError as exc:
            raise WaitTimeout(follower.analysis_id, timeout or 0.0, follower.latest) from exc

    async def _follow_events(self, analysis_id: Id, follower: Follower) -> Analysis | None:
        """The finished analysis from the event stream, or None when the stream ended or broke first."""
        try:
            async with self._http.stream(
                "GET",
                calls.events_path(analysis_id),
                headers={**self._auth(), "Accept": "text/event-stream"},
                timeout=httpx.Timeout(self._timeout_s, read=STREAM_IDLE_S),
            ) as response:
                if response.is_error:
                    await response.aread()
                    error = error_from_response(response)
                    if passing(error):
                        return None  # the long polls ride it out
                    raise error
                parser = SseParser()
                async for line in response.aiter_lines():
                    event = parser.feed(line)
                    finished = follower.event(event) if event is not None else None
                    if finished is not None:
                        return finished
        except httpx.TransportError as exc:
            logger.info("the event stream of analysis %s broke (%r); long-polling instead", analysis_id, exc)
        return None
