"""Request bodies are bounded before anything reads them, on the real gateway and auth service (uvicorn on
loopback): small everywhere, the size of a file only on the multipart upload route."""

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.multipart_upload import MULTIPART_OVERHEAD_BYTES
from shared.body_limit import DEFAULT_MAX_BODY_BYTES
from tests.integration.gateway_fixtures import MAX_UPLOAD_BYTES, error_of, register

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.gateway_fixtures"]

HUGE_BYTES = 300 * 1000 * 1000


@pytest.fixture
def base_url(gateway_app: tuple[FastAPI, str]) -> str:
    return gateway_app[1]


async def _raw_request(base_url: str, head: str) -> tuple[str, float]:
    """Send only a request's head (no body) on a raw connection; the status line and how long it took."""
    host, port = httpx.URL(base_url).host, httpx.URL(base_url).port
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head.encode())
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = (await reader.readline()).decode()
    finally:
        writer.close()
    return status_line, loop.time() - started


async def test_a_declared_300_mb_body_is_refused_before_a_byte_of_it_is_read(base_url: str) -> None:
    head = (
        "POST /v1/users HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        f"Content-Length: {HUGE_BYTES}\r\n\r\n"
    )
    status_line, seconds = await _raw_request(base_url, head)
    assert status_line.startswith("HTTP/1.1 413"), status_line
    assert seconds < 5  # answered at once: it did not wait for 300 MB


async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(base_url: str) -> None:
    sent = 0

    async def endless_json() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"email": "a@example.com", "password": "'
        while sent < HUGE_BYTES:
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        try:
            answer = await http.post("/v1/users", content=endless_json())
        except httpx.TransportError:  # the server may close while the client still sends
            answer = None
    if answer is not None:
        assert error_of(answer) == (413, "body_too_large")
    assert sent < HUGE_BYTES / 10


async def test_json_routes_take_small_bodies_and_the_upload_route_takes_a_file(
    base_url: str, wav: bytes
) -> None:
    account = await register(base_url)
    headers = {"Authorization": f"Bearer {account.key}"}
    padding = " " * DEFAULT_MAX_BODY_BYTES
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        webhook = json.dumps({"url": "https://example.com/hook", "description": "x"}) + padding
        too_big = await http.post("/v1/webhooks", content=webhook, headers=headers)
        assert error_of(too_big) == (413, "body_too_large")
        over = MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES + 1
        head = (
            f"POST /v1/analyses HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {account.key}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {over}\r\n\r\n"
        )
        assert (await _raw_request(base_url, head))[0].startswith("HTTP/1.1 413")
        fits = await http.post(
            "/v1/analyses", files={"file": ("tone.wav", wav, "audio/wav")}, headers=headers
        )
        assert fits.status_code == 201, fits.text
        # A JSON key on the upload route is still held to the small limit.
        key = json.dumps({"key": "uploads/x/y.wav"}) + padding
        assert error_of(
            await http.post(
                "/v1/analyses", content=key, headers={**headers, "Content-Type": "application/json"}
            )
        ) == (
            413,
            "body_too_large",
        )


async def test_the_auth_service_bounds_bodies_too(auth_url: str) -> None:
    body = json.dumps({"email": "a@example.com", "password": "x" * (2 * DEFAULT_MAX_BODY_BYTES)})
    async with httpx.AsyncClient(base_url=auth_url, timeout=30) as http:
        answer = await http.post("/v1/users", content=body, headers={"Content-Type": "application/json"})
    assert error_of(answer) == (413, "body_too_large")


async def test_console_forms_are_parsed_with_bounds(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        many = {f"field{i}": "x" for i in range(100)}
        answer = await http.post("/console/login", data=many)
        assert answer.status_code == 400, answer.text
        files = {f"file{i}": (f"f{i}.txt", b"x", "text/plain") for i in range(3)}
        answer = await http.post("/console/login", files=files)
        assert answer.status_code == 400, answer.text
