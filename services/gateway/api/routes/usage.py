from fastapi import APIRouter

from emotion_contract.analyses import Meter, UsageReport

from ...db.usage import current_period, get_usage
from ...errors import authenticated_responses
from ..deps import CurrentPrincipal, SessionDep

router = APIRouter(tags=["usage"], responses=authenticated_responses())


def _meter(used: float, limit: float) -> Meter:
    return Meter(used=used, limit=limit, remaining=max(0.0, limit - used))


@router.get("/usage")
async def get_current_usage(principal: CurrentPrincipal, session: SessionDep) -> UsageReport:
    """Your usage this month against your monthly quota."""
    usage = await get_usage(session=session, owner=principal.owner, period=current_period())
    limits = principal.limits
    return UsageReport(
        period_start=usage.period,
        resets_at=usage.resets_at,
        analyses=_meter(usage.analyses, limits.monthly_analyses),
        video_seconds=_meter(round(usage.video_seconds, 3), limits.monthly_video_seconds),
    )
