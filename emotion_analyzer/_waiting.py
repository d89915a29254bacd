"""What the sync and the async `wait` share: reading the status events, noticing changes, the deadline."""

import time
import uuid
from collections.abc import Callable
from typing import Final

from .models import Analysis
from .sse import ServerSentEvent

StatusCallback = Callable[[Analysis], None]
"""Called with the analysis each time its status or stage changes while waiting (the last call is final)."""

ANALYSIS_EVENTS: Final = frozenset({"status", "completed", "failed"})
# The server sends a keep-alive every 15 s: three missed mean the stream is dead, whatever TCP says.
STREAM_IDLE_S: Final = 45.0


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
