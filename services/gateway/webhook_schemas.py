"""The webhook API's request body (its limits are the gateway's policy), and the answers built from rows.

The answers themselves are the contract's (`emotion_contract.webhooks`), the very models the client reads.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from emotion_contract.webhooks import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Webhook,
    WebhookCreated,
    WebhookEventType,
)
from shared.db.webhook_models import WebhookAttempt, WebhookSubscription

from .db.webhook_deliveries import DeliveryRecord
from .webhooks.targets import MAX_URL_LENGTH

SubscribableEvent = Literal["analysis.progress", "analysis.completed", "analysis.failed"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="Where events are POSTed: an http(s) URL of a public host",
        examples=["https://example.com/hooks/emotion-analyzer"],
    )
    events: list[SubscribableEvent] = Field(
        min_length=1, max_length=3, description="The event types to send", examples=[["analysis.completed"]]
    )
    description: str | None = Field(default=None, max_length=255)


def webhook_of(subscription: WebhookSubscription) -> Webhook:
    return Webhook(
        id=subscription.id,
        url=subscription.url,
        events=[WebhookEventType(event) for event in subscription.events],
        description=subscription.description,
        created_at=subscription.created_at,
    )


def webhook_created_of(subscription: WebhookSubscription) -> WebhookCreated:
    return WebhookCreated(**webhook_of(subscription).model_dump(), secret=subscription.secret)


def _attempt_of(attempt: WebhookAttempt) -> DeliveryAttempt:
    return DeliveryAttempt(
        number=attempt.number,
        started_at=attempt.started_at,
        duration_ms=attempt.duration_ms,
        status_code=attempt.status_code,
        response_body=attempt.response_body,
        error=attempt.error,
        succeeded=attempt.succeeded,
    )


def delivery_of(record: DeliveryRecord) -> Delivery:
    delivery, event = record.delivery, record.event
    pending = delivery.status is DeliveryStatus.PENDING
    return Delivery(
        id=delivery.id,
        webhook_id=delivery.subscription_id,
        event_id=event.id,
        event_type=event.type,
        analysis_id=event.job_id,
        status=delivery.status,
        next_attempt_at=delivery.next_attempt_at if pending else None,
        created_at=delivery.created_at,
        attempts=[_attempt_of(attempt) for attempt in record.attempts],
    )
