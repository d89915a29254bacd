"""An analysis' files: its uploaded media (for a player) and its result as CSV, WebVTT and SubRip."""

import asyncio
import uuid
from datetime import timedelta
from typing import Final

from fastapi import APIRouter, Response, status
from fastapi.responses import RedirectResponse

from emotion_contract.analyses import AnalysisStatus
from emotion_contract.results import AnalysisResult
from emotion_contract.subtitles import to_srt, to_webvtt
from shared.media.container import SNIFF_BYTES

from ...db.jobs import get_job
from ...errors import ApiError, authenticated_responses, error_responses
from ...media_types import served_type
from ...result_csv import result_csv
from ..deps import CurrentOwner, GatewayDep, SessionDep

# Long enough for a player to load the file, short enough that a leaked URL soon stops working.
MEDIA_URL_TTL: Final = timedelta(minutes=30)

router = APIRouter(prefix="/analyses", tags=["analyses"], responses=authenticated_responses())


@router.get(
    "/{analysis_id}/media",
    response_class=RedirectResponse,
    status_code=status.HTTP_307_TEMPORARY_REDIRECT,
    responses={
        status.HTTP_307_TEMPORARY_REDIRECT: {
            "description": "To a presigned URL of the uploaded file, valid for "
            f"{int(MEDIA_URL_TTL.total_seconds() // 60)} minutes (it serves byte ranges)",
            "headers": {"Location": {"schema": {"type": "string"}, "description": "The presigned URL"}},
        },
        **error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
    },
)
async def get_analysis_media(
    analysis_id: uuid.UUID, owner: CurrentOwner, session: SessionDep, gateway: GatewayDep
) -> RedirectResponse:
    """The analysed video or audio file, for a player: a redirect to a short-lived download URL."""
    job = await get_job(session=session, job_id=analysis_id, owner=owner)
    if job is None:
        raise _not_found(analysis_id)
    # Served as the type its bytes announce and as an attachment-safe inline file, whatever Content-Type
    # the uploader gave the object: never as text/html from the object store's origin.
    head = await asyncio.to_thread(gateway.store.read_head, job.bucket, job.stored_key, SNIFF_BYTES)
    overrides = {
        "response-content-type": served_type(head, job.filename),
        "response-content-disposition": f'inline; filename="{job.filename}"',
    }
    url = await asyncio.to_thread(
        gateway.presigner.presigned_get_url, job.bucket, job.stored_key, MEDIA_URL_TTL, overrides
    )
    return RedirectResponse(
        url, status_code=status.HTTP_307_TEMPORARY_REDIRECT, headers={"Cache-Control": "private, no-store"}
    )


@router.get(
    "/{analysis_id}/export.csv",
    response_class=Response,
    responses={
        status.HTTP_200_OK: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "One row per utterance: times, text, top emotion and sentiment, every fused "
            "confidence, and each modality's top labels or why it was missing",
        },
        **error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND, status.HTTP_409_CONFLICT),
    },
)
async def export_analysis_csv(analysis_id: uuid.UUID, owner: CurrentOwner, session: SessionDep) -> Response:
    """The result of a completed analysis as CSV; 409 while it has no result."""
    result = await _completed_result(session, analysis_id, owner)
    return _attachment(result_csv(result), "text/csv; charset=utf-8", f"analysis-{analysis_id}.csv")


SUBTITLES_DESCRIPTION: Final = (
    "One cue per utterance, over its time span: its words, then its fused top emotion and sentiment with "
    "their confidences (`[joy 82% · positive 64%]`)"
)


@router.get(
    "/{analysis_id}/export.vtt",
    response_class=Response,
    responses={
        status.HTTP_200_OK: {
            "content": {"text/vtt": {"schema": {"type": "string"}}},
            "description": f"WebVTT. {SUBTITLES_DESCRIPTION}",
        },
        **error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND, status.HTTP_409_CONFLICT),
    },
)
async def export_analysis_webvtt(
    analysis_id: uuid.UUID, owner: CurrentOwner, session: SessionDep
) -> Response:
    """The result of a completed analysis as WebVTT subtitles (a player's <track>); 409 while it has none."""
    result = await _completed_result(session, analysis_id, owner)
    return _attachment(to_webvtt(result), "text/vtt; charset=utf-8", f"analysis-{analysis_id}.vtt")


@router.get(
    "/{analysis_id}/export.srt",
    response_class=Response,
    responses={
        status.HTTP_200_OK: {
            "content": {"application/x-subrip": {"schema": {"type": "string"}}},
            "description": f"SubRip. {SUBTITLES_DESCRIPTION}",
        },
        **error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND, status.HTTP_409_CONFLICT),
    },
)
async def export_analysis_srt(analysis_id: uuid.UUID, owner: CurrentOwner, session: SessionDep) -> Response:
    """The result of a completed analysis as SubRip subtitles; 409 while it has none."""
    result = await _completed_result(session, analysis_id, owner)
    return _attachment(to_srt(result), "application/x-subrip; charset=utf-8", f"analysis-{analysis_id}.srt")


async def _completed_result(session: SessionDep, analysis_id: uuid.UUID, owner: str) -> AnalysisResult:
    job = await get_job(session=session, job_id=analysis_id, owner=owner)
    if job is None:
        raise _not_found(analysis_id)
    result = job.analysis_result() if job.status is AnalysisStatus.COMPLETED else None
    if result is None:
        raise ApiError(
            status.HTTP_409_CONFLICT,
            "analysis_not_completed",
            f"analysis {analysis_id} is {job.status.value}; only a completed analysis has a result",
        )
    return result


def _attachment(body: str, media_type: str, filename: str) -> Response:
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


def _not_found(analysis_id: uuid.UUID) -> ApiError:
    return ApiError(
        status.HTTP_404_NOT_FOUND, "analysis_not_found", f"no analysis of yours has the id {analysis_id}"
    )
