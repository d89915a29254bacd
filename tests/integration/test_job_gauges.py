"""`ea_jobs{status}` counts the jobs in PostgreSQL by status, every status shown."""

import asyncio
import contextlib

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.analyses import AnalysisStatus
from emotion_contract.events import Stage
from services.gateway.db.jobs import change_job, create_job
from services.gateway.job_gauges import JobGauges, count_jobs_by_status, refresh_job_gauges, run_job_gauges
from services.gateway.job_machine import Fail, Progress
from shared.db import Job, JobCreate

pytest_plugins = ["tests.integration.db_fixtures"]


async def _jobs(sessions: async_sessionmaker[AsyncSession], count: int) -> list[Job]:
    jobs = []
    async with sessions() as session:
        for index in range(count):
            job_in = JobCreate(bucket="uploads", object_key=f"k{index}", filename="f.mp4", size_bytes=1)
            job, _ = await create_job(session=session, owner="owner", job_in=job_in)
            jobs.append(job)
    return jobs


def _shown(registry: CollectorRegistry) -> dict[str, float | None]:
    return {s.value: registry.get_sample_value("ea_jobs", {"status": s.value}) for s in AnalysisStatus}


async def test_every_status_is_counted_and_absent_ones_are_zero(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    first, second, third, *_ = await _jobs(db_sessions, 6)
    async with db_sessions() as session:
        await change_job(session=session, job_id=first.id, change=Progress(stage=Stage.TRANSCRIBE, attempt=1))
        await change_job(
            session=session, job_id=second.id, change=Progress(stage=Stage.TRANSCRIBE, attempt=1)
        )
        await change_job(
            session=session, job_id=third.id, change=Fail(stage=Stage.UPLOAD, code="timeout", reason="stuck")
        )
    assert await count_jobs_by_status(db_sessions) == {
        AnalysisStatus.QUEUED: 3,
        AnalysisStatus.PROCESSING: 2,
        AnalysisStatus.FAILED: 1,
    }
    registry = CollectorRegistry()
    await refresh_job_gauges(db_sessions, JobGauges(registry))
    assert _shown(registry) == {"queued": 3, "processing": 2, "completed": 0, "failed": 1}


async def test_an_empty_table_shows_zeros(db_sessions: async_sessionmaker[AsyncSession]) -> None:
    registry = CollectorRegistry()
    await refresh_job_gauges(db_sessions, JobGauges(registry))
    assert _shown(registry) == {"queued": 0, "processing": 0, "completed": 0, "failed": 0}


async def test_the_background_task_follows_the_table(db_sessions: async_sessionmaker[AsyncSession]) -> None:
    registry = CollectorRegistry()
    task = asyncio.create_task(run_job_gauges(db_sessions, JobGauges(registry), interval_s=0.05))
    try:
        (job,) = await _jobs(db_sessions, 1)
        for _ in range(200):
            if _shown(registry)["queued"] == 1:
                break
            await asyncio.sleep(0.05)
        assert _shown(registry)["queued"] == 1
        async with db_sessions() as session:
            await change_job(
                session=session,
                job_id=job.id,
                change=Fail(stage=Stage.UPLOAD, code="timeout", reason="stuck"),
            )
        for _ in range(200):
            if _shown(registry)["failed"] == 1:
                break
            await asyncio.sleep(0.05)
        assert _shown(registry) == {"queued": 0, "processing": 0, "completed": 0, "failed": 1}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
