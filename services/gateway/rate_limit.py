"""Requests per minute per credential, as a generic cell rate algorithm (GCRA) in this process's memory.

GCRA keeps one timestamp per credential (the theoretical arrival time) and allows short bursts up to the
limit while holding the long-run rate to it. The state is per gateway replica: with N replicas behind a
load balancer a key can reach up to N times its limit. Monthly quotas, which are what is billed, are
exact across replicas (PostgreSQL); this limit only protects the service from floods.
"""

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

WINDOW_S: Final = 60.0


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


class RateLimiter:
    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._tat: OrderedDict[object, float] = OrderedDict()
        self._max_keys = max_keys

    def check(self, key: object, limit_per_minute: int, *, now: float | None = None) -> RateDecision:
        """Count one request of `key` if the limit allows it."""
        if limit_per_minute < 1:
            raise ValueError(f"the limit must be at least 1 per minute, got {limit_per_minute}")
        now = time.monotonic() if now is None else now
        interval = WINDOW_S / limit_per_minute
        burst = WINDOW_S - interval  # how far ahead of now the arrival time may run: `limit` requests at once
        tat = max(self._tat.get(key, now), now)
        if tat - now > burst + 1e-9:
            return RateDecision(
                allowed=False,
                limit=limit_per_minute,
                remaining=0,
                reset_s=math.ceil(tat - now),
                retry_after_s=max(1, math.ceil(tat - now - burst)),
            )
        new_tat = tat + interval
        self._tat[key] = new_tat
        self._tat.move_to_end(key)
        while len(self._tat) > self._max_keys:
            self._tat.popitem(last=False)
        remaining = math.floor((burst - (new_tat - now)) / interval + 1e-9) + 1
        return RateDecision(
            allowed=True,
            limit=limit_per_minute,
            remaining=max(0, min(limit_per_minute, remaining)),
            reset_s=math.ceil(new_tat - now),
            retry_after_s=0,
        )
