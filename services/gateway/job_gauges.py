"""The gauge `ea_jobs{status}`: jobs by state, counted in PostgreSQL.

A background task refreshes it, so a scrape reads the last count and never waits on the database. Every
replica exports the same numbers (aggregate with max, not sum).
"""

import asyncio
import logging
from typing import Final

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.analyses import AnalysisStatus
from shared.db import Job

DEFAULT_INTERVAL_S: Final = 15.0

logger = logging.getLogger(__name__)


class JobGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs = Gauge("ea_jobs", "Jobs by status, counted in the database", ["status"], registry=registry)

    def show(self, counts: dict[AnalysisStatus, int]) -> None:
        for status in AnalysisStatus:
            self.jobs.labels(status.value).set(counts.get(status, 0))


async def count_jobs_by_status(sessions: async_sessionmaker[AsyncSession]) -> dict[AnalysisStatus, int]:
    """Jobs per status; a status without jobs is absent."""
    statement = select(col(Job.status), func.count()).group_by(col(Job.status))
    async with sessions() as session:
        rows = (await session.execute(statement)).all()
    return {AnalysisStatus(status): int(count) for status, count in rows}


async def refresh_job_gauges(sessions: async_sessionmaker[AsyncSession], gauges: JobGauges) -> None:
    gauges.show(await count_jobs_by_status(sessions))


async def run_job_gauges(
    sessions: async_sessionmaker[AsyncSession], gauges: JobGauges, interval_s: float = DEFAULT_INTERVAL_S
) -> None:
    """Refresh the gauges now and every `interval_s` until cancelled; a failed count keeps the last one."""
    while True:
        try:
            await refresh_job_gauges(sessions, gauges)
        except Exception:
            logger.exception("could not count the jobs by status")
        await asyncio.sleep(interval_s)
