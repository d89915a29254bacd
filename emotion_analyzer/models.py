"""The API's bodies as the client reads them.

The result and the account bodies are the very models the services use (`shared.results`,
`shared.accounts_api`, shipped in the same distribution); the rest mirror the gateway's responses, which a
client never imports. Unknown fields are ignored, so a newer server does not break an older client.
"""

import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from shared.accounts_api import (
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyList,
    Limits,
    Registration,
    SessionToken,
    User,
)
from shared.events import Stage
from shared.results import AnalysisResult, EmotionScore, SentimentScore, UtteranceResult

__all__ = [
    "Analysis",
    "AnalysisError",
    "AnalysisList",
    "AnalysisResult",
    "AnalysisStatus",
    "ApiKeyCreated",
    "ApiKeyInfo",
    "ApiKeyList",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryList",
    "DeliveryQueued",
    "DeliveryStatus",
    "EmotionScore",
    "Limits",
    "Meter",
    "Registration",
    "SentimentScore",
    "SessionToken",
    "Stage",
    "UploadTicket",
    "Usage",
    "User",
    "UtteranceResult",
    "Webhook",
    "WebhookCreated",
    "WebhookEvent",
    "WebhookList",
]


class AnalysisStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (AnalysisStatus.COMPLETED, AnalysisStatus.FAILED)


class AnalysisError(BaseModel):
    code: str
    stage: Stage | None
    message: str


class Analysis(BaseModel):
    id: uuid.UUID
    status: AnalysisStatus
    stage: Stage | None = Field(description="The stage the job is in, or failed in")
    error: AnalysisError | None = None
    filename: str
    size_bytes: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    attempt: int
    result: AnalysisResult | None = Field(default=None, description="Once completed; never in lists")

    @property
    def done(self) -> bool:
        return self.status.is_terminal


class AnalysisList(BaseModel):
    items: list[Analysis] = Field(description="Newest first, without results")
    total: int
    limit: int
    offset: int


class UploadTicket(BaseModel):
    """The answer of POST /v1/upload-url: where to POST the file (with `fields` before it, under a signed
    policy that admits 1 to `max_bytes` bytes), and the key to analyse it by."""

    key: str
    upload_url: str
    method: str = "POST"
    fields: dict[str, str]
    expires_at: datetime
    max_bytes: int


class Meter(BaseModel):
    used: float
    limit: float
    remaining: float


class Usage(BaseModel):
    period_start: date
    resets_at: datetime
    analyses: Meter
    video_seconds: Meter


class WebhookEvent(StrEnum):
    ANALYSIS_PROGRESS = "analysis.progress"
    ANALYSIS_COMPLETED = "analysis.completed"
    ANALYSIS_FAILED = "analysis.failed"
    WEBHOOK_TEST = "webhook.test"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Webhook(BaseModel):
    id: uuid.UUID
    url: str
    events: list[WebhookEvent]
    description: str | None
    created_at: datetime


class WebhookCreated(Webhook):
    secret: str = Field(description="The `whsec_…` signing secret, shown only at creation")


class WebhookList(BaseModel):
    items: list[Webhook]


class DeliveryAttempt(BaseModel):
    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    response_body: str | None
    error: str | None
    succeeded: bool


class Delivery(BaseModel):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event_id: uuid.UUID = Field(description="The `webhook-id` header: the same on every attempt")
    event_type: WebhookEvent
    analysis_id: uuid.UUID | None
    status: DeliveryStatus
    next_attempt_at: datetime | None
    created_at: datetime
    attempts: list[DeliveryAttempt]


class DeliveryList(BaseModel):
    items: list[Delivery]
    total: int
    limit: int
    offset: int


class DeliveryQueued(BaseModel):
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    status: DeliveryStatus
