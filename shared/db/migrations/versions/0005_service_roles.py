"""Least privilege for each service's database role, where the deployment made those roles.

deploy/k8s gives each service a role of its own (CloudNativePG's managed roles) and keeps the owner for
the migrations Job: the gateway cannot read password hashes, auth sees only the accounts' tables, fusion
only its join table. Roles that do not exist (a local stack, the tests' databases) are skipped. A later
migration that adds a table grants it here too.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 04:30:00.000000
"""

from collections.abc import Sequence
from typing import Final

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALL: Final = "SELECT, INSERT, UPDATE, DELETE"
# role -> (privileges, table) pairs.
GRANTS: Final[dict[str, list[tuple[str, str]]]] = {
    "ea_gateway": [
        (ALL, "job"),
        (ALL, "utterance_result"),
        (ALL, "usage_counter"),
        (ALL, "rate_limit_cell"),
        (ALL, "webhook_subscription"),
        (ALL, "webhook_event"),
        (ALL, "webhook_delivery"),
        (ALL, "webhook_attempt"),
        ("DELETE", "fusion_part"),  # deleting an analysis deletes what fusion kept of it
    ],
    "ea_auth": [(ALL, "user_account"), (ALL, "api_key"), (ALL, "auth_session")],
    "ea_fusion": [("SELECT, INSERT, DELETE", "fusion_part")],
}


def _for_each_existing_role(first: str, statement: str) -> None:
    for role, grants in GRANTS.items():
        body = " ".join(statement.format(privileges=p, table=t, role=role) for p, t in grants)
        op.execute(
            f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
            f"{first.format(role=role)} {body} END IF; END $$"
        )


def upgrade() -> None:
    _for_each_existing_role(
        "GRANT USAGE ON SCHEMA public TO {role};", "GRANT {privileges} ON {table} TO {role};"
    )


def downgrade() -> None:
    _for_each_existing_role("", "REVOKE {privileges} ON {table} FROM {role};")
