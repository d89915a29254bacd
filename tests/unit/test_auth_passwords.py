"""argon2 password hashing: verification, the dummy hash for unknown accounts, rehashing on new costs."""

from pathlib import Path
from typing import Literal

import argon2
import pytest

from services.auth.passwords import (
    MIB,
    MemoryBudgetError,
    Passwords,
    check_memory_budget,
    hashing_memory_bytes,
    memory_limit_bytes,
)

CHEAP = {"time_cost": 1, "memory_cost_kib": 1024, "parallelism": 1}


def test_a_hash_verifies_its_password_only() -> None:
    passwords = Passwords(**CHEAP)
    stored = passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse battery" not in stored
    assert passwords.verify(stored, "correct horse battery")
    assert not passwords.verify(stored, "correct horse battery!")
    assert not passwords.verify("not-a-hash", "correct horse battery")


def test_an_unknown_account_is_checked_against_a_dummy_hash_of_the_same_cost() -> None:
    """No hash (unknown email) never matches, yet costs one verification of a hash with the same
    parameters as a real account's: the dummy must not be cheaper than what it stands in for."""
    passwords = Passwords(**CHEAP)
    assert argon2.extract_parameters(passwords.dummy_hash) == argon2.extract_parameters(passwords.hash("x"))
    assert not passwords.verify(None, "anything at all")


class CountingHasher(argon2.PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified.append(hash if isinstance(hash, str) else hash.decode())
        return super().verify(hash, password)


def test_an_unknown_account_costs_one_real_verification() -> None:
    passwords = Passwords(**CHEAP)
    counting = CountingHasher()
    passwords._hasher = counting
    assert not passwords.verify(None, "anything at all")
    assert counting.verified == [passwords.dummy_hash]


def test_a_hash_made_with_other_costs_needs_a_rehash() -> None:
    old = Passwords(**CHEAP)
    new = Passwords(time_cost=2, memory_cost_kib=2048, parallelism=1)
    stored = old.hash("correct horse battery")
    assert not old.needs_rehash(stored)
    assert new.needs_rehash(stored)
    # A hash carries its own parameters: the new costs still verify the old hash.
    assert new.verify(stored, "correct horse battery")
    assert not new.needs_rehash(new.hash("correct horse battery"))
    assert new.needs_rehash("not-a-hash")


def test_the_memory_limit_is_read_from_cgroup_v2_or_v1(tmp_path: Path) -> None:
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    assert memory_limit_bytes((v2, v1)) is None  # neither file: no container limit known
    v1.write_text(f"{2**63 - 4096}\n")
    assert memory_limit_bytes((v2, v1)) is None  # v1's "unlimited"
    v1.write_text(f"{256 * MIB}\n")
    assert memory_limit_bytes((v2, v1)) == 256 * MIB
    v2.write_text("max\n")
    assert memory_limit_bytes((v2, v1)) is None
    v2.write_text(f"{384 * MIB}\n")
    assert memory_limit_bytes((v2, v1)) == 384 * MIB


def test_hashing_that_cannot_fit_in_the_pod_refuses_to_start() -> None:
    # The review's case: 64 MiB hashes, unbounded (ten at once) in the old 256 MiB pod.
    with pytest.raises(MemoryBudgetError, match="EA_PASSWORD_HASH_CONCURRENCY"):
        check_memory_budget(memory_cost_kib=64 * 1024, concurrency=10, limit_bytes=256 * MIB)
    with pytest.raises(MemoryBudgetError):
        check_memory_budget(memory_cost_kib=64 * 1024, concurrency=2, limit_bytes=256 * MIB)
    with pytest.raises(MemoryBudgetError):
        check_memory_budget(memory_cost_kib=64 * 1024, concurrency=3, limit_bytes=320 * MIB)
    check_memory_budget(memory_cost_kib=64 * 1024, concurrency=2, limit_bytes=320 * MIB)  # deploy/k8s
    check_memory_budget(memory_cost_kib=64 * 1024, concurrency=100, limit_bytes=None)
    assert hashing_memory_bytes(memory_cost_kib=64 * 1024, concurrency=2) == 128 * MIB
