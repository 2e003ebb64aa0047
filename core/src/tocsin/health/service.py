"""The health scheduler: runs every component's check on its interval, concurrently, under its timeout.

Components come from `[[health.checks]]` (check types from the `register_health_checks` registry), from
`@monitor.health.check(name)` on a plain or async function, from `monitor.health.heartbeat(name)`, and from
`add(name, check)`. Each run is stored (`storage.write_health`) with the component's status after hysteresis
and dependencies (see `tocsin.health.state`); a "health" event is emitted only when a status changes (type
"changed" per component, "system" for the overall status). A check that raises or outlives its timeout is
unhealthy with the reason, and a hung check never holds up the others: each run is its own task, and the
scheduler only launches runs and sleeps on the monitor's clock until the next one is due.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from tocsin.errors import ConfigError, ConfigProblem, TocsinError
from tocsin.health.check import CheckOutcome, HealthCheck, outcome_of
from tocsin.health.local import CallableCheck, HeartbeatCheck
from tocsin.health.state import ComponentState, check_graph, settle_effective, system_status
from tocsin.models import Event, HealthResult, HealthStatus
from tocsin.values import Duration

if TYPE_CHECKING:
    from tocsin.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])

NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
DEFAULT_TIMEOUT = 10.0

internal_log = logging.getLogger("tocsin")


class ComponentHealth(msgspec.Struct, kw_only=True):
    """A component as the scheduler sees it now: `status` counts dependencies, `check_status` is its own."""

    name: str
    status: HealthStatus
    check_status: HealthStatus
    cause: str | None = None
    critical: bool = True
    message: str = ""
    since_ns: int | None = None
    last_check_ns: int | None = None
    depends_on: list[str] = []


class SystemHealth(msgspec.Struct, kw_only=True):
    """The overall status and every component, by name."""

    status: HealthStatus
    components: list[ComponentHealth]


@dataclass
class _Component:
    name: str
    check: HealthCheck
    interval_s: float
    timeout_s: float
    state: ComponentState
    next_due_ns: int = 0
    run: asyncio.Task[list[HealthResult]] | None = None  # the scheduler's run (ends within the timeout)
    inflight: asyncio.Future[Any] | None = None  # the check itself (may outlive its run when it hangs)
    inflight_since: float = 0.0

    @property
    def idle(self) -> bool:
        return self.run is None or self.run.done()


def _seconds(value: float | str | None, default: float, what: str, name: str) -> float:
    if value is None:
        return default
    try:
        return float(Duration.parse(value))
    except ValueError as error:
        raise ConfigError(f"health check {name!r}: {what}: {error}") from None


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Read a finished task's exception so an abandoned (timed-out) check never logs 'never retrieved'."""
    if not task.cancelled():
        task.exception()


class HealthCheckService:
    """Runs the health checks of one monitor and keeps each component's status; see the module docstring."""

    def __init__(self, monitor: Runtime) -> None:
        self.monitor = monitor
        self.default_interval = float(monitor.config.health.interval)
        self._components: dict[str, _Component] = {}
        self._system: HealthStatus = "unknown"
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._runs: set[asyncio.Task[Any]] = set()
        for i, entry in enumerate(monitor.config.health.checks):
            cls = monitor.registries.checks.get(entry.type)
            try:
                check = cls(entry.options if entry.options is not None else cls.Config(), name=entry.name,
                            monitor=monitor)
            except ConfigError as error:
                raise ConfigError([ConfigProblem(f"health.checks[{i}]", str(error))]) from None
            self.add(entry.name, check, interval=entry.interval, timeout=entry.timeout,
                     failures_before_unhealthy=entry.failures_before_unhealthy,
                     successes_before_healthy=entry.successes_before_healthy, critical=entry.critical,
                     depends_on=entry.depends_on)

    # -- registering components ------------------------------------------------------------------------

    def add(
        self,
        name: str,
        check: HealthCheck,
        *,
        interval: float | str | None = None,
        timeout: float | str = DEFAULT_TIMEOUT,
        failures_before_unhealthy: int = 1,
        successes_before_healthy: int = 1,
        critical: bool = True,
        depends_on: Iterable[str] = (),
    ) -> HealthCheck:
        """Watch a component with `check`; durations are seconds or strings like "30s". Returns the check."""
        if not isinstance(name, str) or not NAME.match(name):
            raise ConfigError(f"health component name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        if name in self._components:
            raise ConfigError(f"health component {name!r} is already registered")
        for what, count in (("failures_before_unhealthy", failures_before_unhealthy),
                            ("successes_before_healthy", successes_before_healthy)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ConfigError(f"health check {name!r}: {what} must be a whole number >= 1, got {count!r}")
        interval_s = _seconds(interval, self.default_interval, "interval", name)
        timeout_s = _seconds(timeout, DEFAULT_TIMEOUT, "timeout", name)
        if interval_s <= 0 or timeout_s <= 0:
            raise ConfigError(f"health check {name!r}: interval and timeout must be longer than 0s")
        state = ComponentState(failures_before_unhealthy=failures_before_unhealthy,
                               successes_before_healthy=successes_before_healthy, critical=critical,
                               depends_on=tuple(depends_on))
        self._components[name] = _Component(name, check, interval_s, timeout_s, state)
        check.wake = lambda: self._run_soon(name)
        if self._task is not None:
            self._check_graph()
            self._run_soon(name)
        return check

    def check(
        self,
        name: str,
        *,
        interval: float | str | None = None,
        timeout: float | str = DEFAULT_TIMEOUT,
        failures_before_unhealthy: int = 1,
        successes_before_healthy: int = 1,
        critical: bool = True,
        depends_on: Iterable[str] = (),
    ) -> Callable[[F], F]:
        """Decorator: check a component with a plain or async function (see `CallableCheck` for what it returns)."""

        def register(function: F) -> F:
            check = CallableCheck(CallableCheck.Config(), name=name, monitor=self.monitor, function=function)
            self.add(name, check, interval=interval, timeout=timeout,
                     failures_before_unhealthy=failures_before_unhealthy,
                     successes_before_healthy=successes_before_healthy, critical=critical, depends_on=depends_on)
            return function

        return register

    def heartbeat(
        self,
        name: str,
        *,
        period: float | str | None = None,
        grace: float | str | None = None,
        interval: float | str | None = None,
        critical: bool = True,
        depends_on: Iterable[str] = (),
    ) -> HeartbeatCheck:
        """The dead-man switch called `name` (from config, or set up now with `period` and `grace`)."""
        existing = self._components.get(name)
        if existing is not None:
            if not isinstance(existing.check, HeartbeatCheck):
                raise ConfigError(f"health component {name!r} is a {type(existing.check).__name__}, not a heartbeat")
            if period is not None or grace is not None or interval is not None:
                raise ConfigError(f"heartbeat {name!r} is already set up; give its options in one place")
            return existing.check
        defaults = HeartbeatCheck.Config()
        config = HeartbeatCheck.Config(
            period=Duration(_seconds(period, defaults.period, "period", name)),
            grace=Duration(_seconds(grace, defaults.grace, "grace", name)),
        )
        check = HeartbeatCheck(config, name=name, monitor=self.monitor)
        self.add(name, check, interval=interval, critical=critical, depends_on=depends_on)
        return check

    # -- reading ------------------------------------------------------------------------------------------

    def component(self, name: str) -> ComponentHealth:
        """One component's current status, or TocsinError naming the known ones."""
        try:
            component = self._components[name]
        except KeyError:
            known = ", ".join(sorted(self._components)) or "none"
            raise TocsinError(f"no health component {name!r}; known: {known}") from None
        state = component.state
        return ComponentHealth(name=name, status=state.effective, check_status=state.own, cause=state.cause,
                               critical=state.critical, message=state.message, since_ns=state.since_ns,
                               last_check_ns=state.last_check_ns, depends_on=list(state.depends_on))

    def status(self) -> SystemHealth:
        """The system status and every component's, sorted by name."""
        return SystemHealth(status=self._system, components=[self.component(name) for name in sorted(self._components)])

    def inhibited(self, name: str) -> str | None:
        """The unhealthy dependency that inhibits `name`'s own alerts (the root cause), or None."""
        component = self._components.get(name)
        return None if component is None else component.state.cause

    # -- running --------------------------------------------------------------------------------------------

    async def run_due(self, now_ns: int | None = None) -> list[HealthResult]:
        """Run every component due at `now_ns` (default: the clock's now) concurrently; returns what was stored."""
        if self.monitor.storage is None:
            raise TocsinError("the monitor is not started; health checks store their results")
        self._check_graph()
        now = self.monitor.clock.now_ns() if now_ns is None else now_ns
        runs = [self._launch(component, now) for component in self._due(now)]
        batches = await asyncio.gather(*runs)
        return [result for batch in batches for result in batch]

    def _due(self, now_ns: int) -> list[_Component]:
        return [c for c in self._components.values() if c.idle and c.next_due_ns <= now_ns]

    def _launch(self, component: _Component, now_ns: int) -> asyncio.Task[list[HealthResult]]:
        component.next_due_ns = now_ns + round(component.interval_s * 1e9)
        task = component.run = asyncio.create_task(self._run(component), name=f"tocsin-health-{component.name}")
        self._runs.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._runs.discard(task)
        self._poke()  # a component made due while it was running runs again now

    def _run_soon(self, name: str) -> None:
        """Make a component due now and wake the scheduler (thread-safe: heartbeats beat from any thread)."""
        component = self._components.get(name)
        if component is not None:
            component.next_due_ns = 0
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop is closing
                pass

    async def _run(self, component: _Component) -> list[HealthResult]:
        inflight = component.inflight
        if inflight is not None and not inflight.done():
            hung = time.monotonic() - component.inflight_since
            outcome = CheckOutcome(status="unhealthy", message=f"the previous run has not finished after {hung:.1f}s")
            return await self._record(component, outcome, 0.0)
        outcome, latency = await self._execute(component)
        return await self._record(component, outcome, latency)

    async def _execute(self, component: _Component) -> tuple[CheckOutcome, float]:
        """One run of the check under its timeout; a raise, a hang or a bad return value is an outcome too."""
        started = time.perf_counter()
        component.inflight_since = time.monotonic()
        task = component.inflight = asyncio.ensure_future(component.check.check())
        task.add_done_callback(_retrieve)
        done, _ = await asyncio.wait({task}, timeout=component.timeout_s)
        latency = time.perf_counter() - started
        if not done:
            task.cancel()  # not awaited: a check that ignores cancellation must not hold up the scheduler
            return CheckOutcome(status="unhealthy", message=f"timed out after {component.timeout_s:g}s"), latency
        if task.cancelled():
            return CheckOutcome(status="unhealthy", message="the check was cancelled"), latency
        error = task.exception()
        if error is not None:
            return CheckOutcome(status="unhealthy", message=f"check raised {type(error).__name__}: {error}",
                                details={"error": type(error).__name__}), latency
        return outcome_of(task.result()), latency

    async def _record(self, component: _Component, outcome: CheckOutcome, latency: float) -> list[HealthResult]:
        """Apply an outcome, store this run (and any dependent whose status it changed), emit the transitions."""
        now = self.monitor.clock.now_ns()
        state = component.state
        state.observe(outcome.status)
        state.message = outcome.message
        state.last_check_ns = now
        states = {name: c.state for name, c in self._components.items()}
        changed = dict(settle_effective(states, now))
        details = {**outcome.details, "own_status": state.own, "outcome": outcome.status}
        if state.cause is not None:
            details["cause"] = state.cause
        results = [HealthResult(component=component.name, status=state.effective, time_ns=now, latency_s=latency,
                                message=outcome.message, observed=outcome.observed, details=details)]
        for name in changed:
            if name != component.name:
                other = states[name]
                message = f"depends on {other.cause}, which is unhealthy" if other.cause else other.message
                results.append(HealthResult(component=name, status=other.effective, time_ns=now, message=message,
                                            details={"own_status": other.own, "cause": other.cause}))
        events = [
            Event(topic="health", type="changed", time_ns=now, data={
                "component": name, "from": previous, "to": states[name].effective, "cause": states[name].cause,
                "critical": states[name].critical, "message": states[name].message,
            })
            for name, previous in changed.items()
        ]  # fmt: skip
        system = system_status(states)
        if system != self._system:
            events.append(Event(topic="health", type="system", time_ns=now, data={"from": self._system, "to": system}))
            self._system = system
        storage = self.monitor.storage
        try:
            if storage is None:
                raise TocsinError("the monitor's storage is closed")
            await storage.write_health(results)
        except Exception as error:
            self.monitor.metrics.counter("tocsin_flush_errors_total").inc(signal="health")
            internal_log.warning("tocsin: writing health results of %r failed: %r", component.name, error)
        for event in events:
            self.monitor.emit(event)
        return results

    def _check_graph(self) -> None:
        check_graph({name: component.state.depends_on for name, component in self._components.items()})

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume state from stored results and start the scheduler loop on the running loop."""
        if self._task is not None:
            return
        self._check_graph()
        storage = self.monitor.storage
        for component in self._components.values():
            try:
                last = await storage.health_history(component.name, limit=1) if storage is not None else []
            except Exception as error:
                internal_log.warning("tocsin: reading the last health result of %r failed: %r", component.name, error)
                continue
            if last:
                component.check.resume(last[0])
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._scheduler(), name="tocsin-health")

    async def stop(self) -> None:
        """Stop the loop, cancel runs in progress, and close every check."""
        tasks = [task for task in (self._task, *self._runs) if task is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for component in self._components.values():
            try:
                await component.check.close()
            except Exception as error:
                internal_log.warning("tocsin: closing health check %r failed: %r", component.name, error)

    async def _scheduler(self) -> None:
        clock, wake = self.monitor.clock, self._wake
        assert wake is not None
        while True:
            wake.clear()
            now = clock.now_ns()
            for component in self._due(now):
                self._launch(component, now)
            next_due = min((c.next_due_ns for c in self._components.values() if c.idle), default=None)
            waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(wake.wait())]
            if next_due is not None:
                waiters.append(asyncio.ensure_future(clock.sleep(max(0.0, (next_due - clock.now_ns()) / 1e9))))
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
