"""Sends pending webhook deliveries, records every attempt, and schedules retries.

Every gateway replica may run one: deliveries are claimed with a lease under SKIP LOCKED, so replicas
share the work without sending one delivery twice at once, and a replica that dies mid-send loses
nothing (its claims come back when their lease runs out). Delivery is at least once: a receiver
deduplicates by `webhook-id`, which is the event's id and the same on every attempt.
"""

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import httpx
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.webhooks import DeliveryStatus
from shared.db.models import utcnow

from ..db.webhook_deliveries import AttemptResult, ClaimedDelivery, claim_due_deliveries, record_attempt
from ..db.webhook_outbox import WEBHOOK_CHANNEL
from ..pg_listener import PgListener
from ..settings import Settings
from .answers import answer_head
from .backoff import RetryPolicy
from .payloads import event_body
from .signing import headers
from .targets import PinnedTransport, Resolver, TargetRefusedError, system_resolver

USER_AGENT: Final = "emotion-analyzer-webhooks/1"
DEFAULT_BATCH_SIZE: Final = 32
DEFAULT_CONCURRENCY: Final = 8

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    """The `outcome` label of `ea_webhook_deliveries_total`: what one attempt led to."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    """Out of attempts."""
    REFUSED = "refused"
    """The target resolved to an address webhooks may not reach."""


@dataclass(frozen=True)
class _Sent:
    status_code: int | None = None
    response_body: str | None = None
    error: str | None = None
    refused: bool = False


class WebhookDispatcher:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        registry: CollectorRegistry,
        listener: PgListener | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        rng: random.Random | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be positive")
        self._sessions = sessions
        self._settings = settings
        # Its own client, so that every delivery goes through the target checks: no environment proxies,
        # no redirects, connections only to addresses the policy has just checked.
        self._http = httpx.AsyncClient(
            transport=PinnedTransport(
                allow_private=settings.webhook_allow_private_targets,
                resolve=resolve,
                ports=settings.outbound_ports,
            ),
            trust_env=False,
            follow_redirects=False,
        )
        self._policy = RetryPolicy.from_settings(settings)
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._free = concurrency  # send slots not taken by a claimed delivery (run's own count)
        self._rng = rng
        self._wake = asyncio.Event()
        self._listener = listener
        if listener is not None:
            # Any notification, or a possibly missed one, starts the next round now.
            listener.listen(
                WEBHOOK_CHANNEL, on_notify=lambda _payload: self._wake.set(), on_lost=self._wake.set
            )
        self.deliveries = Counter(
            "ea_webhook_deliveries",
            "Webhook delivery attempts, by what they led to",
            ["outcome"],
            registry=registry,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self) -> None:
        """Send due deliveries until cancelled: whenever a send slot is free, claim as many as are free, so
        that a slow receiver holds only its own slot and never the next claim; woken by the listener's
        NOTIFY, a freed slot, or else every poll interval."""
        async with asyncio.TaskGroup() as group:
            while True:
                # Cleared before the claim, so a notification during it makes the next one start now.
                self._wake.clear()
                wanted = min(self._free, self._batch_size)
                claimed: list[ClaimedDelivery] = []
                if wanted:
                    try:
                        claimed = await self._claim(wanted)
                    except Exception:
                        logger.exception("webhook dispatch failed")
                for delivery in claimed:
                    self._free -= 1
                    group.create_task(self._deliver_then_free(delivery))
                if len(claimed) < wanted or not wanted:
                    await self._wait(self._settings.webhook_poll_interval_s)

    async def run_once(self) -> int:
        """Claim one batch of due deliveries and send them all; how many were claimed."""
        claimed = await self._claim(self._batch_size)
        async with asyncio.TaskGroup() as group:
            for delivery in claimed:
                group.create_task(self._deliver_logged(delivery))
        return len(claimed)

    async def _claim(self, limit: int) -> list[ClaimedDelivery]:
        async with self._sessions() as session:
            return await claim_due_deliveries(
                session=session,
                limit=limit,
                lease_s=self._settings.webhook_lease_s,
                per_owner=self._settings.webhook_sends_per_owner,
            )

    async def _deliver_then_free(self, claimed: ClaimedDelivery) -> None:
        try:
            await self._deliver_logged(claimed)
        finally:
            self._free += 1
            self._wake.set()

    async def _deliver_logged(self, claimed: ClaimedDelivery) -> None:
        try:
            async with self._slots:
                await self._deliver(claimed)
        except Exception:
            # Left claimed: its lease runs out and it is sent again.
            logger.exception("webhook delivery %s failed unexpectedly", claimed.delivery.id)

    async def _deliver(self, claimed: ClaimedDelivery) -> None:
        number = claimed.delivery.attempts + 1
        started_at = utcnow()
        started = time.perf_counter()
        sent = await self._send(claimed)
        duration_ms = (time.perf_counter() - started) * 1000
        outcome, status, retry_in_s = self._decide(number, sent)
        async with self._sessions() as session:
            await record_attempt(
                session=session,
                delivery_id=claimed.delivery.id,
                claimed_until=claimed.claimed_until,
                attempt=AttemptResult(
                    started_at=started_at,
                    duration_ms=duration_ms,
                    status_code=sent.status_code,
                    response_body=sent.response_body,
                    error=sent.error,
                ),
                status=status,
                retry_in_s=retry_in_s,
            )
        self.deliveries.labels(outcome.value).inc()
        if outcome is not Outcome.DELIVERED:
            logger.info(
                "webhook delivery %s attempt %d: %s (%s)",
                claimed.delivery.id,
                number,
                outcome.value,
                sent.error or f"HTTP {sent.status_code}",
            )

    def _decide(self, number: int, sent: _Sent) -> tuple[Outcome, DeliveryStatus, float | None]:
        if sent.refused:
            return Outcome.REFUSED, DeliveryStatus.FAILED, None
        if sent.status_code is not None and 200 <= sent.status_code < 300:
            return Outcome.DELIVERED, DeliveryStatus.DELIVERED, None
        retry_in_s = self._policy.retry_in_s(number, self._rng)
        if retry_in_s is None:
            return Outcome.FAILED, DeliveryStatus.FAILED, None
        return Outcome.RETRY, DeliveryStatus.PENDING, retry_in_s

    async def _send(self, claimed: ClaimedDelivery) -> _Sent:
        timeout_s = self._settings.webhook_timeout_s
        url = claimed.subscription.url
        try:
            # One deadline for everything: httpx's timeouts are per read, which a trickling receiver evades.
            # The client's transport checks the target's addresses as it connects (PinnedTransport).
            async with asyncio.timeout(timeout_s):
                body = event_body(claimed.event, claimed.job)
                signed = headers(claimed.subscription.secret, str(claimed.event.id), int(time.time()), body)
                async with self._http.stream(
                    "POST",
                    url,
                    content=body,
                    # identity: a compressed answer could inflate without bound as httpx decodes it.
                    headers={**signed, "user-agent": USER_AGENT, "accept-encoding": "identity"},
                    timeout=timeout_s,
                    follow_redirects=False,
                ) as response:
                    return _Sent(status_code=response.status_code, response_body=await answer_head(response))
        except TargetRefusedError as exc:
            return _Sent(error=str(exc), refused=True)
        except (TimeoutError, httpx.TimeoutException):
            return _Sent(error=f"timeout: no complete answer within {timeout_s:g} s")
        except Exception as exc:
            # Connection refused or reset, DNS failure, a payload that cannot be built: recorded, retried.
            return _Sent(error=_describe(exc))

    async def _wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()


def _describe(exc: Exception) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
