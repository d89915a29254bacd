"""Wiring every consumer service shares: the Kafka broker, the ASGI app with /healthz and /metrics, running.

A service's `app.py` builds its broker and app with these, registers its handlers, and `__main__` runs it.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import uvicorn
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, make_ping_asgi
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, make_asgi_app

from shared.events import AnalysisFailed, AnalysisProgress, Event, Stage
from shared.metrics import StageMetrics
from shared.settings import ServiceSettings
from shared.stage_errors import classify

logger = logging.getLogger(__name__)
TRANSIENT_RETRY_PAUSE_S: Final = 2.0

# Offsets are committed only after a handler returned, i.e. after its output was published: a crash in
# between redelivers the event, and the handlers are idempotent.
AT_LEAST_ONCE = AckPolicy.NACK_ON_ERROR


def make_broker(settings: ServiceSettings, registry: CollectorRegistry) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        max_request_size=settings.kafka_max_request_size,
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=settings.service_name)],
        logger=logging.getLogger(settings.service_name),
    )


def subscriber_options(settings: ServiceSettings) -> dict[str, Any]:
    """One consumer group per service; offsets from the start for a new group so nothing is skipped."""
    return {
        "group_id": settings.service_name,
        "auto_offset_reset": "earliest",
        "ack_policy": AT_LEAST_ONCE,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": max(settings.kafka_session_timeout_ms // 4, 500),
        "max_poll_interval_ms": 15 * 60 * 1000,
        "max_partition_fetch_bytes": settings.kafka_max_request_size,
        "max_poll_records": 1,
    }


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[None]])


def consumer(broker: KafkaBroker, settings: ServiceSettings, *topics: str) -> Callable[[Handler], Handler]:
    """Register a handler for `topics` in the service's consumer group (see `subscriber_options`)."""

    def register(handler: Handler) -> Handler:
        broker.subscriber(*topics, **subscriber_options(settings))(handler)
        return handler

    return register


async def publish(broker: KafkaBroker, event: Event) -> None:
    await broker.publish(event, topic=event.TOPIC.value, key=event.key)


def make_app(
    broker: KafkaBroker,
    registry: CollectorRegistry,
    lifespan: Callable[..., Any] | None = None,
    on_startup: tuple[Callable[[], Awaitable[None]], ...] = (),
) -> AsgiFastStream:
    return AsgiFastStream(
        broker,
        lifespan=lifespan,
        on_startup=on_startup,
        asgi_routes=[
            ("/healthz", make_ping_asgi(broker, timeout=5.0)),
            ("/metrics", make_asgi_app(registry)),
        ],
        asyncapi_path="/asyncapi",
    )


def run(app: AsgiFastStream, settings: ServiceSettings, default_port: int) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(app, host=settings.http_host, port=settings.metrics_port or default_port, log_level="warning")


async def run_stage(
    broker: KafkaBroker,
    event: Event,
    *,
    stage: Stage,
    service: str,
    metrics: StageMetrics,
    work: Callable[[], Awaitable[Event]],
) -> None:
    """Announce the stage, do the work, publish its output or the job's failure.

    A transient failure is re-raised after a pause, so the event is redelivered rather than lost.
    """
    await publish(
        broker, AnalysisProgress(job_id=event.job_id, attempt=event.attempt, stage=stage, service=service)
    )
    started = time.perf_counter()
    try:
        output = await work()
    except Exception as exc:
        failure = classify(exc)
        if failure is None:
            logger.warning("job %s: transient failure in %s, will retry: %s", event.job_id, stage.value, exc)
            metrics.stage_seconds.labels(stage.value, "retried").observe(time.perf_counter() - started)
            await asyncio.sleep(TRANSIENT_RETRY_PAUSE_S)
            raise
        if failure.code == "internal_error":
            logger.exception("job %s: %s failed", event.job_id, stage.value)
        output = AnalysisFailed(
            job_id=event.job_id, attempt=event.attempt, stage=stage, code=failure.code, reason=failure.reason
        )
    metrics.stage_seconds.labels(
        stage.value, "failed" if isinstance(output, AnalysisFailed) else "ok"
    ).observe(time.perf_counter() - started)
    await publish(broker, output)
