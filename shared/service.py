"""Wiring every consumer service shares: the Kafka broker, the ASGI app with /healthz and /metrics, running.

A service's `app.py` builds its broker and app with these, registers its handlers, and `__main__` runs it.
"""

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import uvicorn
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, make_ping_asgi
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, make_asgi_app

from emotion_contract.events import AnalysisFailed, AnalysisProgress, DeadLettered, Event, Stage
from shared.claim_check import ClaimCheck
from shared.consumer_lag import ConsumerLagPoller
from shared.deliveries import Delivery, DeliveryLedger
from shared.metrics import InferenceObserver, StageMetrics
from shared.poison import Poisoned, poison_middleware
from shared.settings import BaseServiceSettings, KafkaSettings, PipelineSettings
from shared.stage_errors import classify
from shared.storage import ObjectStore

logger = logging.getLogger(__name__)
TRANSIENT_RETRY_PAUSE_S: Final = 2.0
DELIVERY_FAILED: Final = "delivery_failed"

# Offsets are committed only after a handler returned, i.e. after its output was published: a crash in
# between redelivers the event, and the handlers are idempotent.
AT_LEAST_ONCE = AckPolicy.NACK_ON_ERROR
Featurizer = TypeVar("Featurizer")


def make_broker(settings: KafkaSettings, registry: CollectorRegistry) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        max_request_size=settings.kafka_max_request_size,
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=settings.service_name)],
        logger=logging.getLogger(settings.service_name),
    )


def subscriber_options(settings: KafkaSettings, claims: ClaimCheck) -> dict[str, Any]:
    """One consumer group per service; offsets from the start for a new group so nothing is skipped; large
    events fetched by their claim tickets."""
    return {
        "decoder": claims.decode,
        "group_id": settings.service_name,
        "auto_offset_reset": "earliest",
        "ack_policy": AT_LEAST_ONCE,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": max(settings.kafka_session_timeout_ms // 4, 500),
        # A handler blocks polling while it runs: a stage on a long file must not outlast this, or the
        # broker takes the partition away, the commit fails and the file is processed again from the start.
        "max_poll_interval_ms": round(settings.max_poll_interval_s() * 1000),
        "max_partition_fetch_bytes": settings.kafka_max_request_size,
        "max_poll_records": 1,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }


async def publish(broker: KafkaBroker, event: Event) -> None:
    await broker.publish(event, topic=event.TOPIC.value, key=event.key)


def make_app(
    broker: KafkaBroker,
    registry: CollectorRegistry,
    lifespan: Callable[..., Any] | None = None,
) -> AsgiFastStream:
    return AsgiFastStream(
        broker,
        lifespan=lifespan,
        asgi_routes=[
            ("/healthz", make_ping_asgi(broker, timeout=5.0)),
            ("/metrics", make_asgi_app(registry)),
        ],
        asyncapi_path="/asyncapi",
    )


def run(app: AsgiFastStream, settings: BaseServiceSettings, default_port: int) -> None:
    settings.require_declared_environment()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(app, host=settings.http_host, port=settings.metrics_port or default_port, log_level="warning")


Handler = Callable[..., Awaitable[Event | None]]


class ServiceKit:
    """What a consumer service is wired from: its settings, broker, metrics registry and stage runner.

    Its app measures the lag of the service's consumer group on the topics its handlers consume.
    """

    def __init__(self, settings: PipelineSettings, stage: Stage) -> None:
        self.settings = settings
        self.stage = stage
        self.registry = CollectorRegistry()
        self.metrics = StageMetrics(self.registry)
        self.broker = make_broker(settings, self.registry)
        self.broker.add_middleware(poison_middleware(self._dead_letter_unreadable))
        store = ObjectStore.from_settings(settings)
        self.claims = ClaimCheck(store, settings.uploads_bucket, settings.claim_check_bytes)
        self.deliveries = DeliveryLedger(
            store,
            settings.uploads_bucket,
            settings.service_name,
            settings.max_deliveries,
        )
        self.consumer_lag = ConsumerLagPoller(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group=settings.service_name,
            topics=(),
            registry=self.registry,
            interval_s=settings.consumer_lag_interval_s,
        )

    def consumer(
        self, *topics: str, after_publish: Callable[..., Awaitable[None]] | None = None
    ) -> Callable[[Handler], Handler]:
        """Register a handler for `topics` in the service's consumer group (see `subscriber_options`).

        The handler returns its next event, or None; the kit publishes it (to its own topic, keyed by its
        job, through the claim check), before the offset is committed, then awaits `after_publish` with
        the handler's own arguments (what may only go once the event is out). The handler's other
        parameters are faststream's: `Annotated[T, Context("name")]` for what the lifespan `provide`d."""

        def register(handler: Handler) -> Handler:
            @functools.wraps(handler)
            async def publishing(*args: Any, **kwargs: Any) -> None:
                output = await handler(*args, **kwargs)
                if output is not None:
                    await self.claims.publish(self.broker, output)
                    if after_publish is not None:
                        await after_publish(*args, **kwargs)

            # faststream reads the handler's parameters (the event's type, the context it asks for); what
            # the wrapper returns is nothing for it to publish or cast.
            publishing.__signature__ = inspect.signature(handler).replace(  # type: ignore[attr-defined]
                return_annotation=None
            )

            self.broker.subscriber(*topics, **subscriber_options(self.settings, self.claims))(publishing)
            self.consumer_lag.add_topics(*topics)
            return handler

        return register

    def encoder_resources(
        self, store: ObjectStore, featurizer: Featurizer, bundle_version: str
    ) -> "EncoderResources[Featurizer]":
        """What an encoder's handler needs, reporting its model's time to this kit's metrics."""
        return EncoderResources(
            store=store,
            featurizer=featurizer,
            bundle_version=bundle_version,
            observe_inference=self.metrics.observe_inference,
        )

    @contextlib.asynccontextmanager
    async def provide(self, name: str, value: object) -> AsyncIterator[None]:
        """Put `value` in the broker's context as `name` while the block runs (a lifespan's resources):
        handlers take it as `Annotated[T, Context(name)]`."""
        self.broker.context.set_global(name, value)
        try:
            yield
        finally:
            self.broker.context.reset_global(name)

    def app(self, lifespan: Callable[..., Any]) -> AsgiFastStream:
        app = make_app(self.broker, self.registry, lifespan=lifespan)
        app.after_startup(self.consumer_lag.start)
        app.on_shutdown(self.consumer_lag.stop)
        return app

    async def run_stage(
        self, event: Event, stage: Stage, work: Callable[[], Awaitable[Event]], *, announce: bool = True
    ) -> Event:
        """Announce the stage (unless told not to), do the work, and give back its output or the job's
        failure: the event the handler returns.

        A transient failure is re-raised after a pause, so the event is redelivered rather than lost, up to
        `max_deliveries` deliveries (a crash counts too): then it is dead-lettered and the job failed.
        """
        service = self.settings.service_name
        delivery = await asyncio.to_thread(self.deliveries.begin, event.event_id)
        if self.deliveries.exhausted(delivery):
            return await self._dead_letter(event, stage, delivery)
        if announce:
            await publish(
                self.broker,
                AnalysisProgress(job_id=event.job_id, attempt=event.attempt, stage=stage, service=service),
            )
        started = time.perf_counter()
        try:
            output = await work()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                logger.warning(
                    "job %s: transient failure in %s (delivery %d), will retry: %s",
                    event.job_id,
                    stage.value,
                    delivery.number,
                    exc,
                )
                self._observe(stage, "retried", started)
                await asyncio.to_thread(self.deliveries.failed, event.event_id, delivery, repr(exc))
                await asyncio.sleep(TRANSIENT_RETRY_PAUSE_S)
                raise
            if failure.code == "internal_error":
                logger.exception("job %s: %s failed", event.job_id, stage.value)
            output = AnalysisFailed(
                job_id=event.job_id,
                attempt=event.attempt,
                stage=stage,
                code=failure.code,
                reason=failure.reason,
                measured_s=failure.measured_s,
            )
        self._observe(stage, "failed" if isinstance(output, AnalysisFailed) else "ok", started)
        await asyncio.to_thread(self.deliveries.done, event.event_id)
        return output

    async def report_measured(self, event: Event, stage: Stage, measured_s: float) -> None:
        """Tell the gateway how long the job's file is, measured, as soon as the stage knows it: the charge
        follows the work from then on, whatever the header claimed and however the work ends."""
        progress = AnalysisProgress(
            job_id=event.job_id,
            attempt=event.attempt,
            stage=stage,
            service=self.settings.service_name,
            measured_s=round(measured_s, 3),
        )
        await publish(self.broker, progress)

    async def _dead_letter_unreadable(self, poisoned: Poisoned) -> None:
        """A message of this service's topics that can never be read: dead-lettered, and its job's attempt
        failed in this service's stage (the first attempt where the message names none)."""
        self._observe(self.stage, "dead_lettered", time.perf_counter())
        if poisoned.job_id is None:
            return  # nothing names a job to fail; the log and the metric tell the operators
        attempt = poisoned.attempt or 1
        dead = DeadLettered(
            job_id=poisoned.job_id,
            attempt=attempt,
            consumer=self.settings.service_name,
            topic=poisoned.topic,
            partition=poisoned.partition,
            offset=poisoned.offset,
            deliveries=1,
            code=poisoned.code,
            last_error=poisoned.reason,
            message_id=poisoned.message_id,
        )
        await self.claims.publish(self.broker, dead)
        failed = AnalysisFailed(
            job_id=poisoned.job_id,
            attempt=attempt,
            stage=self.stage,
            code=poisoned.code,
            reason=f"a message of the {self.stage.value} stage could not be read; the operators have the "
            "details",
        )
        await self.claims.publish(self.broker, failed)

    async def _dead_letter(self, event: Event, stage: Stage, delivery: Delivery) -> AnalysisFailed:
        tried = delivery.number - 1
        why = delivery.last_error or "the worker stopped during each of them (a crash, or killed for memory)"
        logger.error("job %s: giving up on %s after %d deliveries: %s", event.job_id, stage.value, tried, why)
        dead = DeadLettered(
            job_id=event.job_id,
            attempt=event.attempt,
            consumer=self.settings.service_name,
            topic=event.TOPIC.value,
            deliveries=tried,
            code=DELIVERY_FAILED,
            last_error=why,
            message_id=event.event_id,
        )
        await self.claims.publish(self.broker, dead)
        failed = AnalysisFailed(
            job_id=event.job_id,
            attempt=event.attempt,
            stage=stage,
            code=DELIVERY_FAILED,
            # The errors themselves are in the dead letter and the logs, for the operators.
            reason=f"the {stage.value} stage could not finish after {tried} tries; "
            "the operators have the details",
        )
        self._observe(stage, "dead_lettered", time.perf_counter())
        await asyncio.to_thread(self.deliveries.done, event.event_id)
        return failed

    def _observe(self, stage: Stage, outcome: str, started: float) -> None:
        self.metrics.stage_seconds.labels(stage.value, outcome).observe(time.perf_counter() - started)


@dataclass
class EncoderResources(Generic[Featurizer]):
    """What an encoder service's handler needs, made in its lifespan: never at import."""

    store: ObjectStore
    featurizer: Featurizer
    bundle_version: str
    observe_inference: InferenceObserver
    """Where the stage reports its model's seconds per utterance (the service's `StageMetrics`)."""
