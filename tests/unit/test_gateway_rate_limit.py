"""The RateLimit fields the gateway derives from a GCRA cell's answer (the counting itself is tested
against PostgreSQL in tests/integration/test_rate_limits.py)."""

import pytest

from services.gateway.db.rate_limits import Take
from services.gateway.rate_limit import WINDOW_S, Cell


def test_a_limit_of_five_is_a_request_every_twelve_seconds_with_a_burst_of_five() -> None:
    cell = Cell(5)
    assert (cell.interval_s, cell.burst_s) == (12.0, 48.0)


def test_allowed_answers_count_down_what_is_left_of_the_burst() -> None:
    cell = Cell(5)
    # After n requests at once the arrival time runs n intervals ahead.
    decisions = [cell.decision(Take(allowed=True, ahead_s=12.0 * n)) for n in range(1, 6)]
    assert [decision.remaining for decision in decisions] == [4, 3, 2, 1, 0]
    assert [decision.reset_s for decision in decisions] == [12, 24, 36, 48, 60]
    assert all(decision.allowed and "Retry-After" not in decision.headers() for decision in decisions)


def test_a_refusal_says_when_the_next_request_fits() -> None:
    refused = Cell(5).decision(Take(allowed=False, ahead_s=60.0))
    assert not refused.allowed and refused.remaining == 0
    # One request's worth of the window (60 s / 5) must pass before the next is allowed.
    assert refused.retry_after_s == 12
    headers = refused.headers()
    assert headers["Retry-After"] == "12"
    assert headers["RateLimit-Limit"] == "5"
    assert headers["RateLimit-Remaining"] == "0"
    assert headers["RateLimit-Reset"] == "60"
    assert headers["RateLimit-Policy"] == f"5;w={int(WINDOW_S)}"


def test_a_refusal_is_never_retried_in_less_than_a_second() -> None:
    # Slightly past the burst (database time moved between the decision and the arithmetic).
    assert Cell(60).decision(Take(allowed=False, ahead_s=59.0001)).retry_after_s == 1


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Cell(0)
