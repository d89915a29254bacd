"""PostgreSQL fixtures: one fresh database per test session, migrated with Alembic, dropped at the end.

Use them from a test module with
    pytest_plugins = ["tests.integration.db_fixtures"]
The server is the one `EA_DATABASE_URL` points at (default 127.0.0.1:5432, user postgres).

PYTEST_DONT_REWRITE: this module holds no assertions, and test modules import its helpers before pytest
loads it as a plugin, which would otherwise warn that it cannot rewrite it.
"""

import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import Job
from shared.db.migrate import upgrade
from shared.db.session import (
    connect_maintenance,
    create_engine,
    database_name,
    ensure_database,
    quote_identifier,
    session_factory,
)
from shared.settings import DatabaseSettings

_APPLICATION_TABLES = text(
    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
)


def fresh_database_url(prefix: str = "ea_test") -> str:
    """A URL on the configured server naming a database that does not exist yet."""
    server = make_url(DatabaseSettings().database_url)
    name = f"{prefix}_{secrets.token_hex(6)}"
    return server.set(database=name).render_as_string(hide_password=False)


async def create_database(url: str) -> None:
    try:
        created = await ensure_database(url)
    except OSError as error:
        pytest.fail(f"PostgreSQL at {make_url(url).host}:{make_url(url).port} is not reachable: {error}")
    if not created:
        raise RuntimeError(f"test database {database_name(url)} already existed")


async def drop_database(url: str) -> None:
    connection = await connect_maintenance(url)
    try:
        # FORCE ends connections a failed test left open, so the drop never hangs.
        await connection.execute(
            f"DROP DATABASE IF EXISTS {quote_identifier(database_name(url))} WITH (FORCE)"
        )
    finally:
        await connection.close()


@pytest_asyncio.fixture(scope="session")
async def migrated_database_url() -> AsyncIterator[str]:
    """A database of this test session, at the newest migration."""
    url = fresh_database_url()
    await create_database(url)
    try:
        await upgrade(url)
        yield url
    finally:
        await drop_database(url)


@pytest_asyncio.fixture(scope="session")
async def db_engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture
async def db_sessions(db_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A session factory over tables emptied for this test (every table but Alembic's)."""
    async with db_engine.begin() as connection:
        tables = (await connection.execute(_APPLICATION_TABLES)).scalars()
        names = ", ".join(quote_identifier(name) for name in tables)
        if names:
            await connection.execute(text(f"TRUNCATE {names} CASCADE"))
    return session_factory(db_engine)


@pytest_asyncio.fixture
async def db_session(db_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with db_sessions() as session:
        yield session


async def tables_mentioning(session: AsyncSession, needle: str) -> dict[str, int]:
    """Rows of every application table whose text form (all columns, JSON included) contains `needle`,
    by table: what a deletion must have left none of."""
    found: dict[str, int] = {}
    for table in (await session.exec(_APPLICATION_TABLES)).scalars():  # type: ignore[call-overload]
        name = quote_identifier(table)
        statement = text(f"SELECT count(*) FROM {name} AS row WHERE row::text LIKE :pattern")
        count = (await session.exec(statement, params={"pattern": f"%{needle}%"})).scalar_one()  # type: ignore[call-overload]
        if count:
            found[table] = count
    return found


async def job_row(session: AsyncSession, job_id: uuid.UUID | None = None) -> uuid.UUID:
    """A queued job of its own owner (what fusion's parts belong to), with `job_id` if given."""
    job = Job(
        id=job_id or uuid.uuid4(),
        owner=f"user-{uuid.uuid4()}",
        bucket="uploads",
        object_key=f"uploads/x/{uuid.uuid4().hex}/clip.mp4",
        filename="clip.mp4",
        size_bytes=1,
    )
    session.add(job)
    await session.commit()
    return job.id
