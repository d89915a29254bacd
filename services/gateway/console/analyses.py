"""The analyses: the owner's list (with the upload form) and one analysis with its timeline."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import HTMLResponse

from ..api.deps import GatewayDep, SessionDep
from ..db.jobs import count_jobs, get_job, list_jobs
from ..media_types import SUPPORTED_EXTENSIONS
from ..schemas import analysis_of
from .pages import CONSOLE, PAGE_SIZE, SignedIn, error_page, render
from .views import LEGEND, MODALITY_NAMES, speaker_views, utterance_views

router = APIRouter(include_in_schema=False)


@router.get(CONSOLE, response_class=HTMLResponse)
async def analyses_page(
    request: Request,
    visitor: SignedIn,
    session: SessionDep,
    gateway: GatewayDep,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    owner = visitor.principal.owner
    jobs = await list_jobs(session=session, owner=owner, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    total = await count_jobs(session=session, owner=owner)
    rows = [(analysis_of(job, with_result=False), job.duration_s) for job in jobs]
    context = {
        "signed_in": True,
        "nav": "analyses",
        "rows": rows,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "max_bytes": gateway.settings.max_upload_bytes,
        "extensions": sorted(SUPPORTED_EXTENSIONS),
    }
    return render(request, "analyses.html", context)


@router.get(f"{CONSOLE}/analyses/{{analysis_id}}", response_class=HTMLResponse)
async def analysis_page(
    request: Request, analysis_id: uuid.UUID, visitor: SignedIn, session: SessionDep
) -> HTMLResponse:
    job = await get_job(session=session, job_id=analysis_id, owner=visitor.principal.owner)
    if job is None:
        return error_page(request, "No analysis of yours has this address.", status.HTTP_404_NOT_FOUND)
    analysis = analysis_of(job)
    result = analysis.result
    utterances = utterance_views(result) if result else []
    context = {
        "signed_in": True,
        "nav": "analyses",
        "analysis": analysis,
        "duration_s": job.duration_s,
        "is_audio": (job.content_type or "").startswith("audio/"),
        "utterances": utterances,
        "speakers": speaker_views(result, utterances) if result else [],
        "legend": LEGEND,
        "modality_names": MODALITY_NAMES,
    }
    return render(request, "analysis.html", context)
