"""The job lifecycle: queued → processing (one stage after another) → completed or failed.

Terminal states are final. Each function commits its own work. Functions that change a job say whether
they did (False for a missing job, a stale attempt or a terminal job), so a redelivered or late event
finds nothing to do rather than an error.
"""

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from sqlalchemy import and_, case, delete, func, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.analyses import AnalysisStatus
from emotion_contract.events import Stage
from emotion_contract.results import AnalysisResult, UtteranceResult
from emotion_contract.webhooks import WebhookEventType
from shared.db.models import ACTIVE_STATUSES, FusionPart, Job, JobCreate, UtteranceRecord

from .usage import QuotaLimits, charge, charge_more, refund
from .webhook_outbox import record_job_event

MAX_PAGE_SIZE: Final = 500
_ACTIVE: Final = sorted(ACTIVE_STATUSES)
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
    *, session: AsyncSession, owner: str, job_in: JobCreate, quota: QuotaCharge | None = None
) -> tuple[Job, bool]:
    """The job for (owner, object key), and whether this call created it; safe under concurrent calls.

    With `quota`, a new job is charged to it in the same transaction; when the quota does not cover it,
    `QuotaExceededError` is raised and nothing is created. An existing job is returned uncharged.
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
    await session.commit()
    return job, created


async def find_job_by_key(*, session: AsyncSession, owner: str, object_key: str) -> Job | None:
    """The owner's job of this upload key, if one was made."""
    statement = (
        select(Job).where(Job.owner == owner, Job.object_key == object_key).execution_options(**_FRESH)
    )
    return (await session.exec(statement)).first()


async def requeue_failed_job(
    *, session: AsyncSession, owner: str, object_key: str, code: str, quota: QuotaCharge | None = None
) -> Job | None:
    """Queue again, as a new attempt, the owner's job of this key that failed with `code`; charge it again.

    For a job whose request never reached the queue: sending its key again retries it without a new
    upload. None when there is no such job (another call requeued it first, or it failed otherwise);
    `QuotaExceededError` when the quota no longer covers it, and the job stays failed.
    """
    charged = _charged_columns(quota)
    revived = await session.exec(
        update(Job)
        .where(
            col(Job.owner) == owner,
            col(Job.object_key) == object_key,
            col(Job.status) == AnalysisStatus.FAILED,
            col(Job.error_code) == code,
        )
        .values(**_new_attempt(), error_code=None, error_reason=None, completed_at=None, **charged)
        .returning(col(Job.id))
        .execution_options(**_NO_SYNC)
    )
    job_id = revived.scalar_one_or_none()
    if job_id is None:
        await session.commit()
        return None
    if quota is not None:
        await _charge_or_roll_back(session, owner, quota)
    job = (await session.exec(select(Job).where(Job.id == job_id).execution_options(**_FRESH))).one()
    await session.commit()
    return job


def _new_attempt() -> dict[str, object]:
    """The columns that start a job's next attempt, queued and in no stage yet."""
    return {
        "attempt": col(Job.attempt) + 1,
        "status": AnalysisStatus.QUEUED,
        "stage": None,
        "stage_started_at": None,
        "updated_at": func.now(),
    }


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


async def mark_stage(*, session: AsyncSession, job_id: uuid.UUID, stage: Stage, attempt: int) -> bool:
    """Move a live job of this attempt to `processing` in `stage`; False for stale or finished jobs."""
    entering_stage = or_(col(Job.status) == AnalysisStatus.QUEUED, col(Job.stage).is_distinct_from(stage))
    statement = (
        update(Job)
        .where(col(Job.id) == job_id, col(Job.attempt) == attempt, col(Job.status).in_(_ACTIVE))
        .values(
            status=AnalysisStatus.PROCESSING,
            stage=stage,
            # A redelivered progress event must not restart the clock the stuck-job sweeper reads.
            stage_started_at=case((entering_stage, func.now()), else_=col(Job.stage_started_at)),
            updated_at=func.now(),
        )
        .returning(col(Job.id))
        .execution_options(**_NO_SYNC)
    )
    changed = (await session.exec(statement)).scalar_one_or_none() is not None
    if changed:
        await record_job_event(
            session, job_id=job_id, type_=WebhookEventType.ANALYSIS_PROGRESS, attempt=attempt, stage=stage
        )
    await session.commit()
    return changed


async def complete_job(*, session: AsyncSession, job_id: uuid.UUID, result: AnalysisResult) -> bool:
    """Store the result and its utterances and finish the job, in one transaction; False if already final.

    The seconds charged when the job was made came from the file's header; the transcriber measured the
    file itself. Whatever it measured beyond the charge is charged now (a header can claim 0.00006 s for
    a minute of video), past the limit if need be: the work is done, and the next file is refused.
    """
    measured = round(result.duration_s, 3)
    statement = (
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status).in_(_ACTIVE))
        .values(
            status=AnalysisStatus.COMPLETED,
            stage=Stage.FUSE,  # the last stage, even when its progress event arrives after the result
            result=result.model_dump(mode="json"),
            bundle_version=result.model_version,
            duration_s=result.duration_s,
            charged_seconds=func.greatest(col(Job.charged_seconds), measured),
            completed_at=func.now(),
            updated_at=func.now(),
        )
        .returning(col(Job.attempt), col(Job.owner), col(Job.quota_period), col(Job.charged_seconds))
        .execution_options(**_NO_SYNC)
    )
    # RETURNING gives the row after the update: the charge before it is what it had to be raised from.
    before = await session.exec(
        select(Job.charged_seconds).where(col(Job.id) == job_id).execution_options(**_FRESH)
    )
    charged_before = before.one_or_none()
    updated = (await session.exec(statement)).one_or_none()
    if updated is None:
        # Commit, not rollback: nothing changed, and a rollback would expire the caller's loaded rows.
        await session.commit()
        return False
    attempt, owner, quota_period, charged_after = updated
    if quota_period is not None and charged_before is not None:
        await charge_more(
            session=session, owner=owner, period=quota_period, video_seconds=charged_after - charged_before
        )
    session.add_all(_utterance_record(job_id, utterance) for utterance in result.utterances)
    await record_job_event(
        session, job_id=job_id, type_=WebhookEventType.ANALYSIS_COMPLETED, attempt=attempt, stage=Stage.FUSE
    )
    await session.commit()
    return True


async def fail_job(
    *,
    session: AsyncSession,
    job_id: uuid.UUID,
    stage: Stage,
    code: str,
    reason: str,
    refund_units: bool = True,
) -> bool:
    """End a live job as failed in `stage`, giving its units back unless told not to (work was spent on
    it); False when the job is missing or already final."""
    if not code or not reason:
        raise ValueError("a failure needs both a code and a reason")
    statement = (
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status).in_(_ACTIVE))
        .values(
            status=AnalysisStatus.FAILED,
            stage=stage,
            error_code=code,
            error_reason=reason,
            completed_at=func.now(),
            updated_at=func.now(),
        )
        .returning(col(Job.owner), col(Job.attempt), col(Job.quota_period), col(Job.charged_seconds))
        .execution_options(**_NO_SYNC)
    )
    failed = (await session.exec(statement)).one_or_none()
    if failed is None:
        await session.commit()
        return False
    owner, attempt, quota_period, charged_seconds = failed
    if quota_period is not None and refund_units:
        # A failed analysis gives its units back, exactly once: a job fails only once.
        await refund(session=session, owner=owner, period=quota_period, video_seconds=charged_seconds)
    await record_job_event(
        session, job_id=job_id, type_=WebhookEventType.ANALYSIS_FAILED, attempt=attempt, stage=stage
    )
    await session.commit()
    return True


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


async def redrive_job(
    *, session: AsyncSession, job_id: uuid.UUID, expected_attempt: int | None = None
) -> int | None:
    """Queue a live job again as a new attempt and return that attempt's number.

    None when the job is missing, already final, or (with `expected_attempt`) was re-driven by someone
    else meanwhile, so two sweepers never start two attempts.
    """
    statement = update(Job).where(col(Job.id) == job_id, col(Job.status).in_(_ACTIVE))
    if expected_attempt is not None:
        statement = statement.where(col(Job.attempt) == expected_attempt)
    statement = statement.values(**_new_attempt()).returning(col(Job.attempt)).execution_options(**_NO_SYNC)
    attempt: int | None = (await session.exec(statement)).scalar_one_or_none()
    await session.commit()
    return attempt


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
