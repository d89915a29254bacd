"""Figures: the auth service's memory under a burst of parallel logins, bounded and unbounded.

    python scripts/auth_burst.py [--logins 30] [--rounds 3]

Starts a local stack with the auth service as a process at the production argon2 cost (64 MiB, 3 passes,
4 lanes), fires `--logins` parallel `POST /v1/sessions` with unknown emails `--rounds` times, and samples
the process's resident memory every 5 ms. Printed per setting: peak RSS, the answers (401, 503 busy), and
whether the same process is still serving. The same burst runs with the shipped bound
(EA_PASSWORD_HASH_CONCURRENCY=2, queue 16) and with it lifted (concurrency = logins), which is what the
service did before: peak RSS then shows what the 256 Mi pod limit would have killed.
Figures, not assertions.
"""

import argparse
import asyncio
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack import LocalStack, ServiceName, ServiceSpec, StackConfig  # noqa: E402
from devstack.processes import ProcessRecord  # noqa: E402
from shared.db.migrate import upgrade  # noqa: E402

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except OSError:
                return
            time.sleep(0.005)


async def burst(url: str, logins: int) -> Counter[int]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/v1/sessions", json={"email": f"{uuid.uuid4().hex}@example.com", "password": "x" * 12}
                )
                for _ in range(logins)
            ),
            return_exceptions=True,
        )
    return Counter(a.status_code if isinstance(a, httpx.Response) else 0 for a in answers)


def measure(concurrency: int, queue: int, logins: int, rounds: int) -> None:
    auth = ServiceSpec.default(ServiceName.AUTH, fixed_ports=False).model_copy(
        update={
            "extra_env": {
                "EA_PASSWORD_HASH_CONCURRENCY": str(concurrency),
                "EA_PASSWORD_HASH_QUEUE": str(queue),
            }
        }
    )
    with (
        tempfile.TemporaryDirectory() as root,
        LocalStack(StackConfig(root=Path(root), services=[auth])) as stack,
    ):
        asyncio.run(upgrade(stack.database_url))
        record: ProcessRecord = next(r for r in stack.state().processes if r.name == "auth")
        url = stack.service_url(ServiceName.AUTH)
        idle = rss_bytes(record.pid)
        sampler = PeakSampler(record.pid)
        sampler.start()
        answers: Counter[int] = Counter()
        started = time.perf_counter()
        for _ in range(rounds):
            answers += asyncio.run(burst(url, logins))
        elapsed = time.perf_counter() - started
        sampler.stop.set()
        sampler.join()
        alive = httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        same = next(r for r in stack.state().processes if r.name == "auth").pid == record.pid
        print(
            f"concurrency {concurrency:>3}, queue {queue:>3}: idle RSS {idle / MIB:.0f} MiB, "
            f"peak {sampler.peak / MIB:.0f} MiB; answers {dict(sorted(answers.items()))} "
            f"(0 = connection error) in {elapsed:.1f} s; still serving: {alive and same}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--logins", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    measure(2, 16, args.logins, args.rounds)
    measure(args.logins, args.logins, args.logins, args.rounds)


if __name__ == "__main__":
    main()
