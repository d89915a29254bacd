"""Readiness answers say which backend is down, never what the driver said about it (hosts, addresses)."""

import asyncio
import logging

import pytest

from services.gateway.api.routes import health


def test_a_failing_check_is_unavailable_and_its_message_goes_to_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def failing() -> None:
        raise ConnectionError("could not connect to postgres.internal.svc (10.12.0.7:5432): password for ea")

    with caplog.at_level(logging.WARNING):
        outcome = asyncio.run(health.check("database", failing()))
    assert outcome == "unavailable"
    assert "10.12.0.7" in caplog.text and "database" in caplog.text


def test_a_slow_check_is_a_timeout_and_a_good_one_is_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.05)

    async def slow() -> None:
        await asyncio.sleep(5)

    async def fine() -> None:
        return None

    assert asyncio.run(health.check("broker", slow())) == "timeout"
    assert asyncio.run(health.check("broker", fine())) == "ok"
