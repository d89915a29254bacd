"""Serving an ASGI app with uvicorn on a free loopback port, inside a test's event loop."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp

from devstack.processes import free_port

__all__ = ["free_port", "serve_app"]


@contextlib.asynccontextmanager
async def serve_app(
    app: ASGIApp, *, start_timeout_s: float = 30.0, port: int | None = None
) -> AsyncIterator[str]:
    """Run the app (its lifespan included) until the block ends; yields its base URL. A `port` given
    serves it again where it was (a restart)."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    serving = asyncio.create_task(server.serve())
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if serving.done() or time.monotonic() > deadline:
            if serving.done():
                serving.result()  # raises what stopped the start
            serving.cancel()
            raise RuntimeError(f"the app did not start within {start_timeout_s:g} s")
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
