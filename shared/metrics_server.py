"""/metrics on a port of its own, for the services whose main port faces the world (the gateway, auth).

The metrics name routes, tenants' traffic and internals: they are for Prometheus, which reaches the pods
on this port from the monitoring namespace, and nothing else does. The consumer services serve /metrics
beside /healthz on their only port, which no one outside reaches.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from prometheus_client import CollectorRegistry, make_asgi_app


@contextlib.asynccontextmanager
async def metrics_server(registry: CollectorRegistry, host: str, port: int | None) -> AsyncIterator[None]:
    """Serve the registry on host:port while the block runs (nothing when `port` is None)."""
    if port is None:
        yield
        return
    config = uvicorn.Config(
        make_asgi_app(registry), host=host, port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # raises why it stopped: the service does not start without its metrics
            raise RuntimeError(f"the metrics server on port {port} stopped before it started")
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await serving
