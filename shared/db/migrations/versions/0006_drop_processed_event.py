"""Drop `processed_event`: no consumer deduplicates through it (the delivery ledger and the stages'
idempotent writes do), so it was a table nobody wrote.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_processed_event_processed_at", table_name="processed_event")
    op.drop_table("processed_event")


def downgrade() -> None:
    op.create_table(
        "processed_event",
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_processed_event")),
    )
    op.create_index("ix_processed_event_processed_at", "processed_event", ["processed_at"])
