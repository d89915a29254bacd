"""A real webhook receiver on loopback for the tests: records every request, verifies signatures with the
independent Standard Webhooks implementation (PyPI `standardwebhooks`), and fails or stalls on demand."""

import asyncio
import contextlib
import functools
import gzip
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.servers import serve_app

GZIP_BOMB_BYTES = 128 * 1024 * 1024


@functools.cache
def gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * GZIP_BOMB_BYTES, compresslevel=9)


@dataclass
class Plan:
    """How a receiver path answers its requests, counted from 1."""

    fail_first: int = 0
    hang_first: int = 0
    gzip_bomb: bool = False
    """Answer 200 with a gzip body of a few KiB that inflates to GZIP_BOMB_BYTES."""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def arrivals(self, url: str, count: int, timeout_s: float | None = None) -> list[Received]:
        """The requests to `url` once `count` have arrived; TimeoutError after `timeout_s` (None: the caller
        bounds the wait)."""
        async with asyncio.timeout(timeout_s):
            while len(self.at(url)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.at(url)

    def endpoint(self, plan: Plan | None = None) -> str:
        """A fresh path of the receiver, so tests never see each other's requests."""
        path = f"/hooks/{uuid.uuid4().hex}"
        self.plans[path] = plan or Plan()
        return self.base_url + path

    def expect(self, url: str, secret: str) -> None:
        """Verify the requests to `url` with this secret."""
        self.secrets[httpx.URL(url).path] = secret

    def at(self, url: str) -> list[Received]:
        path = httpx.URL(url).path
        return [request for request in self.requests if request.path == path]

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        body = await request.body()
        secret = self.secrets.get(path)
        verified = False
        if secret is not None:
            with contextlib.suppress(WebhookVerificationError):
                Webhook(secret).verify(body, dict(request.headers))
                verified = True
        self.requests.append(Received(path, dict(request.headers), body, verified))
        number = sum(1 for received in self.requests if received.path == path)
        self.arrived.set()
        plan = self.plans.get(path, Plan())
        if number <= plan.hang_first:
            await self.release.wait()
        if number <= plan.fail_first:
            return PlainTextResponse("try again later", status_code=503)
        if plan.gzip_bomb:
            return Response(gzip_bomb(), headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})
        return PlainTextResponse("ok")


@contextlib.asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    try:
        async with serve_app(app) as base_url:
            receiver.base_url = base_url
            yield receiver
    finally:
        receiver.release.set()


class ThreadedReceiver:
    """The receiver on its own event loop in a thread, for synchronous tests (the e2e tier)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._serve(),), daemon=True
        )
        self.receiver = Receiver()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with running_receiver() as receiver:
            self.receiver = receiver
            self._started.set()
            await self._stop.wait()

    def __enter__(self) -> "ThreadedReceiver":
        self._thread.start()
        if not self._started.wait(timeout=30):
            raise RuntimeError("the webhook receiver did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=10)

    def release(self) -> None:
        """Let the stalled requests (Plan.hang_first) answer."""
        self._loop.call_soon_threadsafe(self.receiver.release.set)

    def wait_for(self, url: str, count: int, timeout_s: float) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while len(self.receiver.at(url)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.receiver.at(url))} of {count} requests arrived at {url}")
            time.sleep(0.05)
        return self.receiver.at(url)
