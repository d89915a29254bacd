"""PostgreSQL for the stack: the machine's server when it answers, otherwise a private one we start.

A private server is `initdb` + `postgres` in the foreground (not `pg_ctl`, which would detach it), so it
is one more child of the stack that stops with it. initdb refuses to run as root: as root both run as
the `postgres` user through `runuser`.
"""

import os
import pwd
import stat
import subprocess
from pathlib import Path

import asyncpg

from devstack.asyncio_bridge import run_coroutine
from devstack.binaries import postgres_bin_dir
from shared.db import session


class PostgresError(RuntimeError):
    """PostgreSQL could not be reached, initialised or changed as asked."""


def server_dsn(host: str, port: int, user: str, database: str = "postgres") -> str:
    return f"postgresql://{user}@{host}:{port}/{database}"


def sqlalchemy_url(host: str, port: int, user: str, database: str) -> str:
    """The form DatabaseSettings.database_url takes (SQLAlchemy with the asyncpg driver)."""
    return f"postgresql+asyncpg://{user}@{host}:{port}/{database}"


async def _accepts(dsn: str, connect_timeout_s: float) -> bool:
    try:
        connection = await asyncpg.connect(dsn, timeout=connect_timeout_s)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    try:
        await connection.fetchval("SELECT 1")
    finally:
        await connection.close()
    return True


def accepts_connections(dsn: str, connect_timeout_s: float = 2.0) -> bool:
    return run_coroutine(lambda: _accepts(dsn, connect_timeout_s))


def ensure_database(url: str) -> bool:
    """Create the database `url` (SQLAlchemy form) names unless it exists; True when it was created."""
    return run_coroutine(lambda: session.ensure_database(url))


async def _drop_database(dsn: str, name: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        # FORCE ends sessions a test left open (e.g. a pool not yet disposed).
        await connection.execute(f"DROP DATABASE IF EXISTS {session.quote_identifier(name)} WITH (FORCE)")
    finally:
        await connection.close()


def drop_database(dsn: str, name: str) -> None:
    run_coroutine(lambda: _drop_database(dsn, name))


def _as_postgres_user(command: list[str], user: str) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if os.geteuid() == 0 else command


def _check_reachable_by(path: Path, user: pwd.struct_passwd) -> None:
    """Refuse early with a clear reason when the postgres user cannot reach the data directory."""
    for parent in path.resolve().parents:
        mode = parent.stat()
        searchable = mode.st_mode & stat.S_IXOTH or (
            mode.st_uid == user.pw_uid and mode.st_mode & stat.S_IXUSR
        )
        if not searchable:
            raise PostgresError(
                f"user {user.pw_name!r} cannot enter {parent} (mode {stat.filemode(mode.st_mode)}), "
                f"so PostgreSQL cannot use a data directory under it: choose one elsewhere"
            )


def prepare_data_dir(data_dir: Path, *, superuser: str, os_user: str = "postgres") -> None:
    """Run initdb once (trust authentication for `superuser`); a later start reuses the data."""
    if (data_dir / "PG_VERSION").exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(os_user)
        except KeyError as exc:
            raise PostgresError(f"PostgreSQL must not run as root and there is no user {os_user!r}") from exc
        _check_reachable_by(data_dir, account)
        os.chown(data_dir, account.pw_uid, account.pw_gid)
    data_dir.chmod(0o700)
    command = [
        str(postgres_bin_dir() / "initdb"),
        "--pgdata",
        str(data_dir),
        "--username",
        superuser,
        "--auth",
        "trust",
        "--encoding",
        "UTF8",
        "--no-sync",
    ]
    result = subprocess.run(
        _as_postgres_user(command, os_user), capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise PostgresError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def server_command(data_dir: Path, host: str, port: int, os_user: str = "postgres") -> list[str]:
    """The foreground `postgres` command for a data directory prepared by `prepare_data_dir`."""
    command = [
        str(postgres_bin_dir() / "postgres"),
        "-D",
        str(data_dir),
        "-p",
        str(port),
        "-c",
        f"listen_addresses={host}",
        # TCP only: no socket file in a directory the postgres user may not own.
        "-c",
        "unix_socket_directories=",
    ]
    return _as_postgres_user(command, os_user)
