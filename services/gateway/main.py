"""Builds the gateway's FastAPI app: routes under /v1, error handlers, the status consumer, the sweeper."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI
from minio import Minio
from prometheus_client import CollectorRegistry

from shared.body_limit import BodyLimitMiddleware
from shared.claim_check import ClaimCheck
from shared.consumer_lag import ConsumerLagPoller
from shared.db import session_factory
from shared.db.session import create_engine
from shared.metrics_server import metrics_server
from shared.service import make_broker
from shared.storage import ObjectStore

from .api.domain_errors import install_domain_error_handlers
from .api.routes import accounts, analyses, analysis_files, health, uploads, usage, webhooks
from .console.routes import install_console
from .consumer import STATUS_TOPICS, add_status_subscriber
from .credentials import AuthClient, CredentialCache
from .errors import install_error_handlers
from .intake import media_prober, unclaimed_after
from .job_gauges import JobGauges, run_job_gauges
from .job_updates import JobUpdates
from .kafka_relay import KafkaOutboxRelay
from .metrics import GatewayMetrics, RequestMetricsMiddleware
from .multipart_upload import MULTIPART_OVERHEAD_BYTES
from .pg_listener import PgListener
from .rate_limit import AccountAttempts, RateLimiter
from .settings import Settings
from .slots import AccountSlots
from .state import Gateway
from .sweeper import SweepReport, run_sweeper, sweep_once
from .upload_expiry import run_upload_expiry
from .webhooks.dispatcher import WebhookDispatcher

API_PREFIX = "/v1"


def public_store(settings: Settings) -> ObjectStore:
    """The store that signs upload URLs: for `public_s3_endpoint` when clients see S3 elsewhere."""
    if settings.public_s3_endpoint is None:
        return ObjectStore.from_settings(settings)
    url = settings.public_s3_endpoint
    endpoint = url.host if url.port is None else f"{url.host}:{url.port}"
    return ObjectStore(
        Minio(
            endpoint or "",
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=url.scheme == "https",
            region=settings.s3_region,
        )
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    job_gauges = JobGauges(registry)
    consumer_lag = ConsumerLagPoller(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group=settings.service_name,
        topics=[topic.value for topic in STATUS_TOPICS],
        registry=registry,
        interval_s=settings.consumer_lag_interval_s,
    )
    broker = make_broker(settings, registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
            stack.push_async_callback(engine.dispose)
            sessions = session_factory(engine)
            store = ObjectStore.from_settings(settings)
            await asyncio.to_thread(store.ensure_bucket, settings.uploads_bucket)
            listener = PgListener(settings.database_url)
            updates = JobUpdates(listener, fallback_s=settings.watch_fallback_s)
            dispatcher = (
                WebhookDispatcher(sessions=sessions, settings=settings, registry=registry, listener=listener)
                if settings.webhook_dispatcher
                else None
            )
            relay = (
                KafkaOutboxRelay(
                    sessions=sessions,
                    publish=lambda event: app.state.gateway.publish(event),
                    registry=registry,
                    listener=listener,
                    poll_interval_s=settings.kafka_outbox_poll_interval_s,
                )
                if settings.kafka_outbox_relay
                else None
            )
            await listener.start()
            stack.push_async_callback(listener.stop)
            token = settings.internal_token
            auth = AuthClient(
                str(settings.auth_url).rstrip("/"),
                internal_token=token.get_secret_value() if token else None,
                timeout_s=settings.auth_timeout_s,
            )
            stack.push_async_callback(auth.aclose)
            rate_limiter = RateLimiter(sessions)
            gateway = Gateway(
                settings=settings,
                registry=registry,
                metrics=metrics,
                broker=broker,
                engine=engine,
                sessions=sessions,
                store=store,
                presigner=public_store(settings),
                updates=updates,
                auth=auth,
                credentials=CredentialCache(
                    auth.introspect,
                    ttl_s=settings.auth_cache_ttl_s,
                    negative_ttl_s=settings.auth_negative_cache_ttl_s,
                ),
                rate_limiter=rate_limiter,
                account_attempts=AccountAttempts(
                    rate_limiter,
                    per_address=settings.account_rate_limit_per_minute,
                    per_email=settings.account_email_rate_limit_per_minute,
                ),
                watch_slots=AccountSlots(settings.max_watches_per_account),
                scratch=AccountSlots(settings.scratch_bytes_per_account, total=settings.scratch_bytes),
                media_prober=media_prober(settings),
            )
            app.state.gateway = gateway
            stack.push_async_callback(broker.stop)
            await broker.start()

            async def sweep() -> SweepReport:
                report = await sweep_once(
                    sessions=gateway.sessions,
                    stuck_after_s=settings.stuck_job_timeout_s,
                    max_attempts=settings.max_attempts,
                    per_media_second=settings.stuck_job_seconds_per_media_second,
                    forget_grants_after=unclaimed_after(settings),
                )
                metrics.jobs_swept.labels("redriven").inc(len(report.redriven))
                metrics.jobs_swept.labels("failed").inc(len(report.failed))
                return report

            if relay is not None:
                stack.push_async_callback(_cancel, asyncio.create_task(relay.run()))
            sweeper = asyncio.create_task(run_sweeper(engine, sweep, settings.sweep_interval_s))
            stack.push_async_callback(_cancel, sweeper)
            gauges = asyncio.create_task(run_job_gauges(gateway.sessions, job_gauges))
            stack.push_async_callback(_cancel, gauges)
            stack.push_async_callback(_cancel, asyncio.create_task(gateway.rate_limiter.run_pruning()))
            unclaimed = unclaimed_after(settings)
            expiry = run_upload_expiry(
                store, settings.uploads_bucket, unclaimed, settings.upload_expiry_interval_s
            )
            stack.push_async_callback(_cancel, asyncio.create_task(expiry))
            await consumer_lag.start()
            stack.push_async_callback(consumer_lag.stop)
            if dispatcher is not None:
                stack.push_async_callback(dispatcher.aclose)
                stack.push_async_callback(_cancel, asyncio.create_task(dispatcher.run()))
            await stack.enter_async_context(
                metrics_server(registry, settings.http_host, settings.metrics_port)
            )
            yield

    app = FastAPI(
        title="Multimodal Emotion Analyzer",
        summary="Per-utterance emotion and sentiment of videos, from face, voice and words.",
        version="1",
        lifespan=lifespan,
    )
    claims = ClaimCheck(
        ObjectStore.from_settings(settings), settings.uploads_bucket, settings.claim_check_bytes
    )
    add_status_subscriber(broker, settings, claims, lambda: app.state.gateway)
    install_error_handlers(app)
    install_domain_error_handlers(app)
    # Every body is small except the file of a multipart analysis (its parts' headers on top).
    upload_body = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    app.add_middleware(BodyLimitMiddleware, routes={("POST", f"{API_PREFIX}/analyses"): upload_body})
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(accounts.router)
    api.include_router(uploads.router)
    api.include_router(analyses.router)
    api.include_router(analysis_files.router)
    api.include_router(usage.router)
    api.include_router(webhooks.router)
    app.include_router(api)
    app.include_router(health.router)
    install_console(app, settings)
    return app


async def _cancel(task: "asyncio.Task[None]") -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
