import asyncio
import uuid

import pytest

from emotion_contract.accounts import CredentialKind, Introspection, Limits
from services.gateway.credentials import AuthUnavailableError, CredentialCache

LIMITS = Limits(monthly_analyses=10, monthly_video_seconds=600, rate_limit_per_minute=60)
USER = uuid.uuid4()
KEY_ID = uuid.uuid4()


class AuthService:
    """Answers introspection like the auth service: the one valid credential is "good"."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.calls: list[str] = []
        self.delay_s = delay_s
        self.valid = {"good"}
        self.down = False

    async def introspect(self, token: str) -> Introspection:
        self.calls.append(token)
        await asyncio.sleep(self.delay_s)
        if self.down:
            raise AuthUnavailableError("down")
        if token not in self.valid:
            return Introspection(active=False)
        return Introspection(
            active=True, user_id=USER, kind=CredentialKind.API_KEY, credential_id=KEY_ID, limits=LIMITS
        )


async def test_a_valid_credential_is_asked_once_within_the_lifetime() -> None:
    auth = AuthService()
    cache = CredentialCache(auth.introspect, ttl_s=60, negative_ttl_s=60)
    first = await cache.principal("good")
    assert first is not None and first.owner == str(USER) and first.limits == LIMITS
    assert await cache.principal("good") == first
    assert auth.calls == ["good"]


async def test_revocation_takes_effect_once_the_entry_expires() -> None:
    auth = AuthService()
    cache = CredentialCache(auth.introspect, ttl_s=0.05, negative_ttl_s=0.05)
    assert await cache.principal("good") is not None
    auth.valid.clear()
    assert await cache.principal("good") is not None  # still cached
    await asyncio.sleep(0.06)
    assert await cache.principal("good") is None
    assert auth.calls == ["good", "good"]


async def test_concurrent_misses_share_one_call() -> None:
    auth = AuthService(delay_s=0.05)
    cache = CredentialCache(auth.introspect, ttl_s=60, negative_ttl_s=60)
    answers = await asyncio.gather(*(cache.principal("good") for _ in range(20)))
    assert all(answer is not None for answer in answers)
    assert auth.calls == ["good"]


async def test_invalid_credentials_are_cached_for_the_negative_lifetime_only() -> None:
    auth = AuthService()
    cache = CredentialCache(auth.introspect, ttl_s=60, negative_ttl_s=0)
    assert await cache.principal("bad") is None
    assert await cache.principal("bad") is None
    assert auth.calls == ["bad", "bad"]


async def test_an_unreachable_auth_service_is_an_error_not_a_rejection_and_is_not_cached() -> None:
    auth = AuthService()
    auth.down = True
    cache = CredentialCache(auth.introspect, ttl_s=60, negative_ttl_s=60)
    waiters = [asyncio.create_task(cache.principal("good")) for _ in range(3)]
    for waiter in waiters:
        with pytest.raises(AuthUnavailableError):
            await waiter
    auth.down = False
    assert await cache.principal("good") is not None


async def test_forgetting_drops_entries_by_credential_and_by_id() -> None:
    auth = AuthService()
    cache = CredentialCache(auth.introspect, ttl_s=60, negative_ttl_s=60)
    await cache.principal("good")
    cache.forget_credential_id(KEY_ID)
    await cache.principal("good")
    cache.forget("good")
    await cache.principal("good")
    assert auth.calls == ["good"] * 3


async def test_the_cache_is_bounded() -> None:
    auth = AuthService()
    cache = CredentialCache(auth.introspect, ttl_s=60, negative_ttl_s=60, max_entries=2)
    for token in ("a", "b", "c", "a"):
        await cache.principal(token)
    assert auth.calls == ["a", "b", "c", "a"]
