"""The one clock every tocsin service reads, so the whole engine can run on virtual time.

Services call `clock.now_ns()` for timestamps and `await clock.sleep(seconds)` between runs. In production
that is the system clock; in rule tests, backtests and unit tests a `VirtualClock` moves only when told to,
waking sleepers in time order, so "five minutes later" takes no time and always happens the same way.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Wall-clock time in ns, and a way to wait."""

    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock."""


class SystemClock:
    """The real clock: time.time_ns and asyncio.sleep."""

    def now_ns(self) -> int:
        """Nanoseconds since the Unix epoch, from the system."""
        return time.time_ns()

    async def sleep(self, seconds: float) -> None:
        """Wait for real."""
        await asyncio.sleep(seconds)


class VirtualClock:
    """A clock that only moves when `advance` (or `set`) is called; sleepers wake in time order."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now_ns(self) -> int:
        """The virtual time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Wait until the virtual time has moved `seconds` forward."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + round(seconds * 1e9), next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own time and letting it run before the next."""
        target = self._now + round(seconds * 1e9)
        while self._sleepers and self._sleepers[0][0] <= target:
            wake_ns, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, wake_ns)
            if not future.done():
                future.set_result(None)
                await settle()
        self._now = target
        await settle()

    def set(self, now_ns: int) -> None:
        """Jump to a time without waking anyone (for setting up a test)."""
        self._now = now_ns


async def settle(rounds: int = 20) -> None:
    """Yield to the event loop a few times so tasks that became ready run until they wait again."""
    for _ in range(rounds):
        await asyncio.sleep(0)
