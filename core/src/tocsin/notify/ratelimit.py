"""Per-destination rate limits for notifications: a GCRA token bucket that hands out send slots.

Slack accepts about one message per second per webhook and PagerDuty about 120 events per minute per
routing key; over that they answer 429 and drop the message. The dispatcher asks for a slot before each
send and waits (on the monitor's clock) until it comes; slots are booked, so concurrent senders to one
destination are spaced out rather than released together.

A booked slot is a plan. Before a message really goes out the dispatcher takes the destination's `turn`
(one send at a time to a rate-limited destination) and asks `ready`, which counts from the sends that
really happened: the next message may start one interval after the previous one was *answered*
(`answered`), not one interval after its slot on the grid. So a send that started late, or took long to
reach the server, pushes the next one back, and a receiver that counts arrival times (a strict 1 msg/s
webhook) never sees two messages closer than the limit. A 429 with Retry-After (`hold`) pushes back the
booked slots and every send waiting for its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager

from tocsin.notify.channel import RateLimit, Verdict


class Limiter:
    """The next free send slot per destination (Generic Cell Rate Algorithm: one timestamp per key)."""

    def __init__(self) -> None:
        self._tat: dict[str, int] = {}  # theoretical arrival time of the next booked message, ns
        self._sent: dict[str, int] = {}  # the same, counted from the sends that really happened, ns
        self._held: dict[str, int] = {}  # nothing before this time (a destination's Retry-After), ns
        self._turns: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # one send at a time: lock, [its users]

    @staticmethod
    def _tolerance(limit: RateLimit) -> int:
        return round(limit.interval_s * 1e9) * (limit.burst - 1)

    def peek(self, key: str, limit: RateLimit | None, now_ns: int) -> int:
        """When a message to `key` could start if booked now (now or later), without booking it."""
        start = max(now_ns, self._held.get(key, now_ns))
        if limit is None:
            return start
        return max(start, self._tat.get(key, now_ns) - self._tolerance(limit))

    def reserve(self, key: str, limit: RateLimit | None, now_ns: int) -> int:
        """Book the next slot for `key` and return its start time (ns)."""
        start = self.peek(key, limit, now_ns)
        if limit is not None:
            self._tat[key] = max(self._tat.get(key, start), start) + round(limit.interval_s * 1e9)
        return start

    def ready(self, key: str, limit: RateLimit | None, now_ns: int) -> int:
        """When a message to `key` may really go out (now or later), counting from the sends that happened."""
        start = max(now_ns, self._held.get(key, now_ns))
        if limit is None:
            return start
        return max(start, self._sent.get(key, now_ns) - self._tolerance(limit))

    def answered(self, key: str, limit: RateLimit | None, now_ns: int, verdict: Verdict | None = None,
                 max_retry_after_s: float = float("inf")) -> None:
        """A message to `key` was answered at `now_ns`: the next may start one interval later (after a 429,
        not before its Retry-After, capped at `max_retry_after_s`)."""
        if verdict is not None and verdict.kind == "rate_limited" and verdict.retry_after_s:
            self.hold(key, now_ns + round(min(verdict.retry_after_s, max_retry_after_s) * 1e9))
        if limit is None:
            return
        self._sent[key] = max(self._sent.get(key, now_ns), now_ns) + round(limit.interval_s * 1e9)
        self._tat[key] = max(self._tat.get(key, 0), self._sent[key])  # later bookings start after it too

    @contextlib.asynccontextmanager
    async def turn(self, key: str | None, idle: Callable[[], AbstractContextManager[object]]) -> AsyncIterator[None]:
        """One send at a time to `key` (None: no turn to take); `idle()` is entered while waiting for it."""
        if key is None:
            yield
            return
        lock, users = self._turns.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            if lock.locked():
                with idle():
                    await lock.acquire()
            else:
                await lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            users[0] -= 1
            if not users[0]:
                del self._turns[key]

    def hold(self, key: str, until_ns: int) -> None:
        """Send nothing to `key` before `until_ns` (after a 429 with Retry-After); booked slots move after it."""
        self._held[key] = max(self._held.get(key, until_ns), until_ns)
        if key in self._tat:
            self._tat[key] = max(self._tat[key], until_ns)

    def prune(self, now_ns: int) -> None:
        """Forget destinations whose slots are all in the past (they are free again anyway)."""
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now_ns}
        self._sent = {key: tat for key, tat in self._sent.items() if tat > now_ns}
        self._held = {key: until for key, until in self._held.items() if until > now_ns}
