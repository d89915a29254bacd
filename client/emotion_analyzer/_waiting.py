"""What the sync and the async `wait` share: reading the status events, noticing changes, the deadline."""

import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Final

import httpx

from .errors import ApiError, RateLimited
from .models import Analysis
from .sse import ServerSentEvent

StatusCallback = Callable[[Analysis], None]
"""Called with the analysis each time its status or stage changes while waiting (the last call is final)."""

ANALYSIS_EVENTS: Final = frozenset({"status", "completed", "failed"})
# The server sends a keep-alive every 15 s: three missed mean the stream is dead, whatever TCP says.
STREAM_IDLE_S: Final = 45.0
# Between tries while the server cannot be reached or answers 5xx: doubling from the first, up to the last.
RETRY_FIRST_S: Final = 0.5
RETRY_MAX_S: Final = 10.0

logger = logging.getLogger("emotion_analyzer")


def passing(error: Exception) -> bool:
    """Whether waiting should ride out this error: a connection that failed or broke (a restarting
    gateway), a 5xx (a proxy before a restarting gateway), or a 429. A 4xx means the question was wrong."""
    if isinstance(error, httpx.TransportError):
        return True
    return isinstance(error, ApiError) and (error.status >= 500 or isinstance(error, RateLimited))


class Backoff:
    """Delays between tries: exponential with full jitter (so that a batch of waiting clients does not come
    back in step), or what a 429's Retry-After asks for; `reset` after a try that got an answer."""

    def __init__(self, first_s: float = RETRY_FIRST_S, max_s: float = RETRY_MAX_S) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def delay(self, error: Exception) -> float:
        ceiling = min(self.max_s, self.first_s * 2**self.failures)
        self.failures += 1
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(self.max_s, error.retry_after)
        return random.uniform(self.first_s / 2, max(ceiling, self.first_s / 2))


def log_retry(analysis_id: str, error: Exception, delay_s: float) -> None:
    logger.info("waiting for analysis %s: %r; trying again in %.1f s", analysis_id, error, delay_s)


class Follower:
    """The latest state seen of one analysis, reporting each change of status or stage once."""

    def __init__(self, analysis_id: uuid.UUID | str, on_status: StatusCallback | None) -> None:
        self.analysis_id = str(analysis_id)
        self.latest: Analysis | None = None
        self._on_status = on_status

    def saw(self, analysis: Analysis) -> None:
        previous = self.latest
        self.latest = analysis
        changed = previous is None or (previous.status, previous.stage) != (analysis.status, analysis.stage)
        if changed and self._on_status is not None:
            self._on_status(analysis)

    def event(self, event: ServerSentEvent) -> Analysis | None:
        """The finished analysis when this event ends the stream, else None."""
        if event.event not in ANALYSIS_EVENTS:
            return None
        analysis = Analysis.model_validate_json(event.data)
        self.saw(analysis)
        return analysis if analysis.done else None


class Deadline:
    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self._at = None if timeout_s is None else time.monotonic() + timeout_s

    def remaining(self) -> float | None:
        return None if self._at is None else max(0.0, self._at - time.monotonic())

    @property
    def expired(self) -> bool:
        remaining = self.remaining()
        return remaining is not None and remaining <= 0.0

    def capped(self, seconds: float) -> float:
        remaining = self.remaining()
        return seconds if remaining is None else min(seconds, remaining)
