"""argon2 password hashing: verification, the dummy hash for unknown accounts, rehashing on new costs."""

from typing import Literal

import argon2

from services.auth.passwords import Passwords

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
