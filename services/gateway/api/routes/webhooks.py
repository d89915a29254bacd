"""Webhook subscriptions: create, list, inspect, delete, send a test event, see deliveries, redeliver."""

import uuid
from typing import Final

from fastapi import APIRouter, Request, Response, status
from sqlmodel.ext.asyncio.session import AsyncSession

from emotion_contract.webhooks import (
    Delivery,
    DeliveryList,
    DeliveryQueued,
    Webhook,
    WebhookCreated,
    WebhookEventType,
    WebhookList,
)

from ...db.webhook_deliveries import (
    count_deliveries,
    count_pending,
    get_delivery,
    list_deliveries,
    record_test_event,
    redeliver,
)
from ...db.webhook_subscriptions import (
    TooManyWebhooksError,
    create_subscription,
    delete_subscription,
    get_subscription,
    list_subscriptions,
)
from ...errors import ApiError, authenticated_responses, error_responses
from ...rate_limit import manual_sends_key
from ...state import Gateway
from ...webhook_schemas import WebhookCreate, delivery_of, webhook_created_of, webhook_of
from ...webhooks.targets import InvalidTargetError, validate_subscription_url
from ..deps import CurrentOwner, GatewayDep, PageLimit, PageOffset, SessionDep

# Every event is sent to each of its owner's subscriptions: the cap bounds that fan-out.
MAX_WEBHOOKS_PER_OWNER: Final = 20

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=authenticated_responses())


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        status.HTTP_401_UNAUTHORIZED, status.HTTP_409_CONFLICT, status.HTTP_422_UNPROCESSABLE_CONTENT
    ),
)
async def create_webhook(
    body: WebhookCreate,
    request: Request,
    response: Response,
    owner: CurrentOwner,
    session: SessionDep,
    gateway: GatewayDep,
) -> WebhookCreated:
    """Subscribe a URL to events. The response carries the signing secret, which is never shown again."""
    try:
        url = validate_subscription_url(
            body.url,
            allow_private=gateway.settings.webhook_allow_private_targets,
            ports=gateway.settings.outbound_ports,
        )
    except InvalidTargetError as exc:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid_webhook_url", str(exc)) from exc
    try:
        subscription = await create_subscription(
            session=session,
            owner=owner,
            url=url,
            events=[WebhookEventType(event) for event in body.events],
            description=body.description,
            limit=MAX_WEBHOOKS_PER_OWNER,
        )
    except TooManyWebhooksError as exc:
        raise ApiError(status.HTTP_409_CONFLICT, "too_many_webhooks", str(exc)) from exc
    response.headers["Location"] = str(request.url_for("get_webhook", webhook_id=subscription.id))
    return webhook_created_of(subscription)


@router.get("", responses=error_responses(status.HTTP_401_UNAUTHORIZED))
async def list_webhooks(owner: CurrentOwner, session: SessionDep) -> WebhookList:
    """List your webhooks, without their secrets."""
    subscriptions = await list_subscriptions(session=session, owner=owner)
    return WebhookList(items=[webhook_of(subscription) for subscription in subscriptions])


@router.get(
    "/{webhook_id}", responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND)
)
async def get_webhook(webhook_id: uuid.UUID, owner: CurrentOwner, session: SessionDep) -> Webhook:
    """Get one webhook, without its secret."""
    subscription = await get_subscription(session=session, owner=owner, subscription_id=webhook_id)
    if subscription is None:
        raise _webhook_not_found(webhook_id)
    return webhook_of(subscription)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
async def delete_webhook(webhook_id: uuid.UUID, owner: CurrentOwner, session: SessionDep) -> None:
    """Delete a webhook; its pending deliveries are dropped."""
    if not await delete_subscription(session=session, owner=owner, subscription_id=webhook_id):
        raise _webhook_not_found(webhook_id)


@router.post(
    "/{webhook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
async def send_test_event(
    webhook_id: uuid.UUID, owner: CurrentOwner, session: SessionDep, gateway: GatewayDep
) -> DeliveryQueued:
    """Queue a `webhook.test` event for this webhook, whatever events it subscribed to (a few a minute)."""
    await _allow_manual_send(gateway, session, owner)
    delivery = await record_test_event(session=session, owner=owner, subscription_id=webhook_id)
    if delivery is None:
        raise _webhook_not_found(webhook_id)
    return DeliveryQueued(delivery_id=delivery.id, event_id=delivery.event_id, status=delivery.status)


@router.get(
    "/{webhook_id}/deliveries",
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
async def list_webhook_deliveries(
    webhook_id: uuid.UUID,
    owner: CurrentOwner,
    session: SessionDep,
    limit: PageLimit = 20,
    offset: PageOffset = 0,
) -> DeliveryList:
    """The webhook's deliveries, newest first, each with every attempt made."""
    records = await list_deliveries(
        session=session, owner=owner, subscription_id=webhook_id, limit=limit, offset=offset
    )
    if records is None:
        raise _webhook_not_found(webhook_id)
    total = await count_deliveries(session=session, owner=owner, subscription_id=webhook_id)
    return DeliveryList(
        items=[delivery_of(record) for record in records], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
async def get_webhook_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, owner: CurrentOwner, session: SessionDep
) -> Delivery:
    """One delivery with every attempt made."""
    record = await get_delivery(
        session=session, owner=owner, delivery_id=delivery_id, subscription_id=webhook_id
    )
    if record is None:
        raise _delivery_not_found(delivery_id)
    return delivery_of(record)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(status.HTTP_401_UNAUTHORIZED, status.HTTP_404_NOT_FOUND),
)
async def redeliver_delivery(
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
    owner: CurrentOwner,
    session: SessionDep,
    gateway: GatewayDep,
) -> DeliveryQueued:
    """Send a delivery again now, with the same `webhook-id`, whatever became of it before (a few a
    minute)."""
    await _allow_manual_send(gateway, session, owner)
    delivery = await redeliver(
        session=session, owner=owner, delivery_id=delivery_id, subscription_id=webhook_id
    )
    if delivery is None:
        raise _delivery_not_found(delivery_id)
    return DeliveryQueued(delivery_id=delivery.id, event_id=delivery.event_id, status=delivery.status)


async def _allow_manual_send(gateway: Gateway, session: AsyncSession, owner: str) -> None:
    """Test sends and redeliveries are the owner's to ask for at will: bounded per minute, and refused while
    the owner's queue is full, so that one tenant's receivers cannot fill every tenant's queue."""
    settings = gateway.settings
    decision = await gateway.rate_limiter.check(
        manual_sends_key(owner), settings.webhook_manual_sends_per_minute
    )
    if not decision.allowed:
        gateway.metrics.quota_rejections.labels("webhook_sends").inc()
        raise ApiError(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "rate_limited",
            f"more than {decision.limit} test events and redeliveries per minute; "
            f"retry after {decision.retry_after_s} s",
            headers=decision.headers(),
        )
    pending = await count_pending(session=session, owner=owner)
    if pending >= settings.webhook_max_pending_per_owner:
        gateway.metrics.quota_rejections.labels("webhook_pending").inc()
        raise ApiError(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too_many_pending_deliveries",
            f"{pending} deliveries of yours are waiting to be sent; wait for your receivers to take them",
            headers={"Retry-After": "60"},
        )


def _webhook_not_found(webhook_id: uuid.UUID) -> ApiError:
    return ApiError(
        status.HTTP_404_NOT_FOUND, "webhook_not_found", f"no webhook of yours has the id {webhook_id}"
    )


def _delivery_not_found(delivery_id: uuid.UUID) -> ApiError:
    return ApiError(
        status.HTTP_404_NOT_FOUND,
        "delivery_not_found",
        f"this webhook has no delivery with the id {delivery_id}",
    )
