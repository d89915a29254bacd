"""`python -m devstack up|down|status|env|restart`: the local stack from a shell, detached."""

import argparse
import shlex
import sys
from pathlib import Path

from pydantic import ValidationError

from devstack import prometheus
from devstack.binaries import BinaryNotFoundError
from devstack.config import (
    DEFAULT_AUTH_PORT,
    DEFAULT_GATEWAY_PORT,
    DEFAULT_KAFKA_PORT,
    DEFAULT_METRICS_PORT_BASE,
    DEFAULT_PRIVATE_POSTGRES_PORT,
    DEFAULT_ROOT,
    DEFAULT_S3_PORT,
    PostgresMode,
    ServiceName,
    ServiceSpec,
    StackConfig,
)
from devstack.postgres import PostgresError
from devstack.probes import NotReadyError
from devstack.stack import LocalStack, StackStartError, restart_recorded, stop_recorded
from devstack.state import StackState, StateFileError


def _service_names(text: str) -> list[ServiceName]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    known = ", ".join(name.value for name in ServiceName)
    try:
        return [ServiceName(name) for name in names]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: services are a comma-separated subset of {known}"
        ) from None


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_root(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--root", type=Path, default=DEFAULT_ROOT, help="state, logs and data (default: %(default)s)"
        )
        return sub

    up = with_root(
        commands.add_parser("up", help="start the stack in the background; returns when it is healthy")
    )
    chosen = up.add_mutually_exclusive_group()
    chosen.add_argument("--no-services", action="store_true", help="infrastructure only")
    chosen.add_argument(
        "--services",
        type=_service_names,
        default=list(ServiceName),
        help="comma-separated subset (default: all)",
    )
    up.add_argument(
        "--kafka-port",
        type=int,
        default=DEFAULT_KAFKA_PORT,
        help="0 picks a free port (default: %(default)s)",
    )
    up.add_argument("--bundle", type=Path, default=None, help="model bundle to publish for the services")
    up.add_argument("--s3-port", type=int, default=DEFAULT_S3_PORT, help="(default: %(default)s)")
    up.add_argument("--gateway-port", type=int, default=DEFAULT_GATEWAY_PORT, help="(default: %(default)s)")
    up.add_argument("--auth-port", type=int, default=DEFAULT_AUTH_PORT, help="(default: %(default)s)")
    up.add_argument(
        "--metrics-port-base",
        type=int,
        default=DEFAULT_METRICS_PORT_BASE,
        help="services' metrics ports count up from here; 0 picks free ports (default: %(default)s)",
    )
    up.add_argument("--postgres", type=PostgresMode, choices=list(PostgresMode), default=PostgresMode.AUTO)
    up.add_argument(
        "--postgres-port",
        type=int,
        default=DEFAULT_PRIVATE_POSTGRES_PORT,
        help="port of a private PostgreSQL, when one is started (default: %(default)s)",
    )
    up.add_argument(
        "--database", default="emotion_analyzer", help="database to create (default: %(default)s)"
    )
    up.add_argument(
        "--service-timeout", type=float, default=None, help="seconds each service may take to be healthy"
    )
    up.add_argument(
        "--monitoring",
        action="store_true",
        help="also start a Prometheus that scrapes every service (Debian's prometheus package)",
    )
    up.add_argument(
        "--prometheus-port", type=int, default=prometheus.DEFAULT_PORT, help="(default: %(default)s)"
    )

    down = with_root(commands.add_parser("down", help="stop what the state file lists"))
    down.add_argument("--grace", type=float, default=None, help="seconds between SIGTERM and SIGKILL")
    status = with_root(commands.add_parser("status", help="show the processes and endpoints"))
    status.add_argument("--json", action="store_true", help="print the state file")
    with_root(commands.add_parser("env", help="print `export EA_...` lines for a shell"))
    restart = with_root(
        commands.add_parser("restart", help="stop one process (a service, kafka, s3) and start it as it was")
    )
    restart.add_argument("name", help="a name that `status` lists (broker also means kafka)")
    restart.add_argument("--kill", action="store_true", help="SIGKILL it, as a crash would")
    return parser


def _services(args: argparse.Namespace) -> list[ServiceSpec]:
    if args.no_services:
        return []
    specs = []
    for name in args.services:
        spec = ServiceSpec.default(name, fixed_ports=True)
        update: dict[str, object] = {}
        if name is ServiceName.GATEWAY:
            update["http_port"] = args.gateway_port
        if name is ServiceName.AUTH:
            update["http_port"] = args.auth_port
        base = args.metrics_port_base
        update["metrics_port"] = base + list(ServiceName).index(name) if base else 0
        if args.service_timeout is not None:
            update["ready_timeout_s"] = args.service_timeout
        specs.append(spec.model_copy(update=update))
    return specs


def _print_state(state: StackState) -> None:
    width = max(len(name) for name in state.endpoints)
    for name, endpoint in state.endpoints.items():
        print(f"  {name:<{width}}  {endpoint}")
    print(f"logs: {state.config.logs_dir}")


def _print_env(state: StackState) -> None:
    for name, value in state.env.items():
        print(f"export {name}={shlex.quote(value)}")


def _up(args: argparse.Namespace) -> int:
    root: Path = args.root.resolve()
    previous = StackState.read(root / "state.json")
    if previous is not None:
        if previous.all_running():
            print(f"already running (state file {previous.config.state_path}):")
            _print_state(previous)
            return 0
        stopped = stop_recorded(previous)
        print(
            f"a previous stack was partly down; stopped its leftovers: {', '.join(stopped)}", file=sys.stderr
        )
    config = StackConfig.for_up(
        root=root,
        kafka_port=args.kafka_port,
        s3_port=args.s3_port,
        postgres=args.postgres,
        private_postgres_port=args.postgres_port,
        database_name=args.database,
        services=_services(args),
        bundle_dir=args.bundle.resolve() if args.bundle else None,
        monitoring=args.monitoring,
        prometheus_port=args.prometheus_port,
    )
    try:
        stack = LocalStack(config).start()
    except (
        StackStartError,
        NotReadyError,
        PostgresError,
        BinaryNotFoundError,
        prometheus.PrometheusMissingError,
    ) as exc:
        print(f"up failed: {exc}", file=sys.stderr)
        return 1
    state = stack.state()
    timings = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in state.startup_seconds.items())
    print(f"stack is up ({timings}):")
    _print_state(state)
    print("environment for services and clients (also: python -m devstack env):")
    _print_env(state)
    return 0


def _read_state(root: Path) -> StackState | None:
    state = StackState.read(root.resolve() / "state.json")
    if state is None:
        print(f"no stack is running from {root} (no state file)", file=sys.stderr)
    return state


def _down(args: argparse.Namespace) -> int:
    state = _read_state(args.root)
    if state is None:
        return 0
    stopped = stop_recorded(state, args.grace)
    print(f"stopped: {', '.join(stopped)}")
    return 0


def _status(args: argparse.Namespace) -> int:
    state = _read_state(args.root)
    if state is None:
        return 1
    if args.json:
        print(state.model_dump_json(indent=2))
        return 0 if state.all_running() else 1
    running = {record.pid for record in state.running()}
    print(f"stack started {state.started_at:%Y-%m-%d %H:%M:%S %Z} from {state.config.root}")
    for record in state.processes:
        condition = "running" if record.pid in running else "NOT RUNNING"
        port = str(record.port)
        print(f"  {record.name:<14} pid {record.pid:<8} port {port:<6} {condition:<12} {record.log_path}")
    _print_state(state)
    return 0 if len(running) == len(state.processes) else 1


def _env(args: argparse.Namespace) -> int:
    state = _read_state(args.root)
    if state is None:
        return 1
    _print_env(state)
    return 0


def _restart(args: argparse.Namespace) -> int:
    state = _read_state(args.root)
    if state is None:
        return 1
    try:
        record, seconds = restart_recorded(state, args.name, kill=args.kill)
    except (ValueError, NotReadyError) as exc:
        print(f"restart failed: {exc}", file=sys.stderr)
        return 1
    how = "killed and started" if args.kill else "restarted"
    print(f"{record.name} {how}: pid {record.pid}, serving after {seconds:.2f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    commands = {"up": _up, "down": _down, "status": _status, "env": _env, "restart": _restart}
    try:
        return commands[args.command](args)
    except (StateFileError, ValidationError) as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # `up` has stopped whatever it had started by now
        print("interrupted", file=sys.stderr)
        return 130
