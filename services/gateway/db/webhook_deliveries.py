"""The webhook delivery queue: what owners see of it and redeliver, what the dispatcher claims and records.

Owner-facing functions treat another owner's id exactly like a missing one. Each function commits its own
work. A delivery's lease (`locked_until`) is both its lock and its claim token: a dispatcher that dies
mid-send leaves a lease that runs out, after which any dispatcher claims the delivery again.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.webhooks import DeliveryStatus, WebhookEventType
from shared.db.models import Job
from shared.db.webhook_models import WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookSubscription

from .webhook_outbox import WEBHOOK_CHANNEL
from .webhook_subscriptions import FRESH, get_subscription

MAX_PAGE_SIZE: Final = 500
TEST_EVENT_MESSAGE: Final = "A test event: your endpoint is reachable and verifies our signature."

_NO_SYNC: Final = {"synchronize_session": False}
_NOTIFY: Final = text(f"NOTIFY {WEBHOOK_CHANNEL}")


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery as its owner sees it: the event it carries and every attempt, in order."""

    delivery: WebhookDelivery
    event: WebhookEvent
    attempts: list[WebhookAttempt]


@dataclass(frozen=True)
class ClaimedDelivery:
    """Everything a dispatcher needs to send one delivery, and its claim to pass to `record_attempt`."""

    delivery: WebhookDelivery
    event: WebhookEvent
    subscription: WebhookSubscription
    job: Job | None
    claimed_until: datetime
    """The lease this claim set; a copy, since a later read in the same session refreshes `delivery`."""


@dataclass(frozen=True)
class AttemptResult:
    """What one send observed."""

    started_at: datetime
    duration_ms: float
    status_code: int | None = None
    response_body: str | None = None
    error: str | None = None


async def list_deliveries(
    *, session: AsyncSession, owner: str, subscription_id: uuid.UUID, limit: int = 20, offset: int = 0
) -> list[DeliveryRecord] | None:
    """The subscription's deliveries, newest first, with their attempts; None when it is not the owner's."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must not be negative, got {offset}")
    if await get_subscription(session=session, owner=owner, subscription_id=subscription_id) is None:
        return None
    statement = (
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, col(WebhookEvent.id) == col(WebhookDelivery.event_id))
        .where(WebhookDelivery.subscription_id == subscription_id)
        .order_by(col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc())
        .limit(limit)
        .offset(offset)
        .execution_options(**FRESH)
    )
    rows = list((await session.exec(statement)).all())
    attempts = await _attempts_of(session, [delivery.id for delivery, _ in rows])
    return [DeliveryRecord(delivery, event, attempts.get(delivery.id, [])) for delivery, event in rows]


async def count_deliveries(*, session: AsyncSession, owner: str, subscription_id: uuid.UUID) -> int:
    statement = (
        select(func.count())
        .select_from(WebhookDelivery)
        .join(WebhookSubscription, col(WebhookSubscription.id) == col(WebhookDelivery.subscription_id))
        .where(WebhookDelivery.subscription_id == subscription_id, WebhookSubscription.owner == owner)
    )
    return (await session.exec(statement)).one()


async def get_delivery(
    *, session: AsyncSession, owner: str, delivery_id: uuid.UUID, subscription_id: uuid.UUID | None = None
) -> DeliveryRecord | None:
    """The delivery with its event and attempts; None unless the owner (and subscription) has it."""
    statement = (
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, col(WebhookEvent.id) == col(WebhookDelivery.event_id))
        .join(WebhookSubscription, col(WebhookSubscription.id) == col(WebhookDelivery.subscription_id))
        .where(WebhookDelivery.id == delivery_id, WebhookSubscription.owner == owner)
        .execution_options(**FRESH)
    )
    if subscription_id is not None:
        statement = statement.where(WebhookDelivery.subscription_id == subscription_id)
    row = (await session.exec(statement)).one_or_none()
    if row is None:
        return None
    delivery, event = row
    attempts = await _attempts_of(session, [delivery.id])
    return DeliveryRecord(delivery, event, attempts.get(delivery.id, []))


async def redeliver(
    *, session: AsyncSession, owner: str, delivery_id: uuid.UUID, subscription_id: uuid.UUID | None = None
) -> WebhookDelivery | None:
    """Send the delivery again now, with the same event (so the same `webhook-id`); None when not the owner's.

    Its attempts keep their numbers and new ones follow them; once past the subscription's attempt limit,
    each redelivery gets one attempt.
    """
    owned = select(WebhookSubscription.id).where(WebhookSubscription.owner == owner)
    if subscription_id is not None:
        owned = owned.where(WebhookSubscription.id == subscription_id)
    statement = (
        update(WebhookDelivery)
        .where(col(WebhookDelivery.id) == delivery_id, col(WebhookDelivery.subscription_id).in_(owned))
        .values(
            status=DeliveryStatus.PENDING,
            next_attempt_at=func.now(),
            # Releases a claim still in flight too: that send's late outcome no longer decides the status.
            locked_until=None,
            updated_at=func.now(),
        )
        .returning(col(WebhookDelivery.id))
        .execution_options(**_NO_SYNC)
    )
    if (await session.exec(statement)).scalar_one_or_none() is None:
        await session.commit()
        return None
    await session.exec(_NOTIFY)  # type: ignore[call-overload]
    await session.commit()
    return await _delivery(session, delivery_id)


async def count_pending(*, session: AsyncSession, owner: str) -> int:
    """The owner's deliveries still waiting to be sent (or being sent)."""
    statement = (
        select(func.count())
        .select_from(WebhookDelivery)
        .join(WebhookSubscription, col(WebhookSubscription.id) == col(WebhookDelivery.subscription_id))
        .where(WebhookSubscription.owner == owner, WebhookDelivery.status == DeliveryStatus.PENDING)
    )
    return int((await session.exec(statement)).one())


async def record_test_event(
    *, session: AsyncSession, owner: str, subscription_id: uuid.UUID
) -> WebhookDelivery | None:
    """Queue a `webhook.test` event for this one subscription; None when it is not the owner's."""
    subscription = await get_subscription(session=session, owner=owner, subscription_id=subscription_id)
    if subscription is None:
        await session.commit()
        return None
    event_id = uuid.uuid4()
    data: dict[str, Any] = {"message": TEST_EVENT_MESSAGE, "webhook_id": str(subscription.id)}
    # The database clock stamps the rows, the one claim_due_deliveries compares with.
    await session.exec(
        insert(WebhookEvent).values(
            id=event_id, owner=owner, type=WebhookEventType.WEBHOOK_TEST, data=data, created_at=func.now()
        )
    )
    delivery_id = uuid.uuid4()
    await session.exec(
        insert(WebhookDelivery).values(
            id=delivery_id,
            event_id=event_id,
            subscription_id=subscription.id,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=func.now(),
            created_at=func.now(),
            updated_at=func.now(),
        )
    )
    await session.exec(_NOTIFY)  # type: ignore[call-overload]
    await session.commit()
    return await _delivery(session, delivery_id)


# Due deliveries in turn by owner: each owner's earliest first, then every owner's second, and so on, and no
# owner past `per_owner` claimed at once (those still leased count): one owner's slow or dead receivers
# hold at most that many of the dispatchers' sends, whatever its backlog. The UPDATE re-checks each row's
# lease under its lock, so two dispatchers never claim one delivery (the later one skips it).
_CLAIM: Final = text(
    """
    WITH in_flight AS (
        SELECT s.owner, count(*) AS n
        FROM webhook_delivery d JOIN webhook_subscription s ON s.id = d.subscription_id
        WHERE d.status = 'pending' AND d.locked_until > now()
        GROUP BY s.owner
    ), due AS (
        SELECT d.id, s.owner, d.next_attempt_at,
               row_number() OVER (PARTITION BY s.owner ORDER BY d.next_attempt_at, d.id) AS nth
        FROM webhook_delivery d JOIN webhook_subscription s ON s.id = d.subscription_id
        WHERE d.status = 'pending' AND d.next_attempt_at <= now()
          AND (d.locked_until IS NULL OR d.locked_until <= now())
    ), picked AS (
        SELECT due.id FROM due LEFT JOIN in_flight f ON f.owner = due.owner
        WHERE due.nth + coalesce(f.n, 0) <= :per_owner
        ORDER BY due.nth, due.next_attempt_at
        LIMIT :limit
    )
    UPDATE webhook_delivery d
    SET locked_until = now() + make_interval(secs => :lease_s), updated_at = now()
    WHERE d.id IN (SELECT id FROM picked) AND d.status = 'pending'
      AND (d.locked_until IS NULL OR d.locked_until <= now())
    RETURNING d.id
    """
)


async def claim_due_deliveries(
    *, session: AsyncSession, limit: int, lease_s: float, per_owner: int | None = None
) -> list[ClaimedDelivery]:
    """Claim up to `limit` pending deliveries that are due and not leased, for `lease_s` seconds, in turn
    by owner and at most `per_owner` of one owner leased at once (no cap: None).

    A claim not settled by `record_attempt` within the lease is claimed again.
    """
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    if lease_s <= 0:
        raise ValueError(f"lease_s must be positive, got {lease_s}")
    if per_owner is not None and per_owner < 1:
        raise ValueError(f"per_owner must be positive, got {per_owner}")
    claim = _CLAIM.bindparams(limit=limit, lease_s=lease_s, per_owner=per_owner or 2**31 - 1)
    claimed_ids = list((await session.exec(claim)).scalars().all())  # type: ignore[call-overload]
    if not claimed_ids:
        await session.commit()
        return []
    statement = (
        select(WebhookDelivery, WebhookEvent, WebhookSubscription, Job)
        .join(WebhookEvent, col(WebhookEvent.id) == col(WebhookDelivery.event_id))
        .join(WebhookSubscription, col(WebhookSubscription.id) == col(WebhookDelivery.subscription_id))
        .outerjoin(Job, col(Job.id) == col(WebhookEvent.job_id))
        .where(col(WebhookDelivery.id).in_(claimed_ids))
        .order_by(col(WebhookDelivery.next_attempt_at))
        .execution_options(**FRESH)
    )
    rows = list((await session.exec(statement)).all())
    await session.commit()
    return [
        ClaimedDelivery(delivery, event, subscription, job, claimed_until=_leased_until(delivery))
        for delivery, event, subscription, job in rows
    ]


async def record_attempt(
    *,
    session: AsyncSession,
    delivery_id: uuid.UUID,
    claimed_until: datetime | None,
    attempt: AttemptResult,
    status: DeliveryStatus,
    retry_in_s: float | None = None,
) -> int | None:
    """Record one attempt and settle the delivery in one transaction; the attempt's number.

    `status` is what the attempt decided: DELIVERED, FAILED, or PENDING to retry in `retry_in_s`. A
    success always counts. A failure decides the status only while the claim `claimed_until` is still
    the delivery's lease: when the lease ran out and another dispatcher claimed it, or an owner asked for
    a redelivery meanwhile, the newer claim decides. None when the delivery is gone (its subscription
    was deleted).
    """
    if (status is DeliveryStatus.PENDING) != (retry_in_s is not None):
        raise ValueError("retry_in_s is required with PENDING and only with it")
    statement = (
        select(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .with_for_update()
        .execution_options(**FRESH)
    )
    delivery = (await session.exec(statement)).one_or_none()
    if delivery is None:
        await session.commit()
        return None
    number = delivery.attempts + 1
    succeeded = status is DeliveryStatus.DELIVERED
    session.add(
        WebhookAttempt(
            delivery_id=delivery_id,
            number=number,
            started_at=attempt.started_at,
            duration_ms=attempt.duration_ms,
            status_code=attempt.status_code,
            response_body=attempt.response_body,
            error=attempt.error,
            succeeded=succeeded,
        )
    )
    values: dict[str, Any] = {"attempts": number, "updated_at": func.now()}
    still_ours = delivery.status is DeliveryStatus.PENDING and delivery.locked_until == claimed_until
    if succeeded or still_ours:
        values.update(status=status, locked_until=None)
        if retry_in_s is not None:
            values["next_attempt_at"] = func.now() + timedelta(seconds=retry_in_s)
    await session.exec(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.id) == delivery_id)
        .values(**values)
        .execution_options(**_NO_SYNC)
    )
    await session.commit()
    return number


def _leased_until(delivery: WebhookDelivery) -> datetime:
    if delivery.locked_until is None:
        raise RuntimeError(f"delivery {delivery.id} was just claimed but has no lease")
    return delivery.locked_until


async def _delivery(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery:
    statement = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).execution_options(**FRESH)
    return (await session.exec(statement)).one()


async def _attempts_of(
    session: AsyncSession, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    if not delivery_ids:
        return {}
    statement = (
        select(WebhookAttempt)
        .where(col(WebhookAttempt.delivery_id).in_(delivery_ids))
        .order_by(col(WebhookAttempt.delivery_id), col(WebhookAttempt.number))
        .execution_options(**FRESH)
    )
    grouped: dict[uuid.UUID, list[WebhookAttempt]] = {}
    for attempt in (await session.exec(statement)).all():
        grouped.setdefault(attempt.delivery_id, []).append(attempt)
    return grouped
