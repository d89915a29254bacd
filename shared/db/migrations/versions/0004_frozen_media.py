"""Jobs analyse a frozen copy of the upload: `job.media_key`, a key no presigned URL can write.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("job", sa.Column("media_key", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    op.drop_column("job", "media_key")
