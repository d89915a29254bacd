"""`upload_grant`: the upload URLs each account holds that were not analysed yet, so that how many (and so
how many bytes) an account may have waiting in the bucket is bounded.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 12:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GRANT = (
    "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ea_gateway') THEN "
    "GRANT SELECT, INSERT, UPDATE, DELETE ON upload_grant TO ea_gateway; END IF; END $$"
)


def upgrade() -> None:
    op.create_table(
        "upload_grant",
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_upload_grant")),
    )
    op.create_index("ix_upload_grant_owner_issued_at", "upload_grant", ["owner", "issued_at"])
    op.execute(_GRANT)


def downgrade() -> None:
    op.drop_index("ix_upload_grant_owner_issued_at", table_name="upload_grant")
    op.drop_table("upload_grant")
