"""Schema migrations, configured in code so that they run from an installed package (no alembic.ini).

The gateway and `make up` run `python -m shared.db.migrate` before starting: it brings the database that
`EA_DATABASE_URL` names to the newest revision.

    python -m shared.db.migrate [--url DSN] [--create-database] [upgrade [REVISION]]
    python -m shared.db.migrate downgrade REVISION      # "base" empties the database
    python -m shared.db.migrate current
"""

import argparse
import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from shared.db.session import create_engine, ensure_database
from shared.settings import DatabaseSettings

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")

log = logging.getLogger(__name__)


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # Passed as an attribute, not a main option: the ini parser would read '%' in a password.
        config.attributes["database_url"] = url
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


async def upgrade(url: str, revision: str = "head") -> None:
    await _run_on_connection(url, lambda config: command.upgrade(config, revision))


async def downgrade(url: str, revision: str) -> None:
    await _run_on_connection(url, lambda config: command.downgrade(config, revision))


async def current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


async def _run_on_connection(url: str, alembic_command: Callable[[Config], None]) -> None:
    # Alembic's env.py cannot start an event loop inside ours, so it gets our connection instead
    # (Alembic cookbook, "Using asyncio with Alembic", programmatic use).
    engine = create_engine(url)

    def run(connection: Connection) -> None:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        alembic_command(config)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared.db.migrate", description="Migrate the state database."
    )
    parser.add_argument("--url", help="database URL (default: EA_DATABASE_URL from the shared settings)")
    parser.add_argument(
        "--create-database", action="store_true", help="create the database first when it does not exist"
    )
    actions = parser.add_subparsers(dest="action")
    upgrade_parser = actions.add_parser("upgrade", help="migrate up (the default action)")
    upgrade_parser.add_argument("revision", nargs="?", default="head")
    downgrade_parser = actions.add_parser("downgrade", help="migrate down")
    downgrade_parser.add_argument("revision", help='a revision id, "-1", or "base" for an empty database')
    actions.add_parser(
        "current", help="print the database's revision, and the newest one when it is behind (exit 1 then)"
    )
    return parser


async def run(args: argparse.Namespace) -> None:
    url: str = args.url or DatabaseSettings().database_url
    if args.create_database and await ensure_database(url):
        log.info("created the database")
    match args.action:
        case "downgrade":
            await downgrade(url, args.revision)
        case "current":
            current, head = await current_revision(url), head_revision()
            print(
                current or "base"
                if current == head
                else f"{current or 'base'} (behind: the newest is {head})"
            )
            if current != head:
                raise SystemExit(1)
        case _:
            await upgrade(url, getattr(args, "revision", "head"))


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(run(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    main()
