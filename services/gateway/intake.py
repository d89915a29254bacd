"""Accepting a file for analysis: upload keys, checks on the uploaded object, creating and queueing the job.

Every check runs before the job is created, so a refused request leaves nothing behind but (for a
presigned upload) the client's own object. What is refused raises an `IntakeError` (or the quota's
`QuotaExceededError`); the API maps them to HTTP answers (`services.gateway.api.domain_errors`).
"""

import asyncio
import logging
import re
import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from emotion_contract.analyses import UploadUrl
from emotion_contract.errors import FailureCode
from shared.db import Job, JobCreate
from shared.media.container import SNIFF_BYTES, MediaError, sniff_container
from shared.storage import ObjectNotFoundError, ObjectStore

from .credentials import Principal
from .db.jobs import QuotaCharge, change_job, create_job
from .db.upload_grants import grant_upload
from .db.usage import QuotaExceededError, QuotaLimits, current_period
from .job_machine import Requeue
from .media_probe import MediaProber, ProbeLimits
from .media_types import UnsupportedFileTypeError, content_type_for, sanitise_filename
from .settings import Settings
from .state import Gateway
from .webhooks.targets import InvalidTargetError, validate_subscription_url

KEY_ROOT: Final = "uploads"
# Frozen copies of what was checked, under keys no presigned URL is ever made for: a client can write its
# upload key until the URL expires, but not what its analysis reads.
MEDIA_ROOT: Final = "media"
_KEY_ID: Final = re.compile(r"[0-9a-f]{32}")

logger = logging.getLogger(__name__)


class IntakeError(Exception):
    """A file or key this gateway does not analyse; `code` is stable, the message is for people."""

    code: str = "invalid_upload"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownUpload(IntakeError):
    code = "unknown_key"

    def __init__(self, key: str) -> None:
        super().__init__(f"no uploaded file of yours has the key {key!r}")


class EmptyFile(IntakeError):
    code = "empty_file"

    def __init__(self) -> None:
        super().__init__("the file is empty")


class FileTooLarge(IntakeError):
    code = "file_too_large"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the file is larger than the limit of {max_bytes} bytes")


class UnsupportedFile(IntakeError):
    """A name of a type the pipeline cannot read (`unsupported_media_type`), or a file that does not start
    like any supported container (`not_media`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InvalidCallbackUrl(IntakeError):
    code = "invalid_callback_url"


def check_callback_url(url: str, *, allow_private: bool, ports: Collection[int] | None = None) -> str:
    """A callback URL passes the webhooks' checks (public addresses only, no credentials, http(s), one of
    the outbound ports)."""
    try:
        return validate_subscription_url(url, allow_private=allow_private, ports=ports)
    except InvalidTargetError as exc:
        raise InvalidCallbackUrl(f"callback_url: {exc}") from exc


class UnreadableMedia(IntakeError):
    """A header that cannot be read, or declares what the pipeline will not take (`MediaError`'s code)."""

    def __init__(self, error: MediaError) -> None:
        super().__init__(error.message)
        self.code = error.code.value


def owner_prefix(owner: str) -> str:
    return f"{KEY_ROOT}/{owner}/"


def safe_filename(filename: str) -> str:
    """The sanitised filename; `UnsupportedFile` for a type the pipeline cannot read."""
    try:
        return sanitise_filename(filename)
    except UnsupportedFileTypeError as exc:
        raise UnsupportedFile("unsupported_media_type", str(exc)) from exc


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
        raise UnknownUpload(key) from exc
    return media_key


def filename_of_key(owner: str, key: str) -> str:
    """The filename an upload key of this owner ends in; `UnknownUpload` for any other key."""
    parts = key.removeprefix(owner_prefix(owner)).split("/")
    if not key.startswith(owner_prefix(owner)) or len(parts) != 2 or not _KEY_ID.fullmatch(parts[0]):
        raise UnknownUpload(key)
    try:
        if sanitise_filename(parts[1]) == parts[1]:
            return parts[1]
    except UnsupportedFileTypeError:
        pass
    raise UnknownUpload(key)


def unclaimed_after(settings: Settings) -> timedelta:
    """How long an upload no analysis claimed stays in the bucket (at least its URL's lifetime)."""
    return timedelta(seconds=max(settings.unclaimed_upload_ttl_s, settings.upload_url_ttl_s))


async def upload_url(gateway: Gateway, owner: str, filename: str) -> UploadUrl:
    """A presigned POST for a new key of the owner's, within the owner's cap of URLs not analysed yet
    (`TooManyUploadUrls`)."""
    settings = gateway.settings
    key = new_upload_key(owner, filename)
    async with gateway.sessions() as session:
        await grant_upload(
            session=session,
            owner=owner,
            key=key,
            limit=settings.max_upload_urls_per_account,
            forget_after=unclaimed_after(settings),
        )
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


async def uploaded_duration_s(store: ObjectStore, bucket: str, key: str, prober: MediaProber) -> float:
    """The uploaded object's declared duration, read over a short-lived presigned URL by a bounded child
    process (header only: the pipeline's probe later checks every packet)."""
    return await _declared_duration(store.presigned_get_url(bucket, key, PROBE_URL_TTL), prober)


async def received_duration_s(path: Path, prober: MediaProber) -> float:
    return await _declared_duration(str(path), prober)


def media_prober(settings: Settings) -> MediaProber:
    limits = ProbeLimits(
        memory_bytes=settings.media_probe_memory_mib * 1024 * 1024, timeout_s=settings.media_probe_timeout_s
    )
    return MediaProber(limits, settings.media_probe_concurrency)


async def _declared_duration(source: str, prober: MediaProber) -> float:
    try:
        return await prober.declared_duration(source)
    except MediaError as exc:
        raise UnreadableMedia(exc) from exc


async def check_uploaded_object(store: ObjectStore, bucket: str, key: str, *, max_bytes: int) -> int:
    """The size of an uploaded object that passes the checks; the object is removed when it is too large."""
    try:
        info = await asyncio.to_thread(store.stat, bucket, key)
    except ObjectNotFoundError as exc:
        raise UnknownUpload(key) from exc
    if info.size == 0:
        raise EmptyFile()
    if info.size > max_bytes:
        await asyncio.to_thread(store.remove, bucket, key)
        raise FileTooLarge(max_bytes)
    head = await asyncio.to_thread(store.read_head, bucket, key, SNIFF_BYTES)
    check_media_head(head)
    return info.size


async def check_received_file(path: Path, size: int) -> None:
    if size == 0:
        raise EmptyFile()
    head = await asyncio.to_thread(_read_head, path)
    check_media_head(head)


def check_media_head(head: bytes) -> None:
    if sniff_container(head) is None:
        raise UnsupportedFile(
            "not_media", "the file does not start like any supported video or audio container"
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
    callback_url: str | None = None,
    speakers: int | None = None,
) -> tuple[Job, bool]:
    """Create the job for (owner, key) analysing the frozen `media_key`, charged to the owner's quota and
    queued (its `analysis.requested` committed with it to the Kafka outbox, which the relay publishes, so
    a broker outage delays the analysis and never loses or fails it).

    An existing job is returned as it is, not charged again, with one exception: a job that failed because
    the queue refused it (before the outbox, the gateway published beside its commit) is charged and queued
    again, so that sending its key again retries it. A new job gets its callback (`callback_url`, checked
    by the caller) in the same transaction; an existing one keeps what it had, and its `speakers` too.
    """
    owner = principal.owner
    job_in = JobCreate(
        bucket=gateway.settings.uploads_bucket,
        object_key=key,
        media_key=media_key,
        filename=filename,
        content_type=content_type_for(filename),
        size_bytes=size,
        speakers=speakers,
    )
    limits = principal.limits
    quota = QuotaCharge(
        period=current_period(),
        video_seconds=round(duration_s, 3),
        limits=QuotaLimits(analyses=limits.monthly_analyses, video_seconds=limits.monthly_video_seconds),
    )
    try:
        async with gateway.sessions() as session:
            job, created = await create_job(
                session=session, owner=owner, job_in=job_in, quota=quota, callback_url=callback_url
            )
            if not created and job.error_code == FailureCode.QUEUE_UNAVAILABLE:
                retry = Requeue(code=FailureCode.QUEUE_UNAVAILABLE)
                requeued = await change_job(session=session, job_id=job.id, change=retry, quota=quota)
                if requeued is not None:
                    job, created = requeued, True
    except QuotaExceededError as exc:
        gateway.metrics.quota_rejections.labels(exc.resource.value).inc()
        raise
    return job, created


def _read_head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(SNIFF_BYTES)
