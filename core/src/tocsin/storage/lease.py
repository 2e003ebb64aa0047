"""Leadership: of the processes sharing a store, the one holding a lease in it runs the leader work.

The alert evaluator, the notification dispatcher, the health scheduler, workflow expectation checks and
retention sweeps must run once per database, not once per process: two monitors on one SQLite file would
otherwise both evaluate every rule and record every alert transition twice. Each monitor keeps a `Leadership`
for the lease `LEASE_NAME`: it tries for the lease at start and then every `ttl / 3` (a renewal while it
leads), starts the leader work when it gets the lease and stops it when it loses it. Everything else
(recording, flushing, ingest, reads) runs in every process.

A leader steps down when the store says another process holds the lease, or when it cannot reach the store
and its last renewal may no longer cover it until the next try (so it stops at most `2/3 ttl` after its
last renewal, before anyone else can take over at `ttl`). The lease is released on stop, so a clean shutdown
hands over at the others' next try; a killed leader's lease runs out after `ttl`, and another process takes
over within two lease periods. The class takes narrow callables (the storage calls, the work to start and
stop, a clock), not the Monitor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

from tocsin.clock import Clock

internal_log = logging.getLogger("tocsin")

LEASE_NAME = "leader"
"""The lease the leader of a store holds."""


def holder_id() -> str:
    """A name for this process that no other process shares: `host:pid:random`."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leadership:
    """Holds (or waits for) one lease and runs `lead` when it is gained and `follow` when it is lost.

    `acquire(now_ns)` takes or renews the lease and says whether it is held; `release()` gives it up.
    `ttl_s` 0 means no lease: this process always leads. `on_change(leader)` is told of every change,
    the first decision at start included.
    """

    def __init__(
        self,
        *,
        ttl_s: float,
        acquire: Callable[[int], Awaitable[bool]],
        release: Callable[[], Awaitable[None]],
        lead: Callable[[], Awaitable[None]],
        follow: Callable[[], Awaitable[None]],
        clock: Clock,
        on_change: Callable[[bool], None] = lambda leader: None,
    ) -> None:
        self.ttl_s = float(ttl_s)
        self.is_leader = False
        self._acquire, self._release, self._lead, self._follow = acquire, release, lead, follow
        self._clock = clock
        self._on_change = on_change
        self._decided = False
        self._working = False  # the leader work was started and not (fully) stopped since
        self._renewed_ns: int | None = None
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def interval_s(self) -> float:
        """How often the lease is renewed (or tried for): a third of its length."""
        return self.ttl_s / 3

    async def start(self) -> None:
        """Try for the lease now (and start the leader work if it is taken: its errors propagate), then keep
        trying every `interval_s` in a task."""
        if self.ttl_s <= 0:
            await self._change(True, raise_errors=True)
            return
        await self.attempt(raise_errors=True)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tocsin-leadership")

    async def stop(self) -> None:
        """Stop trying, stop the leader work if it runs, and give the lease back. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        was_leader, self.is_leader = self.is_leader, False
        try:
            if self._working:
                await self._stop_work()
        finally:
            if was_leader and self.ttl_s > 0:
                try:
                    await self._release()
                except Exception as error:  # it runs out on its own
                    internal_log.warning("tocsin: releasing the leader lease failed: %r", error)

    async def attempt(self, *, raise_errors: bool = False) -> bool:
        """One round: take or renew the lease, then start or stop the leader work to match; is_leader after."""
        started = self._clock.now_ns()
        try:
            held = await self._acquire(started)
        except Exception as error:
            if not self._failing:
                internal_log.warning("tocsin: renewing the leader lease failed: %r", error)
            self._failing = True
            # Keep leading only while the last renewal is sure to cover us until the next try.
            cover_ns = round((self.ttl_s - self.interval_s) * 1e9)
            held = self.is_leader and self._renewed_ns is not None and (
                self._clock.now_ns() < self._renewed_ns + cover_ns)
        else:
            if self._failing:
                internal_log.warning("tocsin: the leader lease can be renewed again")
            self._failing = False
            if held:
                self._renewed_ns = started
        await self._change(held, raise_errors=raise_errors)
        return self.is_leader

    async def _change(self, leader: bool, *, raise_errors: bool = False) -> None:
        if leader == self.is_leader and self._decided:
            return
        first, self._decided = not self._decided, True
        self.is_leader = leader
        if leader:
            self._working = True
            try:
                await self._lead()
            except Exception as error:
                if raise_errors:
                    raise
                internal_log.warning("tocsin: starting the leader work failed; giving the lease up: %r", error)
                await self._step_back()
                return
        elif not first:
            try:
                await self._stop_work()
            except Exception as error:
                internal_log.warning("tocsin: stopping the leader work failed: %r", error)
        self._on_change(leader)

    async def _step_back(self) -> None:
        """After the leader work failed to start: stop what did start and let another process lead."""
        self.is_leader = False
        self._renewed_ns = None
        for undo in (self._stop_work, self._release):
            try:
                await undo()
            except Exception as error:
                internal_log.warning("tocsin: stepping down as leader: %r", error)

    async def _stop_work(self) -> None:
        await self._follow()
        self._working = False

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self.interval_s)
            try:
                await self.attempt()
            except Exception as error:  # never let the loop die
                internal_log.warning("tocsin: leadership round failed: %r", error)
