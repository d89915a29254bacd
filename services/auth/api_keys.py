"""API keys: `ea_<8 base62>_<32 base62>`, from `secrets`; stored only as HMAC-SHA256 under a pepper.

The first part is the visible prefix (`ea_<8 chars>`) a user recognises a key by; the 32 secret
characters carry about 190 random bits, so a fast keyed hash is enough: nobody can guess through that
space, and the pepper keeps a stolen table of hashes from being checked offline.
"""

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from typing import Final

KEY_SCHEME: Final = "ea"
PREFIX_RANDOM_LENGTH: Final = 8
SECRET_LENGTH: Final = 32
BASE62: Final = string.digits + string.ascii_uppercase + string.ascii_lowercase
_KEY_PATTERN: Final = re.compile(
    rf"({KEY_SCHEME}_[0-9A-Za-z]{{{PREFIX_RANDOM_LENGTH}}})_[0-9A-Za-z]{{{SECRET_LENGTH}}}"
)


@dataclass(frozen=True, repr=False)
class MintedKey:
    key: str
    prefix: str
    key_hash: str

    def __repr__(self) -> str:
        # The whole key must never land in a log line through a stray repr.
        return f"MintedKey(prefix={self.prefix!r})"


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def key_prefix(key: str) -> str | None:
    """The visible prefix of a well-formed key, or None when `key` does not have the key format."""
    match = _KEY_PATTERN.fullmatch(key)
    return match.group(1) if match else None


def is_api_key(token: str) -> bool:
    return key_prefix(token) is not None


class KeyHasher:
    def __init__(self, pepper: str) -> None:
        self._pepper = pepper.encode()

    def hash(self, key: str) -> str:
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).hexdigest()

    def matches(self, key: str, key_hash: str) -> bool:
        return hmac.compare_digest(self.hash(key), key_hash)

    def mint(self) -> MintedKey:
        prefix = f"{KEY_SCHEME}_{_random_base62(PREFIX_RANDOM_LENGTH)}"
        key = f"{prefix}_{_random_base62(SECRET_LENGTH)}"
        return MintedKey(key=key, prefix=prefix, key_hash=self.hash(key))
