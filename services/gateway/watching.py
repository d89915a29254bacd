"""Following one job until it ends: the long poll and the server-sent events both read it from here."""

import time
import uuid
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Job

from .db.jobs import get_job
from .job_updates import JobUpdates


async def job_changes(
    *,
    updates: JobUpdates,
    sessions: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    owner: str,
    deadline: float | None = None,
) -> AsyncIterator[Job]:
    """The job now, then again each time its status, stage or attempt changes, until it is terminal.

    Stops early when the job disappears or at `deadline` (a `time.monotonic()` value).
    """
    last_seen: tuple[object, ...] | None = None
    with updates.subscribe(job_id) as subscription:
        while True:
            async with sessions() as session:
                job = await get_job(session=session, job_id=job_id, owner=owner)
            if job is None:
                return
            seen = (job.status, job.stage, job.attempt)
            if seen != last_seen:
                last_seen = seen
                yield job
            if job.status.is_terminal:
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            await subscription.wait(remaining)
