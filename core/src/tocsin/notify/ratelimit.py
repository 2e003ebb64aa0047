"""Per-destination rate limits for notifications: a GCRA token bucket that hands out send slots.

Slack accepts about one message per second per webhook and PagerDuty about 120 events per minute per
routing key; over that they answer 429 and drop the message. The dispatcher asks for a slot before each
send and waits (on the monitor's clock) until it comes; a 429 with Retry-After pushes the destination's
next slot out so the other messages queued for it wait too. Slots are booked, so concurrent senders to
one destination are spaced out rather than released together.
"""

from __future__ import annotations

from tocsin.notify.channel import RateLimit


class Limiter:
    """The next free send slot per destination (Generic Cell Rate Algorithm: one timestamp per key)."""

    def __init__(self) -> None:
        self._tat: dict[str, int] = {}  # theoretical arrival time of the next message, ns
        self._held: dict[str, int] = {}  # nothing before this time (a destination's Retry-After), ns

    def peek(self, key: str, limit: RateLimit | None, now_ns: int) -> int:
        """When a message to `key` could start if booked now (now or later), without booking it."""
        start = max(now_ns, self._held.get(key, now_ns))
        if limit is None:
            return start
        tolerance = round(limit.interval_s * 1e9) * (limit.burst - 1)
        return max(start, self._tat.get(key, now_ns) - tolerance)

    def reserve(self, key: str, limit: RateLimit | None, now_ns: int) -> int:
        """Book the next slot for `key` and return its start time (ns)."""
        start = self.peek(key, limit, now_ns)
        if limit is not None:
            self._tat[key] = max(self._tat.get(key, start), start) + round(limit.interval_s * 1e9)
        return start

    def hold(self, key: str, until_ns: int) -> None:
        """Send nothing to `key` before `until_ns` (after a 429 with Retry-After)."""
        self._held[key] = max(self._held.get(key, until_ns), until_ns)

    def prune(self, now_ns: int) -> None:
        """Forget destinations whose slots are all in the past (they are free again anyway)."""
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now_ns}
        self._held = {key: until for key, until in self._held.items() if until > now_ns}
