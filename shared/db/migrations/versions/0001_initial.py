"""Jobs, utterance results, fusion's join state and handled events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 11:00:00.000000
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the enumerations as they were at this revision; a later change needs its own migration.
JOB_STATUSES = ("queued", "processing", "completed", "failed")
STAGES = ("upload", "transcribe", "encode_video", "encode_audio", "fuse")
EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
SENTIMENTS = ("negative", "neutral", "positive")
MODALITIES = ("text", "video", "audio")


def one_of(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def timestamp(name: str, *, nullable: bool) -> sa.Column[datetime]:
    if nullable:
        return sa.Column(name, sa.DateTime(timezone=True), nullable=True)
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column("object_key", sa.String(length=1024), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_reason", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("bundle_version", sa.String(length=255), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        timestamp("created_at", nullable=False),
        timestamp("updated_at", nullable=False),
        timestamp("completed_at", nullable=True),
        timestamp("stage_started_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
        sa.UniqueConstraint("owner", "object_key", name=op.f("uq_job_owner_object_key")),
        sa.CheckConstraint(one_of("status", JOB_STATUSES), name=op.f("ck_job_status")),
        sa.CheckConstraint(one_of("stage", STAGES), name=op.f("ck_job_stage")),
    )
    op.create_index("ix_job_owner_created_at", "job", ["owner", "created_at"])
    op.create_index("ix_job_status_updated_at", "job", ["status", "updated_at"])

    op.create_table(
        "utterance_result",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("end_time", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("top_emotion", sa.String(length=32), nullable=False),
        sa.Column("top_emotion_confidence", sa.Float(), nullable=False),
        sa.Column("top_sentiment", sa.String(length=32), nullable=False),
        sa.Column("top_sentiment_confidence", sa.Float(), nullable=False),
        sa.Column("emotions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("sentiments", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "index", name=op.f("pk_utterance_result")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_utterance_result_job_id_job"), ondelete="CASCADE"
        ),
        sa.CheckConstraint(one_of("top_emotion", EMOTIONS), name=op.f("ck_utterance_result_top_emotion")),
        sa.CheckConstraint(
            one_of("top_sentiment", SENTIMENTS), name=op.f("ck_utterance_result_top_sentiment")
        ),
    )

    op.create_table(
        "fusion_part",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("part", sa.String(length=32), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        timestamp("created_at", nullable=False),
        sa.PrimaryKeyConstraint("job_id", "attempt", "part", name=op.f("pk_fusion_part")),
        sa.CheckConstraint(one_of("part", MODALITIES), name=op.f("ck_fusion_part_part")),
    )

    op.create_table(
        "processed_event",
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        timestamp("processed_at", nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_processed_event")),
    )
    op.create_index("ix_processed_event_processed_at", "processed_event", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_processed_event_processed_at", table_name="processed_event")
    op.drop_table("processed_event")
    op.drop_table("fusion_part")
    op.drop_table("utterance_result")
    op.drop_index("ix_job_status_updated_at", table_name="job")
    op.drop_index("ix_job_owner_created_at", table_name="job")
    op.drop_table("job")
