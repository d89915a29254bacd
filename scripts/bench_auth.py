"""Benchmark: what the credential check costs the gateway, and how long a revoked key keeps working.

    python scripts/bench_auth.py [--duration 6] [--concurrency 16] [--runs 3] [--warmup 1.5]

Starts a local stack (broker, S3 server, PostgreSQL and the auth service), then three gateways as separate
processes (scripts/bench_auth_server.py, one uvicorn worker each) and loads `GET /v1/analyses/{id}` on
loopback with `--concurrency` keep-alive connections, each sending its own API key of one account:

  no auth      `get_principal` overridden by a fixed principal: the route without the credential check
  auth         the real check: API key -> auth service introspection, cached for auth_cache_ttl_s
  auth, cold   the same with auth_cache_ttl_s=0: every request asks the auth service (one key per
               connection, so concurrent misses do not share one introspection)

The modes alternate `--runs` times and the medians are printed: requests/s, latency p50 and p99, responses
other than 200, and CPU per request of the gateway and of the auth service. Target: authenticated
throughput at least 80 % of unauthenticated. Then, `--runs` times, a fresh key is hammered through the
authenticating gateway and revoked at the auth service directly (as another gateway replica would), at
different points of its cache lifetime; printed is how long it still worked (target: first 401 <= 5 s).
Figures, not assertions: nothing here fails on a slow machine.
"""

import argparse
import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
import uuid
import wave
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack import LocalStack, ServiceName, ServiceSpec, StackConfig, sign_up  # noqa: E402
from devstack.probes import http_ok, wait_until  # noqa: E402
from devstack.processes import ManagedProcess, free_port  # noqa: E402
from services.gateway.settings import Settings as GatewaySettings  # noqa: E402
from shared.db.migrate import upgrade  # noqa: E402

SERVER: Final = REPO / "scripts" / "bench_auth_server.py"
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
THROUGHPUT_TARGET: Final = 0.80
REVOCATION_TARGET_S: Final = 5.0
REVOCATION_GIVE_UP_S: Final = 15.0
DEFAULT_TTL_S: Final = float(GatewaySettings.model_fields["auth_cache_ttl_s"].default)
# The per-key rate limit would otherwise turn the load into 429s within a second.
UNLIMITED_RATE: Final = str(10**9)


@dataclass(frozen=True)
class Mode:
    name: str
    label: str
    server_args: tuple[str, ...]


NO_AUTH: Final = Mode("no-auth", "no auth (override)", ("--no-auth",))
AUTH: Final = Mode("auth", f"auth, cached (ttl {DEFAULT_TTL_S:g} s)", ("--auth",))
COLD: Final = Mode("cold", "auth, cold (ttl 0)", ("--auth", "--cache-ttl", "0"))
MODES: Final = (NO_AUTH, AUTH, COLD)


@dataclass(frozen=True)
class Key:
    id: str
    key: str


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def tiny_wav() -> bytes:
    """Half a second of 16 kHz mono: the smallest file the gateway accepts for analysis."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16_000)
        writer.writeframes(b"\x00\x10" * 8000)
    return buffer.getvalue()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/PID/stat fields 14 and 15)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --- the gateways under test ---------------------------------------------------------------------


@dataclass
class Server:
    process: ManagedProcess
    url: str


def spawn_gateway(stack: LocalStack, mode: Mode, *extra_args: str) -> Server:
    port = free_port()
    env = {
        **os.environ,
        **stack.env(),
        "EA_SERVICE_NAME": "gateway",
        "EA_HTTP_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    process = ManagedProcess.spawn(
        f"gateway-{mode.name}",
        [sys.executable, str(SERVER), "--port", str(port), *mode.server_args, *extra_args],
        log_path=stack.config.logs_dir / f"gateway-{mode.name}.log",
        env=env,
        cwd=REPO,
        attached=True,
        port=port,
    )
    return Server(process=process, url=f"http://{stack.config.host}:{port}")


def wait_ready(server: Server) -> None:
    wait_until(
        lambda: http_ok(f"{server.url}/healthz"),
        what=server.process.record.name,
        timeout_s=60,
        process=server.process,
    )


# --- load ----------------------------------------------------------------------------------------


@dataclass
class Load:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def answered(self) -> int:
        return len(self.latencies)

    @property
    def not_ok(self) -> dict[str, int]:
        failures = {str(code): count for code, count in self.statuses.items() if code != httpx.codes.OK}
        return failures | dict(self.errors)


async def _worker(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], deadline: float, load: Load | None
) -> None:
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        try:
            response = await client.get(path, headers=headers)
        except httpx.HTTPError as exc:
            if load is not None:
                load.errors[type(exc).__name__] += 1
            continue
        if load is not None:
            load.latencies.append(time.perf_counter() - started)
            load.statuses[response.status_code] += 1


async def hammer(
    base_url: str, path: str, keys: list[str], *, warmup_s: float, duration_s: float, pids: dict[str, int]
) -> Load:
    """One connection per key, each sending requests back to back: warm-up first, then the measured run."""
    limits = httpx.Limits(max_connections=len(keys), max_keepalive_connections=len(keys))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        warm_until = time.perf_counter() + warmup_s
        await asyncio.gather(*(_worker(client, path, bearer(key), warm_until, None) for key in keys))
        load = Load()
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        until = started + duration_s
        await asyncio.gather(*(_worker(client, path, bearer(key), until, load) for key in keys))
        load.seconds = time.perf_counter() - started
        load.cpu_s = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    return load


@dataclass(frozen=True)
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    not_ok: int
    gateway_cpu_ms: float
    auth_cpu_ms: float


def figures_of(load: Load) -> Figures:
    cuts = statistics.quantiles(load.latencies, n=100, method="inclusive")
    per_request_ms = 1000 / max(load.answered, 1)
    return Figures(
        rps=load.answered / load.seconds,
        p50_ms=statistics.median(load.latencies) * 1000,
        p99_ms=cuts[98] * 1000,
        not_ok=sum(load.not_ok.values()),
        gateway_cpu_ms=load.cpu_s["gateway"] * per_request_ms,
        auth_cpu_ms=load.cpu_s["auth"] * per_request_ms,
    )


def median_figures(runs: list[Figures]) -> Figures:
    return Figures(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        not_ok=sum(r.not_ok for r in runs),
        gateway_cpu_ms=statistics.median(r.gateway_cpu_ms for r in runs),
        auth_cpu_ms=statistics.median(r.auth_cpu_ms for r in runs),
    )


# --- revocation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revocation:
    revoked_at_s: float
    """Seconds after the key's first request (when the gateway cached it) that it was revoked."""
    first_401_s: float | None
    """Seconds from the auth service's 204 to the first 401 from the gateway."""
    last_200_s: float | None
    """Seconds from the 204 to the last 200 (answers to requests sent before the 401 included)."""
    ok_after_revoke: int
    statuses: Counter[int]
    errors: Counter[str]


async def revocation_trial(
    gateway_url: str,
    auth_url: str,
    path: str,
    owner_key: str,
    victim: Key,
    *,
    concurrency: int,
    revoke_at_s: float,
) -> Revocation:
    answers: list[tuple[float, int]] = []
    errors: Counter[str] = Counter()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                response = await client.get(path, headers=bearer(victim.key))
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] += 1
                continue
            answers.append((time.perf_counter(), response.status_code))
            if response.status_code == httpx.codes.UNAUTHORIZED:
                stop.set()

    async with (
        httpx.AsyncClient(base_url=gateway_url, limits=limits, timeout=30) as client,
        httpx.AsyncClient(base_url=auth_url, timeout=30) as auth,
    ):
        started = time.perf_counter()
        workers = [asyncio.create_task(worker(client)) for _ in range(concurrency)]
        await asyncio.sleep(revoke_at_s)
        answer = await auth.delete(f"/v1/keys/{victim.id}", headers=bearer(owner_key))
        revoked = time.perf_counter()
        if answer.status_code != httpx.codes.NO_CONTENT:
            stop.set()
            await asyncio.gather(*workers)
            raise RuntimeError(f"revoking at the auth service: {answer.status_code} {answer.text}")
        try:
            await asyncio.wait_for(stop.wait(), REVOCATION_GIVE_UP_S)
        except TimeoutError:
            stop.set()
        await asyncio.gather(*workers)
    after = [(at - revoked, status) for at, status in answers if at > revoked]
    first_401 = next((t for t, status in after if status == httpx.codes.UNAUTHORIZED), None)
    oks = [t for t, status in after if status == httpx.codes.OK]
    return Revocation(
        revoked_at_s=revoked - started,
        first_401_s=first_401,
        last_200_s=max(oks) if oks else None,
        ok_after_revoke=len(oks),
        statuses=Counter(status for _, status in answers),
        errors=errors,
    )


# --- setting up ----------------------------------------------------------------------------------


def create_key(client: httpx.Client, owner_key: str, name: str) -> Key:
    answer = client.post("/v1/keys", json={"name": name}, headers=bearer(owner_key))
    if answer.status_code != httpx.codes.CREATED:
        raise RuntimeError(f"creating a key: {answer.status_code} {answer.text}")
    return Key(id=answer.json()["id"], key=answer.json()["key"])


def create_analysis(client: httpx.Client, owner_key: str) -> str:
    answer = client.post(
        "/v1/analyses", headers=bearer(owner_key), files={"file": ("tone.wav", tiny_wav(), "audio/wav")}
    )
    if answer.status_code != httpx.codes.CREATED:
        raise RuntimeError(f"creating the analysis: {answer.status_code} {answer.text}")
    analysis_id: str = answer.json()["id"]
    return analysis_id


def check_answers(servers: dict[Mode, Server], path: str, key: str) -> None:
    for mode, server in servers.items():
        answer = httpx.get(server.url + path, headers=bearer(key), timeout=30)
        if answer.status_code != httpx.codes.OK:
            raise RuntimeError(f"{mode.name} gateway: GET {path} gave {answer.status_code} {answer.text}")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- report --------------------------------------------------------------------------------------


def report(
    args: argparse.Namespace, runs: dict[Mode, list[Figures]], not_ok: dict[Mode, Counter[str]]
) -> None:
    medians = {mode: median_figures(figures) for mode, figures in runs.items()}
    print(
        f"\nGET /v1/analyses/{{id}} on loopback, one uvicorn worker per gateway, "
        f"{args.concurrency} keep-alive connections (one API key each),\n{args.duration:g} s measured after "
        f"{args.warmup:g} s warm-up, modes alternated, median of {args.runs} run(s); {os.cpu_count()} CPU "
        "cores shared by load generator,\ngateway, auth service and PostgreSQL\n"
    )
    header = (
        f"{'mode':<24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-200':>8} "
        f"{'gateway CPU ms/req':>19} {'auth CPU ms/req':>16}"
    )
    print(header)
    print("-" * len(header))
    for mode, m in medians.items():
        print(
            f"{mode.label:<24} {m.rps:>8.0f} {m.p50_ms:>8.2f} {m.p99_ms:>8.2f} {m.not_ok:>8d} "
            f"{m.gateway_cpu_ms:>19.3f} {m.auth_cpu_ms:>16.3f}"
        )
    print()
    for mode, figures in runs.items():
        print(f"{mode.label:<24} req/s per run: " + ", ".join(f"{f.rps:.0f}" for f in figures))
    for mode, counts in not_ok.items():
        if counts:
            print(f"{mode.label:<24} non-200 answers: {dict(counts)}")
    base = medians[NO_AUTH].rps
    ratio = medians[AUTH].rps / base
    verdict = "met" if ratio >= THROUGHPUT_TARGET else "NOT met"
    print(
        f"\nauthenticated / unauthenticated throughput: {ratio:.1%} "
        f"(target >= {THROUGHPUT_TARGET:.0%}: {verdict})"
    )
    cold = medians[COLD].rps
    print(
        f"cold (every request introspected) / unauthenticated: {cold / base:.1%}; "
        f"the cache buys x{medians[AUTH].rps / cold:.2f} throughput, "
        f"p50 {medians[COLD].p50_ms:.2f} -> {medians[AUTH].p50_ms:.2f} ms"
    )


def report_revocations(trials: list[Revocation]) -> None:
    print(
        f"\nRevocation: a fresh key hammered through the gateway (cache ttl {DEFAULT_TTL_S:g} s), "
        "revoked at the auth service directly\n(as another replica would); times count from the auth "
        "service's 204\n"
    )
    header = (
        f"{'trial':>5} {'revoked after first use s':>26} {'first 401 s':>12} {'last 200 s':>11} "
        f"{'200s after':>11}"
    )
    print(header)
    print("-" * len(header))
    for number, trial in enumerate(trials, 1):
        first = f"{trial.first_401_s:.2f}" if trial.first_401_s is not None else "none"
        last = f"{trial.last_200_s:.2f}" if trial.last_200_s is not None else "-"
        print(f"{number:>5} {trial.revoked_at_s:>26.2f} {first:>12} {last:>11} {trial.ok_after_revoke:>11d}")
        unexpected = {
            str(code): n
            for code, n in trial.statuses.items()
            if code not in (httpx.codes.OK, httpx.codes.UNAUTHORIZED)
        } | dict(trial.errors)
        if unexpected:
            print(f"      other answers: {unexpected}")
    seen = [t.first_401_s for t in trials if t.first_401_s is not None]
    if len(seen) < len(trials):
        print(
            f"\nlongest: a revoked key still worked after {REVOCATION_GIVE_UP_S:g} s (target <= 5 s: NOT met)"
        )
    else:
        worst = max(seen)
        verdict = "met" if worst <= REVOCATION_TARGET_S else "NOT met"
        print(
            f"\nlongest until the first 401: {worst:.2f} s (target <= {REVOCATION_TARGET_S:g} s: {verdict})"
        )


# --- main ----------------------------------------------------------------------------------------


@dataclass
class Results:
    runs: dict[Mode, list[Figures]] = field(default_factory=lambda: {mode: [] for mode in MODES})
    not_ok: dict[Mode, Counter[str]] = field(default_factory=lambda: {mode: Counter() for mode in MODES})
    trials: list[Revocation] = field(default_factory=list)


def measure(args: argparse.Namespace, stack: LocalStack, servers: dict[Mode, Server]) -> Results:
    """Sign up, create the analysis and the keys, start the unauthenticated gateway, then load them all."""
    results = Results()
    auth_url = stack.service_url(ServiceName.AUTH)
    auth_pid = next(p.pid for p in stack.state().processes if p.name == ServiceName.AUTH.value)
    account = sign_up(servers[AUTH].url)
    with httpx.Client(base_url=servers[AUTH].url, timeout=30) as api:
        path = f"/v1/analyses/{create_analysis(api, account.api_key)}"
        keys = [create_key(api, account.api_key, f"bench-{i}").key for i in range(args.concurrency)]
        servers[NO_AUTH] = spawn_gateway(stack, NO_AUTH, "--user-id", account.user_id)
        wait_ready(servers[NO_AUTH])
        check_answers(servers, path, account.api_key)

        for run in range(args.runs):
            for mode in MODES:
                progress(f"run {run + 1}/{args.runs}: {mode.label}")
                pids = {"gateway": servers[mode].process.record.pid, "auth": auth_pid}
                load = asyncio.run(
                    hammer(
                        servers[mode].url,
                        path,
                        keys,
                        warmup_s=args.warmup,
                        duration_s=args.duration,
                        pids=pids,
                    )
                )
                results.runs[mode].append(figures_of(load))
                results.not_ok[mode].update(load.not_ok)

        for trial in range(args.runs):
            # Spread over the cache lifetime: from just after the key was cached to just before it expires.
            revoke_at = 0.3 + trial * (DEFAULT_TTL_S - 0.6) / max(args.runs - 1, 1)
            progress(f"revocation trial {trial + 1}/{args.runs}: revoking {revoke_at:.1f} s in")
            victim = create_key(api, account.api_key, f"victim-{trial}")
            revocation = revocation_trial(
                servers[AUTH].url,
                auth_url,
                path,
                account.api_key,
                victim,
                concurrency=args.concurrency,
                revoke_at_s=revoke_at,
            )
            results.trials.append(asyncio.run(revocation))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds per mode and run")
    parser.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds before each")
    parser.add_argument("--concurrency", type=int, default=16, help="connections, one API key each")
    parser.add_argument("--runs", type=int, default=3, help="alternations of the modes; revocation trials")
    args = parser.parse_args()

    database = f"ea_bench_auth_{uuid.uuid4().hex[:8]}"
    auth_service = ServiceSpec.default(ServiceName.AUTH, fixed_ports=False).model_copy(
        update={"extra_env": {"EA_DEFAULT_RATE_LIMIT_PER_MINUTE": UNLIMITED_RATE}}
    )
    with tempfile.TemporaryDirectory(prefix="ea-bench-auth-") as scratch:
        config = StackConfig(root=Path(scratch) / "stack", services=[auth_service], database_name=database)
        progress("starting broker, S3 server, PostgreSQL and the auth service")
        with LocalStack(config) as stack:
            servers: dict[Mode, Server] = {}
            try:
                # The gateway's __main__ migrates before serving; these runners leave that to us.
                asyncio.run(upgrade(stack.database_url))
                progress("starting the authenticating gateways")
                for mode in (AUTH, COLD):
                    servers[mode] = spawn_gateway(stack, mode)
                for server in servers.values():
                    wait_ready(server)
                results = measure(args, stack, servers)
            finally:
                for server in servers.values():
                    server.process.stop(config.stop_grace_s)
                stack.drop_database(database)
    report(args, results.runs, results.not_ok)
    report_revocations(results.trials)


if __name__ == "__main__":
    main()
