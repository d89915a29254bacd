"""A callback per analysis: a webhook subscription can belong to one job (`job_id`), gets only that job's
events, and is deleted with it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhook_subscription", sa.Column("job_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_webhook_subscription_job_id_job"),
        "webhook_subscription",
        "job",
        ["job_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_index("ix_webhook_subscription_job_id", "webhook_subscription", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_subscription_job_id", table_name="webhook_subscription")
    op.drop_constraint(op.f("fk_webhook_subscription_job_id_job"), "webhook_subscription", type_="foreignkey")
    op.drop_column("webhook_subscription", "job_id")
