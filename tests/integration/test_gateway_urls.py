"""Analysis by URL through the gateway: it fetches the file itself from a real HTTP server, under the
webhooks' outbound guard, stores it like an upload and charges it like one; and every way a URL can be
wrong ends as a clear error that creates nothing."""

import asyncio
import dataclasses
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from emotion_analyzer import AsyncEmotionAnalyzer, UnsupportedMediaType
from services.gateway.main import create_app
from services.gateway.settings import Settings
from services.gateway.state import Gateway
from services.gateway.url_fetch import FetchLimits, InvalidUrl, fetch_to_file
from services.gateway.webhooks.targets import AddressInfo, system_resolver
from shared.storage import ObjectStore
from tests.integration.gateway_fixtures import (
    MAX_UPLOAD_BYTES,
    URL_FETCH_TIMEOUT_S,
    Account,
    error_of,
    register,
)
from tests.integration.test_gateway_accounts import bearer, set_limits, submit_wav
from tests.servers import serve_app

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.gateway_fixtures"]


# /held.mp4 answers once this is set; every path asked for is noted.
HELD = threading.Event()
ASKED: list[str] = []


class MediaHandler(BaseHTTPRequestHandler):
    """A web server's answers, each a way a URL can be: a file, a page, an endless or a trickling body,
    redirects (followed, looping, to a URL with credentials), a 404, a file without a name, a file held
    back until the test lets it go."""

    video: bytes = b""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/plain", Location=location)

    def do_GET(self) -> None:
        here = f"http://{self.headers['Host']}"
        ASKED.append(self.path)
        match self.path:
            case "/held.mp4":
                HELD.wait(timeout=60)
                self._send(200, self.video, "video/mp4")
            case "/media/talk.mp4" | "/download":
                kind = "video/mp4" if self.path.endswith(".mp4") else "application/octet-stream"
                self._send(200, self.video, kind)
            case "/watch":
                self._send(
                    200, b"<html><body><video src='/media/talk.mp4'></video></body></html>", "text/html"
                )
            case "/go":
                self._redirect("/media/talk.mp4")
            case "/loop":
                self._redirect("/loop")
            case "/with-credentials":
                self._redirect(here.replace("http://", "http://user:secret@") + "/media/talk.mp4")
            case "/endless.mp4" | "/slow.mp4":
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.end_headers()
                endless = self.path == "/endless.mp4"
                try:
                    for start in range(0, 10**9, 512):
                        self.wfile.write(b"\x00" * 65_536 if endless else self.video[start : start + 512])
                        if not endless:
                            time.sleep(0.5)
                except (BrokenPipeError, ConnectionResetError):
                    return
            case _:
                self._send(404, b"no such file", "text/plain")


@pytest.fixture(scope="module")
def server(video: bytes) -> Iterator[str]:
    """In a thread of its own: a body that trickles or never ends must not hold the gateway's loop."""
    handler = type("Handler", (MediaHandler,), {"video": video})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


async def test_a_url_is_fetched_stored_charged_and_queued_like_an_upload(
    client: httpx.AsyncClient, server: str, object_store: ObjectStore, video: bytes
) -> None:
    used = (await client.get("/v1/usage")).json()["analyses"]["used"]

    created = await client.post("/v1/analyses", json={"url": f"{server}/go"})  # a redirect, followed
    unnamed = await client.post("/v1/analyses", json={"url": f"{server}/download"})

    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["status"], body["filename"], body["size_bytes"]) == ("queued", "talk.mp4", len(video))
    assert unnamed.status_code == 201 and unnamed.json()["filename"] == "download.mp4"  # named by its bytes
    assert (await client.get("/v1/usage")).json()["analyses"]["used"] == used + 2
    served = await client.get(f"/v1/analyses/{body['id']}/media")
    async with httpx.AsyncClient() as s3:
        assert (await s3.get(served.headers["location"])).content == video


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/watch", 415, "not_media"),
        ("/endless.mp4", 413, "file_too_large"),
        ("/slow.mp4", 422, "url_too_slow"),
        ("/missing.mp4", 422, "url_unreachable"),
        ("/loop", 422, "url_unreachable"),
        ("/with-credentials", 422, "invalid_url"),
    ],
)
async def test_a_url_that_cannot_be_analysed_is_a_clear_error_that_creates_nothing(
    client: httpx.AsyncClient, server: str, path: str, status: int, code: str
) -> None:
    before = (await client.get("/v1/analyses")).json()["total"]
    refused = await client.post("/v1/analyses", json={"url": f"{server}{path}"})
    assert error_of(refused) == (status, code), refused.text
    assert (await client.get("/v1/analyses")).json()["total"] == before


async def test_bad_and_unreachable_urls_and_a_request_with_both_sources(client: httpx.AsyncClient) -> None:
    for url, code in (
        ("ftp://example.com/talk.mp4", "invalid_url"),
        ("http://127.0.0.1:1/talk.mp4", "url_unreachable"),  # nothing listens there
        ("https://no-such-host.invalid/talk.mp4", "url_unreachable"),
    ):
        assert error_of(await client.post("/v1/analyses", json={"url": url}))[1] == code, url
    both = await client.post("/v1/analyses", json={"url": "https://example.com/a.mp4", "key": "uploads/x"})
    assert error_of(both) == (422, "validation_error")


async def test_private_addresses_are_refused_unless_allowed(server: str) -> None:
    limits = FetchLimits(
        max_bytes=MAX_UPLOAD_BYTES, timeout_s=URL_FETCH_TIMEOUT_S, connect_timeout_s=2.0, allow_private=False
    )
    with pytest.raises(InvalidUrl, match="not a public address"):
        await fetch_to_file(f"{server}/media/talk.mp4", limits)

    async def public_name(host: str, port: int) -> list[AddressInfo]:  # a name resolving to loopback
        return await system_resolver("127.0.0.1", port)

    rebound = f"{server.replace('127.0.0.1', 'media.example')}/media/talk.mp4"
    with pytest.raises(InvalidUrl):
        await fetch_to_file(rebound, limits, resolve=public_name)
    allowed = dataclasses.replace(limits, allow_private=True)
    fetched = await fetch_to_file(rebound, allowed, resolve=public_name)
    fetched.path.unlink()
    assert fetched.filename == "talk.mp4"


async def test_the_client_analyzes_a_url_and_the_command_needs_a_server_for_one(
    gateway_app: tuple[Any, str], account: Account, server: str
) -> None:
    async with AsyncEmotionAnalyzer(gateway_app[1], api_key=account.key) as api:
        analysis = await api.analyze_url(f"{server}/media/talk.mp4")
        assert (analysis.status.value, analysis.filename) == ("queued", "talk.mp4")
        with pytest.raises(UnsupportedMediaType) as page:
            await api.analyze_url(f"{server}/watch")
        assert page.value.code == "not_media"

    here = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "analyzer.cli", "analyze", f"{server}/media/talk.mp4"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "EA_SERVER": "", "EA_API_KEY": ""},
        check=False,
    )
    assert here.returncode == 2 and "give --server and --key" in here.stderr


async def test_only_the_outbound_ports_are_fetched_from(server: str) -> None:
    """The server listens on a port of its own: with the web's ports only, its URL is refused; with that port
    allowed, fetched. (A redirect to another port is checked the same way, and again at connection time:
    tests/unit/test_webhook_targets.py.)"""
    port = int(server.rsplit(":", 1)[1])
    limits = FetchLimits(
        max_bytes=MAX_UPLOAD_BYTES,
        timeout_s=URL_FETCH_TIMEOUT_S,
        connect_timeout_s=2.0,
        allow_private=True,
        ports=frozenset({80, 443}),
    )
    with pytest.raises(InvalidUrl, match=f"port {port} is not one"):
        await fetch_to_file(f"{server}/media/talk.mp4", limits)
    fetched = await fetch_to_file(
        f"{server}/media/talk.mp4", dataclasses.replace(limits, ports=frozenset({80, 443, port}))
    )
    fetched.path.unlink()
    assert fetched.filename == "talk.mp4"


async def test_files_received_at_once_are_bounded_per_account_and_per_replica(
    gateway_settings: Settings, gateway_app: tuple[FastAPI, str], server: str, wav: bytes
) -> None:
    """A replica whose scratch volume holds two files at the largest size, one per account: two fetches held
    by the server take it all (a fetch holds the largest size); a third request waits for nothing and reads
    nothing (429 for the account holding one, 503 for anyone else), and once they finish there is room."""
    capped = Settings.model_validate(
        {
            **gateway_settings.model_dump(),
            "service_name": "gateway-scratch",
            "scratch_bytes": 2 * MAX_UPLOAD_BYTES + 1024,
            "scratch_bytes_per_account": MAX_UPLOAD_BYTES,
            "url_fetch_timeout_s": 60.0,
        }
    )
    first, second, third = [await register(gateway_app[1]) for _ in range(3)]
    HELD.clear()
    ASKED.clear()
    async with serve_app(create_app(capped)) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:

        def fetch(account: Account, path: str = "/held.mp4") -> Any:
            return http.post("/v1/analyses", json={"url": f"{server}{path}"}, headers=bearer(account.key))

        held = [asyncio.create_task(fetch(a)) for a in (first, second)]
        for _ in range(200):
            if ASKED.count("/held.mp4") == 2:
                break
            await asyncio.sleep(0.05)
        assert ASKED.count("/held.mp4") == 2

        again = await fetch(first, "/media/talk.mp4")
        sent = await submit_wav(http, first.key, wav)
        other = await fetch(third, "/media/talk.mp4")
        assert error_of(again) == error_of(sent) == (429, "too_many_transfers")
        assert error_of(other) == (503, "scratch_space_full")
        assert again.headers["retry-after"] == other.headers["retry-after"] == "10"
        assert "/media/talk.mp4" not in ASKED  # refused before anything was fetched

        HELD.set()
        assert [(await task).status_code for task in held] == [201, 201]
        assert (await fetch(third, "/media/talk.mp4")).status_code == 201
        assert (await submit_wav(http, first.key, wav)).status_code == 201


async def test_a_url_is_not_fetched_for_an_account_whose_month_is_used_up(
    gateway: Gateway, gateway_app: tuple[FastAPI, str], server: str, wav: bytes
) -> None:
    base_url = gateway_app[1]
    account = await register(base_url)
    await set_limits(gateway, account, monthly_analyses=1)
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(account.key), timeout=30) as http:
        assert (await submit_wav(http, account.key, wav)).status_code == 201
        ASKED.clear()
        refused = await http.post("/v1/analyses", json={"url": f"{server}/media/talk.mp4"})
        sent = await submit_wav(http, account.key, wav, "late.wav")
    assert error_of(refused) == error_of(sent) == (429, "quota_exceeded")
    assert ASKED == []
