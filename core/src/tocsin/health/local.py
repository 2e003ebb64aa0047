"""Checks whose answer comes from the app itself: a function it names (`callable`) and the heartbeats it
sends (`heartbeat`).

They live in the core, not with the network checks in `tocsin.builtins`, because `@monitor.health.check` and
`monitor.health.heartbeat()` build them directly; the built-in plugin registers them under their type names.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from tocsin.errors import ConfigError
from tocsin.health.check import CheckOutcome, HealthCheck, outcome_of
from tocsin.models import HealthResult
from tocsin.values import Duration

if TYPE_CHECKING:
    from tocsin.runtime import Runtime


def _import_target(target: str) -> Callable[[], Any]:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"callable check target {target!r} must look like 'package.module:function'")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"callable check target {target!r} cannot be imported: {error}") from None
    if not callable(function):
        raise ConfigError(f"callable check target {target!r} is a {type(function).__name__}, not a function")
    return function


class CallableCheck(HealthCheck):
    """Runs a Python function: `async def` on the loop, plain functions on a worker thread.

    The function returns None/True (healthy), False, a status name, or a CheckOutcome, or raises. In code
    it comes from `@monitor.health.check(name)`; in config from `target = "package.module:function"`. A
    plain function still running from an earlier (timed-out) call is not started again: the check reports
    it as hung until it returns.
    """

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        target: str | None = None

    def __init__(
        self,
        config: msgspec.Struct,
        *,
        name: str = "",
        monitor: Runtime | None = None,
        function: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(config, name=name, monitor=monitor)
        if function is None:
            if self.config.target is None:
                raise ConfigError(f"callable health check {self.name!r} needs `target = \"package.module:function\"`")
            function = _import_target(self.config.target)
        self.function = function
        self._is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            type(function).__call__  # an object with `async def __call__`
        )
        self._running: concurrent.futures.Future[Any] | asyncio.Future[Any] | None = None
        self._since = 0.0

    async def check(self) -> CheckOutcome:
        if self._is_async:
            return outcome_of(await self.function())
        if self._running is not None and not self._running.done():
            return CheckOutcome(status="unhealthy",
                                message=f"still running from a call {time.monotonic() - self._since:.1f}s ago (hung)")
        self._since = time.monotonic()
        self._running = asyncio.get_running_loop().run_in_executor(None, self.function)
        result = await asyncio.shield(self._running)
        if inspect.isawaitable(result):
            result = await result
        return outcome_of(result)


class HeartbeatCheck(HealthCheck):
    """A dead-man switch (healthchecks.io): healthy while beats arrive within `period` + `grace`.

    `beat()` reports a successful run; `start()` opens a run that must end with a beat within `grace`;
    `fail(message)` makes the component unhealthy at once. Before the first beat it is unknown, until
    period + grace has passed since it was created. The last beat survives restarts through the stored
    health history. Safe to call from any thread.
    """

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        period: Duration = Duration(86400)
        grace: Duration = Duration(3600)

    def __init__(self, config: msgspec.Struct, *, name: str = "", monitor: Runtime | None = None) -> None:
        super().__init__(config, name=name, monitor=monitor)
        if monitor is None:
            raise ConfigError(f"heartbeat {self.name!r} needs the monitor (for its clock)")
        self._now = monitor.clock.now_ns
        self.since_ns = self._now()
        self.last_beat_ns: int | None = None
        self.run_started_ns: int | None = None
        self.failure: tuple[int, str] | None = None

    def beat(self) -> None:
        """A run finished well: the component is healthy until period + grace passes without another beat."""
        self.last_beat_ns = self._now()
        self.run_started_ns = None
        self.failure = None
        self.wake()

    def start(self) -> None:
        """A run started: it must beat within `grace`, or the component turns unhealthy."""
        self.run_started_ns = self._now()

    def fail(self, message: str = "") -> None:
        """A run failed: the component turns unhealthy now (after its failures_before_unhealthy)."""
        self.failure = (self._now(), message or "failure reported")
        self.run_started_ns = None
        self.wake()

    def resume(self, last: HealthResult) -> None:
        """Take the last beat from the newest stored result, so a restart does not reset the dead-man timer."""
        stored = last.details.get("last_beat_ns")
        if isinstance(stored, int) and (self.last_beat_ns is None or stored > self.last_beat_ns):
            self.last_beat_ns = stored

    async def check(self) -> CheckOutcome:
        cfg = self.config
        now = self._now()
        period_ns, grace_ns = round(cfg.period * 1e9), round(cfg.grace * 1e9)
        last = self.last_beat_ns
        details: dict[str, Any] = {"last_beat_ns": last}
        observed = None if last is None else (now - last) / 1e9
        if self.failure is not None:
            return CheckOutcome(status="unhealthy", message=self.failure[1], observed=observed, details=details)
        started = self.run_started_ns
        if started is not None and now > started + grace_ns:
            return CheckOutcome(status="unhealthy", message=f"a run started {(now - started) / 1e9:g}s ago and "
                                f"has not beaten within the {cfg.grace:g}s grace", observed=observed, details=details)
        reference = self.since_ns if last is None else last
        if now > reference + period_ns + grace_ns:
            what = "no beat since the heartbeat was set up" if last is None else "last beat"
            return CheckOutcome(status="unhealthy", message=f"{what} {(now - reference) / 1e9:g}s ago; expected every "
                                f"{cfg.period:g}s (+{cfg.grace:g}s grace)", observed=observed, details=details)
        if last is None:
            return CheckOutcome(status="unknown", message="waiting for the first beat", details=details)
        return CheckOutcome(message=f"last beat {observed:g}s ago", observed=observed, details=details)
