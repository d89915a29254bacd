"""Webhooks: the owner's subscriptions, and one subscription's deliveries with their attempts."""

import uuid

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse

from ..api.deps import SessionDep
from ..db.webhook_deliveries import list_deliveries
from ..db.webhook_subscriptions import get_subscription, list_subscriptions
from ..webhook_schemas import delivery_of, webhook_of
from .pages import CONSOLE, SignedIn, error_page, render

router = APIRouter(include_in_schema=False)


@router.get(f"{CONSOLE}/webhooks", response_class=HTMLResponse)
async def webhooks_page(request: Request, visitor: SignedIn, session: SessionDep) -> HTMLResponse:
    subscriptions = await list_subscriptions(session=session, owner=visitor.principal.owner)
    context = {
        "signed_in": True,
        "nav": "webhooks",
        "webhooks": [webhook_of(subscription) for subscription in subscriptions],
        "events": ["analysis.completed", "analysis.failed", "analysis.progress"],
    }
    return render(request, "webhooks.html", context)


@router.get(f"{CONSOLE}/webhooks/{{webhook_id}}", response_class=HTMLResponse)
async def webhook_page(
    request: Request, webhook_id: uuid.UUID, visitor: SignedIn, session: SessionDep
) -> HTMLResponse:
    owner = visitor.principal.owner
    subscription = await get_subscription(session=session, owner=owner, subscription_id=webhook_id)
    records = await list_deliveries(session=session, owner=owner, subscription_id=webhook_id, limit=50)
    if subscription is None or records is None:
        return error_page(request, "No webhook of yours has this address.", status.HTTP_404_NOT_FOUND)
    context = {
        "signed_in": True,
        "nav": "webhooks",
        "webhook": webhook_of(subscription),
        "deliveries": [delivery_of(record) for record in records],
    }
    return render(request, "webhook.html", context)
