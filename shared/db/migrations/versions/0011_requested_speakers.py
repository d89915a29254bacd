"""`job.speakers`: how many people the request said speak in the file, which the transcriber's clustering
uses instead of estimating it; None where the request did not say.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("job", sa.Column("speakers", sa.Integer(), nullable=True))
    op.create_check_constraint(op.f("ck_job_speakers_range"), "job", "speakers BETWEEN 1 AND 20")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_job_speakers_range"), "job", type_="check")
    op.drop_column("job", "speakers")
