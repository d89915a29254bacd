"""The stuck-job sweeper: a job that has not moved for a while is re-driven, or failed once out of attempts.

Every replica runs the loop; a PostgreSQL advisory lock lets only one of them sweep at a time. A re-drive
is a change of the job like any other: its `analysis.requested` is written to the Kafka outbox in the
same transaction, and the relay publishes it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.errors import FailureCode
from emotion_contract.events import Stage
from shared.db import Job

from .db.jobs import change_job, find_stuck_jobs, lock_job, purge_parts_of_finished_jobs
from .db.upload_grants import forget_old_grants
from .job_machine import Fail, Redrive

# pg_advisory_lock key: an arbitrary constant that only the sweeper uses ('EA-SWEEP' as bytes).
SWEEPER_LOCK_KEY: Final = 0x45412D5357454550

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    redriven: list[Job] = field(default_factory=list)
    failed: list[Job] = field(default_factory=list)
    parts_purged: int = 0
    """Parts fusion kept of jobs that had already finished."""


def timeout_reason(job: Job, timeout_s: float) -> str:
    where = (
        f"in stage {job.stage.value}" if job.stage is not None else "in the queue (no service picked it up)"
    )
    return f"no progress for {timeout_s:g} s {where}; gave up after {job.attempt} attempt(s)"


async def sweep_once(
    *,
    sessions: async_sessionmaker[AsyncSession],
    stuck_after_s: float,
    max_attempts: int,
    per_media_second: float = 0.0,
    forget_grants_after: timedelta | None = None,
) -> SweepReport:
    """Re-drive or fail every job stuck longer than `stuck_after_s` (plus `per_media_second` for each
    second of its file), and remove what fusion kept of finished jobs."""
    report = SweepReport()
    async with sessions() as session:
        report.parts_purged = await purge_parts_of_finished_jobs(session=session)
    if forget_grants_after is not None:
        async with sessions() as session:
            await forget_old_grants(session=session, older_than=forget_grants_after)
    async with sessions() as session:
        stuck = await find_stuck_jobs(
            session=session, older_than=timedelta(seconds=stuck_after_s), per_media_second=per_media_second
        )
    for job in stuck:
        if job.attempt < max_attempts:
            if await _redrive(sessions, job):
                report.redriven.append(job)
        elif await _fail(sessions, job, stuck_after_s):
            report.failed.append(job)
    return report


async def _redrive(sessions: async_sessionmaker[AsyncSession], job: Job) -> bool:
    async with sessions() as session:
        redriven = await change_job(session=session, job_id=job.id, change=Redrive(seen_attempt=job.attempt))
    if redriven is None:
        return False
    logger.warning(
        "job %s stuck %s; re-driving as attempt %d", job.id, job.stage or "queued", redriven.attempt
    )
    return True


async def _fail(sessions: async_sessionmaker[AsyncSession], job: Job, stuck_after_s: float) -> bool:
    async with sessions() as session:
        current = await lock_job(session, job.id)
        if current is None or _moved_since(current, job):
            await session.rollback()
            return False
        timed_out = Fail(
            stage=job.stage or Stage.UPLOAD,
            code=FailureCode.TIMEOUT,
            reason=timeout_reason(job, stuck_after_s),
            # A job that timed out in a stage had workers spend on it (and may have made them spend on
            # purpose): its units stay charged. One that no worker ever picked up gets them back.
            refund=current.stage is None,
        )
        failed = await change_job(session=session, job_id=job.id, change=timed_out) is not None
    if failed:
        logger.warning("job %s failed: stuck %s", job.id, job.stage or "queued")
    return failed


def _moved_since(current: Job, seen: Job) -> bool:
    return (current.status, current.stage, current.attempt, current.stage_started_at) != (
        seen.status,
        seen.stage,
        seen.attempt,
        seen.stage_started_at,
    ) or current.status.is_terminal


async def sweep_if_leader(
    engine: AsyncEngine, sweep: Callable[[], Awaitable[SweepReport]]
) -> SweepReport | None:
    """Run `sweep` while holding the sweeper's advisory lock; None when another replica holds it."""
    async with engine.connect() as connection:
        locked = await connection.scalar(select(func.pg_try_advisory_lock(SWEEPER_LOCK_KEY)))
        await connection.commit()
        if not locked:
            return None
        try:
            return await sweep()
        finally:
            await connection.execute(select(func.pg_advisory_unlock(SWEEPER_LOCK_KEY)))
            await connection.commit()


async def run_sweeper(
    engine: AsyncEngine, sweep: Callable[[], Awaitable[SweepReport]], interval_s: float
) -> None:
    """Sweep every `interval_s` until cancelled; a failed sweep is logged and the next one tries again."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await sweep_if_leader(engine, sweep)
        except Exception:
            logger.exception("stuck-job sweep failed")
