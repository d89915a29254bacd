import pytest

from services.gateway.rate_limit import WINDOW_S, RateLimiter


def test_a_fresh_key_gets_its_whole_limit_at_once_then_is_refused() -> None:
    limiter = RateLimiter()
    decisions = [limiter.check("key", 5, now=100.0) for _ in range(5)]
    assert all(decision.allowed for decision in decisions)
    assert [decision.remaining for decision in decisions] == [4, 3, 2, 1, 0]
    refused = limiter.check("key", 5, now=100.0)
    assert not refused.allowed
    assert refused.remaining == 0
    # One request's worth of the window (60 s / 5) must pass before the next is allowed.
    assert refused.retry_after_s == 12
    headers = refused.headers()
    assert headers["Retry-After"] == "12"
    assert headers["RateLimit-Limit"] == "5"
    assert headers["RateLimit-Remaining"] == "0"
    assert headers["RateLimit-Policy"] == f"5;w={int(WINDOW_S)}"


def test_the_rate_refills_over_time() -> None:
    limiter = RateLimiter()
    for _ in range(5):
        assert limiter.check("key", 5, now=0.0).allowed
    assert not limiter.check("key", 5, now=11.9).allowed
    assert limiter.check("key", 5, now=12.0).allowed
    assert not limiter.check("key", 5, now=12.0).allowed
    # After a full window the whole burst is back.
    assert [limiter.check("key", 5, now=100.0).allowed for _ in range(6)] == [True] * 5 + [False]


def test_keys_are_limited_separately_and_allowed_answers_carry_no_retry_after() -> None:
    limiter = RateLimiter()
    assert limiter.check("a", 1, now=0.0).allowed
    assert not limiter.check("a", 1, now=0.0).allowed
    allowed = limiter.check("b", 1, now=0.0)
    assert allowed.allowed
    assert "Retry-After" not in allowed.headers()


def test_the_limiter_forgets_the_oldest_keys_beyond_its_bound() -> None:
    limiter = RateLimiter(max_keys=2)
    assert limiter.check("a", 1, now=0.0).allowed
    limiter.check("b", 1, now=0.0)
    limiter.check("c", 1, now=0.0)
    assert limiter.check("a", 1, now=0.0).allowed  # "a" was evicted, so it starts afresh


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter().check("a", 0)
