"""A typed client of the Multimodal Emotion Analyzer's REST API, on httpx.

    with EmotionAnalyzer("http://127.0.0.1:8000", api_key) as api:
        analysis = api.wait(api.analyze_file("talk.mp4").id)

`AsyncEmotionAnalyzer` (re-exported here) has the same methods, to await. Error answers raise ApiError
subclasses (`emotion_analyzer.errors`) carrying the API's code; network failures raise httpx's errors.
"""

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, TypeVar

import httpx

from . import _calls as calls
from ._calls import DEFAULT_EVENTS, DEFAULT_TIMEOUT_S, DEFAULT_WAIT_S, USER_AGENT, Call, Id, api_base
from ._files import ProgressCallback, UploadForm, content_type_of
from ._waiting import STREAM_IDLE_S, Backoff, Deadline, Follower, StatusCallback, log_retry, passing
from .async_client import AsyncEmotionAnalyzer
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

__all__ = ["AsyncEmotionAnalyzer", "EmotionAnalyzer"]

T = TypeVar("T")
logger = logging.getLogger(__name__)


class _Send(Protocol):
    def __call__(self, call: Call[T], /) -> T: ...


class Keys:
    """Your API keys. A new key is shown once, in the answer that creates it."""

    def __init__(self, send: _Send) -> None:
        self._send = send

    def list(self) -> ApiKeyList:
        return self._send(calls.list_keys())

    def create(self, name: str = "default") -> ApiKeyCreated:
        return self._send(calls.create_key(name))

    def revoke(self, key_id: Id) -> None:
        self._send(calls.revoke_key(key_id))


class Webhooks:
    """Your webhook subscriptions and their deliveries. The signing secret is shown once, at creation."""

    def __init__(self, send: _Send) -> None:
        self._send = send

    def create(
        self,
        url: str,
        events: Sequence[WebhookEventType | str] = DEFAULT_EVENTS,
        *,
        description: str | None = None,
    ) -> WebhookCreated:
        return self._send(calls.create_webhook(url, events, description))

    def list(self) -> WebhookList:
        return self._send(calls.list_webhooks())

    def get(self, webhook_id: Id) -> Webhook:
        return self._send(calls.get_webhook(webhook_id))

    def delete(self, webhook_id: Id) -> None:
        self._send(calls.delete_webhook(webhook_id))

    def test(self, webhook_id: Id) -> DeliveryQueued:
        """Queue a `webhook.test` event for this webhook."""
        return self._send(calls.send_test_event(webhook_id))

    def deliveries(self, webhook_id: Id, *, limit: int = 20, offset: int = 0) -> DeliveryList:
        """Newest first, each with every attempt made."""
        return self._send(calls.list_deliveries(webhook_id, limit, offset))

    def delivery(self, webhook_id: Id, delivery_id: Id) -> Delivery:
        return self._send(calls.get_delivery(webhook_id, delivery_id))

    def redeliver(self, webhook_id: Id, delivery_id: Id) -> DeliveryQueued:
        """Send a delivery again now, with the same `webhook-id`."""
        return self._send(calls.redeliver(webhook_id, delivery_id))


class EmotionAnalyzer:
    """The API at `server` (e.g. `http://127.0.0.1:8000`, with or without `/v1`).

    `api_key` is sent as `Authorization: Bearer`; `sign_up` and `log_in` set it to the new key or session.
    """

    def __init__(
        self, server: str, api_key: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.server = server
        self.api_key = api_key
        self._timeout_s = timeout
        self._http = httpx.Client(
            base_url=api_base(server), timeout=timeout, headers={"User-Agent": USER_AGENT}
        )
        # Presigned URLs carry their own signature: the object store must not see the API credential.
        self._storage = httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT})
        self.keys = Keys(self._send)
        self.webhooks = Webhooks(self._send)

    def close(self) -> None:
        self._http.close()
        self._storage.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _send(self, call: Call[T], /) -> T:
        response = self._http.request(
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

    def sign_up(self, email: str, password: str) -> Registration:
        """Create an account; this client then uses its first API key (also in the answer, shown once)."""
        registration = self._send(calls.sign_up(email, password))
        self.api_key = registration.api_key.key
        return registration

    def log_in(self, email: str, password: str) -> SessionToken:
        """Start a session; this client then sends its token, which works wherever a key does."""
        session = self._send(calls.log_in(email, password))
        self.api_key = session.access_token
        return session

    def log_out(self) -> None:
        """End the session this client holds (from `log_in`)."""
        self._send(calls.log_out())
        self.api_key = None

    def me(self) -> User:
        return self._send(calls.me())

    def usage(self) -> UsageReport:
        """This month's analyses and video seconds against the account's quota."""
        return self._send(calls.usage())

    # --- uploads and analyses --------------------------------------------------------------------------

    def upload(
        self, path: str | Path, *, content_type: str | None = None, progress: ProgressCallback | None = None
    ) -> str:
        """Upload a file straight to the object store under a signed policy; returns the key to analyse."""
        path = Path(path)
        content_type = content_type or content_type_of(path)
        ticket = self._send(calls.upload_url(path.name, content_type))
        form = UploadForm(ticket.fields, path, content_type)
        response = self._storage.post(
            ticket.upload_url, content=form.chunks(progress), headers=form.headers()
        )
        if response.is_error:
            raise upload_error_from_response(response)
        return ticket.key

    def analyze(self, key: str, *, callback_url: str | None = None, speakers: int | None = None) -> Analysis:
        """Analyse an uploaded file. The same key twice gives the first analysis back. With `callback_url`,
        its completion or failure is POSTed there, signed like a webhook (`analysis.callback.secret`).
        `speakers`: how many people speak in it, when you know (else the service estimates it)."""
        return self._send(calls.create_analysis(key, callback_url, speakers))

    def analyze_url(
        self, url: str, *, callback_url: str | None = None, speakers: int | None = None
    ) -> Analysis:
        """Analyse the video or audio file at `url`, which the service fetches itself (public hosts only, no
        web pages, the upload limits). `callback_url`, `speakers`: as `analyze`'s."""
        return self._send(calls.create_analysis_of_url(url, callback_url, speakers))

    def analyze_file(
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
            key = self.upload(path, content_type=content_type, progress=progress)
            return self.analyze(key, callback_url=callback_url, speakers=speakers)
        with path.open("rb") as file:
            response = self._http.post(
                "/analyses",
                files={"file": (path.name, file, content_type or content_type_of(path))},
                data=calls.multipart_fields(callback_url, speakers),
                headers=self._auth(),
            )
        raise_for_error(response)
        return Analysis.model_validate_json(response.content)

    def get(self, analysis_id: Id) -> Analysis:
        return self._send(calls.get_analysis(analysis_id))

    def list(self, *, limit: int = 20, offset: int = 0) -> AnalysisList:
        """One page of your analyses, newest first, without their results."""
        return self._send(calls.list_analyses(limit, offset))

    def iter_analyses(self, *, page_size: int = 100) -> Iterator[Analysis]:
        """Every analysis of yours, newest first, a page at a time."""
        offset = 0
        while True:
            page = self.list(limit=page_size, offset=offset)
            yield from page.items
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    def delete(self, analysis_id: Id) -> None:
        """Delete a finished analysis and its uploaded file."""
        self._send(calls.delete_analysis(analysis_id))

    def wait(
        self,
        analysis_id: Id,
        timeout: float | None = DEFAULT_WAIT_S,
        *,
        on_status: StatusCallback | None = None,
    ) -> Analysis:
        """Block until the analysis completes or fails and return it (check `status`); WaitTimeout after
        `timeout` seconds (None: no limit). Follows the server-sent events, and long-polls if the stream
        breaks. `on_status` sees each change of status or stage (a long poll answers only at the end, or
        after a minute: while polling, only those states are seen)."""
        follower = Follower(analysis_id, on_status)
        deadline = Deadline(timeout)
        backoff = Backoff()
        finished = self._follow_events(analysis_id, follower, deadline)
        while finished is None:
            if deadline.expired:
                raise WaitTimeout(follower.analysis_id, timeout or 0.0, follower.latest)
            wait_s = deadline.capped(calls.MAX_LONG_POLL_S)
            try:
                analysis = self._send(calls.get_analysis(analysis_id, wait_s=wait_s))
            except (httpx.TransportError, ApiError) as exc:
                if not passing(exc):
                    raise
                delay_s = deadline.capped(backoff.delay(exc))
                log_retry(follower.analysis_id, exc, delay_s)
                time.sleep(delay_s)
                continue
            backoff.reset()
            follower.saw(analysis)
            finished = analysis if analysis.done else None
        return finished

    def _follow_events(self, analysis_id: Id, follower: Follower, deadline: Deadline) -> Analysis | None:
        """The finished analysis from the event stream, or None when the stream ended or broke first."""
        idle_s = deadline.capped(STREAM_IDLE_S)
        if idle_s <= 0:
            return None
        try:
            with self._http.stream(
                "GET",
                calls.events_path(analysis_id),
                headers={**self._auth(), "Accept": "text/event-stream"},
                timeout=httpx.Timeout(self._timeout_s, read=idle_s),
            ) as response:
                if response.is_error:
                    response.read()
                    error = error_from_response(response)
                    if passing(error):
                        return None  # the long polls ride it out
                    raise error
                parser = SseParser()
                for line in response.iter_lines():
                    event = parser.feed(line)
                    finished = follower.event(event) if event is not None else None
                    if finished is not None or deadline.expired:
                        return finished
        except httpx.TransportError as exc:
            logger.info("the event stream of analysis %s broke (%r); long-polling instead", analysis_id, exc)
        return None
