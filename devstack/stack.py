"""`LocalStack`: the broker, the S3 server, PostgreSQL and (optionally) the services, as processes."""

import functools
import signal
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Final, Self

from devstack import postgres, prometheus
from devstack.binaries import rclone_binary, tansu_binary
from devstack.config import REPO_ROOT, PostgresMode, ServiceName, ServiceSpec, StackConfig, StackSettings
from devstack.probes import create_topics, http_ok, kafka_ready, s3_ready, wait_ready, wait_until
from devstack.processes import (
    ManagedProcess,
    ProcessRecord,
    Readiness,
    free_port,
    kill_process,
    port_is_open,
    stop_process,
)
from devstack.state import StackState
from emotion_contract.events import Topic
from shared.storage import ObjectStore


class StackStartError(RuntimeError):
    """The stack could not start; whatever it had started is stopped again."""


class StackAlreadyRunningError(StackStartError):
    def __init__(self, state: StackState) -> None:
        super().__init__(
            f"a stack already runs from {state.config.root} (state file {state.config.state_path})"
        )
        self.state = state


def broker_command(host: str, port: int, storage: str = "memory://tansu/") -> list[str]:
    """Tansu, a Kafka-protocol broker, listening on host:port and keeping its topics in `storage`:
    `s3://BUCKET/` (durable: the variables of `broker_s3_env` say which S3 server) or `memory://tansu/`."""
    url = f"tcp://{host}:{port}"
    return [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage,
    ]


def broker_s3_env(endpoint: str, access_key: str, secret_key: str) -> dict[str, str]:
    """What Tansu's S3 storage engine (the Rust object_store crate) reads to find its server."""
    return {
        "AWS_ENDPOINT": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def await_broker(host: str, port: int, process: ManagedProcess, *, timeout_s: float, partitions: int) -> None:
    """Wait until the broker started as `process` answers, then create the pipeline's topics on it."""
    wait_until(lambda: kafka_ready(host, port), what="Tansu broker", timeout_s=timeout_s, process=process)
    create_topics(f"{host}:{port}", [topic.value for topic in Topic], partitions)


class LocalStack:
    """Start with `start()` or `with LocalStack(...) as stack:`; `env()` points services at it."""

    def __init__(
        self, config: StackConfig | None = None, *, services: Iterable[ServiceName | str] | None = None
    ) -> None:
        config = config or StackConfig()
        if services is not None:
            specs = [ServiceSpec.default(ServiceName(name), fixed_ports=False) for name in services]
            config = config.model_copy(update={"services": specs})
        self.config = config
        self._processes: list[ManagedProcess] = []
        self._ports: dict[str, int] = {}
        self._postgres_port = config.system_postgres_port
        self._services: list[ServiceSpec] = []
        self.startup_seconds: dict[str, float] = {}
        self._started_at: datetime | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start every component and wait until each is healthy; on failure stop what was started."""
        if self._started_at is not None:
            raise StackStartError("this stack is already started")
        previous = StackState.read(self.config.state_path)
        if previous is not None and previous.running():
            raise StackAlreadyRunningError(previous)
        self.config.logs_dir.mkdir(parents=True, exist_ok=True)
        self._started_at = datetime.now(UTC)
        began = time.monotonic()
        try:
            self._start_infrastructure(began)
            self._publish_bundle(began)
            self._start_services(began)
            if self.config.monitoring:
                self.start_monitoring()
        except BaseException:
            self._stop_processes()
            self._started_at = None
            raise
        self.startup_seconds["total"] = time.monotonic() - began
        self.state().write(self.config.state_path)
        return self

    def stop(self) -> None:
        """Stop services first, then the infrastructure; removes the state file. Safe to call twice."""
        self._stop_processes()
        if self._started_at is not None:
            self.config.state_path.unlink(missing_ok=True)
        self._started_at = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def stop_service(self, name: ServiceName | str, *, kill: bool = False) -> None:
        """Stop one service (SIGKILL with `kill`, as a crash would); `start_service` brings it back."""
        for process in [p for p in self._processes if p.record.name == ServiceName(name).value]:
            if kill:
                process.kill()
            else:
                process.stop(self.config.stop_grace_s)
            self._processes.remove(process)

    def start_service(self, name: ServiceName | str) -> None:
        """Start a service of this stack again, with the ports and environment it had, and wait for it."""
        spec = self._service(ServiceName(name))
        self._wait_healthy(spec, self._spawn_service(spec))

    def restart(self, name: str, *, kill: bool = False) -> float:
        """Stop any one process of the stack (a service, "kafka", "s3"; SIGKILL with `kill`, as a crash
        would) and start it again as it was: same command, ports, variables and data. Returns the seconds
        until it serves again."""
        index, process = self._process(name)
        if kill:
            process.kill()
        else:
            process.stop(self.config.stop_grace_s)
        again = ManagedProcess.respawn(process.record, attached=self.config.attached)
        self._processes[index] = again
        seconds = wait_ready(again.record, timeout_s=self._ready_timeout(name), process=again)
        if self._started_at is not None:
            self.state().write(self.config.state_path)
        return seconds

    def start_monitoring(self, scrape_interval_s: float | None = None) -> str:
        """Start a Prometheus scraping every service's /metrics (job `local/<service>`), and wait until it
        is ready; its URL. Safe to call when it runs: the URL of the one running."""
        if "prometheus" in self._ports:
            return self.prometheus_url
        port = self._claim_port("prometheus", self.config.prometheus_port, "--prometheus-port")
        interval = self.config.scrape_interval_s if scrape_interval_s is None else scrape_interval_s
        targets = {spec.name.value: self.metrics_url(spec.name) for spec in self._services}
        root = self.config.prometheus_dir
        config = prometheus.write_config(root / "prometheus.yml", targets, interval_s=interval)
        process = self._spawn(
            "prometheus",
            prometheus.command(config, root / "data", self.config.host, port),
            port=port,
            readiness=Readiness.HTTP,
            health_url=f"{self.prometheus_url}/-/ready",
        )
        wait_until(
            functools.partial(http_ok, f"{self.prometheus_url}/-/ready"),
            what="Prometheus",
            timeout_s=self.config.infra_ready_timeout_s,
            process=process,
        )
        if self._started_at is not None:
            self.state().write(self.config.state_path)
        return self.prometheus_url

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.config.host}:{self._port('prometheus')}"

    def _process(self, name: str) -> tuple[int, ManagedProcess]:
        for index, process in enumerate(self._processes):
            if process.record.name == name:
                return index, process
        known = ", ".join(process.record.name for process in self._processes)
        raise ValueError(f"this stack runs no process {name!r}; it runs {known}")

    def _ready_timeout(self, name: str) -> float:
        for spec in self._services:
            if spec.name.value == name:
                return spec.ready_timeout_s
        return self.config.infra_ready_timeout_s

    def _wait_healthy(self, spec: ServiceSpec, process: ManagedProcess) -> None:
        wait_until(
            functools.partial(http_ok, self._health_url(spec)),
            what=f"service {spec.name.value}",
            timeout_s=spec.ready_timeout_s,
            process=process,
        )

    def _stop_processes(self) -> None:
        while self._processes:
            self._processes.pop().stop(self.config.stop_grace_s)

    # --- what it serves --------------------------------------------------------------------------

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.config.host}:{self._port('kafka')}"

    @property
    def s3_endpoint(self) -> str:
        return f"{self.config.host}:{self._port('s3')}"

    @property
    def postgres_port(self) -> int:
        return self._postgres_port

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the stack's database (`config.database_name`)."""
        return self.database_url_for(self.config.database_name)

    def database_url_for(self, database: str) -> str:
        return postgres.sqlalchemy_url(
            self.config.host, self._postgres_port, self.config.postgres_user, database
        )

    def create_database(self, name: str) -> str:
        """Create a database on the stack's PostgreSQL (if missing) and return its SQLAlchemy URL."""
        url = self.database_url_for(name)
        postgres.ensure_database(url)
        return url

    def drop_database(self, name: str) -> None:
        if name == "postgres":
            raise ValueError("refusing to drop the maintenance database 'postgres'")
        postgres.drop_database(self._postgres_dsn(), name)

    def service_url(self, name: ServiceName | str) -> str:
        """Base URL of a running HTTP service, e.g. the gateway's."""
        spec = self._service(ServiceName(name))
        if spec.http_port is None:
            raise ValueError(f"service {spec.name.value} has no HTTP API")
        return f"http://{self.config.host}:{spec.http_port}"

    def metrics_url(self, name: ServiceName | str) -> str:
        """Where a service serves /metrics: its own port (the API's port serves none)."""
        spec = self._service(ServiceName(name))
        return f"http://{self.config.host}:{spec.metrics_port}/metrics"

    def env(self) -> dict[str, str]:
        """The EA_* variables that point a service at this stack."""
        env = {
            "EA_ENVIRONMENT": "development",
            "EA_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "EA_DATABASE_URL": self.database_url,
            "EA_S3_ENDPOINT": self.s3_endpoint,
            "EA_S3_ACCESS_KEY": self.config.s3_access_key,
            "EA_S3_SECRET_KEY": self.config.s3_secret_key,
            "EA_S3_SECURE": "false",
        }
        if self.bundle_uri is not None:
            env["EA_BUNDLE_URI"] = self.bundle_uri
        if any(spec.name is ServiceName.AUTH for spec in self._services):
            env["EA_AUTH_URL"] = self.service_url(ServiceName.AUTH)
        if "s3-cors" in self._ports:
            env["EA_PUBLIC_S3_ENDPOINT"] = self.public_s3_url
        return env

    def settings(self, **overrides: object) -> StackSettings:
        """Settings for this stack, ignoring EA_* variables of the calling environment."""
        values: dict[str, object] = {
            name.removeprefix("EA_").lower(): value for name, value in self.env().items()
        }
        values.update(overrides)
        # model_validate skips the environment and .env sources that the constructor would read.
        return StackSettings.model_validate(values)

    def object_store(self) -> ObjectStore:
        return ObjectStore.from_settings(self.settings())

    def endpoints(self) -> dict[str, str]:
        endpoints = {
            "kafka": self.kafka_bootstrap,
            "s3": f"http://{self.s3_endpoint}",
            **({"s3-public": self.public_s3_url} if "s3-cors" in self._ports else {}),
            **({"prometheus": self.prometheus_url} if "prometheus" in self._ports else {}),
            "postgres": self.database_url,
        }
        for spec in self._services:
            endpoints[spec.name.value] = self._health_url(spec).removesuffix("/healthz")
        return endpoints

    def state(self) -> StackState:
        if self._started_at is None:
            raise StackStartError("the stack is not started")
        return StackState(
            config=self.config,
            processes=[process.record for process in self._processes],
            endpoints=self.endpoints(),
            env=self.env(),
            startup_seconds=self.startup_seconds,
            started_at=self._started_at,
        )

    # --- starting --------------------------------------------------------------------------------

    def _port(self, name: str) -> int:
        try:
            return self._ports[name]
        except KeyError:
            raise StackStartError(f"the stack has no {name} port yet: start it first") from None

    def _claim_port(self, name: str, requested: int, flag: str) -> int:
        if requested == 0:
            port = free_port(self.config.host)
        elif port_is_open(self.config.host, requested):
            raise StackStartError(
                f"{name}: port {requested} on {self.config.host} is in use; choose another with {flag}"
            )
        else:
            port = requested
        self._ports[name] = port
        return port

    def _spawn(
        self,
        name: str,
        command: list[str],
        *,
        port: int,
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        readiness: Readiness = Readiness.TCP,
        health_url: str | None = None,
    ) -> ManagedProcess:
        process = ManagedProcess.spawn(
            name,
            command,
            log_path=self.config.logs_dir / f"{name}.log",
            env=env or {},
            cwd=REPO_ROOT,
            attached=self.config.attached,
            port=port,
            stop_signal=stop_signal,
            readiness=readiness,
            health_url=health_url,
        )
        self._processes.append(process)
        return process

    def _start_infrastructure(self, began: float) -> None:
        # Launch the S3 server and PostgreSQL before waiting for either: their start-up overlaps. The
        # broker keeps its topics in the S3 server, so it starts once that serves (its port is taken now:
        # the services' settings name it).
        self._claim_port("kafka", self.config.kafka_port, "--kafka-port")
        s3 = self._spawn_s3()
        private_postgres = self._spawn_postgres_if_needed()
        timeout = self.config.infra_ready_timeout_s
        host = self.config.host

        store = self.object_store()
        wait_until(
            lambda: s3_ready(host, self._port("s3"), store),
            what="rclone S3 server",
            timeout_s=timeout,
            process=s3,
        )
        for bucket in self.config.buckets:
            store.ensure_bucket(bucket)
        if self.config.durable_broker:
            store.ensure_bucket(self.config.broker_bucket)
        broker = self._spawn_broker()
        front = self._spawn_s3_cors()
        wait_until(
            lambda: port_is_open(host, self._port("s3-cors")),
            what="S3 CORS front",
            timeout_s=timeout,
            process=front,
        )
        self.startup_seconds["s3"] = time.monotonic() - began

        await_broker(
            host, self._port("kafka"), broker, timeout_s=timeout, partitions=self.config.kafka_partitions
        )
        self.startup_seconds["kafka"] = time.monotonic() - began

        dsn = self._postgres_dsn()
        wait_until(
            lambda: postgres.accepts_connections(dsn),
            what=f"PostgreSQL on port {self._postgres_port}",
            timeout_s=timeout,
            process=private_postgres,
        )
        postgres.ensure_database(self.database_url)
        self.startup_seconds["postgres"] = time.monotonic() - began

    def _publish_bundle(self, began: float) -> None:
        """Put the model bundle in the object store, where the services load their components from."""
        if self.config.bundle_dir is None:
            return
        from shared.model.bundle import publish_bundle  # torch: imported only when a bundle is published

        publish_bundle(self.config.bundle_dir, self.object_store(), self.bundle_uri or "")
        self.startup_seconds["bundle"] = time.monotonic() - began

    @property
    def bundle_uri(self) -> str | None:
        if self.config.bundle_dir is None:
            return None
        models_bucket = StackSettings.model_fields["models_bucket"].default
        return f"s3://{models_bucket}/bundles/{self.config.bundle_dir.resolve().name}"

    def _spawn_broker(self) -> ManagedProcess:
        port = self._port("kafka")
        if not self.config.durable_broker:
            command = broker_command(self.config.host, port)
            return self._spawn("kafka", command, port=port, readiness=Readiness.KAFKA)
        # In the stack's S3 server, the broker's topics, messages and committed offsets outlive a restart.
        command = broker_command(self.config.host, port, f"s3://{self.config.broker_bucket}/")
        env = broker_s3_env(
            f"http://{self.s3_endpoint}", self.config.s3_access_key, self.config.s3_secret_key
        )
        return self._spawn("kafka", command, port=port, env=env, readiness=Readiness.KAFKA)

    def _spawn_s3(self) -> ManagedProcess:
        port = self._claim_port("s3", self.config.s3_port, "--s3-port")
        self.config.s3_data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(rclone_binary()),
            "serve",
            "s3",
            str(self.config.s3_data_dir),
            "--addr",
            f"{self.config.host}:{port}",
            "--auth-key",
            f"{self.config.s3_access_key},{self.config.s3_secret_key}",
            "--vfs-cache-mode",
            "writes",
            # Write each object through at once: the default 5 s delay loses uploads on a quick stop.
            "--vfs-write-back",
            "0s",
            "--cache-dir",
            str(self.config.root / "rclone-cache"),
            "--config",
            "/dev/null",
        ]
        return self._spawn("s3", command, port=port)

    def _spawn_s3_cors(self) -> ManagedProcess:
        """The address clients upload to (presigned POST policies): rclone behind a front that answers CORS
        and POST uploads."""
        port = self._claim_port("s3-cors", 0, "")
        command = [
            sys.executable,
            "-m",
            "devstack.s3_cors",
            "--host",
            self.config.host,
            "--port",
            str(port),
            "--upstream",
            f"http://{self.s3_endpoint}",
        ]
        # It writes POST uploads to rclone itself, after checking their policy with these credentials.
        env = {"EA_S3_ACCESS_KEY": self.config.s3_access_key, "EA_S3_SECRET_KEY": self.config.s3_secret_key}
        return self._spawn("s3-cors", command, port=port, env=env)

    @property
    def public_s3_url(self) -> str:
        """Where clients outside the stack reach the object store: the CORS front."""
        return f"http://{self.config.host}:{self._port('s3-cors')}"

    def _spawn_postgres_if_needed(self) -> ManagedProcess | None:
        mode = self.config.postgres
        if mode is not PostgresMode.PRIVATE:
            system_dsn = postgres.server_dsn(
                self.config.host, self.config.system_postgres_port, self.config.postgres_user
            )
            if postgres.accepts_connections(system_dsn):
                self._postgres_port = self.config.system_postgres_port
                return None
            if mode is PostgresMode.SYSTEM:
                raise StackStartError(f"no PostgreSQL accepts connections at {system_dsn}")
        port = self._claim_port("postgres", self.config.private_postgres_port, "--postgres-port")
        self._postgres_port = port
        data_dir = self.config.private_postgres_dir
        postgres.prepare_data_dir(data_dir, superuser=self.config.postgres_user)
        command = postgres.server_command(data_dir, self.config.host, port)
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to disconnect.
        return self._spawn("postgres", command, port=port, stop_signal=signal.SIGINT)

    def _postgres_dsn(self) -> str:
        return postgres.server_dsn(self.config.host, self._postgres_port, self.config.postgres_user)

    def _start_services(self, began: float) -> None:
        self._services = [self._with_ports(spec) for spec in self.config.services]
        launched = [(spec, self._spawn_service(spec)) for spec in self._services]
        for spec, process in launched:
            self._wait_healthy(spec, process)
            self.startup_seconds[spec.name.value] = time.monotonic() - began

    def _with_ports(self, spec: ServiceSpec) -> ServiceSpec:
        name = spec.name.value
        update: dict[str, int] = {
            "metrics_port": self._claim_port(f"{name}-metrics", spec.metrics_port, "--metrics-port-base")
        }
        if spec.http_port is not None:
            update["http_port"] = self._claim_port(name, spec.http_port, f"--{name.replace('_', '-')}-port")
        return spec.model_copy(update=update)

    def _spawn_service(self, spec: ServiceSpec) -> ManagedProcess:
        env = {
            **self.env(),
            "EA_SERVICE_NAME": spec.name.value,
            "EA_METRICS_PORT": str(spec.metrics_port),
            **spec.extra_env,
        }
        if spec.http_port is not None:
            env["EA_HTTP_PORT"] = str(spec.http_port)
        env["PYTHONUNBUFFERED"] = "1"
        port = spec.http_port if spec.http_port is not None else spec.metrics_port
        command = spec.command or [sys.executable, "-m", spec.module]
        if spec.nice:
            command = ["nice", "-n", str(spec.nice), *command]
        health_url = self._health_url(spec)
        return self._spawn(
            spec.name.value, command, port=port, env=env, readiness=Readiness.HTTP, health_url=health_url
        )

    def _health_url(self, spec: ServiceSpec) -> str:
        port = spec.http_port if spec.http_port is not None else spec.metrics_port
        return f"http://{self.config.host}:{port}/healthz"

    def _service(self, name: ServiceName) -> ServiceSpec:
        for spec in self._services:
            if spec.name is name:
                return spec
        raise ValueError(f"service {name.value} is not part of this stack")


def stop_recorded(state: StackState, grace_s: float | None = None) -> list[str]:
    """Stop what a state file lists (services first) and remove the file; returns the names stopped."""
    grace = state.config.stop_grace_s if grace_s is None else grace_s
    stopped = []
    for record in reversed(state.processes):
        stop_process(record, grace)
        stopped.append(record.name)
    state.config.state_path.unlink(missing_ok=True)
    return stopped


# What an operator may call a process besides its name in `status`.
PROCESS_ALIASES: Final = {"broker": "kafka", "minio": "s3", "s3-server": "s3"}


def restart_recorded(state: StackState, name: str, *, kill: bool = False) -> tuple[ProcessRecord, float]:
    """Restart one process that a state file lists (see `LocalStack.restart`), from another shell than the
    one that started the stack; the state file then records the new pid. Returns the new record and the
    seconds until it served."""
    names = [record.name for record in state.processes]
    if name not in names:
        name = PROCESS_ALIASES.get(name, name.replace("-", "_"))
    if name not in names:
        raise ValueError(f"the stack runs no process {name!r}; it runs {', '.join(names)}")
    index = names.index(name)
    record = state.processes[index]
    if kill:
        kill_process(record)
    else:
        stop_process(record, state.config.stop_grace_s)
    again = ManagedProcess.respawn(record, attached=False)
    timeout = (
        state.config.infra_ready_timeout_s if record.readiness is not Readiness.HTTP else _SERVICE_READY_S
    )
    seconds = wait_ready(again.record, timeout_s=timeout, process=again, host=state.config.host)
    state.processes[index] = again.record
    state.write(state.config.state_path)
    return again.record, seconds


# A model service loads its weights before /healthz answers.
_SERVICE_READY_S: Final = 180.0
