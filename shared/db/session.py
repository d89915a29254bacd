"""Engine and session construction, and creating the database itself where the local stack needs it."""

import asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

ASYNC_DRIVER = "postgresql+asyncpg"
MAINTENANCE_DATABASE = "postgres"


def parse_database_url(url: str) -> URL:
    """Parse a DSN and refuse anything but PostgreSQL through asyncpg, naming a database."""
    parsed = make_url(url)
    if parsed.drivername != ASYNC_DRIVER:
        raise ValueError(f"database URL must use the {ASYNC_DRIVER} driver, got {parsed.drivername!r}")
    if not parsed.database:
        raise ValueError("database URL names no database")
    return parsed


def database_name(url: str) -> str:
    name = parse_database_url(url).database
    if not name:
        raise ValueError("database URL names no database")
    return name


def create_engine(url: str, *, echo: bool = False, pool_size: int = 5, max_overflow: int = 10) -> AsyncEngine:
    """`pool_size` should cover the requests a process serves at once: beyond it, overflow connections
    are opened and closed per checkout, which costs more than the queries they run."""
    # pre_ping: a pooled connection that PostgreSQL closed (restart, idle timeout) is replaced, not raised.
    return create_async_engine(
        parse_database_url(url),
        echo=echo,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: repository functions commit and return rows the caller reads afterwards,
    # and an async session cannot lazily reload an expired attribute.
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def connect_maintenance(url: str) -> asyncpg.Connection:
    """A plain asyncpg connection to the server's `postgres` database, as the user of `url`."""
    parsed = parse_database_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=MAINTENANCE_DATABASE,
    )


async def ensure_database(url: str) -> bool:
    """Create the database `url` names unless it exists; True when it was created."""
    name = database_name(url)
    connection = await connect_maintenance(url)
    try:
        if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await connection.execute(f"CREATE DATABASE {quote_identifier(name)}")
        except asyncpg.DuplicateDatabaseError:
            return False  # another process created it between the check and here
        return True
    finally:
        await connection.close()
