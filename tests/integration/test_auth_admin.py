"""The operator's account command against real PostgreSQL, as a subprocess like an operator runs it."""

import json
import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import UserAccount

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.db_fixtures"]


def admin(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EA_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "services.auth.admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_set_limits_disable_and_back_to_defaults(
    db_sessions: async_sessionmaker[AsyncSession], migrated_database_url: str
) -> None:
    email = f"plan-{uuid.uuid4().hex[:8]}@example.com"
    async with db_sessions() as session:
        user = UserAccount(email=email, password_hash="not-a-real-hash")
        session.add(user)
        await session.commit()

    done = admin(migrated_database_url, "set-limits", email, "--analyses", "1000", "--rate", "600")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["monthly_analyses"], shown["rate_limit_per_minute"]) == (1000, 600)
    assert shown["monthly_video_seconds"] is None

    assert admin(migrated_database_url, "disable", email).returncode == 0
    assert admin(migrated_database_url, "set-limits", email, "--default-analyses").returncode == 0
    async with db_sessions() as session:
        stored = await session.get(UserAccount, user.id)
    assert stored is not None and stored.disabled and stored.monthly_analyses is None
    assert stored.rate_limit_per_minute == 600


async def test_unknown_accounts_and_empty_changes_are_refused(migrated_database_url: str) -> None:
    unknown = admin(migrated_database_url, "show", "nobody@example.com")
    assert unknown.returncode == 1 and "no account" in unknown.stderr
    nothing = admin(migrated_database_url, "set-limits", "nobody@example.com")
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr
    negative = admin(migrated_database_url, "set-limits", "x@example.com", "--analyses", "-1")
    assert negative.returncode == 2
