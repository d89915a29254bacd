"""Accepting a file for analysis: upload keys, checks on the uploaded object, creating and queueing the job.

Every check runs before the job is created, so a refused request leaves nothing behind but (for a
presigned upload) the client's own object.
"""

import asyncio
import logging
import math
import re
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Final

from fastapi import status

from emotion_contract.analyses import UploadUrl
from emotion_contract.events import AnalysisRequested, Stage
from shared.db import Job, JobCreate
from shared.media.container import SNIFF_BYTES, MediaError, read_declared_duration, sniff_container
from shared.storage import ObjectNotFoundError, ObjectStore

from .credentials import Principal
from .db.jobs import QuotaCharge, create_job, fail_job, requeue_failed_job
from .db.usage import QuotaExceededError, QuotaLimits, current_period
from .errors import ApiError
from .job_updates import notify_job_updated
from .media_types import UnsupportedFileTypeError, content_type_for, sanitise_filename
from .state import Gateway

KEY_ROOT: Final = "uploads"
# Frozen copies of what was checked, under keys no presigned URL is ever made for: a client can write its
# upload key until the URL expires, but not what its analysis reads.
MEDIA_ROOT: Final = "media"
QUEUE_UNAVAILABLE: Final = "queue_unavailable"
_KEY_ID: Final = re.compile(r"[0-9a-f]{32}")

logger = logging.getLogger(__name__)


def owner_prefix(owner: str) -> str:
    return f"{KEY_ROOT}/{owner}/"


def safe_filename(filename: str) -> str:
    """The sanitised filename, or a 415 `unsupported_media_type` for a type the pipeline cannot read."""
    try:
        return sanitise_filename(filename)
    except UnsupportedFileTypeError as exc:
        raise ApiError(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", str(exc)) from exc


def new_upload_key(owner: str, filename: str) -> str:
    return f"{owner_prefix(owner)}{uuid.uuid4().hex}/{safe_filename(filename)}"


def new_media_key(owner: str, filename: str) -> str:
    return f"{MEDIA_ROOT}/{owner}/{uuid.uuid4().hex}/{filename}"


async def freeze_upload(store: ObjectStore, bucket: str, key: str, owner: str, filename: str) -> str:
    """Copy the client's upload, server-side, to a new key clients cannot write; that key."""
    media_key = new_media_key(owner, filename)
    try:
        await asyncio.to_thread(store.copy, bucket, key, media_key)
    except ObjectNotFoundError as exc:
        raise _unknown_key(key) from exc
    return media_key


def filename_of_key(owner: str, key: str) -> str:
    """The filename an upload key of this owner ends in; 404 `unknown_key` for any other key."""
    parts = key.removeprefix(owner_prefix(owner)).split("/")
    if not key.startswith(owner_prefix(owner)) or len(parts) != 2 or not _KEY_ID.fullmatch(parts[0]):
        raise _unknown_key(key)
    try:
        if sanitise_filename(parts[1]) == parts[1]:
            return parts[1]
    except UnsupportedFileTypeError:
        pass
    raise _unknown_key(key)


def upload_url(gateway: Gateway, owner: str, filename: str) -> UploadUrl:
    settings = gateway.settings
    key = new_upload_key(owner, filename)
    ttl = timedelta(seconds=settings.upload_url_ttl_s)
    # A POST policy rather than a presigned PUT: only it can bound the size the object store takes.
    url, fields = gateway.presigner.presigned_post(
        settings.uploads_bucket, key, ttl, max_bytes=settings.max_upload_bytes
    )
    return UploadUrl(
        key=key,
        upload_url=url,
        fields=fields,
        expires_at=datetime.now(UTC) + ttl,
        max_bytes=settings.max_upload_bytes,
    )


PROBE_URL_TTL: Final = timedelta(minutes=5)


async def uploaded_duration_s(store: ObjectStore, bucket: str, key: str) -> float:
    """The uploaded object's declared duration, read over a short-lived presigned URL (header only: the
    pipeline's probe later checks every packet)."""
    return await _declared_duration(store.presigned_get_url(bucket, key, PROBE_URL_TTL))


async def received_duration_s(path: Path) -> float:
    return await _declared_duration(str(path))


async def _declared_duration(source: str) -> float:
    try:
        return await asyncio.to_thread(read_declared_duration, source)
    except MediaError as exc:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.code.value, exc.message) from exc


async def check_uploaded_object(store: ObjectStore, bucket: str, key: str, *, max_bytes: int) -> int:
    """The size of an uploaded object that passes the checks; the object is removed when it is too large."""
    try:
        info = await asyncio.to_thread(store.stat, bucket, key)
    except ObjectNotFoundError as exc:
        raise _unknown_key(key) from exc
    if info.size == 0:
        raise _empty_file()
    if info.size > max_bytes:
        await asyncio.to_thread(store.remove, bucket, key)
        raise too_large(max_bytes)
    head = await asyncio.to_thread(store.read_head, bucket, key, SNIFF_BYTES)
    check_media_head(head)
    return info.size


async def check_received_file(path: Path, size: int) -> None:
    if size == 0:
        raise _empty_file()
    head = await asyncio.to_thread(_read_head, path)
    check_media_head(head)


def check_media_head(head: bytes) -> None:
    if sniff_container(head) is None:
        raise ApiError(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "not_media",
            "the file does not start like any supported video or audio container",
        )


async def submit_job(
    gateway: Gateway,
    *,
    principal: Principal,
    key: str,
    media_key: str,
    filename: str,
    size: int,
    duration_s: float,
) -> tuple[Job, bool]:
    """Create the job for (owner, key) analysing the frozen `media_key`, charge it to the owner's quota and
    queue it.

    An existing job is returned as it is, not charged again, with one exception: a job whose request never
    reached the queue is charged and queued again, so that sending the key again retries it.
    """
    owner = principal.owner
    bucket = gateway.settings.uploads_bucket
    job_in = JobCreate(
        bucket=bucket,
        object_key=key,
        media_key=media_key,
        filename=filename,
        content_type=content_type_for(filename),
        size_bytes=size,
    )
    limits = principal.limits
    quota = QuotaCharge(
        period=current_period(),
        video_seconds=round(duration_s, 3),
        limits=QuotaLimits(analyses=limits.monthly_analyses, video_seconds=limits.monthly_video_seconds),
    )
    try:
        async with gateway.sessions() as session:
            job, created = await create_job(session=session, owner=owner, job_in=job_in, quota=quota)
            if not created and job.error_code == QUEUE_UNAVAILABLE:
                requeued = await requeue_failed_job(
                    session=session, owner=owner, object_key=key, code=QUEUE_UNAVAILABLE, quota=quota
                )
                if requeued is not None:
                    await notify_job_updated(session, requeued.id)
                    job, created = requeued, True
    except QuotaExceededError as exc:
        gateway.metrics.quota_rejections.labels(exc.resource.value).inc()
        raise quota_exceeded(exc) from exc
    if not created:
        return job, False
    event = AnalysisRequested(
        job_id=job.id,
        attempt=job.attempt,
        bucket=bucket,
        object_key=job.stored_key,
        filename=filename,
        size_bytes=job.size_bytes,
    )
    try:
        await gateway.publish(event)
    except Exception as exc:
        logger.exception("could not queue job %s", job.id)
        await _fail_unqueued(gateway, job, exc)
        raise ApiError(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            QUEUE_UNAVAILABLE,
            f"analysis {job.id} could not be queued and has failed, and its units were given back; "
            f'send {{"key": "{key}"}} to POST /v1/analyses later to queue it again without a new upload',
        ) from exc
    return job, True


async def _fail_unqueued(gateway: Gateway, job: Job, exc: BaseException) -> None:
    async with gateway.sessions() as session:
        logger.warning("job %s: the queue refused it: %r", job.id, exc)
        reason = "the analysis queue did not take the job; send its key again to retry"
        if await fail_job(
            session=session, job_id=job.id, stage=Stage.UPLOAD, code=QUEUE_UNAVAILABLE, reason=reason
        ):
            await notify_job_updated(session, job.id)


def quota_exceeded(exc: QuotaExceededError) -> ApiError:
    """429 with Retry-After at the month's end, and RateLimit fields describing the monthly quota."""
    reset_s = max(1, math.ceil((exc.used.resets_at - datetime.now(UTC)).total_seconds()))
    month_s = int((exc.used.resets_at - datetime.combine(exc.used.period, time(), UTC)).total_seconds())
    headers = {
        "Retry-After": str(reset_s),
        "RateLimit-Limit": f"{exc.limit:g}",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(reset_s),
        "RateLimit-Policy": f'{exc.limit:g};w={month_s};name="{exc.resource.value}"',
    }
    return ApiError(status.HTTP_429_TOO_MANY_REQUESTS, "quota_exceeded", str(exc), headers=headers)


def _read_head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(SNIFF_BYTES)


def _unknown_key(key: str) -> ApiError:
    return ApiError(
        status.HTTP_404_NOT_FOUND, "unknown_key", f"no uploaded file of yours has the key {key!r}"
    )


def _empty_file() -> ApiError:
    return ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, "empty_file", "the file is empty")


def too_large(max_bytes: int) -> ApiError:
    return ApiError(
        status.HTTP_413_CONTENT_TOO_LARGE,
        "file_too_large",
        f"the file is larger than the limit of {max_bytes} bytes",
    )
