"""Fusion's parts follow their job: a part of a job that is gone cannot be stored, and deleting a job
deletes its parts in the same statement, whatever arrives later; the gateway may find a job's parts by
their job (to remove them when it fails) without reading what they hold.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 12:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A DELETE ... WHERE job_id = ... reads job_id: the gateway's DELETE alone could not run it.
GATEWAY_COLUMNS = "GRANT SELECT (job_id, attempt) ON fusion_part TO ea_gateway"


def _if_gateway_role(statement: str) -> None:
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'ea_gateway') THEN "
        f"{statement}; END IF; END $$"
    )


def upgrade() -> None:
    # Parts whose job was deleted while they were on their way: nothing may read them any more.
    op.execute("DELETE FROM fusion_part WHERE NOT EXISTS (SELECT FROM job WHERE job.id = fusion_part.job_id)")
    op.create_foreign_key(
        op.f("fk_fusion_part_job_id_job"), "fusion_part", "job", ["job_id"], ["id"], ondelete="CASCADE"
    )
    _if_gateway_role(GATEWAY_COLUMNS)


def downgrade() -> None:
    _if_gateway_role("REVOKE SELECT (job_id, attempt) ON fusion_part FROM ea_gateway")
    op.drop_constraint(op.f("fk_fusion_part_job_id_job"), "fusion_part", type_="foreignkey")
