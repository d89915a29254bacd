"""Health checks: each answers "is it serving yet?" without raising, and `wait_until` polls one."""

import contextlib
import time
from collections.abc import Callable, Iterable

import httpx
import urllib3
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import KafkaError, TopicAlreadyExistsError  # type: ignore[import-untyped, unused-ignore]

from devstack.asyncio_bridge import run_coroutine
from devstack.processes import ManagedProcess, ProcessRecord, Readiness, log_tail, port_is_open
from shared.storage import ObjectStore


class NotReadyError(RuntimeError):
    """A component did not become healthy in time, or its process exited while we waited."""


def wait_until(
    check: Callable[[], bool], *, what: str, timeout_s: float, process: ManagedProcess | None = None
) -> float:
    """Poll `check` until it holds; returns the seconds it took. Fails fast when `process` exits."""
    started = time.monotonic()
    delay = 0.02
    while True:
        if process is not None and process.exited():
            raise NotReadyError(
                f"{what} exited with status {process.popen.returncode} before it was ready; "
                f"last lines of {process.record.log_path}:\n{log_tail(process.record.log_path)}"
            )
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            tail = (
                f"; last lines of {process.record.log_path}:\n{log_tail(process.record.log_path)}"
                if process
                else ""
            )
            raise NotReadyError(f"{what} was not ready after {timeout_s:.0f} s{tail}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


async def _kafka_metadata(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2_000)
    await admin.start()
    try:
        await admin.describe_cluster()
    finally:
        await admin.close()


def kafka_ready(host: str, port: int) -> bool:
    """The broker accepts TCP connections and answers a metadata request."""
    if not port_is_open(host, port):
        return False
    try:
        run_coroutine(lambda: _kafka_metadata(f"{host}:{port}"))
    except (KafkaError, OSError, TimeoutError):
        return False
    return True


async def _create_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics if t not in existing
        ]
        if missing:
            # Another client may create one in between.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


def create_topics(bootstrap: str, topics: Iterable[str], partitions: int) -> None:
    """Create the topics that do not exist yet, so consumers can join their groups before any produce."""
    names = list(topics)
    run_coroutine(lambda: _create_topics(bootstrap, names, partitions))


def s3_ready(host: str, port: int, store: ObjectStore) -> bool:
    """The S3 server answers an authenticated request; refused credentials raise, they will not heal."""
    # minio retries refused connections with backoff for seconds: look at the port first.
    if not port_is_open(host, port):
        return False
    try:
        store.client.list_buckets()
    except (urllib3.exceptions.HTTPError, OSError):
        return False
    return True


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).is_success
    except httpx.HTTPError:
        return False


def serves(record: ProcessRecord, host: str = "127.0.0.1") -> bool:
    """Whether a child of the stack answers the way its record says it should."""
    if record.readiness is Readiness.HTTP and record.health_url is not None:
        return http_ok(record.health_url)
    if record.port is None:
        return True
    if record.readiness is Readiness.KAFKA:
        return kafka_ready(host, record.port)
    return port_is_open(host, record.port)


def wait_ready(
    record: ProcessRecord, *, timeout_s: float, process: ManagedProcess | None = None, host: str = "127.0.0.1"
) -> float:
    """Wait until the recorded child serves (see `serves`); returns the seconds it took."""
    return wait_until(lambda: serves(record, host), what=record.name, timeout_s=timeout_s, process=process)
