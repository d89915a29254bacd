"""Applying the pipeline's progress, completion and failure events to the job.

Each event is one change of the job aggregate (`db.jobs.change_job`), committed with its webhook events and
its notification; what no longer applies (a finished job, another attempt's progress or failure) is
ignored, which makes a redelivered event harmless.
"""

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.errors import FailureCode
from emotion_contract.events import AnalysisCompleted, AnalysisFailed, AnalysisProgress

from .db.jobs import change_job
from .job_machine import Change, Complete, Fail, Progress

StatusEvent = AnalysisProgress | AnalysisCompleted | AnalysisFailed


def change_of(event: StatusEvent) -> Change:
    match event:
        case AnalysisProgress():
            return Progress(stage=event.stage, attempt=event.attempt, measured_s=event.measured_s)
        case AnalysisCompleted():
            return Complete(result=event.result)
        case AnalysisFailed():
            return Fail(
                stage=event.stage,
                code=event.code,
                reason=event.reason,
                attempt=event.attempt,
                # A stage that gave up after its deliveries ran out worked on the file (each crashed in it).
                refund=event.code != FailureCode.DELIVERY_FAILED,
                measured_s=event.measured_s,
            )


async def apply_status_event(event: StatusEvent, sessions: async_sessionmaker[AsyncSession]) -> bool:
    """Move the job as the event says; True when it changed (and waiters were notified)."""
    async with sessions() as session:
        return await change_job(session=session, job_id=event.job_id, change=change_of(event)) is not None
