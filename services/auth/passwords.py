"""Password hashing with argon2id, at the cost the settings give, with bounded concurrency.

Checking a login for an unknown email verifies against a dummy hash of the same cost, so a response's
timing does not tell whether an account exists. Hashing runs in a worker thread: it takes tens of
milliseconds of CPU by design, which would otherwise stall every request on the event loop.

Each hash also holds `memory_cost_kib` of memory while it runs (64 MiB by default), so the number running
at once is bounded (`concurrency`), and so is the number waiting for a turn (`queue`): past that a request
is refused with `HashingBusy` (503, retry) instead of queueing without end. A burst of logins thus costs
at most `concurrency` hashes of memory, which `check_memory_budget` compares with the pod's limit.
"""

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .settings import Settings

T = TypeVar("T")
MIB: Final = 1024 * 1024
# The auth process without any hash running: Python, FastAPI, SQLAlchemy and asyncpg (110 MiB RSS measured
# idle, 116 MiB beside two hashes; `scripts/auth_burst.py` prints it), with headroom.
BASE_MEMORY_BYTES: Final = 144 * MIB
CGROUP_LIMIT_FILES: Final = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


class HashingBusy(Exception):
    """Too many password checks are running and waiting: refuse this one rather than queue it."""

    retry_after_s: Final = 1


class MemoryBudgetError(RuntimeError):
    """The configured argon2 cost and concurrency do not fit in the memory this process may use."""


def hashing_memory_bytes(*, memory_cost_kib: int, concurrency: int) -> int:
    """What password hashing can hold at once at this cost."""
    return memory_cost_kib * 1024 * concurrency


def memory_limit_bytes(files: tuple[Path, ...] = CGROUP_LIMIT_FILES) -> int | None:
    """The container's memory limit from its cgroup, or None when there is none (or none can be read)."""
    for path in files:
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        # v2 writes "max" for no limit; v1 a number near 2**63.
        if raw == "max" or not raw.isdigit() or int(raw) >= 2**60:
            return None
        return int(raw)
    return None


def check_memory_budget(*, memory_cost_kib: int, concurrency: int, limit_bytes: int | None) -> None:
    """Refuse to start when `concurrency` hashes at once, beside the process itself, pass the limit: a
    burst of logins would get the pod OOM-killed, and every /v1 call would answer 503 meanwhile."""
    if limit_bytes is None:
        return
    needed = BASE_MEMORY_BYTES + hashing_memory_bytes(
        memory_cost_kib=memory_cost_kib, concurrency=concurrency
    )
    if needed > limit_bytes:
        raise MemoryBudgetError(
            f"{concurrency} concurrent argon2 hashes of {memory_cost_kib // 1024} MiB each need "
            f"{needed // MIB} MiB with the process itself, over the memory limit of {limit_bytes // MIB} "
            "MiB: lower EA_PASSWORD_HASH_CONCURRENCY or EA_PASSWORD_MEMORY_COST_KIB, or raise the limit"
        )


class Passwords:
    def __init__(
        self, *, time_cost: int, memory_cost_kib: int, parallelism: int, concurrency: int = 2, queue: int = 16
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism
        )
        self.dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))
        self.concurrency = concurrency
        self.queue = queue
        self._slots = asyncio.Semaphore(concurrency)
        self.waiting = 0
        self.running = 0
        self.peak_running = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> "Passwords":
        return cls(
            time_cost=settings.password_time_cost,
            memory_cost_kib=settings.password_memory_cost_kib,
            parallelism=settings.password_parallelism,
            concurrency=settings.password_hash_concurrency,
            queue=settings.password_hash_queue,
        )

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether `password` matches `stored_hash`; with no hash (unknown account) always False, at the
        cost of one verification all the same."""
        try:
            matched = self._hasher.verify(stored_hash or self.dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return matched and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    async def hash_async(self, password: str) -> str:
        return await self._bounded(self.hash, password)

    async def verify_async(self, stored_hash: str | None, password: str) -> bool:
        return await self._bounded(self.verify, stored_hash, password)

    async def _bounded(self, work: Callable[..., T], *args: object) -> T:
        """Run `work` in a thread once one of `concurrency` slots is free; HashingBusy when `queue`
        requests already wait for one."""
        if self._slots.locked() and self.waiting >= self.queue:
            raise HashingBusy()
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        try:
            future = asyncio.get_running_loop().run_in_executor(None, work, *args)
        except BaseException:
            self._finished()
            raise
        # A client that hangs up cancels this coroutine but not the thread: the slot (and the memory the
        # hash holds) is given back only when the thread is done.
        future.add_done_callback(lambda _: self._finished())
        return await asyncio.shield(future)

    def _finished(self) -> None:
        self.running -= 1
        self._slots.release()
