"""Alembic environment: PostgreSQL through asyncpg, with the SQLModel tables as the target.

`shared.db.migrate` hands over an open connection (config.attributes["connection"]); the `alembic` command
line gets its URL from `EA_DATABASE_URL` through the shared settings.
"""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text
from sqlmodel import SQLModel

# Imported for their side effect: each registers its tables on SQLModel.metadata.
import shared.db.account_models
import shared.db.models
import shared.db.webhook_models  # noqa: F401
from shared.db.session import create_engine
from shared.settings import DatabaseSettings

# Replicas that start together all run the pre-start migration; this lock lets one at a time in.
MIGRATION_LOCK_ID = 0x45414D49  # "EAMI"

config = context.config
target_metadata = SQLModel.metadata

if config.config_file_name is not None and config.file_config.has_section("loggers"):
    fileConfig(config.config_file_name)


def database_url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    return str(url) if url else DatabaseSettings().database_url


def run_migrations_offline() -> None:
    """Write the SQL to stdout (`alembic upgrade head --sql`) instead of running it."""
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": MIGRATION_LOCK_ID})
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_engine(database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        asyncio.run(run_async_migrations())
    else:
        do_run_migrations(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
