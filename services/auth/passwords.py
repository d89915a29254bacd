"""Password hashing with argon2id, at the cost the settings give.

Checking a login for an unknown email verifies against a dummy hash of the same cost, so a response's
timing does not tell whether an account exists. Hashing runs in a worker thread: it takes tens of
milliseconds of CPU by design, which would otherwise stall every request on the event loop.
"""

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .settings import Settings


class Passwords:
    def __init__(self, *, time_cost: int, memory_cost_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism
        )
        self.dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))

    @classmethod
    def from_settings(cls, settings: Settings) -> "Passwords":
        return cls(
            time_cost=settings.password_time_cost,
            memory_cost_kib=settings.password_memory_cost_kib,
            parallelism=settings.password_parallelism,
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
        return await asyncio.to_thread(self.hash, password)

    async def verify_async(self, stored_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self.verify, stored_hash, password)
