"""This month's usage against the account's limits."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..api.deps import SessionDep
from ..db.usage import current_period, get_usage
from .pages import CONSOLE, SignedIn, render

router = APIRouter(include_in_schema=False)


@router.get(f"{CONSOLE}/usage", response_class=HTMLResponse)
async def usage_page(request: Request, visitor: SignedIn, session: SessionDep) -> HTMLResponse:
    principal = visitor.principal
    usage = await get_usage(session=session, owner=principal.owner, period=current_period())
    limits = principal.limits
    context = {
        "signed_in": True,
        "nav": "usage",
        "period_start": usage.period,
        "resets_at": usage.resets_at,
        "analyses_used": usage.analyses,
        "analyses_limit": limits.monthly_analyses,
        "minutes_used": usage.video_seconds / 60,
        "minutes_limit": limits.monthly_video_seconds / 60,
        "rate_limit": limits.rate_limit_per_minute,
    }
    return render(request, "usage.html", context)
