"""The tables of the pipeline's state: jobs, their per-utterance results, fusion's join state, handled events.

Enumerations are stored as their lower-case values in VARCHAR columns with a CHECK constraint rather than
as PostgreSQL enum types, so that adding a stage later is a plain migration and never an `ALTER TYPE`.
"""

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from emotion_contract.analyses import AnalysisStatus
from emotion_contract.events import Stage
from emotion_contract.labels import MAX_SPEAKERS, Emotion, Modality, Sentiment
from emotion_contract.results import AnalysisResult

# Deterministic constraint names, so that migrations can name what they drop.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _values_of(enum_cls: type[StrEnum]) -> list[str]:
    return [member.value for member in enum_cls]


def enum_type(enum_cls: type[StrEnum], name: str) -> sa.Enum:
    """`name` names the CHECK constraint: ck_<table>_<name>."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=_values_of,
        validate_strings=True,
    )


def timestamp_field(*, nullable: bool) -> Any:
    """A timezone-aware timestamp column; the database clock fills the non-null ones."""
    if nullable:
        return Field(default=None, sa_type=sa.DateTime(timezone=True), nullable=True)
    return Field(
        default_factory=utcnow,
        sa_type=sa.DateTime(timezone=True),
        nullable=False,
        sa_column_kwargs={"server_default": sa.func.now()},
    )


class JobBase(SQLModel):
    bucket: str = Field(min_length=3, max_length=63, description="S3 bucket of the uploaded file")
    object_key: str = Field(
        min_length=1, max_length=1024, description="S3 key the client uploaded to (and names the job by)"
    )
    media_key: str | None = Field(
        default=None,
        max_length=1024,
        description="S3 key of the frozen copy that is analysed, which no client can write; "
        "None for jobs made before copies were frozen",
    )
    filename: str = Field(min_length=1, max_length=255)
    content_type: str | None = Field(default=None, max_length=255)
    size_bytes: int = Field(ge=0, sa_type=sa.BigInteger)
    speakers: int | None = Field(
        default=None, ge=1, le=MAX_SPEAKERS, description="How many people speak, as the request said"
    )


class JobCreate(JobBase):
    """What the gateway knows about an upload when it asks for an analysis."""


class Job(JobBase, table=True):
    __tablename__ = "job"
    __table_args__ = (
        # One job per uploaded object and owner: analysing the same key twice returns the first job.
        sa.UniqueConstraint("owner", "object_key"),
        sa.Index("ix_job_owner_created_at", "owner", "created_at"),
        sa.Index("ix_job_status_updated_at", "status", "updated_at"),
        sa.CheckConstraint(f"speakers BETWEEN 1 AND {MAX_SPEAKERS}", name="speakers_range"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner: str = Field(min_length=1, max_length=255, description='API key id, or "static"')
    status: AnalysisStatus = Field(default=AnalysisStatus.QUEUED, sa_type=enum_type(AnalysisStatus, "status"))
    stage: Stage | None = Field(default=None, sa_type=enum_type(Stage, "stage"), nullable=True)
    error_code: str | None = Field(default=None, max_length=64)
    error_reason: str | None = Field(default=None, sa_type=sa.Text, nullable=True)
    attempt: int = Field(default=1, ge=1)
    bundle_version: str | None = Field(default=None, max_length=255)
    duration_s: float | None = Field(default=None, ge=0.0)
    result: dict[str, Any] | None = Field(default=None, sa_type=JSONB, nullable=True)
    created_at: datetime = timestamp_field(nullable=False)
    updated_at: datetime = timestamp_field(nullable=False)
    completed_at: datetime | None = timestamp_field(nullable=True)
    stage_started_at: datetime | None = timestamp_field(nullable=True)
    quota_period: date | None = Field(
        default=None, sa_type=sa.Date, nullable=True, description="Month whose usage this job was charged to"
    )
    charged_seconds: float = Field(default=0.0, ge=0.0, description="Video seconds charged to the quota")

    @property
    def stored_key(self) -> str:
        """Where the file that is analysed lives."""
        return self.media_key or self.object_key

    def analysis_result(self) -> AnalysisResult | None:
        return None if self.result is None else AnalysisResult.model_validate(self.result)


class UtteranceRecord(SQLModel, table=True):
    """One utterance of a completed job, queryable by its top emotion and sentiment."""

    __tablename__ = "utterance_result"

    job_id: uuid.UUID = Field(foreign_key="job.id", ondelete="CASCADE", primary_key=True)
    index: int = Field(ge=0, primary_key=True)
    start_time: float = Field(ge=0.0)
    end_time: float = Field(ge=0.0)
    text: str = Field(sa_type=sa.Text)
    top_emotion: Emotion = Field(sa_type=enum_type(Emotion, "top_emotion"))
    top_emotion_confidence: float = Field(ge=0.0, le=1.0)
    top_sentiment: Sentiment = Field(sa_type=enum_type(Sentiment, "top_sentiment"))
    top_sentiment_confidence: float = Field(ge=0.0, le=1.0)
    emotions: list[dict[str, Any]] = Field(sa_type=JSONB, description="[{label, confidence}], highest first")
    sentiments: list[dict[str, Any]] = Field(
        sa_type=JSONB, description="[{label, confidence}], highest first"
    )


class FusionPart(SQLModel, table=True):
    """One modality's event for one attempt of a job, kept until fusion has all three."""

    __tablename__ = "fusion_part"

    # A part of a job that is gone cannot be stored, and goes with its job.
    job_id: uuid.UUID = Field(foreign_key="job.id", ondelete="CASCADE", primary_key=True)
    attempt: int = Field(ge=1, primary_key=True)
    part: Modality = Field(sa_type=enum_type(Modality, "part"), primary_key=True)
    payload: dict[str, Any] = Field(sa_type=JSONB, description="The serialized event")
    created_at: datetime = timestamp_field(nullable=False)


class KafkaOutboxEvent(SQLModel, table=True):
    """A Kafka event written in the transaction of the job change that owes it, until the gateway's relay
    has published it (and deletes the row): no change is committed without its event, and no event is
    sent for a change that rolled back."""

    __tablename__ = "kafka_outbox"
    __table_args__ = (sa.Index("ix_kafka_outbox_created_at", "created_at"),)

    event_id: uuid.UUID = Field(primary_key=True, description="The event's id: recording it twice is a no-op")
    topic: str = Field(max_length=255)
    payload: dict[str, Any] = Field(sa_type=JSONB, description="The serialized event")
    created_at: datetime = timestamp_field(nullable=False)


class UsageCounter(SQLModel, table=True):
    """What an owner used in one calendar month (UTC); charged and refunded with conditional UPDATEs."""

    __tablename__ = "usage_counter"

    owner: str = Field(max_length=255, primary_key=True)
    period: date = Field(primary_key=True, description="First day of the month")
    analyses: int = Field(default=0, ge=0)
    video_seconds: float = Field(default=0.0, ge=0.0)


class RateLimitCell(SQLModel, table=True):
    """A rate-limited key's theoretical arrival time (GCRA), shared by every gateway replica.

    UNLOGGED: no WAL for a row written on every request; a database crash empties the table, which only
    forgives the requests of the minute before it.
    """

    __tablename__ = "rate_limit_cell"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    key: str = Field(max_length=300, primary_key=True)
    tat: datetime = Field(sa_type=sa.DateTime(timezone=True), nullable=False)


class UploadGrant(SQLModel, table=True):
    """An upload URL given to an account and not yet analysed: what bounds the files an account may have
    waiting in the bucket (its URL's object stays until it is analysed or expires unclaimed)."""

    __tablename__ = "upload_grant"
    __table_args__ = (sa.Index("ix_upload_grant_owner_issued_at", "owner", "issued_at"),)

    key: str = Field(primary_key=True, max_length=1024)
    owner: str = Field(max_length=255)
    issued_at: datetime = timestamp_field(nullable=False)
