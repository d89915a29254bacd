"""The local stack's real processes (Tansu, rclone, PostgreSQL) and its `python -m devstack` CLI."""

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # type: ignore[import-untyped, unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from devstack import (
    LocalStack,
    PostgresMode,
    ServiceName,
    ServiceSpec,
    StackConfig,
    StackStartError,
    StackState,
)
from devstack.config import StackSettings
from devstack.probes import NotReadyError
from devstack.processes import is_running, port_is_open
from emotion_contract.events import Topic

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]

# Tansu holds a rejoining group until the previous member's session expires (measured: a 6 s session
# made the second join take 11 s, a 1 s session 1 s).
CONSUMER_TIMEOUTS = {
    "session_timeout_ms": 1_000,
    "heartbeat_interval_ms": 100,
    "max_poll_interval_ms": 10_000,
}


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def _consume(consumer: AIOKafkaConsumer, count: int, timeout_s: float = 20.0) -> list[bytes]:
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < count and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        values.extend(record.value for records in batches.values() for record in records)
    return values


async def test_consumer_group_resumes_after_its_committed_offset(kafka_bootstrap: str) -> None:
    topic = f"test.localstack.{uuid.uuid4().hex[:8]}"
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    await _create_topic(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for index in range(3):
            await producer.send_and_wait(topic, f"first-{index}".encode(), key=b"job-1")

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **CONSUMER_TIMEOUTS,
        )
        await consumer.start()
        try:
            assert await _consume(consumer, 3) == [b"first-0", b"first-1", b"first-2"]
            await consumer.commit()
            assert await consumer.committed(TopicPartition(topic, 0)) == 3
        finally:
            await consumer.stop()

        await producer.send_and_wait(topic, b"second-0", key=b"job-1")
    finally:
        await producer.stop()

    # A new member of the same group starts after the committed offset, not from the beginning.
    resumed = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **CONSUMER_TIMEOUTS,
    )
    await resumed.start()
    try:
        assert await _consume(resumed, 1) == [b"second-0"]
    finally:
        await resumed.stop()


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"job-1")
    finally:
        await producer.stop()


async def _consume_in_group(
    bootstrap: str, topic: str, group: str, count: int, *, commit: bool
) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **CONSUMER_TIMEOUTS,
    )
    await consumer.start()
    try:
        values = await _consume(consumer, count)
        if commit:
            await consumer.commit()
        return values
    finally:
        await consumer.stop()


async def test_a_killed_broker_comes_back_with_its_topics_messages_and_offsets(tmp_path: Path) -> None:
    """Tansu keeps its log in the stack's S3 server: a SIGKILL loses nothing, committed or not."""
    with LocalStack(StackConfig(root=tmp_path, stop_grace_s=2.0)) as stack:
        bootstrap, topic, group = stack.kafka_bootstrap, "durable.check", "durable-group"
        await _create_topic(bootstrap, topic)
        await _produce(bootstrap, topic, [b"first-0", b"first-1"])
        assert await _consume_in_group(bootstrap, topic, group, 2, commit=True) == [b"first-0", b"first-1"]
        await _produce(bootstrap, topic, [b"second-0"])
        old_pid = stack.state().processes[[r.name for r in stack.state().processes].index("kafka")].pid

        await asyncio.to_thread(stack.restart, "kafka", kill=True)

        new_pid = next(r.pid for r in stack.state().processes if r.name == "kafka")
        assert new_pid != old_pid
        assert StackState.read(stack.config.state_path) == stack.state()
        assert {t.value for t in Topic} | {topic} <= await _topics(bootstrap)
        assert await _consume_in_group(bootstrap, topic, group, 1, commit=True) == [b"second-0"]
        await _produce(bootstrap, topic, [b"third-0"])
        assert await _consume_in_group(bootstrap, topic, "fresh-group", 4, commit=False) == [
            b"first-0",
            b"first-1",
            b"second-0",
            b"third-0",
        ]


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_pipeline_topics_exist_once_the_stack_is_up(stack: LocalStack) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    assert {topic.value for topic in Topic} <= topics


async def test_database_url_reaches_a_fresh_database(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            name = (await connection.execute(text("SELECT current_database()"))).scalar_one()
            tables = (
                await connection.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert database_url.endswith(f"/{name}")
    assert name.startswith("test_")
    assert tables == 0


def test_env_configures_service_settings(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in stack.env().items():
        monkeypatch.setenv(name, value)

    settings = StackSettings(_env_file=None)

    assert settings.kafka_bootstrap_servers == stack.kafka_bootstrap
    assert settings.s3_endpoint == stack.s3_endpoint
    assert settings.s3_secret_key.get_secret_value() == stack.config.s3_secret_key
    assert settings.database_url == stack.database_url


def test_state_file_lists_the_running_processes(stack: LocalStack) -> None:
    state = StackState.read(stack.config.state_path)

    assert state is not None
    assert {"kafka", "s3", "s3-cors"} <= {record.name for record in state.processes}
    assert state.all_running()
    assert state.env == stack.env()
    assert {"kafka", "s3", "postgres", "total"} <= set(state.startup_seconds)


def test_stop_ends_every_process_and_removes_the_state_file(tmp_path: Path) -> None:
    stack = LocalStack(StackConfig(root=tmp_path)).start()
    records = stack.state().processes
    assert all(is_running(record) for record in records)

    stack.stop()

    assert not any(is_running(record) for record in records)
    assert not stack.config.state_path.exists()
    assert not port_is_open("127.0.0.1", int(stack.kafka_bootstrap.rsplit(":", 1)[1]))


def test_a_taken_port_is_refused_with_the_flag_to_change_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StackStartError, match="--kafka-port"):
            LocalStack(StackConfig(root=tmp_path, kafka_port=port)).start()
    assert not (tmp_path / "state.json").exists()


def test_a_second_stack_on_the_same_root_is_refused(stack: LocalStack) -> None:
    with pytest.raises(StackStartError, match="already runs"):
        LocalStack(stack.config).start()


def test_a_service_that_exits_fails_the_start_and_leaves_nothing_behind(tmp_path: Path) -> None:
    crashing = ServiceSpec(
        name=ServiceName.FUSION,
        command=[sys.executable, "-c", "import sys; print('cannot load the model'); sys.exit(3)"],
        ready_timeout_s=10,
    )
    stack = LocalStack(StackConfig(root=tmp_path, services=[crashing]))

    with pytest.raises(NotReadyError, match="exited with status 3") as failure:
        stack.start()

    assert "cannot load the model" in str(failure.value)
    assert (tmp_path / "logs" / "kafka.log").exists()
    assert not (tmp_path / "state.json").exists()


# A program that answers /healthz only when the stack's variables reached it, so the test sees what a
# service would be given. It is not a stand-in for any service's behaviour.
_ENV_REPORTER = """
import http.server, json, os
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({k: v for k, v in os.environ.items() if k.startswith("EA_")}).encode()
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(os.environ["EA_HTTP_PORT"])), Handler).serve_forever()
"""


def test_services_get_the_stack_environment_and_their_ports(tmp_path: Path) -> None:
    gateway = ServiceSpec.default(ServiceName.GATEWAY, fixed_ports=False).model_copy(
        update={"command": [sys.executable, "-c", _ENV_REPORTER]}
    )
    with LocalStack(StackConfig(root=tmp_path, services=[gateway])) as stack:
        url = stack.service_url(ServiceName.GATEWAY)
        seen = json.loads(httpx.get(f"{url}/healthz").content)
        assert seen["EA_KAFKA_BOOTSTRAP_SERVERS"] == stack.kafka_bootstrap
        assert seen["EA_S3_ENDPOINT"] == stack.s3_endpoint
        assert seen["EA_SERVICE_NAME"] == "gateway"
        assert url.endswith(f":{seen['EA_HTTP_PORT']}")
        assert seen["EA_METRICS_PORT"] != seen["EA_HTTP_PORT"]
        assert "gateway" in stack.state().startup_seconds


def test_a_private_postgres_when_asked(shared_tmp_dir: Path, tmp_path: Path) -> None:
    config = StackConfig(
        root=tmp_path,
        postgres=PostgresMode.PRIVATE,
        postgres_data_dir=shared_tmp_dir / f"pg-{uuid.uuid4().hex[:8]}",
        database_name="private_check",
    )
    with LocalStack(config) as stack:
        assert stack.postgres_port != 5432
        url = stack.create_database("second_db")
        assert url.endswith(f":{stack.postgres_port}/second_db")
        record = next(r for r in stack.state().processes if r.name == "postgres")

        async def databases() -> set[str]:
            engine = create_async_engine(stack.database_url)
            try:
                async with engine.connect() as connection:
                    rows = await connection.execute(text("SELECT datname FROM pg_database"))
                    return {row[0] for row in rows}
            finally:
                await engine.dispose()

        assert {"private_check", "second_db"} <= asyncio.run(databases())
    assert not is_running(record)


def test_children_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from devstack import LocalStack, StackConfig\n"
        "stack = LocalStack(StackConfig(root=Path(sys.argv[1]))).start()\n"
        "print(stack.state().model_dump_json(), flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, cwd=REPO_ROOT, text=True
    )
    try:
        assert parent.stdout is not None
        state = StackState.model_validate_json(parent.stdout.readline())
        assert state.all_running()
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 5
    while state.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.running() == []


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli_root(shared_tmp_dir: Path) -> Iterator[Path]:
    root = shared_tmp_dir / f"cli-{uuid.uuid4().hex[:8]}"
    yield root
    _cli("down", "--root", str(root), "--grace", "2")  # whatever the test left running


def test_cli_up_status_env_down(cli_root: Path, stack: LocalStack) -> None:
    database = f"test_cli_{uuid.uuid4().hex[:12]}"
    root = str(cli_root)
    free = ("--kafka-port", "0", "--s3-port", "0", "--postgres-port", "0")
    try:
        up = _cli("up", "--root", root, "--no-services", *free, "--database", database)
        assert up.returncode == 0, up.stderr
        assert "stack is up" in up.stdout
        state = StackState.read(cli_root / "state.json")
        assert state is not None
        assert state.all_running()

        again = _cli("up", "--root", root, "--no-services", *free, "--database", database)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        assert StackState.read(cli_root / "state.json") == state

        status = _cli("status", "--root", root)
        assert status.returncode == 0, status.stderr
        assert status.stdout.count(" running ") == len(state.processes)

        # What an operator does by hand: kill the broker as a crash would, and bring it back.
        broker = next(record for record in state.processes if record.name == "kafka")
        restarted = _cli("restart", "--root", root, "broker", "--kill")
        assert restarted.returncode == 0, restarted.stderr
        assert restarted.stdout.startswith("kafka killed and started: pid ")
        state = StackState.read(cli_root / "state.json")
        assert state is not None and state.all_running()
        again_broker = next(record for record in state.processes if record.name == "kafka")
        assert again_broker.pid != broker.pid and again_broker.port == broker.port
        assert not is_running(broker)
        assert f"pid {again_broker.pid} " in _cli("status", "--root", root).stdout
        assert _cli("restart", "--root", root, "frontend").returncode == 1

        exported = dict(
            line.removeprefix("export ").split("=", 1)
            for line in _cli("env", "--root", root).stdout.splitlines()
        )
        assert exported["EA_KAFKA_BOOTSTRAP_SERVERS"] == state.env["EA_KAFKA_BOOTSTRAP_SERVERS"]
        assert exported["EA_DATABASE_URL"].endswith(f"/{database}")

        down = _cli("down", "--root", root)
        assert down.returncode == 0, down.stderr
        assert state.running() == []
        assert not (cli_root / "state.json").exists()
        assert _cli("status", "--root", root).returncode == 1
    finally:
        # With a PostgreSQL on the machine, the CLI's database lives there beside the session's one;
        # a private server's data goes with its directory.
        if stack.postgres_port == stack.config.system_postgres_port:
            stack.drop_database(database)


def test_cli_rejects_unknown_services() -> None:
    result = _cli("up", "--services", "gateway,frontend")

    assert result.returncode == 2
    assert "frontend" in result.stderr
