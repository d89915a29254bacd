"""A real webhook receiver on loopback for the tests: records every request, verifies signatures with the
independent Standard Webhooks implementation (PyPI `standardwebhooks`), and fails or stalls on demand."""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.servers import serve_app


@dataclass
class Plan:
    """How a receiver path answers its requests, counted from 1."""

    fail_first: int = 0
    hang_first: int = 0


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

    async def handle(self, request: Request) -> PlainTextResponse:
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
