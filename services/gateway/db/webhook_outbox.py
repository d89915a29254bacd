"""Writing webhook events into the outbox, inside the transaction of the job change they report.

The dispatcher (in the gateway) sends what is written here; writing it with the change itself is what
lets a crash at any point lose no delivery and send none twice for one change.
"""

import uuid
from typing import Any, Final

from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.events import Stage
from emotion_contract.webhooks import WebhookEventType

WEBHOOK_CHANNEL: Final = "webhook_deliveries"
"""NOTIFY channel the dispatcher LISTENs on; the payload is empty, it only wakes it."""

_EVENT_NAMESPACE: Final = uuid.UUID("5a0f3b1e-8c57-4f0e-9d6e-3f1b2d7c9a44")

# One statement: the event (only when some subscription wants it) and a pending delivery per subscription:
# the owner's own, and the job's callback.
_RECORD: Final = text(
    """
    WITH job_owner AS (
        SELECT owner FROM job WHERE id = :job_id
    ), subscribers AS (
        SELECT s.id FROM webhook_subscription s, job_owner
        WHERE s.owner = job_owner.owner AND s.events ? :type AND (s.job_id IS NULL OR s.job_id = :job_id)
    ), event AS (
        INSERT INTO webhook_event (id, owner, type, job_id, stage, attempt, created_at)
        SELECT :event_id, job_owner.owner, :type, :job_id, :stage, :attempt, now() FROM job_owner
        WHERE EXISTS (SELECT 1 FROM subscribers)
        ON CONFLICT (id) DO NOTHING
        RETURNING id
    )
    INSERT INTO webhook_delivery
        (id, event_id, subscription_id, status, attempts, next_attempt_at, created_at, updated_at)
    SELECT gen_random_uuid(), event.id, subscribers.id, 'pending', 0, now(), now(), now()
    FROM event, subscribers
    ON CONFLICT (event_id, subscription_id) DO NOTHING
    RETURNING id
    """
)


def job_event_id(job_id: uuid.UUID, type_: WebhookEventType, attempt: int, stage: Stage | None) -> uuid.UUID:
    """The same change always gets the same id, so receivers can deduplicate by `webhook-id`."""
    stage_part = stage.value if stage is not None else "-"
    return uuid.uuid5(_EVENT_NAMESPACE, f"{job_id}/{type_.value}/{attempt}/{stage_part}")


async def record_job_event(
    session: AsyncSession, *, job_id: uuid.UUID, type_: WebhookEventType, attempt: int, stage: Stage | None
) -> int:
    """Queue the event for every subscription of the job's owner that wants it; the number queued.

    Runs in the caller's transaction and does not commit.
    """
    params: dict[str, Any] = {
        "event_id": job_event_id(job_id, type_, attempt, stage),
        "job_id": job_id,
        "type": type_.value,
        "stage": stage.value if stage is not None else None,
        "attempt": attempt,
    }
    queued = len((await session.exec(_RECORD, params=params)).all())  # type: ignore[call-overload]
    if queued:
        await session.exec(text(f"NOTIFY {WEBHOOK_CHANNEL}"))  # type: ignore[call-overload]
    return queued
