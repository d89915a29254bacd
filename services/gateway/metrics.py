"""The gateway's Prometheus metrics, in a registry of its own (the broker middleware adds per-topic ones)."""

import time
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE: Final = "<unmatched>"


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.request_seconds = Histogram(
            "ea_gateway_request_seconds",
            "Time to answer an HTTP request, by route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.jobs_created = Counter(
            "ea_gateway_jobs_created",
            "Analyses created, by how the file arrived",
            ["upload"],
            registry=registry,
        )
        self.events_consumed = Counter(
            "ea_gateway_events_consumed",
            "Status events consumed, by type and whether they changed the job",
            ["type", "outcome"],
            registry=registry,
        )
        self.jobs_deleted = Counter(
            "ea_gateway_jobs_deleted", "Analyses deleted with their files", registry=registry
        )
        self.auth_checks = Counter(
            "ea_gateway_auth_checks",
            "Credential checks, by outcome (accepted, rejected, unavailable)",
            ["outcome"],
            registry=registry,
        )
        self.quota_rejections = Counter(
            "ea_gateway_quota_rejections",
            "Requests refused with 429, by limit (rate_limit, analyses, video_seconds, watches, scratch)",
            ["limit"],
            registry=registry,
        )
        self.scratch_refusals = Counter(
            "ea_gateway_scratch_refusals",
            "Files refused with 503 before a byte was read: the replica's scratch volume was spoken for",
            registry=registry,
        )
        self.jobs_swept = Counter(
            "ea_gateway_jobs_swept",
            "Stuck jobs the sweeper handled, by action",
            ["action"],
            registry=registry,
        )


class RequestMetricsMiddleware:
    """Times each request under its route template (not the raw path, which would explode the labels)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.request_seconds.labels(scope["method"], _route_template(scope), str(status)).observe(
                time.perf_counter() - started
            )


def _route_template(scope: Scope) -> str:
    """The matched route's full path template, e.g. /v1/analyses/{analysis_id}.

    A route inside included routers knows only the end of its path (its own router's prefix and path):
    the request path supplies the segments in front of it.
    """
    route_path = getattr(scope.get("route"), "path", None)
    if not isinstance(route_path, str):
        return UNMATCHED_ROUTE
    own_segments = route_path.rstrip("/").count("/")
    segments = str(scope["path"]).rstrip("/").split("/")
    return "/".join(segments[: max(len(segments) - own_segments, 1)]) + route_path
