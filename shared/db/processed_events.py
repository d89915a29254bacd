"""Which events each consumer has handled, so that a redelivered event is recognised and skipped."""

import uuid
from datetime import timedelta

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db.models import ProcessedEvent


async def record_event(*, session: AsyncSession, consumer: str, event_id: uuid.UUID) -> bool:
    """Remember that `consumer` handled the event; True the first time, False for a repeat."""
    if not consumer:
        raise ValueError("consumer must not be empty")
    inserted = await session.exec(
        insert(ProcessedEvent)
        .values(consumer=consumer, event_id=event_id)
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(col(ProcessedEvent.event_id))
    )
    is_new = inserted.scalar_one_or_none() is not None
    await session.commit()
    return is_new


async def prune_events(*, session: AsyncSession, older_than: timedelta) -> int:
    """Forget events handled longer ago than any redelivery can come; returns how many were removed."""
    if older_than <= timedelta(0):
        raise ValueError(f"older_than must be positive, got {older_than}")
    removed = await session.exec(
        delete(ProcessedEvent)
        .where(col(ProcessedEvent.processed_at) < func.now() - older_than)
        .returning(col(ProcessedEvent.event_id))
    )
    count = len(removed.all())
    await session.commit()
    return count
