"""Request metrics are labelled by route template, so ids in paths do not multiply the series."""

import uuid

import httpx
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry

from services.gateway.metrics import GatewayMetrics, RequestMetricsMiddleware


def _app(registry: CollectorRegistry) -> FastAPI:
    inner = APIRouter(prefix="/things")

    @inner.get("/{thing_id}/parts/{part}")
    async def part(thing_id: uuid.UUID, part: str) -> dict[str, str]:
        return {"thing": str(thing_id), "part": part}

    outer = APIRouter(prefix="/v1")
    outer.include_router(inner)
    app = FastAPI()
    app.include_router(outer)
    app.add_middleware(RequestMetricsMiddleware, metrics=GatewayMetrics(registry))
    return app


async def test_requests_are_counted_by_template_and_status() -> None:
    registry = CollectorRegistry()
    transport = httpx.ASGITransport(app=_app(registry))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for _ in range(3):
            assert (await client.get(f"/v1/things/{uuid.uuid4()}/parts/parts")).status_code == 200
        assert (await client.get("/v1/things/not-a-uuid/parts/parts")).status_code == 422
        assert (await client.get("/nowhere")).status_code == 404

    def count(route: str, status: str) -> float | None:
        labels = {"method": "GET", "route": route, "status": status}
        return registry.get_sample_value("ea_gateway_request_seconds_count", labels)

    assert count("/v1/things/{thing_id}/parts/{part}", "200") == 3
    assert count("/v1/things/{thing_id}/parts/{part}", "422") == 1
    assert count("<unmatched>", "404") == 1
