"""Applying the pipeline's progress, completion and failure events to the job table.

Each change is committed, then announced with NOTIFY so that waiting requests see it. The repository
functions ignore what no longer applies (a finished job, another attempt's progress), which makes a
redelivered event harmless.
"""

import uuid

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.events import AnalysisCompleted, AnalysisFailed, AnalysisProgress
from shared.db import Job

from .db.jobs import complete_job, fail_job, mark_stage
from .job_updates import notify_job_updated

StatusEvent = AnalysisProgress | AnalysisCompleted | AnalysisFailed


async def lock_job(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    """Read the job and hold its row until the session commits, so no re-drive slips in between."""
    statement = (
        select(Job).where(Job.id == job_id).with_for_update().execution_options(populate_existing=True)
    )
    return (await session.exec(statement)).one_or_none()


async def apply_status_event(event: StatusEvent, sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Move the job as the event says; True when it changed (and waiters were notified)."""
    async with sessions() as session:
        match event:
            case AnalysisProgress():
                changed = await mark_stage(
                    session=session, job_id=event.job_id, stage=event.stage, attempt=event.attempt
                )
            case AnalysisCompleted():
                changed = await complete_job(session=session, job_id=event.job_id, result=event.result)
            case AnalysisFailed():
                changed = await _fail_current_attempt(session, event)
        if changed:
            await notify_job_updated(session, event.job_id)
    return changed


async def _fail_current_attempt(session: AsyncSession, event: AnalysisFailed) -> bool:
    job = await lock_job(session, event.job_id)
    if job is None or event.attempt < job.attempt:
        # A failure of an attempt the sweeper already replaced says nothing about the new one.
        await session.rollback()
        return False
    return await fail_job(
        session=session, job_id=event.job_id, stage=event.stage, code=event.code, reason=event.reason
    )
