"""`kafka_outbox`: the events a job change owes Kafka, written in the change's own transaction and deleted by
the gateway's relay once published (submit and re-drive no longer publish beside their commit).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As migration 0005 grants each service's role its tables: only the gateway writes and relays the outbox.
_GRANT = (
    "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ea_gateway') THEN "
    "{statement} END IF; END $$"
)


_ALL = "SELECT, INSERT, UPDATE, DELETE"


def upgrade() -> None:
    op.create_table(
        "kafka_outbox",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_kafka_outbox")),
    )
    op.create_index("ix_kafka_outbox_created_at", "kafka_outbox", ["created_at"])
    op.execute(_GRANT.format(statement=f"GRANT {_ALL} ON kafka_outbox TO ea_gateway;"))


def downgrade() -> None:
    op.execute(_GRANT.format(statement=f"REVOKE {_ALL} ON kafka_outbox FROM ea_gateway;"))
    op.drop_index("ix_kafka_outbox_created_at", table_name="kafka_outbox")
    op.drop_table("kafka_outbox")
