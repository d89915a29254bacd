"""The webhook API's answers (subscriptions, and the deliveries of their events), and the body each webhook
POSTs: `{"type", "timestamp", "data"}`, signed as Standard Webhooks defines (the client checks it with
`emotion_analyzer.verify_webhook`)."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class WebhookEventType(StrEnum):
    ANALYSIS_PROGRESS = "analysis.progress"
    ANALYSIS_COMPLETED = "analysis.completed"
    ANALYSIS_FAILED = "analysis.failed"
    WEBHOOK_TEST = "webhook.test"
    """Sent by the test endpoint to one subscription, whatever events it chose."""


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Webhook(BaseModel):
    id: uuid.UUID
    url: str
    events: list[WebhookEventType]
    description: str | None
    created_at: datetime


class WebhookCreated(Webhook):
    secret: str = Field(
        description="The signing secret (Standard Webhooks, `whsec_…`). Shown only now: store it to verify "
        "the `webhook-signature` header"
    )


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


class DeliveryList(BaseModel):
    items: list[Delivery] = Field(description="Newest first")
    total: int
    limit: int
    offset: int


class DeliveryQueued(BaseModel):
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    status: DeliveryStatus


class WebhookPayload(BaseModel):
    """What a webhook POSTs. For the analysis events `data` is the analysis as the REST API shows it
    (`emotion_contract.analyses.Analysis`; with its result once completed)."""

    type: WebhookEventType
    timestamp: datetime = Field(description="When the event happened (ISO 8601)")
    data: dict[str, Any]
