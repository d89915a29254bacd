import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from emotion_contract.analyses import Analysis, AnalysisList
from emotion_contract.errors import FailureCode
from emotion_contract.labels import SpeakerCount
from shared.claim_check import forget_job as forget_job_payloads
from shared.db import Job

from ...credentials import Principal
from ...db.jobs import count_jobs, delete_job, find_job_by_key, get_job, list_jobs
from ...db.upload_grants import spend_upload
from ...db.usage import QuotaExceededError, QuotaLimits, check_room, current_period
from ...db.webhook_subscriptions import find_callback
from ...errors import ApiError, authenticated_responses, error_responses
from ...intake import (
    FileTooLarge,
    IntakeError,
    check_callback_url,
    check_received_file,
    check_uploaded_object,
    filename_of_key,
    freeze_upload,
    new_media_key,
    new_upload_key,
    received_duration_s,
    safe_filename,
    submit_job,
    uploaded_duration_s,
)
from ...media_types import content_type_for
from ...multipart_upload import MalformedUploadError, UploadTooLargeError, receive_file
from ...schemas import AnalysisCreate, analysis_of, callback_of
from ...slots import NoSlotFree, SlotScope
from ...state import Gateway
from ...url_fetch import FetchLimits, fetch_to_file
from ...watching import job_changes
from ..deps import CurrentOwner, CurrentPrincipal, GatewayDep, PageLimit, PageOffset, SessionDep

MAX_WAIT_S: Final = 60.0
MAX_JSON_BODY_BYTES: Final = 64 * 1024
# Multipart framing around the file: boundaries, part headers, small fields.
MULTIPART_OVERHEAD_BYTES: Final = 1024 * 1024
SSE_PING_S: Final = 15

_FILE_FIELD: Final = "file"
_CALLBACK_FIELD: Final = "callback_url"
_SPEAKERS_FIELD: Final = "speakers"
_SPEAKER_COUNT: Final = TypeAdapter(SpeakerCount)
_MULTIPART_SCHEMA: Final = {
    "type": "object",
    "properties": {
        _FILE_FIELD: {"type": "string", "format": "binary"},
        _CALLBACK_FIELD: AnalysisCreate.model_json_schema()["properties"][_CALLBACK_FIELD],
        _SPEAKERS_FIELD: AnalysisCreate.model_json_schema()["properties"][_SPEAKERS_FIELD],
    },
    "required": [_FILE_FIELD],
}
_CREATE_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": AnalysisCreate.model_json_schema()},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        },
    }
}

router = APIRouter(prefix="/analyses", tags=["analyses"], responses=authenticated_responses())


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_CREATE_BODY,
    responses={
        status.HTTP_200_OK: {"model": Analysis, "description": "The analysis of this key already existed"},
        **error_responses(
            status.HTTP_401_UNAUTHORIZED,
            status.HTTP_404_NOT_FOUND,
            status.HTTP_413_CONTENT_TOO_LARGE,
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            status.HTTP_503_SERVICE_UNAVAILABLE,
        ),
    },
)
async def create_analysis(
    request: Request, response: Response, principal: CurrentPrincipal, gateway: GatewayDep
) -> Analysis:
    """Analyse an uploaded file (JSON `{"key"}`) or the file sent in this request (multipart `file`).

    With `callback_url` (a JSON field, or a form field beside the file), the analysis' completion or
    failure is POSTed there, signed like a webhook; the answer's `callback` carries its secret, once.
    With `speakers` (the same), the utterances are told apart as that many people."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        job, created = await _analyse_sent_file(request, principal, gateway)
    elif content_type.startswith("application/json"):
        job, created = await _analyse_uploaded_key(request, principal, gateway)
    else:
        raise ApiError(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "unsupported_content_type",
            "send application/json with the upload key, or multipart/form-data with the file",
        )
    if created:
        gateway.metrics.jobs_created.labels(
            "multipart" if content_type.startswith("multipart") else "key"
        ).inc()
    else:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = str(request.url_for("get_analysis", analysis_id=job.id))
    analysis = analysis_of(job)
    if created:  # its callback's secret is shown this once
        async with gateway.sessions() as session:
            callback = await find_callback(session=session, job_id=job.id)
        if callback is not None:
            analysis.callback = callback_of(callback)
    return analysis


@router.get("", responses=error_responses(status.HTTP_401_UNAUTHORIZED))
async def list_analyses(
    owner: CurrentOwner,
    session: SessionDep,
    limit: PageLimit = 20,
    offset: PageOffset = 0,
) -> AnalysisList:
    """List your analyses, newest first, without their results."""
    jobs = await list_jobs(session=session, owner=owner, limit=limit, offset=offset)
    total = await count_jobs(session=session, owner=owner)
    items = [analysis_of(job, with_result=False) for job in jobs]
    return AnalysisList(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/{analysis_id}", responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND)
)
async def get_analysis(
    analysis_id: uuid.UUID,
    owner: CurrentOwner,
    gateway: GatewayDep,
    wait: Annotated[
        float,
        Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for the analysis to finish (long poll)"),
    ] = 0,
) -> Analysis:
    """Get an analysis: its status, stage, error, and the result once completed."""
    deadline = time.monotonic() + wait
    latest: Job | None = None
    release = _watch_slot(gateway, owner) if wait > 0 else None
    try:
        async for job in _changes(gateway, analysis_id, owner, deadline):
            latest = job
    finally:
        if release is not None:
            release()
    if latest is None:
        raise _not_found(analysis_id)
    if not latest.status.is_terminal:
        # Only status and stage changes are yielded; read the row once more for its latest timestamps.
        async with gateway.sessions() as session:
            latest = await get_job(session=session, job_id=analysis_id, owner=owner) or latest
    return analysis_of(latest)


@router.get(
    "/{analysis_id}/events",
    response_class=EventSourceResponse,
    responses={
        status.HTTP_200_OK: {
            "content": {"text/event-stream": {}},
            "description": "`status` events with the analysis (no result) as it moves, then one "
            "`completed` or `failed` event with the full analysis, then the stream ends",
        },
        **error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
    },
)
async def stream_analysis_events(
    analysis_id: uuid.UUID, owner: CurrentOwner, gateway: GatewayDep
) -> EventSourceResponse:
    """Follow an analysis as server-sent events until it completes or fails."""
    async with gateway.sessions() as session:
        if await get_job(session=session, job_id=analysis_id, owner=owner) is None:
            raise _not_found(analysis_id)
    release = _watch_slot(gateway, owner)
    # The stream gives its slot back when it ends; the background task, if it never started.
    return EventSourceResponse(
        _status_events(gateway, analysis_id, owner, release),
        ping=SSE_PING_S,
        background=BackgroundTask(release),
    )


def _watch_slot(gateway: Gateway, owner: str) -> Callable[[], None]:
    try:
        return gateway.watch_slots.take(owner)
    except NoSlotFree as exc:
        gateway.metrics.quota_rejections.labels("watches").inc()
        raise ApiError(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too_many_watches",
            f"this account already follows {exc.limit} analyses at once (event streams and long polls); "
            "close one, or follow them with webhooks",
            headers={"Retry-After": "5"},
        ) from exc


SCRATCH_RETRY_AFTER_S: Final = 10


@asynccontextmanager
async def _scratch_space(gateway: Gateway, principal: Principal, size: int) -> AsyncIterator[None]:
    """Room for a file of up to `size` bytes on this replica's scratch volume, held while the block runs.

    Refused before a byte is read: 429 when the owner's month has nothing left or the owner's files already
    hold its share of the volume, 503 when the volume is spoken for (another replica, or an upload URL,
    takes the file)."""
    limits = principal.limits
    async with gateway.sessions() as session:
        await check_room(
            session=session,
            owner=principal.owner,
            period=current_period(),
            limits=QuotaLimits(analyses=limits.monthly_analyses, video_seconds=limits.monthly_video_seconds),
        )
    try:
        release = gateway.scratch.take(principal.owner, size)
    except NoSlotFree as exc:
        retry = {"Retry-After": str(SCRATCH_RETRY_AFTER_S)}
        if exc.scope is SlotScope.ACCOUNT:
            gateway.metrics.quota_rejections.labels("scratch").inc()
            raise ApiError(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "too_many_transfers",
                f"this account's files being sent or fetched at once would hold more than {exc.limit} bytes "
                "of this server's scratch space; wait for one to finish, or upload through an upload URL",
                headers=retry,
            ) from exc
        gateway.metrics.scratch_refusals.inc()
        raise ApiError(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "scratch_space_full",
            "this server is receiving as many files as its scratch space holds; try again shortly, or "
            "upload through an upload URL",
            headers=retry,
        ) from exc
    try:
        yield
    finally:
        release()


async def _status_events(
    gateway: Gateway, job_id: uuid.UUID, owner: str, release: Callable[[], None]
) -> AsyncIterator[ServerSentEvent]:
    try:
        async for job in _changes(gateway, job_id, owner, None):
            if job.status.is_terminal:
                yield ServerSentEvent(event=job.status.value, data=analysis_of(job).model_dump_json())
            else:
                data = analysis_of(job, with_result=False).model_dump_json(exclude={"result"})
                yield ServerSentEvent(event="status", data=data)
    finally:
        release()


def _changes(gateway: Gateway, job_id: uuid.UUID, owner: str, deadline: float | None) -> AsyncIterator[Job]:
    return job_changes(
        updates=gateway.updates, sessions=gateway.sessions, job_id=job_id, owner=owner, deadline=deadline
    )


@router.delete(
    "/{analysis_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(status.HTTP_404_NOT_FOUND, status.HTTP_409_CONFLICT),
)
async def delete_analysis(analysis_id: uuid.UUID, owner: CurrentOwner, gateway: GatewayDep) -> None:
    """Delete a finished analysis, its results and its uploaded file."""
    async with gateway.sessions() as session:
        job = await get_job(session=session, job_id=analysis_id, owner=owner)
        if job is None:
            raise _not_found(analysis_id)
        if not job.status.is_terminal:
            raise ApiError(
                status.HTTP_409_CONFLICT,
                "analysis_in_progress",
                f"analysis {analysis_id} is still {job.status.value}; delete it once it has finished",
            )
        # The files first: if removing them fails the analysis is still there to delete again; removal is
        # idempotent, so a retried DELETE finishes the job.
        for key in {job.object_key, job.stored_key}:
            await asyncio.to_thread(gateway.store.remove, job.bucket, key)
        # The bodies of its large events (transcript, features, result), kept by claim check.
        await asyncio.to_thread(forget_job_payloads, gateway.store, job.bucket, job.id)
        await delete_job(session=session, job_id=analysis_id, owner=owner)
    gateway.metrics.jobs_deleted.inc()


async def _analyse_uploaded_key(request: Request, principal: Principal, gateway: Gateway) -> tuple[Job, bool]:
    owner = principal.owner
    body = await _read_limited(request, MAX_JSON_BODY_BYTES)
    try:
        create = AnalysisCreate.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from exc
    settings = gateway.settings
    callback_url = _callback_url(create.callback_url, gateway)
    if create.url is not None:
        return await _analyse_fetched(create.url, callback_url, create.speakers, principal, gateway)
    assert create.key is not None  # one of the two, by AnalysisCreate's validation
    key = create.key
    filename = filename_of_key(owner, key)
    bucket, store = settings.uploads_bucket, gateway.store
    async with gateway.sessions() as session:
        existing = await find_job_by_key(session=session, owner=owner, object_key=key)
    if existing is not None and existing.error_code != FailureCode.QUEUE_UNAVAILABLE:
        return existing, False
    if existing is not None:  # refused by the queue before the outbox: queue it again, from its copy
        duration_s = await uploaded_duration_s(store, bucket, existing.stored_key, gateway.media_prober)
        return await submit_job(
            gateway,
            principal=principal,
            key=key,
            media_key=existing.stored_key,
            filename=filename,
            size=existing.size_bytes,
            duration_s=duration_s,
            callback_url=callback_url,
            speakers=create.speakers,
        )
    # A quick refusal on what the client uploaded, then the checks again on the frozen copy, which is what
    # the workers will read: the client may still write its upload key, never that copy.
    await check_uploaded_object(store, bucket, key, max_bytes=settings.max_upload_bytes)
    media_key = await freeze_upload(store, bucket, key, owner, filename)
    job: Job | None = None
    try:
        size = await check_uploaded_object(store, bucket, media_key, max_bytes=settings.max_upload_bytes)
        duration_s = await uploaded_duration_s(store, bucket, media_key, gateway.media_prober)
        job, created = await submit_job(
            gateway,
            principal=principal,
            key=key,
            media_key=media_key,
            filename=filename,
            size=size,
            duration_s=duration_s,
            callback_url=callback_url,
            speakers=create.speakers,
        )
    except (IntakeError, QuotaExceededError):
        await asyncio.to_thread(store.remove, bucket, media_key)  # no job holds the copy
        raise
    if job.media_key != media_key:  # a concurrent request for the key made the job with its own copy
        await asyncio.to_thread(store.remove, bucket, media_key)
    else:
        await asyncio.to_thread(store.remove, bucket, key)  # the job has its copy; the upload is spent
    async with gateway.sessions() as session:
        await spend_upload(session=session, key=key)  # its URL no longer counts against the owner
    return job, created


async def _analyse_sent_file(request: Request, principal: Principal, gateway: Gateway) -> tuple[Job, bool]:
    settings = gateway.settings
    declared = request.headers.get("content-length")
    limit = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise FileTooLarge(settings.max_upload_bytes)
    # The file is no longer than the body that carries it (which ends at its declared length).
    size = min(int(declared), settings.max_upload_bytes) if declared and declared.isdigit() else None
    async with _scratch_space(gateway, principal, max(1, size or settings.max_upload_bytes)):
        try:
            received = await receive_file(
                request.headers["content-type"],
                request.stream(),
                field_name=_FILE_FIELD,
                max_bytes=settings.max_upload_bytes,
                accept_filename=safe_filename,
                text_fields=frozenset({_CALLBACK_FIELD, _SPEAKERS_FIELD}),
            )
        except UploadTooLargeError as exc:
            raise FileTooLarge(exc.max_bytes) from exc
        except MalformedUploadError as exc:
            raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_upload", str(exc)) from exc
        try:
            callback_url = _callback_url(received.fields.get(_CALLBACK_FIELD), gateway)
            speakers = _speaker_count(received.fields.get(_SPEAKERS_FIELD))
        except (IntakeError, RequestValidationError):
            await asyncio.to_thread(received.path.unlink, missing_ok=True)
            raise
        return await _analyse_local_file(
            received.path, received.filename, received.size, principal, gateway, callback_url, speakers
        )


async def _analyse_fetched(
    url: str, callback_url: str | None, speakers: int | None, principal: Principal, gateway: Gateway
) -> tuple[Job, bool]:
    settings = gateway.settings
    limits = FetchLimits(
        max_bytes=settings.max_upload_bytes,
        timeout_s=settings.url_fetch_timeout_s,
        connect_timeout_s=settings.url_fetch_connect_timeout_s,
        allow_private=settings.url_fetch_allow_private_targets,
        ports=frozenset(settings.outbound_ports),
    )
    async with _scratch_space(gateway, principal, settings.max_upload_bytes):
        fetched = await fetch_to_file(url, limits)
        return await _analyse_local_file(
            fetched.path, fetched.filename, fetched.size, principal, gateway, callback_url, speakers
        )


async def _analyse_local_file(
    path: Path,
    filename: str,
    size: int,
    principal: Principal,
    gateway: Gateway,
    callback_url: str | None,
    speakers: int | None,
) -> tuple[Job, bool]:
    """A file this process holds (sent in the request, or fetched): checked, stored under a key no client
    can write, and submitted; the local file is deleted either way."""
    owner, bucket = principal.owner, gateway.settings.uploads_bucket
    try:
        await check_received_file(path, size)
        duration_s = await received_duration_s(path, gateway.media_prober)
        # The job's name; the file goes straight to a key no client can write.
        key = new_upload_key(owner, filename)
        media_key = new_media_key(owner, filename)
        await asyncio.to_thread(
            gateway.store.upload_file, bucket, media_key, path, content_type_for(filename)
        )
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    try:
        return await submit_job(
            gateway,
            principal=principal,
            key=key,
            media_key=media_key,
            filename=filename,
            size=size,
            duration_s=duration_s,
            callback_url=callback_url,
            speakers=speakers,
        )
    except Exception:
        await asyncio.to_thread(gateway.store.remove, bucket, media_key)  # no job holds the object
        raise


def _speaker_count(value: str | None) -> int | None:
    """The `speakers` form field, validated as the JSON field is (a 422 of the same shape)."""
    if value is None:
        return None
    try:
        return _SPEAKER_COUNT.validate_strings(value.strip())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", _SPEAKERS_FIELD)} for error in exc.errors(include_url=False)]
        ) from exc


def _callback_url(url: str | None, gateway: Gateway) -> str | None:
    if url is None:
        return None
    return check_callback_url(
        url,
        allow_private=gateway.settings.webhook_allow_private_targets,
        ports=gateway.settings.outbound_ports,
    )


async def _read_limited(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise ApiError(
                status.HTTP_413_CONTENT_TOO_LARGE,
                "body_too_large",
                f"the JSON body is larger than {limit} bytes",
            )
    return bytes(body)


def _not_found(analysis_id: uuid.UUID) -> ApiError:
    return ApiError(
        status.HTTP_404_NOT_FOUND, "analysis_not_found", f"no analysis of yours has the id {analysis_id}"
    )
