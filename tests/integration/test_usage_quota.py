"""Monthly quotas in PostgreSQL: charged with the job, exact under concurrency, given back on failure."""

import asyncio
import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.analyses import AnalysisStatus
from emotion_contract.events import Stage
from emotion_contract.results import AnalysisResult
from services.gateway.db.jobs import (
    QuotaCharge,
    change_job,
    create_job,
    list_jobs,
)
from services.gateway.db.usage import (
    QuotaExceededError,
    QuotaLimits,
    QuotaResource,
    current_period,
    get_usage,
    period_end,
)
from services.gateway.job_machine import Complete, Fail, Progress, Requeue
from shared.db import Job, JobCreate

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.db_fixtures"]

PERIOD = date(2026, 11, 1)
UNQUEUED = "queue_unavailable"


def upload(owner: str, n: int) -> JobCreate:
    return JobCreate(
        bucket="uploads", object_key=f"uploads/{owner}/{n:032x}/talk.mp4", filename="talk.mp4", size_bytes=10
    )


def quota(seconds: float, *, analyses: int = 100, video_seconds: float = 10_000) -> QuotaCharge:
    return QuotaCharge(
        period=PERIOD,
        video_seconds=seconds,
        limits=QuotaLimits(analyses=analyses, video_seconds=video_seconds),
    )


def test_periods_are_calendar_months_in_utc() -> None:
    assert current_period(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == date(2026, 12, 1)
    assert period_end(date(2026, 12, 1)) == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end(date(2026, 2, 1)) == datetime(2026, 3, 1, tzinfo=UTC)


async def test_a_new_job_is_charged_once_and_a_repeat_of_its_key_is_free(db_session: AsyncSession) -> None:
    owner = f"user-{uuid.uuid4()}"
    job, created = await create_job(
        session=db_session, owner=owner, job_in=upload(owner, 1), quota=quota(6.5)
    )
    assert created and job.quota_period == PERIOD and job.charged_seconds == 6.5
    again, created_again = await create_job(
        session=db_session, owner=owner, job_in=upload(owner, 1), quota=quota(6.5)
    )
    assert not created_again and again.id == job.id
    usage = await get_usage(session=db_session, owner=owner, period=PERIOD)
    assert (usage.analyses, usage.video_seconds) == (1, 6.5)


async def test_concurrent_submissions_against_a_quota_of_n_accept_exactly_n(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner = f"user-{uuid.uuid4()}"
    limit = 5

    async def submit(n: int) -> bool:
        async with db_sessions() as session:
            try:
                await create_job(
                    session=session, owner=owner, job_in=upload(owner, n), quota=quota(1, analyses=limit)
                )
            except QuotaExceededError as exc:
                assert exc.resource is QuotaResource.ANALYSES
                return False
            return True

    outcomes = await asyncio.gather(*(submit(n) for n in range(40)))
    assert sum(outcomes) == limit
    async with db_sessions() as session:
        assert len(await list_jobs(session=session, owner=owner)) == limit  # refused ones left no job
        usage = await get_usage(session=session, owner=owner, period=PERIOD)
    assert usage.analyses == limit


async def test_the_seconds_quota_is_exact_too(db_sessions: async_sessionmaker[AsyncSession]) -> None:
    owner = f"user-{uuid.uuid4()}"

    async def submit(n: int) -> bool:
        async with db_sessions() as session:
            try:
                await create_job(
                    session=session, owner=owner, job_in=upload(owner, n), quota=quota(30, video_seconds=100)
                )
            except QuotaExceededError as exc:
                assert exc.resource is QuotaResource.VIDEO_SECONDS
                assert "resets at 2026-12-01" in str(exc)
                return False
            return True

    assert sum(await asyncio.gather(*(submit(n) for n in range(12)))) == 3
    async with db_sessions() as session:
        usage = await get_usage(session=session, owner=owner, period=PERIOD)
    assert usage.video_seconds == 90


async def test_a_job_longer_than_the_whole_quota_is_refused_in_an_empty_month(
    db_session: AsyncSession,
) -> None:
    owner = f"user-{uuid.uuid4()}"
    with pytest.raises(QuotaExceededError) as refused:
        await create_job(
            session=db_session, owner=owner, job_in=upload(owner, 1), quota=quota(101, video_seconds=100)
        )
    assert refused.value.resource is QuotaResource.VIDEO_SECONDS
    assert await list_jobs(session=db_session, owner=owner) == []


async def test_a_failed_job_gives_its_units_back_once_and_a_completed_one_keeps_them(
    db_session: AsyncSession,
) -> None:
    owner = f"user-{uuid.uuid4()}"
    failing, _ = await create_job(session=db_session, owner=owner, job_in=upload(owner, 1), quota=quota(20))
    done, _ = await create_job(session=db_session, owner=owner, job_in=upload(owner, 2), quota=quota(30))
    assert await change_job(
        session=db_session, job_id=failing.id, change=Fail(stage=Stage.TRANSCRIBE, code="x", reason="y")
    )
    assert not await change_job(
        session=db_session, job_id=failing.id, change=Fail(stage=Stage.TRANSCRIBE, code="x", reason="y")
    )
    result = AnalysisResult(model_version="t", duration_s=30.0, language="en", utterances=[])
    assert await change_job(session=db_session, job_id=done.id, change=Complete(result=result))
    usage = await get_usage(session=db_session, owner=owner, period=PERIOD)
    assert (usage.analyses, usage.video_seconds) == (1, 30)


async def test_the_charge_follows_the_measured_duration_not_the_header(db_session: AsyncSession) -> None:
    """A 60 s file whose header says 0.00006 s is charged 60 s once the transcriber has measured it, past
    the limit if need be; a file shorter than its header keeps its charge."""
    owner = f"user-{uuid.uuid4()}"
    lying, _ = await create_job(
        session=db_session, owner=owner, job_in=upload(owner, 1), quota=quota(0.00006, video_seconds=50)
    )
    honest, _ = await create_job(session=db_session, owner=owner, job_in=upload(owner, 2), quota=quota(10))
    measured = AnalysisResult(model_version="t", duration_s=60.0, language="en", utterances=[])
    assert await change_job(session=db_session, job_id=lying.id, change=Complete(result=measured))
    assert not await change_job(session=db_session, job_id=lying.id, change=Complete(result=measured))  # once
    shorter = AnalysisResult(model_version="t", duration_s=9.5, language="en", utterances=[])
    assert await change_job(session=db_session, job_id=honest.id, change=Complete(result=shorter))
    usage = await get_usage(session=db_session, owner=owner, period=PERIOD)
    assert usage.analyses == 2 and usage.video_seconds == pytest.approx(70.0)
    [first, second] = sorted(await list_jobs(session=db_session, owner=owner), key=lambda j: j.object_key)
    assert (first.charged_seconds, second.charged_seconds) == (60.0, 10.0)
    with pytest.raises(QuotaExceededError):  # the month is spent now
        await create_job(
            session=db_session, owner=owner, job_in=upload(owner, 3), quota=quota(1, video_seconds=50)
        )


async def test_a_job_failed_after_work_was_spent_on_it_keeps_its_units(db_session: AsyncSession) -> None:
    owner = f"user-{uuid.uuid4()}"
    job, _ = await create_job(session=db_session, owner=owner, job_in=upload(owner, 1), quota=quota(20))
    assert await change_job(
        session=db_session,
        job_id=job.id,
        change=Fail(stage=Stage.ENCODE_VIDEO, code="timeout", reason="t", refund=False),
    )
    usage = await get_usage(session=db_session, owner=owner, period=PERIOD)
    assert (usage.analyses, usage.video_seconds) == (1, 20)


async def test_the_charge_follows_the_work_a_stage_measured_however_the_job_ends(
    db_session: AsyncSession,
) -> None:
    """A header claiming 0.00006 s for a 60 s file: the transcriber's measurement charges 60 s at once (so a
    job stuck or re-driven afterwards is paid for), once; a failure after work keeps the units and charges
    its measured length; only a failure before any work gives them back."""
    owner = f"user-{uuid.uuid4()}"
    lying, _ = await create_job(
        session=db_session, owner=owner, job_in=upload(owner, 1), quota=quota(0.00006)
    )
    measured = Progress(Stage.TRANSCRIBE, attempt=1, measured_s=60.0)
    assert await change_job(session=db_session, job_id=lying.id, change=measured)
    assert await change_job(session=db_session, job_id=lying.id, change=measured)  # redelivered: no more
    usage = await get_usage(session=db_session, owner=owner, period=PERIOD)
    assert usage.video_seconds == pytest.approx(60.0)
    broke = Fail(Stage.ENCODE_AUDIO, "internal_error", "broke", attempt=1, measured_s=60.0)
    assert await change_job(session=db_session, job_id=lying.id, change=broke)

    spent, _ = await create_job(session=db_session, owner=owner, job_in=upload(owner, 2), quota=quota(5))
    late = Fail(Stage.FUSE, "internal_error", "broke", attempt=1, measured_s=30.0)
    assert await change_job(session=db_session, job_id=spent.id, change=late)
    unread, _ = await create_job(session=db_session, owner=owner, job_in=upload(owner, 3), quota=quota(7))
    corrupt = Fail(Stage.TRANSCRIBE, "corrupt_media", "cut short", attempt=1)
    assert await change_job(session=db_session, job_id=unread.id, change=corrupt)

    usage = await get_usage(session=db_session, owner=owner, period=PERIOD)
    assert usage.analyses == 2 and usage.video_seconds == pytest.approx(90.0)
    jobs = sorted(await list_jobs(session=db_session, owner=owner), key=lambda j: j.object_key)
    assert [j.charged_seconds for j in jobs] == [60.0, 30.0, 7.0]


async def test_a_job_made_without_a_quota_is_never_refunded(db_session: AsyncSession) -> None:
    owner = f"user-{uuid.uuid4()}"
    job, _ = await create_job(session=db_session, owner=owner, job_in=upload(owner, 1))
    assert job.quota_period is None
    assert await change_job(
        session=db_session, job_id=job.id, change=Fail(stage=Stage.UPLOAD, code="x", reason="y")
    )
    assert (await get_usage(session=db_session, owner=owner, period=PERIOD)).analyses == 0


async def test_requeueing_a_job_that_never_reached_the_queue_charges_it_again_once(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner = f"user-{uuid.uuid4()}"
    async with db_sessions() as session:
        job, _ = await create_job(session=session, owner=owner, job_in=upload(owner, 1), quota=quota(20))
        await change_job(
            session=session, job_id=job.id, change=Fail(stage=Stage.UPLOAD, code=UNQUEUED, reason="r")
        )
        assert (await get_usage(session=session, owner=owner, period=PERIOD)).analyses == 0

    async def requeue() -> Job | None:
        async with db_sessions() as session:
            return await change_job(
                session=session, job_id=job.id, change=Requeue(code=UNQUEUED), quota=quota(20)
            )

    requeued = [found for found in await asyncio.gather(*(requeue() for _ in range(8))) if found]
    assert len(requeued) == 1
    assert requeued[0].id == job.id and requeued[0].attempt == job.attempt + 1
    assert requeued[0].status is AnalysisStatus.QUEUED and requeued[0].error_code is None
    async with db_sessions() as session:
        usage = await get_usage(session=session, owner=owner, period=PERIOD)
    assert (usage.analyses, usage.video_seconds) == (1, 20)


async def test_only_a_job_failed_with_the_given_code_is_requeued_and_only_within_the_quota(
    db_session: AsyncSession,
) -> None:
    owner = f"user-{uuid.uuid4()}"
    other, _ = await create_job(session=db_session, owner=owner, job_in=upload(owner, 1), quota=quota(5))
    await change_job(
        session=db_session, job_id=other.id, change=Fail(stage=Stage.TRANSCRIBE, code="no_speech", reason="r")
    )
    unqueued, _ = await create_job(session=db_session, owner=owner, job_in=upload(owner, 2), quota=quota(5))
    await change_job(
        session=db_session, job_id=unqueued.id, change=Fail(stage=Stage.UPLOAD, code=UNQUEUED, reason="r")
    )
    await create_job(session=db_session, owner=owner, job_in=upload(owner, 3), quota=quota(5))

    assert (
        await change_job(session=db_session, job_id=other.id, change=Requeue(code=UNQUEUED), quota=quota(5))
        is None
    )
    with pytest.raises(QuotaExceededError):
        await change_job(
            session=db_session, job_id=unqueued.id, change=Requeue(code=UNQUEUED), quota=quota(5, analyses=1)
        )
    jobs = {job.id: job for job in await list_jobs(session=db_session, owner=owner)}
    assert jobs[unqueued.id].status is AnalysisStatus.FAILED and jobs[unqueued.id].attempt == unqueued.attempt
    assert (await get_usage(session=db_session, owner=owner, period=PERIOD)).analyses == 1
