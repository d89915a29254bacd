"""The retry schedule: doubling from the base, capped, jittered by at most ±10%, final after max attempts."""

import random

import pytest

from services.gateway.settings import Settings
from services.gateway.webhooks.backoff import RetryPolicy


class _Extreme(random.Random):
    """Always the low or the high end of a uniform range: the jitter's bounds, exactly."""

    def __init__(self, high: bool) -> None:
        super().__init__()
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def test_delays_double_from_the_base_until_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=5.0, max_s=60.0, jitter=0.0)
    assert [policy.delay_s(attempt) for attempt in range(1, 7)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]


def test_jitter_stays_within_ten_percent() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=5.0, max_s=60.0)
    assert policy.delay_s(2, _Extreme(high=False)) == pytest.approx(9.0)
    assert policy.delay_s(2, _Extreme(high=True)) == pytest.approx(11.0)
    rng = random.Random(7)
    delays = {policy.delay_s(3, rng) for _ in range(200)}
    assert all(18.0 <= delay <= 22.0 for delay in delays)
    assert len(delays) > 1


def test_no_retry_after_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=3, base_s=1.0, max_s=10.0, jitter=0.0)
    assert [policy.retry_in_s(attempt) for attempt in (1, 2, 3, 4)] == [1.0, 2.0, None, None]


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10_000, base_s=5.0, max_s=3600.0, jitter=0.0)
    assert policy.delay_s(5_000) == 3600.0


def test_the_policy_follows_the_settings() -> None:
    settings = Settings.model_validate(
        {"webhook_max_attempts": 4, "webhook_backoff_base_s": 0.5, "webhook_backoff_max_s": 30.0}
    )
    assert RetryPolicy.from_settings(settings) == RetryPolicy(max_attempts=4, base_s=0.5, max_s=30.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0, "base_s": 1.0, "max_s": 1.0},
        {"max_attempts": 1, "base_s": 0.0, "max_s": 1.0},
        {"max_attempts": 1, "base_s": 1.0, "max_s": 1.0, "jitter": 1.0},
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=3, base_s=1.0, max_s=10.0).delay_s(0)
