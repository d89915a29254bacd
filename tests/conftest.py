"""Fixtures for every tier. The local stack (broker, S3 server, PostgreSQL; no services) starts once per
session, and only when a test asks for one of the fixtures built on it: unit tests start nothing.
"""

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import LocalStack, StackConfig
from devstack.config import StackSettings
from shared.storage import ObjectStore

REPO_ROOT = Path(__file__).resolve().parents[1]
# The data sits beside the checkout (…/shared/data), wherever the checkout lives.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_tmp_dir() -> Iterator[Path]:
    """A temporary directory that other users can enter: a private PostgreSQL runs as user `postgres`,
    and pytest's own temporary directories are private to the user running the tests."""
    path = Path(tempfile.mkdtemp(prefix="ea-tests-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, shared_tmp_dir: Path) -> Iterator[LocalStack]:
    config = StackConfig(
        root=tmp_path_factory.mktemp("stack"),
        # Used only where no PostgreSQL answers on 127.0.0.1:5432.
        postgres_data_dir=shared_tmp_dir / "postgres",
        stop_grace_s=5.0,
    )
    with LocalStack(config) as running:
        yield running


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: LocalStack) -> str:
    return stack.kafka_bootstrap


@pytest.fixture(scope="session")
def object_store(stack: LocalStack) -> ObjectStore:
    return stack.object_store()


@pytest.fixture(scope="session")
def database_url(stack: LocalStack) -> Iterator[str]:
    """A fresh database for this session (SQLAlchemy asyncpg URL), dropped at the end."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    url = stack.create_database(name)
    yield url
    stack.drop_database(name)


@pytest.fixture(scope="session")
def settings(stack: LocalStack, database_url: str) -> StackSettings:
    """StackSettings pointing at the session's broker, S3 server and database."""
    return stack.settings(database_url=database_url)


@pytest.fixture(scope="session")
def talking_videos() -> Path:
    """Six short real videos of people talking (third-party footage: smoke tests only)."""
    path = SHARED_DATA / "talking"
    if not any(path.glob("*.mp4")):
        pytest.fail(f"no talking-person videos in {path}: the shared data must sit beside the checkout")
    return path
