"""The job aggregate's store. A change is read under the job's row lock, decided by the one pure function
`services.gateway.job_machine.transition`, and committed in one transaction with everything it owes: the
row, its quota charge or refund, its webhook events (the webhook outbox), its Kafka event (the Kafka
outbox, which `services.gateway.kafka_relay` publishes) and the NOTIFY that wakes the requests watching the
job (delivered by PostgreSQL at that commit, and only if it commits).

A change that no longer applies (a redelivered or late event, another attempt's failure, anything on a
finished job) changes nothing and returns None rather than raising.
"""

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from sqlalchemy import and_, delete, func, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.analyses import AnalysisStatus
from emotion_contract.events import AnalysisRequested, Event
from emotion_contract.results import UtteranceResult
from shared.db.models import FusionPart, Job, JobCreate, KafkaOutboxEvent, UtteranceRecord

from ..job_machine import Change, Complete, Fail, JobState, Transition, transition
from .usage import QuotaLimits, charge, charge_more, refund
from .webhook_outbox import record_job_event
from .webhook_subscriptions import new_callback

JOB_CHANNEL: Final = "ea_job_updates"
"""NOTIFY channel of job changes; the payload is the job's id (`services.gateway.job_updates`)."""
KAFKA_OUTBOX_CHANNEL: Final = "ea_kafka_outbox"
"""NOTIFY channel that wakes the Kafka relay; the payload is empty."""
MAX_PAGE_SIZE: Final = 500
# Our own UPDATEs are followed by fresh SELECTs, so the session need not patch loaded objects.
_NO_SYNC: Final = {"synchronize_session": False}
# With expire_on_commit=False a session keeps rows it loaded earlier; a read must overwrite them.
_FRESH: Final = {"populate_existing": True}


@dataclass(frozen=True)
class QuotaCharge:
    """What a new job takes from its owner's monthly quota."""

    period: date
    video_seconds: float
    limits: QuotaLimits


async def create_job(
    *,
    session: AsyncSession,
    owner: str,
    job_in: JobCreate,
    quota: QuotaCharge | None = None,
    callback_url: str | None = None,
) -> tuple[Job, bool]:
    """The job for (owner, object key), and whether this call created it; safe under concurrent calls.

    A new job is queued: its `analysis.requested` goes into the Kafka outbox in the same transaction. With
    `quota`, it is charged in that transaction too; when the quota does not cover it, `QuotaExceededError`
    is raised and nothing is created. An existing job is returned uncharged. With `callback_url` (validated
    by the caller), a new job gets its own webhook subscription to its completion or failure
    (`find_callback`), in the same transaction.
    """
    if not owner:
        raise ValueError("owner must not be empty")
    charged = _charged_columns(quota)
    # ON CONFLICT DO NOTHING waits for a concurrent insert of the same key to commit, after which the
    # SELECT (a new snapshot under READ COMMITTED) sees that row.
    inserted = await session.exec(
        insert(Job)
        .values(
            id=uuid.uuid4(),
            owner=owner,
            status=AnalysisStatus.QUEUED,
            attempt=1,
            **job_in.model_dump(),
            **charged,
        )
        .on_conflict_do_nothing(index_elements=["owner", "object_key"])
        .returning(col(Job.id))
    )
    created = inserted.scalar_one_or_none() is not None
    if created and quota is not None:
        await _charge_or_roll_back(session, owner, quota)
    stored = await session.exec(
        select(Job).where(Job.owner == owner, Job.object_key == job_in.object_key).execution_options(**_FRESH)
    )
    job = stored.one()
    if created:
        if callback_url is not None:
            session.add(new_callback(owner=owner, job_id=job.id, url=callback_url))
        await _record_kafka_event(session, requested_event(job))
        await _notify_job_changed(session, job.id)
    await session.commit()
    return job, created


async def find_job_by_key(*, session: AsyncSession, owner: str, object_key: str) -> Job | None:
    """The owner's job of this upload key, if one was made."""
    statement = (
        select(Job).where(Job.owner == owner, Job.object_key == object_key).execution_options(**_FRESH)
    )
    return (await session.exec(statement)).first()


def _charged_columns(quota: QuotaCharge | None) -> dict[str, object]:
    return {"quota_period": quota.period, "charged_seconds": quota.video_seconds} if quota else {}


async def _charge_or_roll_back(session: AsyncSession, owner: str, quota: QuotaCharge) -> None:
    """Charge the job's units in the caller's transaction; on any error roll the whole of it back."""
    try:
        await charge(
            session=session,
            owner=owner,
            period=quota.period,
            video_seconds=quota.video_seconds,
            limits=quota.limits,
        )
    except Exception:
        await session.rollback()
        raise


async def get_job(*, session: AsyncSession, job_id: uuid.UUID, owner: str | None = None) -> Job | None:
    """The job, or None when it does not exist or (with `owner`) belongs to someone else."""
    statement = select(Job).where(Job.id == job_id)
    if owner is not None:
        statement = statement.where(Job.owner == owner)
    return (await session.exec(statement.execution_options(**_FRESH))).one_or_none()


async def list_jobs(*, session: AsyncSession, owner: str, limit: int = 50, offset: int = 0) -> list[Job]:
    """The owner's jobs, newest first."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must not be negative, got {offset}")
    statement = (
        select(Job)
        .where(Job.owner == owner)
        .order_by(col(Job.created_at).desc(), col(Job.id).desc())
        .limit(limit)
        .offset(offset)
        .execution_options(**_FRESH)
    )
    return list((await session.exec(statement)).all())


async def count_jobs(*, session: AsyncSession, owner: str) -> int:
    statement = select(func.count()).select_from(Job).where(Job.owner == owner)
    return (await session.exec(statement)).one()


async def delete_job(*, session: AsyncSession, job_id: uuid.UUID, owner: str) -> bool:
    """Delete the owner's job with everything kept of it: its utterances and webhook events (by cascade)
    and fusion's parts (transcript and features, which reference no job); False when there was none."""
    statement = (
        delete(Job)
        .where(col(Job.id) == job_id, col(Job.owner) == owner)
        .returning(col(Job.id))
        .execution_options(**_NO_SYNC)
    )
    deleted = (await session.exec(statement)).scalar_one_or_none() is not None
    if deleted:
        await session.exec(
            delete(FusionPart).where(col(FusionPart.job_id) == job_id).execution_options(**_NO_SYNC)
        )
    await session.commit()
    return deleted


async def purge_parts_of_finished_jobs(*, session: AsyncSession) -> int:
    """Remove what fusion kept of finished jobs: parts that arrived after their job completed or failed
    (a redelivery, a stage that ended late). How many."""
    finished = select(Job.id).where(col(Job.status).in_([AnalysisStatus.COMPLETED, AnalysisStatus.FAILED]))
    removed = await session.exec(
        delete(FusionPart)
        .where(col(FusionPart.job_id).in_(finished))
        .returning(col(FusionPart.job_id))
        .execution_options(**_NO_SYNC)
    )
    count = len(removed.all())
    await session.commit()
    return count


async def find_stuck_jobs(
    *, session: AsyncSession, older_than: timedelta, per_media_second: float = 0.0, limit: int = 100
) -> list[Job]:
    """Live jobs that have not moved for `older_than`, plus `per_media_second` for each second of their
    file: queued that long, or that long in one stage. A stage's work grows with the file (a 3-hour talk
    takes minutes to transcribe), and it reports no progress until it ends."""
    if older_than <= timedelta(0):
        raise ValueError(f"older_than must be positive, got {older_than}")
    if per_media_second < 0:
        raise ValueError(f"per_media_second must not be negative, got {per_media_second}")
    # The database clock, the one that wrote the timestamps, decides.
    allowance = older_than.total_seconds() + col(Job.charged_seconds) * per_media_second
    cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, allowance)
    stuck_queued = and_(col(Job.status) == AnalysisStatus.QUEUED, col(Job.updated_at) < cutoff)
    stuck_processing = and_(
        col(Job.status) == AnalysisStatus.PROCESSING,
        func.coalesce(col(Job.stage_started_at), col(Job.updated_at)) < cutoff,
    )
    statement = (
        select(Job)
        .where(or_(stuck_queued, stuck_processing))
        .order_by(col(Job.updated_at))
        .limit(limit)
        .execution_options(**_FRESH)
    )
    return list((await session.exec(statement)).all())


async def change_job(
    *, session: AsyncSession, job_id: uuid.UUID, change: Change, quota: QuotaCharge | None = None
) -> Job | None:
    """Apply `change` to the job and commit it with all it owes; the job as changed, or None when the
    change does not apply (nothing is written then).

    `quota`: what a requeued job is charged again; `QuotaExceededError` when it no longer covers it, and
    the job stays as it was.
    """
    job = await lock_job(session, job_id)
    moved = None if job is None else transition(state_of(job), change)
    if job is None or moved is None:
        # Commit, not rollback: nothing changed, and a rollback would expire the caller's loaded rows.
        await session.commit()
        return None
    await session.exec(
        update(Job)
        .where(col(Job.id) == job_id)
        .values(**_columns(job, moved, change, quota))
        .execution_options(**_NO_SYNC)
    )
    await _settle_quota(session, job, moved, change, quota)
    if moved.state.status is AnalysisStatus.FAILED:
        # What fusion kept of a failed job (a transcript among it) is of no more use to anyone.
        await session.exec(
            delete(FusionPart).where(col(FusionPart.job_id) == job_id).execution_options(**_NO_SYNC)
        )
    if isinstance(change, Complete):
        session.add_all(_utterance_record(job_id, utterance) for utterance in change.result.utterances)
    if moved.webhook is not None:
        state = moved.state
        await record_job_event(
            session, job_id=job_id, type_=moved.webhook, attempt=state.attempt, stage=state.stage
        )
    changed = await lock_job(session, job_id)
    assert changed is not None  # locked since the start of this transaction
    if moved.request:
        await _record_kafka_event(session, requested_event(changed))
    await _notify_job_changed(session, job_id)
    await session.commit()
    return changed


async def lock_job(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    """Read the job and hold its row until the session commits, so no other change slips in between."""
    statement = select(Job).where(Job.id == job_id).with_for_update().execution_options(**_FRESH)
    return (await session.exec(statement)).one_or_none()


def state_of(job: Job) -> JobState:
    return JobState(status=job.status, stage=job.stage, attempt=job.attempt, error_code=job.error_code)


def requested_event(job: Job) -> AnalysisRequested:
    """The event that sends the job's current attempt down the pipeline."""
    return AnalysisRequested(
        job_id=job.id,
        attempt=job.attempt,
        bucket=job.bucket,
        object_key=job.stored_key,
        filename=job.filename,
        size_bytes=job.size_bytes,
        speakers=job.speakers,
    )


def _columns(job: Job, moved: Transition, change: Change, quota: QuotaCharge | None) -> dict[str, object]:
    state = moved.state
    values: dict[str, object] = {
        "status": state.status,
        "stage": state.stage,
        "attempt": state.attempt,
        "updated_at": func.now(),
    }
    if moved.clock_starts:
        values["stage_started_at"] = func.now()
    if state.attempt != job.attempt:  # a new attempt: queued, in no stage, nothing of the last one kept
        values |= {"stage_started_at": None, "error_code": None, "error_reason": None, "completed_at": None}
        values |= _charged_columns(quota) if moved.charge else {}
    match change:
        case Complete(result=result):
            values |= {
                "result": result.model_dump(mode="json"),
                "bundle_version": result.model_version,
                "duration_s": result.duration_s,
                "completed_at": func.now(),
            }
        case Fail(code=code, reason=reason):
            values |= {"error_code": code, "error_reason": reason, "completed_at": func.now()}
    if moved.measured_s is not None and _measured_beyond_charge(job, moved) > 0:
        values["charged_seconds"] = round(moved.measured_s, 3)
    return values


def _measured_beyond_charge(job: Job, moved: Transition) -> float:
    """The seconds a stage measured beyond what the job was charged (a header can claim 0.00006 s for a
    minute of video); 0 when none was measured or the charge covers it."""
    if moved.measured_s is None or moved.refund:
        return 0.0
    return max(0.0, round(moved.measured_s, 3) - job.charged_seconds)


async def _settle_quota(
    session: AsyncSession, job: Job, moved: Transition, change: Change, quota: QuotaCharge | None
) -> None:
    """The quota side of a change: a requeue is charged again, a failure that spent no work refunded, and
    what a stage measured beyond the charge (as soon as it measures, on failure or on completion) charged,
    past the limit if need be: the work is done, and the next file is refused."""
    if moved.charge and quota is not None:
        await _charge_or_roll_back(session, job.owner, quota)
    if job.quota_period is None:
        return
    if moved.refund:
        # A failed analysis gives its units back, exactly once: a job fails only once.
        await refund(
            session=session, owner=job.owner, period=job.quota_period, video_seconds=job.charged_seconds
        )
    if (extra := _measured_beyond_charge(job, moved)) > 0:
        await charge_more(session=session, owner=job.owner, period=job.quota_period, video_seconds=extra)


async def _record_kafka_event(session: AsyncSession, event: Event) -> None:
    """Queue `event` for the relay in the caller's transaction; the same event twice is one row."""
    row = {"event_id": event.event_id, "topic": event.TOPIC.value, "payload": event.model_dump(mode="json")}
    await session.exec(insert(KafkaOutboxEvent).values(**row).on_conflict_do_nothing())
    await session.exec(select(func.pg_notify(KAFKA_OUTBOX_CHANNEL, "")))


async def _notify_job_changed(session: AsyncSession, job_id: uuid.UUID) -> None:
    await session.exec(select(func.pg_notify(JOB_CHANNEL, str(job_id))))


def _utterance_record(job_id: uuid.UUID, utterance: UtteranceResult) -> UtteranceRecord:
    top_emotion, top_sentiment = utterance.emotions[0], utterance.sentiments[0]
    return UtteranceRecord(
        job_id=job_id,
        index=utterance.index,
        start_time=utterance.start_time,
        end_time=utterance.end_time,
        text=utterance.text,
        top_emotion=top_emotion.label,
        top_emotion_confidence=top_emotion.confidence,
        top_sentiment=top_sentiment.label,
        top_sentiment_confidence=top_sentiment.confidence,
        emotions=[score.model_dump(mode="json") for score in utterance.emotions],
        sentiments=[score.model_dump(mode="json") for score in utterance.sentiments],
    )
