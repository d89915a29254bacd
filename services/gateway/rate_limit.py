"""Requests per minute per key (an API key or session; a client address or an e-mail for sign-up and login).

The counting is a generic cell rate algorithm kept in PostgreSQL (`services.gateway.db.rate_limits`), so
the limit holds across every gateway replica: N replicas behind a load balancer still allow a key its limit,
not N times it. GCRA allows a burst of up to the whole limit at once while holding the long-run rate to it.
"""

import asyncio
import hashlib
import logging
import math
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from .db.rate_limits import Take, ahead, forget_past_cells, take

WINDOW_S: Final = 60.0
PRUNE_INTERVAL_S: Final = 60.0
_EPSILON: Final = 1e-6

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    """Seconds until the full limit is available again."""
    retry_after_s: int
    """Seconds until the next request would be allowed (0 when allowed)."""

    def headers(self) -> dict[str, str]:
        """IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers), and Retry-After on refusal."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": f"{self.limit};w={int(WINDOW_S)}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


@dataclass(frozen=True)
class Cell:
    """The GCRA parameters of a limit of `limit` requests per window."""

    limit: int

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"the limit must be at least 1 per minute, got {self.limit}")

    @property
    def interval_s(self) -> float:
        return WINDOW_S / self.limit

    @property
    def burst_s(self) -> float:
        """How far ahead of now the arrival time may run: `limit` requests at once."""
        return WINDOW_S - self.interval_s

    def decision(self, taken: Take) -> RateDecision:
        """The answer's fields from what the cell said."""
        if not taken.allowed:
            return RateDecision(
                allowed=False,
                limit=self.limit,
                remaining=0,
                reset_s=math.ceil(taken.ahead_s - _EPSILON),
                retry_after_s=max(1, math.ceil(taken.ahead_s - self.burst_s - _EPSILON)),
            )
        remaining = math.floor((self.burst_s - taken.ahead_s) / self.interval_s + _EPSILON) + 1
        return RateDecision(
            allowed=True,
            limit=self.limit,
            remaining=max(0, min(self.limit, remaining)),
            reset_s=max(0, math.ceil(taken.ahead_s - _EPSILON)),
            retry_after_s=0,
        )


class RateLimiter:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def check(self, key: str, limit_per_minute: int) -> RateDecision:
        """Count one request of `key` if the limit allows it."""
        cell = Cell(limit_per_minute)
        async with self._sessions() as session:
            taken = await take(session=session, key=key, interval_s=cell.interval_s, burst_s=cell.burst_s)
        return cell.decision(taken)

    async def refusing(self, key: str, limit_per_minute: int) -> RateDecision | None:
        """The refusal `check` would answer now, counting nothing; None when a request would be let in."""
        cell = Cell(limit_per_minute)
        async with self._sessions() as session:
            ahead_s = await ahead(session=session, key=key)
        if ahead_s is None or ahead_s <= cell.burst_s:
            return None
        return cell.decision(Take(allowed=False, ahead_s=ahead_s))

    async def run_pruning(self, interval_s: float = PRUNE_INTERVAL_S) -> None:
        """Delete spent cells every `interval_s` until cancelled (every replica may; it is idempotent)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                async with self._sessions() as session:
                    await forget_past_cells(session=session)
            except Exception:
                logger.exception("pruning the rate-limit cells failed")


def credential_key(credential_id: object) -> str:
    return f"credential:{credential_id}"


def account_key(owner: str) -> str:
    return f"account:{owner}"


def manual_sends_key(owner: str) -> str:
    """The cell of an account's webhook test sends and redeliveries."""
    return f"webhook-sends:{owner}"


def rejected_key(address: str) -> str:
    """The cell of the credentials refused to one client address (the address as `limit_key` gives it)."""
    return f"rejected:{address}"


def address_key(address: str) -> str:
    return f"address:{address}"


def email_key(email: str) -> str:
    """The cell of one e-mail address; hashed, so that the table holds no addresses."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"email:{digest}"


class AccountAttempts:
    """Sign-ups and logins, limited per client address and per e-mail address. The address limit holds
    one client's guesses at many accounts; the e-mail one many clients' (a botnet) guesses at one account,
    and bounds how much password hashing one target can cost the auth service."""

    def __init__(self, limiter: RateLimiter, *, per_address: int, per_email: int) -> None:
        self._limiter = limiter
        self.per_address = per_address
        self.per_email = per_email

    async def check(self, address: str, email: str | None) -> RateDecision:
        """The refusal when either limit is spent, else the address limit's decision."""
        decision = await self._limiter.check(address_key(address), self.per_address)
        if not decision.allowed or email is None:
            return decision
        by_email = await self._limiter.check(email_key(email), self.per_email)
        return decision if by_email.allowed else by_email
