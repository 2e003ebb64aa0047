"""When a failed notification is tried again, and when it is given up.

Exponential backoff from `retry_initial` doubling per attempt with ±25 % jitter (so gaps always grow until
the `retry_max` cap), a server's Retry-After honoured up to `max_retry_after`, and give-up after
`max_attempts` attempts or once the next attempt would start later than `retry_for` after the notification
was queued. Permanent failures are never retried.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tocsin.config.schema import NotificationsConfig
from tocsin.models import Delivery
from tocsin.notify.channel import Verdict

MULTIPLIER = 2.0
JITTER = 0.25


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff, Retry-After and give-up rules for one notify service."""

    max_attempts: int = 10
    initial_s: float = 1.0
    max_s: float = 60.0
    retry_for_s: float = 600.0
    max_retry_after_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @classmethod
    def from_config(cls, settings: NotificationsConfig, rng: random.Random | None = None) -> RetryPolicy:
        """The policy `[notifications]` describes."""
        return cls(
            max_attempts=settings.max_attempts,
            initial_s=float(settings.retry_initial),
            max_s=float(settings.retry_max),
            retry_for_s=float(settings.retry_for),
            max_retry_after_s=float(settings.max_retry_after),
            rng=rng or random.Random(),
        )

    def backoff_s(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based): initial × 2^(n−1) × U(0.75, 1.25), capped."""
        base = self.initial_s * MULTIPLIER ** (attempt - 1)
        return min(self.max_s, base * self.rng.uniform(1 - JITTER, 1 + JITTER))

    def next_attempt_ns(self, delivery: Delivery, verdict: Verdict, attempt: int, now_ns: int) -> int | None:
        """When to try `delivery` again after failed attempt number `attempt`, or None to give up."""
        if verdict.kind == "permanent" or attempt >= self.max_attempts:
            return None
        delay = self.backoff_s(attempt)
        if verdict.kind == "rate_limited" and verdict.retry_after_s is not None:
            delay = min(verdict.retry_after_s, self.max_retry_after_s)
        due = now_ns + round(delay * 1e9)
        if due > delivery.created_ns + round(self.retry_for_s * 1e9):
            return None
        return due
