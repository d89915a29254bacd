"""What the lifespan builds once per process and the routes share: clients, pools, the broker."""

import asyncio
from dataclasses import dataclass

from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.events import Event
from shared.service import publish
from shared.storage import ObjectStore

from .credentials import AuthClient, CredentialCache
from .job_updates import JobUpdates
from .media_probe import MediaProber
from .metrics import GatewayMetrics
from .rate_limit import AccountAttempts, RateLimiter
from .settings import Settings
from .slots import AccountSlots


@dataclass
class Gateway:
    settings: Settings
    registry: CollectorRegistry
    metrics: GatewayMetrics
    broker: KafkaBroker
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    store: ObjectStore
    presigner: ObjectStore
    """Signs upload URLs for the address clients reach the object store at."""
    updates: JobUpdates
    auth: AuthClient
    credentials: CredentialCache
    rate_limiter: RateLimiter
    account_attempts: AccountAttempts
    watch_slots: AccountSlots
    scratch: AccountSlots
    """Bytes of the scratch volume held by files being received or fetched."""
    media_prober: MediaProber

    async def publish(self, event: Event) -> None:
        """Publish to Kafka, or raise TimeoutError when the broker does not take it in time."""
        async with asyncio.timeout(self.settings.publish_timeout_s):
            await publish(self.broker, event)
