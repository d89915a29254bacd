"""Webhook subscriptions, the events they are sent, and every delivery attempt (a transactional outbox).

An event row is written in the same transaction as the job change it reports, with one delivery row per
matching subscription, so a crash can neither lose a delivery nor invent one.
"""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from emotion_contract.events import Stage
from emotion_contract.webhooks import DeliveryStatus, WebhookEventType
from shared.db.models import enum_type, timestamp_field


class WebhookSubscription(SQLModel, table=True):
    __tablename__ = "webhook_subscription"
    __table_args__ = (
        sa.Index("ix_webhook_subscription_owner", "owner"),
        sa.Index("ix_webhook_subscription_job_id", "job_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner: str = Field(max_length=255)
    url: str = Field(max_length=2048)
    events: list[str] = Field(sa_type=JSONB, description="WebhookEventType values")
    secret: str = Field(max_length=128, description="whsec_<base64>, Standard Webhooks")
    description: str | None = Field(default=None, max_length=255)
    job_id: uuid.UUID | None = Field(
        default=None,
        foreign_key="job.id",
        ondelete="CASCADE",
        description="A callback: it gets only this analysis' events, and goes with it",
    )
    created_at: datetime = timestamp_field(nullable=False)


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_event"
    __table_args__ = (sa.Index("ix_webhook_event_job_id", "job_id"),)

    id: uuid.UUID = Field(
        primary_key=True, description="Stable per event: the webhook-id receivers dedupe by"
    )
    owner: str = Field(max_length=255)
    type: WebhookEventType = Field(sa_type=enum_type(WebhookEventType, "type"))
    job_id: uuid.UUID | None = Field(default=None, foreign_key="job.id", ondelete="CASCADE")
    stage: Stage | None = Field(default=None, sa_type=enum_type(Stage, "stage"), nullable=True)
    attempt: int | None = Field(default=None, ge=1)
    data: dict[str, Any] | None = Field(default=None, sa_type=JSONB, nullable=True)
    created_at: datetime = timestamp_field(nullable=False)


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "subscription_id"),
        sa.Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
        sa.Index("ix_webhook_delivery_subscription_id_created_at", "subscription_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    event_id: uuid.UUID = Field(foreign_key="webhook_event.id", ondelete="CASCADE")
    subscription_id: uuid.UUID = Field(foreign_key="webhook_subscription.id", ondelete="CASCADE")
    status: DeliveryStatus = Field(
        default=DeliveryStatus.PENDING, sa_type=enum_type(DeliveryStatus, "status")
    )
    attempts: int = Field(default=0, ge=0)
    next_attempt_at: datetime = timestamp_field(nullable=False)
    locked_until: datetime | None = timestamp_field(nullable=True)
    created_at: datetime = timestamp_field(nullable=False)
    updated_at: datetime = timestamp_field(nullable=False)


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempt"

    delivery_id: uuid.UUID = Field(foreign_key="webhook_delivery.id", ondelete="CASCADE", primary_key=True)
    number: int = Field(ge=1, primary_key=True)
    started_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    duration_ms: float = Field(ge=0.0)
    status_code: int | None = Field(default=None)
    response_body: str | None = Field(default=None, sa_type=sa.Text, nullable=True, description="First 1 KiB")
    error: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    succeeded: bool
