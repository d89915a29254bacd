"""The state layer against a real PostgreSQL, migrated by Alembic into a database of its own."""

import asyncio
import sys
import uuid
from datetime import date, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, delete, inspect, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import SQLModel, col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.analyses import AnalysisStatus
from emotion_contract.events import Stage
from emotion_contract.labels import Emotion, Modality, Sentiment
from emotion_contract.results import AnalysisResult, UtteranceResult, emotion_scores, sentiment_scores
from services.fusion.parts import delete_parts, get_parts, put_part
from services.gateway.db.jobs import (
    QuotaCharge,
    change_job,
    count_jobs,
    create_job,
    find_stuck_jobs,
    get_job,
    list_jobs,
    purge_parts_of_finished_jobs,
)
from services.gateway.db.usage import QuotaLimits
from services.gateway.job_machine import Complete, Fail, Progress, Redrive
from shared.db import Job, JobCreate, UtteranceRecord, create_engine, ensure_database
from shared.db.migrate import current_revision, downgrade, head_revision, upgrade
from tests.integration.db_fixtures import create_database, drop_database, fresh_database_url, job_row

pytest_plugins = ["tests.integration.db_fixtures"]
pytestmark = pytest.mark.integration

TABLES = {
    "job",
    "utterance_result",
    "fusion_part",
    "usage_counter",
    "user_account",
    "rate_limit_cell",
    "auth_session",
    "api_key",
    "webhook_subscription",
    "webhook_event",
    "webhook_delivery",
    "webhook_attempt",
    "kafka_outbox",
    "upload_grant",
}


async def list_utterances(*, session: AsyncSession, job_id: uuid.UUID) -> list[UtteranceRecord]:
    """The job's stored utterance rows, in order, read fresh (the product reads them through the job)."""
    statement = (
        select(UtteranceRecord).where(UtteranceRecord.job_id == job_id).order_by(col(UtteranceRecord.index))
    )
    return list((await session.exec(statement.execution_options(populate_existing=True))).all())


def upload(key: str = "uploads/a/talk.mp4") -> JobCreate:
    return JobCreate(
        bucket="uploads", object_key=key, filename="talk.mp4", content_type="video/mp4", size_bytes=1234
    )


def analysis_result(n_utterances: int = 2) -> AnalysisResult:
    # joy and positive lead in every utterance; odd utterances lean towards sadness.
    return AnalysisResult(
        model_version="bundle-2026.11.1",
        duration_s=7.5,
        language="en",
        utterances=[
            UtteranceResult(
                index=i,
                start_time=2.0 * i,
                end_time=2.0 * i + 1.5,
                text=f"utterance {i}",
                emotions=emotion_scores(
                    [0.05, 0.05, 0.05, 0.5, 0.1, 0.05 + 0.1 * (i % 2), 0.2 - 0.1 * (i % 2)]
                ),
                sentiments=sentiment_scores([0.1, 0.2, 0.7]),
            )
            for i in range(n_utterances)
        ],
    )


async def age_jobs(session: AsyncSession, job_ids: list[uuid.UUID], *, by: timedelta) -> None:
    """Move jobs' clocks into the past, as if they had sat still that long."""
    await session.exec(
        update(Job)
        .where(col(Job.id).in_(job_ids))
        .values(updated_at=col(Job.updated_at) - by, stage_started_at=col(Job.stage_started_at) - by)
    )
    await session.commit()


def schema_differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


# --- migrations ---------------------------------------------------------------------------------------


async def migrate_current(url: str) -> tuple[int, str]:
    """`python -m shared.db.migrate current`: its exit status and what it prints."""
    command = [sys.executable, "-m", "shared.db.migrate", "--url", url, "current"]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    stdout, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode().strip()


async def test_migrations_upgrade_downgrade_and_upgrade_again() -> None:
    url = fresh_database_url("ea_test_migrate")
    try:
        # The pre-start command the gateway and `make up` run: creates the database, then migrates it.
        command = [sys.executable, "-m", "shared.db.migrate", "--url", url, "--create-database", "upgrade"]
        process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, stderr.decode()
        assert await current_revision(url) == head_revision() == "0011"
        assert await ensure_database(url) is False

        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                assert await connection.run_sync(table_names) == TABLES | {"alembic_version"}
                # The migrations build exactly what the models describe.
                assert await connection.run_sync(schema_differences) == []

            assert await migrate_current(url) == (0, "0011")
            await downgrade(url, "base")
            assert await current_revision(url) is None
            assert await migrate_current(url) == (1, "base (behind: the newest is 0011)")
            async with engine.connect() as connection:
                assert await connection.run_sync(table_names) == {"alembic_version"}

            await upgrade(url)
            assert await current_revision(url) == "0011"
            async with engine.connect() as connection:
                assert await connection.run_sync(table_names) >= TABLES
                assert await connection.run_sync(schema_differences) == []
        finally:
            await engine.dispose()
    finally:
        await drop_database(url)


async def test_ensure_database_creates_once_and_refuses_other_drivers() -> None:
    url = fresh_database_url("ea_test_ensure")
    try:
        assert await ensure_database(url) is True
        assert await ensure_database(url) is False
    finally:
        await drop_database(url)
    with pytest.raises(ValueError, match="asyncpg"):
        await ensure_database("postgresql+psycopg://postgres@127.0.0.1/x")
    with pytest.raises(ValueError, match="no database"):
        await ensure_database("postgresql+asyncpg://postgres@127.0.0.1:5432")


# --- creating and reading jobs ------------------------------------------------------------------------


async def test_create_job_is_idempotent_per_owner_and_key(db_session: AsyncSession) -> None:
    job, created = await create_job(session=db_session, owner="key-1", job_in=upload())
    assert created
    assert (job.status, job.stage, job.attempt, job.owner) == (AnalysisStatus.QUEUED, None, 1, "key-1")
    assert job.created_at.tzinfo is not None and job.result is None

    again, created_again = await create_job(session=db_session, owner="key-1", job_in=upload())
    assert not created_again and again.id == job.id

    other_owner, created_for_other = await create_job(session=db_session, owner="key-2", job_in=upload())
    assert created_for_other and other_owner.id != job.id


async def test_concurrent_creates_of_one_key_make_one_job(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def create() -> tuple[Job, bool]:
        async with db_sessions() as session:
            return await create_job(session=session, owner="key-1", job_in=upload("uploads/same.mp4"))

    outcomes = await asyncio.gather(*(create() for _ in range(10)))

    assert len({job.id for job, _ in outcomes}) == 1
    assert sum(created for _, created in outcomes) == 1
    async with db_sessions() as session:
        assert await count_jobs(session=session, owner="key-1") == 1


async def test_create_job_refuses_bad_input(db_session: AsyncSession) -> None:
    with pytest.raises(ValueError, match="owner"):
        await create_job(session=db_session, owner="", job_in=upload())
    with pytest.raises(ValueError, match="size_bytes"):
        JobCreate(bucket="uploads", object_key="k", filename="f.mp4", size_bytes=-1)


async def test_get_job_respects_the_owner(db_session: AsyncSession) -> None:
    job, _ = await create_job(session=db_session, owner="key-1", job_in=upload())

    assert (await get_job(session=db_session, job_id=job.id)) == job
    assert (await get_job(session=db_session, job_id=job.id, owner="key-1")) == job
    assert await get_job(session=db_session, job_id=job.id, owner="key-2") is None
    assert await get_job(session=db_session, job_id=uuid.uuid4()) is None


async def test_list_jobs_pages_the_owners_jobs_newest_first(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    ids = []
    for i in range(5):
        # One session per create: now() is the transaction's start, so each job gets its own time.
        async with db_sessions() as session:
            job, _ = await create_job(session=session, owner="key-1", job_in=upload(f"uploads/{i}.mp4"))
            ids.append(job.id)
    async with db_sessions() as session:
        await create_job(session=session, owner="key-2", job_in=upload("uploads/other.mp4"))

        first_page = await list_jobs(session=session, owner="key-1", limit=3)
        second_page = await list_jobs(session=session, owner="key-1", limit=3, offset=3)

        assert [job.id for job in first_page + second_page] == ids[::-1]
        assert await count_jobs(session=session, owner="key-1") == 5
        with pytest.raises(ValueError, match="limit"):
            await list_jobs(session=session, owner="key-1", limit=0)
        with pytest.raises(ValueError, match="offset"):
            await list_jobs(session=session, owner="key-1", offset=-1)


# --- the lifecycle ------------------------------------------------------------------------------------


async def test_progress_moves_a_live_job_of_the_current_attempt(db_session: AsyncSession) -> None:
    job, _ = await create_job(session=db_session, owner="key-1", job_in=upload())

    assert await change_job(
        session=db_session, job_id=job.id, change=Progress(stage=Stage.TRANSCRIBE, attempt=1)
    )
    transcribing = await get_job(session=db_session, job_id=job.id)
    assert transcribing is not None and transcribing.stage_started_at is not None
    assert (transcribing.status, transcribing.stage) == (AnalysisStatus.PROCESSING, Stage.TRANSCRIBE)
    # The session hands out one object per row, refreshed by every read: keep the value, not the object.
    transcribe_started = transcribing.stage_started_at

    # A redelivered progress event changes nothing, so it keeps the stage's start time (in a later
    # transaction: a later now()).
    await db_session.commit()
    redelivery = Progress(stage=Stage.TRANSCRIBE, attempt=1)
    assert await change_job(session=db_session, job_id=job.id, change=redelivery) is None
    redelivered = await get_job(session=db_session, job_id=job.id)
    assert redelivered is not None and redelivered.stage_started_at == transcribe_started

    assert await change_job(
        session=db_session, job_id=job.id, change=Progress(stage=Stage.ENCODE_VIDEO, attempt=1)
    )
    encoding = await get_job(session=db_session, job_id=job.id)
    assert encoding is not None and encoding.stage == Stage.ENCODE_VIDEO
    assert encoding.stage_started_at is not None and encoding.stage_started_at > transcribe_started

    assert not await change_job(
        session=db_session, job_id=job.id, change=Progress(stage=Stage.FUSE, attempt=2)
    )
    assert not await change_job(
        session=db_session, job_id=uuid.uuid4(), change=Progress(stage=Stage.FUSE, attempt=1)
    )


async def test_complete_job_stores_result_and_utterances_once(db_session: AsyncSession) -> None:
    job, _ = await create_job(session=db_session, owner="key-1", job_in=upload())
    await change_job(session=db_session, job_id=job.id, change=Progress(stage=Stage.FUSE, attempt=1))
    result = analysis_result(n_utterances=2)

    assert await change_job(session=db_session, job_id=job.id, change=Complete(result=result))

    done = await get_job(session=db_session, job_id=job.id)
    assert done is not None and done.status is AnalysisStatus.COMPLETED and done.completed_at is not None
    assert (done.bundle_version, done.duration_s) == ("bundle-2026.11.1", 7.5)
    assert done.analysis_result() == result
    rows = await list_utterances(session=db_session, job_id=job.id)
    assert [(row.index, row.text, row.top_emotion, row.top_sentiment) for row in rows] == [
        (0, "utterance 0", Emotion.JOY, Sentiment.POSITIVE),
        (1, "utterance 1", Emotion.JOY, Sentiment.POSITIVE),
    ]
    assert rows[1].top_emotion_confidence == pytest.approx(0.5)
    assert rows[1].emotions[1] == {"label": "sadness", "confidence": pytest.approx(0.15)}

    other = analysis_result(n_utterances=3)
    assert not await change_job(session=db_session, job_id=job.id, change=Complete(result=other))
    assert len(await list_utterances(session=db_session, job_id=job.id)) == 2
    again = await get_job(session=db_session, job_id=job.id)
    assert again is not None and again.analysis_result() == result


async def test_concurrent_completions_store_one_result(db_sessions: async_sessionmaker[AsyncSession]) -> None:
    async with db_sessions() as session:
        job, _ = await create_job(session=session, owner="key-1", job_in=upload())

    async def complete(n_utterances: int) -> bool:
        async with db_sessions() as session:
            change = Complete(result=analysis_result(n_utterances))
            return await change_job(session=session, job_id=job.id, change=change) is not None

    outcomes = await asyncio.gather(*(complete(n) for n in (1, 2, 3, 4)))

    assert sum(outcomes) == 1
    winner = (1, 2, 3, 4)[outcomes.index(True)]
    async with db_sessions() as session:
        assert len(await list_utterances(session=session, job_id=job.id)) == winner


async def test_fail_job_is_final_and_never_overwrites(db_session: AsyncSession) -> None:
    job, _ = await create_job(session=db_session, owner="key-1", job_in=upload())
    await change_job(session=db_session, job_id=job.id, change=Progress(stage=Stage.TRANSCRIBE, attempt=1))

    assert await change_job(
        session=db_session,
        job_id=job.id,
        change=Fail(stage=Stage.TRANSCRIBE, code="no_audio_track", reason="no audio"),
    )
    assert not await change_job(
        session=db_session,
        job_id=job.id,
        change=Fail(stage=Stage.FUSE, code="fusion_error", reason="a later failure"),
    )
    assert not await change_job(session=db_session, job_id=job.id, change=Complete(result=analysis_result()))
    assert not await change_job(
        session=db_session, job_id=job.id, change=Progress(stage=Stage.FUSE, attempt=1)
    )

    failed = await get_job(session=db_session, job_id=job.id)
    assert failed is not None
    assert (failed.status, failed.stage, failed.error_code, failed.error_reason) == (
        AnalysisStatus.FAILED,
        Stage.TRANSCRIBE,
        "no_audio_track",
        "no audio",
    )
    assert failed.result is None and await list_utterances(session=db_session, job_id=job.id) == []
    with pytest.raises(ValueError, match="code and a reason"):
        await change_job(
            session=db_session, job_id=job.id, change=Fail(stage=Stage.FUSE, code="", reason="x")
        )


async def test_a_completed_job_cannot_fail_or_move(db_session: AsyncSession) -> None:
    job, _ = await create_job(session=db_session, owner="key-1", job_in=upload())
    assert await change_job(session=db_session, job_id=job.id, change=Complete(result=analysis_result()))

    assert not await change_job(
        session=db_session, job_id=job.id, change=Fail(stage=Stage.FUSE, code="late", reason="late")
    )
    assert not await change_job(
        session=db_session, job_id=job.id, change=Progress(stage=Stage.TRANSCRIBE, attempt=1)
    )
    assert await change_job(session=db_session, job_id=job.id, change=Redrive(seen_attempt=1)) is None

    completed = await get_job(session=db_session, job_id=job.id)
    assert (
        completed is not None
        and completed.status is AnalysisStatus.COMPLETED
        and completed.error_code is None
    )


async def test_deleting_a_job_deletes_its_utterances(db_session: AsyncSession) -> None:
    job, _ = await create_job(session=db_session, owner="key-1", job_in=upload())
    await change_job(session=db_session, job_id=job.id, change=Complete(result=analysis_result()))

    await db_session.delete(job)
    await db_session.commit()

    remaining = await db_session.exec(select(func.count()).select_from(UtteranceRecord))
    assert remaining.one() == 0


# --- stuck jobs ---------------------------------------------------------------------------------------


async def test_find_stuck_jobs_finds_live_jobs_that_sat_still(db_session: AsyncSession) -> None:
    async def new_job(name: str) -> Job:
        job, _ = await create_job(session=db_session, owner="key-1", job_in=upload(f"uploads/{name}.mp4"))
        return job

    old_queued, old_stage, fresh_stage, old_completed, old_failed, fresh_queued = [
        await new_job(name) for name in ("old-q", "old-s", "fresh-s", "old-c", "old-f", "fresh-q")
    ]
    for job in (old_stage, fresh_stage):
        await change_job(
            session=db_session, job_id=job.id, change=Progress(stage=Stage.ENCODE_AUDIO, attempt=1)
        )
    await change_job(session=db_session, job_id=old_completed.id, change=Complete(result=analysis_result()))
    await change_job(
        session=db_session, job_id=old_failed.id, change=Fail(stage=Stage.FUSE, code="x", reason="y")
    )
    old = [old_queued.id, old_stage.id, old_completed.id, old_failed.id]
    await age_jobs(db_session, old, by=timedelta(hours=1))
    # Progress in the same stage touches updated_at but must not hide a stage that is stuck.
    await change_job(
        session=db_session, job_id=old_stage.id, change=Progress(stage=Stage.ENCODE_AUDIO, attempt=1)
    )

    stuck = await find_stuck_jobs(session=db_session, older_than=timedelta(minutes=30))

    assert {job.id for job in stuck} == {old_queued.id, old_stage.id}
    assert fresh_queued.id not in {job.id for job in stuck}
    assert await find_stuck_jobs(session=db_session, older_than=timedelta(hours=2)) == []
    with pytest.raises(ValueError, match="positive"):
        await find_stuck_jobs(session=db_session, older_than=timedelta(0))


async def test_a_long_file_is_allowed_more_time_in_a_stage(db_session: AsyncSession) -> None:
    """An hour in one stage is stuck for a one-minute file, not for a three-hour one at 0.5 s a second."""
    quota = QuotaCharge(
        period=date(2026, 11, 1),
        video_seconds=3 * 3600.0,
        limits=QuotaLimits(analyses=10, video_seconds=100_000),
    )
    short, _ = await create_job(session=db_session, owner="key-1", job_in=upload("uploads/short.mp4"))
    long, _ = await create_job(
        session=db_session, owner="key-2", job_in=upload("uploads/long.mp4"), quota=quota
    )
    for job in (short, long):
        await change_job(
            session=db_session, job_id=job.id, change=Progress(stage=Stage.TRANSCRIBE, attempt=1)
        )
    await age_jobs(db_session, [short.id, long.id], by=timedelta(hours=1))

    stuck = await find_stuck_jobs(session=db_session, older_than=timedelta(minutes=10), per_media_second=0.5)
    assert {job.id for job in stuck} == {short.id}  # the long one has 10 min + 90 min
    stuck = await find_stuck_jobs(session=db_session, older_than=timedelta(minutes=10))
    assert {job.id for job in stuck} == {short.id, long.id}


async def test_redrive_starts_a_new_attempt_once(db_session: AsyncSession) -> None:
    job, _ = await create_job(session=db_session, owner="key-1", job_in=upload())
    await change_job(session=db_session, job_id=job.id, change=Progress(stage=Stage.ENCODE_VIDEO, attempt=1))

    redriven = await change_job(session=db_session, job_id=job.id, change=Redrive(seen_attempt=1))
    assert redriven is not None and redriven.attempt == 2
    # A second sweeper that saw attempt 1 must not start a third attempt.
    assert await change_job(session=db_session, job_id=job.id, change=Redrive(seen_attempt=1)) is None

    requeued = await get_job(session=db_session, job_id=job.id)
    assert requeued is not None
    assert (requeued.status, requeued.stage, requeued.attempt) == (AnalysisStatus.QUEUED, None, 2)
    assert not await change_job(
        session=db_session, job_id=job.id, change=Progress(stage=Stage.FUSE, attempt=1)
    )
    assert await change_job(
        session=db_session, job_id=job.id, change=Progress(stage=Stage.TRANSCRIBE, attempt=2)
    )
    redriven = await change_job(session=db_session, job_id=job.id, change=Redrive(seen_attempt=2))
    assert redriven is not None and redriven.attempt == 3
    assert await change_job(session=db_session, job_id=uuid.uuid4(), change=Redrive(seen_attempt=1)) is None


# --- processed events ---------------------------------------------------------------------------------


async def test_fusion_parts_join_per_attempt(db_session: AsyncSession) -> None:
    job_id = await job_row(db_session)
    await put_part(session=db_session, job_id=job_id, attempt=1, part=Modality.TEXT, payload={"n": 1})
    assert await get_parts(session=db_session, job_id=job_id, attempt=1) == {"text": {"n": 1}}

    await put_part(session=db_session, job_id=job_id, attempt=1, part=Modality.VIDEO, payload={"v": [1.5]})
    # A redelivered event leaves the first payload in place.
    await put_part(session=db_session, job_id=job_id, attempt=1, part=Modality.TEXT, payload={"n": 2})
    await put_part(session=db_session, job_id=job_id, attempt=1, part=Modality.AUDIO, payload={"a": None})
    await put_part(session=db_session, job_id=job_id, attempt=2, part=Modality.AUDIO, payload={"a": 2})

    parts = await get_parts(session=db_session, job_id=job_id, attempt=1)
    assert parts == {Modality.TEXT: {"n": 1}, Modality.VIDEO: {"v": [1.5]}, Modality.AUDIO: {"a": None}}
    assert await get_parts(session=db_session, job_id=job_id, attempt=2) == {"audio": {"a": 2}}
    assert await get_parts(session=db_session, job_id=uuid.uuid4(), attempt=1) == {}

    assert await delete_parts(session=db_session, job_id=job_id) == 4
    assert await get_parts(session=db_session, job_id=job_id, attempt=1) == {}


async def test_a_part_of_a_job_that_is_gone_is_not_kept_and_a_deleted_job_takes_its_parts(
    db_session: AsyncSession,
) -> None:
    """Whatever arrives after an analysis was deleted is dropped, and deleting a job deletes its parts in
    the same statement (a part stored concurrently waits for the job's row, then goes with it)."""
    gone = uuid.uuid4()
    assert not await put_part(session=db_session, job_id=gone, attempt=1, part=Modality.TEXT, payload={})
    assert await get_parts(session=db_session, job_id=gone, attempt=1) == {}
    job_id = await job_row(db_session)
    assert await put_part(session=db_session, job_id=job_id, attempt=1, part=Modality.TEXT, payload={"t": 1})
    await db_session.exec(delete(Job).where(col(Job.id) == job_id))
    await db_session.commit()
    assert await get_parts(session=db_session, job_id=job_id, attempt=1) == {}


async def test_a_failed_job_and_a_finished_ones_late_parts_are_removed(db_session: AsyncSession) -> None:
    failing, finished, live = [await job_row(db_session) for _ in range(3)]
    for job_id in (failing, finished, live):
        assert await put_part(session=db_session, job_id=job_id, attempt=1, part=Modality.TEXT, payload={})
    fail = Fail(stage=Stage.ENCODE_AUDIO, code="internal_error", reason="broke")
    assert await change_job(session=db_session, job_id=failing, change=fail)
    assert await get_parts(session=db_session, job_id=failing, attempt=1) == {}
    result = AnalysisResult(model_version="t", duration_s=1.0, language="en", utterances=[])
    assert await change_job(session=db_session, job_id=finished, change=Complete(result=result))
    # A part that arrives once its job has finished (a redelivery) is swept away.
    assert await put_part(session=db_session, job_id=failing, attempt=1, part=Modality.VIDEO, payload={})
    assert await purge_parts_of_finished_jobs(session=db_session) == 2
    assert await get_parts(session=db_session, job_id=live, attempt=1) == {Modality.TEXT: {}}


async def test_put_part_refuses_unknown_parts_and_attempts(db_session: AsyncSession) -> None:
    with pytest.raises(ValueError, match="smell"):
        await put_part(session=db_session, job_id=uuid.uuid4(), attempt=1, part="smell", payload={})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attempt"):
        await put_part(session=db_session, job_id=uuid.uuid4(), attempt=0, part=Modality.TEXT, payload={})


async def test_each_service_role_reaches_only_its_own_tables() -> None:
    """With the roles deploy/k8s makes, the migrations grant least privilege: the gateway cannot read a
    password hash, auth sees no job, fusion only its join table."""
    url = fresh_database_url("ea_test_roles")
    await create_database(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            for role in ("ea_gateway", "ea_auth", "ea_fusion"):
                await connection.execute(
                    text(
                        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                        f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$"
                    )
                )
        await upgrade(url)

        async def allowed(role: str, statement: str) -> bool:
            async with engine.connect() as connection:
                await connection.execute(text(f"SET ROLE {role}"))
                try:
                    await connection.execute(text(statement))
                except DBAPIError as error:
                    assert "permission denied" in str(error)
                    return False
                finally:
                    await connection.rollback()
                return True

        assert await allowed("ea_gateway", "SELECT count(*) FROM job")
        assert await allowed("ea_gateway", "SELECT count(*) FROM webhook_delivery")
        assert await allowed("ea_gateway", "DELETE FROM fusion_part")
        gone = f"DELETE FROM fusion_part WHERE job_id = '{uuid.uuid4()}' RETURNING job_id"
        assert await allowed("ea_gateway", gone)  # a job's parts, found by its id
        assert not await allowed("ea_gateway", "SELECT payload FROM fusion_part")  # never what they hold
        assert await allowed("ea_gateway", "DELETE FROM kafka_outbox")
        assert await allowed("ea_gateway", "SELECT count(*) FROM upload_grant")
        assert not await allowed("ea_fusion", "SELECT count(*) FROM upload_grant")
        assert not await allowed("ea_fusion", "SELECT count(*) FROM kafka_outbox")
        assert not await allowed("ea_gateway", "SELECT password_hash FROM user_account")
        assert not await allowed("ea_gateway", "SELECT count(*) FROM api_key")
        assert await allowed("ea_auth", "SELECT password_hash FROM user_account")
        assert not await allowed("ea_auth", "SELECT count(*) FROM job")
        assert await allowed("ea_fusion", "SELECT count(*) FROM fusion_part")
        assert not await allowed("ea_fusion", "SELECT count(*) FROM job")
        assert not await allowed("ea_fusion", "CREATE TABLE sneaky (id int)")
    finally:
        await engine.dispose()
        await drop_database(url)
