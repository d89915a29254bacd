"""When a failed delivery is tried again: exponential backoff with jitter, up to a number of attempts."""

import random
from dataclasses import dataclass
from typing import Final

from ..settings import Settings

# 2**64 times any positive base is already past every sensible maximum; the cap keeps floats finite.
_MAX_EXPONENT: Final = 64


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    max_s: float
    jitter: float = 0.1
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter], so retries spread out."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_s <= 0 or self.max_s <= 0:
            raise ValueError("backoff delays must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetryPolicy":
        return cls(
            max_attempts=settings.webhook_max_attempts,
            base_s=settings.webhook_backoff_base_s,
            max_s=settings.webhook_backoff_max_s,
        )

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after failed attempt `attempt` (1-based): min(base * 2^(attempt-1), max), jittered."""
        if attempt < 1:
            raise ValueError(f"attempts are numbered from 1, got {attempt}")
        nominal = min(self.base_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT), self.max_s)
        factor = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return nominal * factor

    def retry_in_s(self, attempt: int, rng: random.Random | None = None) -> float | None:
        """The wait before the next attempt after failed attempt `attempt`; None when it was the last."""
        if attempt >= self.max_attempts:
            return None
        return self.delay_s(attempt, rng)
