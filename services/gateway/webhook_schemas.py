"""The webhook API's request and response bodies."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.db.webhook_models import DeliveryStatus, WebhookAttempt, WebhookEventType, WebhookSubscription

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


class Webhook(BaseModel):
    id: uuid.UUID
    url: str
    events: list[WebhookEventType]
    description: str | None
    created_at: datetime

    @classmethod
    def from_subscription(cls, subscription: WebhookSubscription) -> "Webhook":
        return cls(
            id=subscription.id,
            url=subscription.url,
            events=[WebhookEventType(event) for event in subscription.events],
            description=subscription.description,
            created_at=subscription.created_at,
        )


class WebhookCreated(Webhook):
    secret: str = Field(
        description="The signing secret (Standard Webhooks, `whsec_…`). Shown only now: store it to verify "
        "the `webhook-signature` header"
    )

    @classmethod
    def from_new_subscription(cls, subscription: WebhookSubscription) -> "WebhookCreated":
        return cls(**Webhook.from_subscription(subscription).model_dump(), secret=subscription.secret)


class WebhookList(BaseModel):
    items: list[Webhook] = Field(description="Oldest first, without secrets")


class DeliveryAttempt(BaseModel):
    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None = Field(description="The receiver's HTTP status; none when it never answered")
    response_body: str | None = Field(description="The first 1 KiB of the receiver's answer")
    error: str | None = Field(description="Why no answer came (timeout, connection refused, refused target)")
    succeeded: bool

    @classmethod
    def from_attempt(cls, attempt: WebhookAttempt) -> "DeliveryAttempt":
        return cls(
            number=attempt.number,
            started_at=attempt.started_at,
            duration_ms=attempt.duration_ms,
            status_code=attempt.status_code,
            response_body=attempt.response_body,
            error=attempt.error,
            succeeded=attempt.succeeded,
        )


class Delivery(BaseModel):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event_id: uuid.UUID = Field(description="The `webhook-id` header: the same on every attempt")
    event_type: WebhookEventType
    analysis_id: uuid.UUID | None
    status: DeliveryStatus
    next_attempt_at: datetime | None = Field(description="When it is tried next, while pending")
    created_at: datetime
    attempts: list[DeliveryAttempt]

    @classmethod
    def from_record(cls, record: DeliveryRecord) -> "Delivery":
        delivery, event = record.delivery, record.event
        pending = delivery.status is DeliveryStatus.PENDING
        return cls(
            id=delivery.id,
            webhook_id=delivery.subscription_id,
            event_id=event.id,
            event_type=event.type,
            analysis_id=event.job_id,
            status=delivery.status,
            next_attempt_at=delivery.next_attempt_at if pending else None,
            created_at=delivery.created_at,
            attempts=[DeliveryAttempt.from_attempt(attempt) for attempt in record.attempts],
        )


class DeliveryList(BaseModel):
    items: list[Delivery] = Field(description="Newest first")
    total: int
    limit: int
    offset: int


class DeliveryQueued(BaseModel):
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    status: DeliveryStatus
