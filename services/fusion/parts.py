"""Fusion's join state: each modality's event for a job attempt, until all three have arrived.

Parts are keyed by attempt, so the parts of an abandoned attempt never mix with a re-drive's.
"""

import uuid
from typing import Any, Final

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.labels import Modality
from shared.db.models import FusionPart

FOREIGN_KEY_VIOLATION: Final = "23503"


async def put_part(
    *, session: AsyncSession, job_id: uuid.UUID, attempt: int, part: Modality, payload: dict[str, Any]
) -> bool:
    """Store one modality's event; a redelivered one leaves the first stored payload in place. False when
    the job is gone (its analysis was deleted): the part is not kept."""
    if attempt < 1:
        raise ValueError(f"attempt must be at least 1, got {attempt}")
    try:
        await session.exec(
            insert(FusionPart)
            .values(job_id=job_id, attempt=attempt, part=Modality(part), payload=payload)
            .on_conflict_do_nothing(index_elements=["job_id", "attempt", "part"])
        )
        await session.commit()
    except IntegrityError as error:
        await session.rollback()
        if getattr(error.orig, "sqlstate", None) != FOREIGN_KEY_VIOLATION:
            raise
        return False
    return True


async def get_parts(
    *, session: AsyncSession, job_id: uuid.UUID, attempt: int
) -> dict[Modality, dict[str, Any]]:
    """The payloads stored so far for this attempt, by modality; all three present means fusion can run."""
    statement = select(FusionPart).where(FusionPart.job_id == job_id, FusionPart.attempt == attempt)
    rows = (await session.exec(statement.execution_options(populate_existing=True))).all()
    return {row.part: row.payload for row in rows}


async def delete_parts(*, session: AsyncSession, job_id: uuid.UUID) -> int:
    """Forget every attempt's parts of the job; returns how many were removed."""
    removed = await session.exec(
        delete(FusionPart).where(col(FusionPart.job_id) == job_id).returning(col(FusionPart.part))
    )
    count = len(removed.all())
    await session.commit()
    return count
