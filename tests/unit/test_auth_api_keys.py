"""API key format, visible prefix and keyed hashing (services/auth/api_keys.py)."""

import hashlib
import hmac
import re

from services.auth.api_keys import BASE62, KeyHasher, is_api_key, key_prefix

PEPPER = "unit-test-pepper-0123456789abcdef"
KEY_FORMAT = re.compile(r"ea_[0-9A-Za-z]{8}_[0-9A-Za-z]{32}")


def test_a_minted_key_has_the_documented_format_and_prefix() -> None:
    minted = KeyHasher(PEPPER).mint()
    assert KEY_FORMAT.fullmatch(minted.key)
    assert minted.prefix == minted.key[:11]
    assert minted.prefix.startswith("ea_") and len(minted.prefix) == 11
    assert key_prefix(minted.key) == minted.prefix


def test_keys_are_drawn_from_all_of_base62() -> None:
    hasher = KeyHasher(PEPPER)
    keys = [hasher.mint().key for _ in range(200)]
    assert len(set(keys)) == len(keys)
    secret_characters = set("".join(key.rsplit("_", 1)[1] for key in keys))
    # 6400 draws from 62 characters: missing any one has a probability of about 62 * e^-103.
    assert secret_characters == set(BASE62)


def test_the_stored_hash_is_hmac_sha256_under_the_pepper() -> None:
    hasher = KeyHasher(PEPPER)
    minted = hasher.mint()
    expected = hmac.new(PEPPER.encode(), minted.key.encode(), hashlib.sha256).hexdigest()
    assert minted.key_hash == expected == hasher.hash(minted.key)
    assert len(minted.key_hash) == 64
    assert minted.key not in minted.key_hash
    assert KeyHasher("another-pepper-0123456789abcdefgh").hash(minted.key) != minted.key_hash


def test_matches_only_the_key_itself() -> None:
    hasher = KeyHasher(PEPPER)
    minted = hasher.mint()
    assert hasher.matches(minted.key, minted.key_hash)
    altered = minted.key[:-1] + ("a" if minted.key[-1] != "a" else "b")
    assert not hasher.matches(altered, minted.key_hash)


def test_only_well_formed_keys_are_recognised() -> None:
    good = "ea_3fA9kQ2x_" + "A" * 32
    assert is_api_key(good)
    assert key_prefix(good) == "ea_3fA9kQ2x"
    for bad in (
        "",
        "ea_3fA9kQ2x",
        "ea_3fA9kQ2x_" + "A" * 31,
        "ea_3fA9kQ2x_" + "A" * 33,
        "ea_3fA9kQ2_" + "A" * 33,
        "xa_3fA9kQ2x_" + "A" * 32,
        "ea_3fA9kQ2x_" + "A" * 31 + "-",
        " ea_3fA9kQ2x_" + "A" * 32,
        "eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
    ):
        assert not is_api_key(bad), bad
        assert key_prefix(bad) is None


def test_the_repr_of_a_minted_key_does_not_show_the_key() -> None:
    minted = KeyHasher(PEPPER).mint()
    assert minted.key not in repr(minted)
    assert minted.prefix in repr(minted)
