"""Webhook subscriptions: what an owner subscribes, where, and the secret its deliveries are signed with.

Owner-facing functions treat another owner's id exactly like a missing one. Each function commits its own
work. Deleting a subscription deletes its deliveries (`webhook_deliveries` is the queue).
"""

import base64
import secrets
import uuid
from collections.abc import Sequence
from typing import Final

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.webhooks import WebhookEventType
from shared.db.webhook_models import WebhookSubscription

SECRET_PREFIX: Final = "whsec_"
SECRET_BYTES: Final = 32
SUBSCRIBABLE_EVENTS: Final = frozenset(WebhookEventType) - {WebhookEventType.WEBHOOK_TEST}
# Rows read again inside one session are refreshed, not served from the identity map.
FRESH: Final = {"populate_existing": True}


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: `whsec_` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


class TooManyWebhooksError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"you have {limit} webhooks already; delete one first")
        self.limit = limit


async def create_subscription(
    *,
    session: AsyncSession,
    owner: str,
    url: str,
    events: Sequence[WebhookEventType],
    description: str | None = None,
    limit: int | None = None,
) -> WebhookSubscription:
    """A new subscription with a fresh secret. The URL is stored as given: the caller validates it.
    TooManyWebhooksError when the owner has `limit` subscriptions (callbacks aside) already."""
    if not owner:
        raise ValueError("owner must not be empty")
    chosen = sorted({WebhookEventType(event) for event in events})
    if not chosen:
        raise ValueError("a subscription needs at least one event type")
    if not set(chosen) <= SUBSCRIBABLE_EVENTS:
        raise ValueError(f"{WebhookEventType.WEBHOOK_TEST.value} is sent only by the test endpoint")
    if limit is not None:
        # The owner's subscriptions are counted under a lock held until this transaction ends, so that
        # concurrent requests cannot each see room for one more and pass the cap together. The gateway
        # has no row per owner to lock: an advisory lock keyed by the owner stands for it.
        key = func.hashtextextended("webhook-subscriptions:" + owner, 0)
        await session.exec(select(func.pg_advisory_xact_lock(key)))
        if await count_subscriptions(session=session, owner=owner) >= limit:
            await session.rollback()
            raise TooManyWebhooksError(limit)
    subscription = WebhookSubscription(
        owner=owner,
        url=url,
        events=[event.value for event in chosen],
        secret=new_secret(),
        description=description,
    )
    session.add(subscription)
    await session.commit()
    return subscription


CALLBACK_EVENTS: Final = (WebhookEventType.ANALYSIS_COMPLETED, WebhookEventType.ANALYSIS_FAILED)


def new_callback(*, owner: str, job_id: uuid.UUID, url: str) -> WebhookSubscription:
    """An analysis' own subscription to its completion or failure, for the caller to add to the
    transaction that creates the job. The URL is stored as given: the caller validates it."""
    return WebhookSubscription(
        owner=owner,
        url=url,
        events=[event.value for event in CALLBACK_EVENTS],
        secret=new_secret(),
        description=f"callback of analysis {job_id}",
        job_id=job_id,
    )


async def find_callback(*, session: AsyncSession, job_id: uuid.UUID) -> WebhookSubscription | None:
    statement = (
        select(WebhookSubscription).where(WebhookSubscription.job_id == job_id).execution_options(**FRESH)
    )
    return (await session.exec(statement)).first()


async def list_subscriptions(*, session: AsyncSession, owner: str) -> list[WebhookSubscription]:
    """The owner's subscriptions, oldest first; an analysis' callback is the analysis', not listed here."""
    statement = (
        select(WebhookSubscription)
        .where(WebhookSubscription.owner == owner, col(WebhookSubscription.job_id).is_(None))
        .order_by(col(WebhookSubscription.created_at), col(WebhookSubscription.id))
        .execution_options(**FRESH)
    )
    return list((await session.exec(statement)).all())


async def count_subscriptions(*, session: AsyncSession, owner: str) -> int:
    statement = (
        select(func.count())
        .select_from(WebhookSubscription)
        .where(WebhookSubscription.owner == owner, col(WebhookSubscription.job_id).is_(None))
    )
    return (await session.exec(statement)).one()


async def get_subscription(
    *, session: AsyncSession, owner: str, subscription_id: uuid.UUID
) -> WebhookSubscription | None:
    statement = select(WebhookSubscription).where(
        WebhookSubscription.id == subscription_id, WebhookSubscription.owner == owner
    )
    return (await session.exec(statement.execution_options(**FRESH))).one_or_none()


async def delete_subscription(*, session: AsyncSession, owner: str, subscription_id: uuid.UUID) -> bool:
    """Delete the subscription with its pending and past deliveries; False when it is not the owner's."""
    subscription = await get_subscription(session=session, owner=owner, subscription_id=subscription_id)
    if subscription is None:
        await session.commit()
        return False
    await session.delete(subscription)
    await session.commit()
    return True
