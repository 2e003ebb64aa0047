"""The health scheduler: hysteresis, dependency inhibition, system status, heartbeats, hung and raising checks."""

from __future__ import annotations

import asyncio
import threading

import msgspec
import pytest

from tocsin import hookimpl
from tocsin.clock import VirtualClock
from tocsin.errors import ConfigError, TocsinError
from tocsin.health.check import CheckOutcome, HealthCheck
from tocsin.health.service import HealthCheckService
from tocsin.testing import make_monitor

START = 1_700_000_000 * 10**9


class Switch:
    """What a callable check returns next (a status name, a bool, or an exception to raise)."""

    def __init__(self, value: object = True) -> None:
        self.value = value
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value


@pytest.fixture
async def clock():
    return VirtualClock(START)


@pytest.fixture
async def monitor(clock):
    instance = make_monitor(clock=clock)
    async with instance:
        yield instance


def register(health: HealthCheckService, name: str, switch: Switch, **options) -> Switch:
    health.check(name, **options)(switch)
    return switch


async def tick(health: HealthCheckService, clock: VirtualClock, seconds: float = 30) -> dict[str, str]:
    """Move the clock, run what is due, and return every component's status."""
    clock.set(clock.now_ns() + round(seconds * 1e9))
    await health.run_due()
    return {component.name: component.status for component in health.status().components}


async def test_hysteresis_needs_consecutive_failures_and_successes_and_events_only_on_transitions(monitor, clock):
    health = HealthCheckService(monitor)
    events = monitor.events.subscribe(["health"])
    db = register(health, "db", Switch(), failures_before_unhealthy=3, successes_before_healthy=2)

    seen = []
    for value in [True, False, False, True, False, False, False, False, True, True, True]:
        db.value = value
        seen.append((await tick(health, clock))["db"])
    assert seen == ["healthy", "healthy", "healthy", "healthy", "healthy", "healthy", "unhealthy", "unhealthy",
                    "unhealthy", "healthy", "healthy"]
    changes = [(e.data["from"], e.data["to"]) for e in events.drain() if e.type == "changed"]
    assert changes == [("unknown", "healthy"), ("healthy", "unhealthy"), ("unhealthy", "healthy")]

    history = await monitor.storage.health_history("db", limit=100)
    assert len(history) == 11  # every run is stored, not only the transitions
    assert history[3].status == "unhealthy" and history[3].details["outcome"] == "unhealthy"
    assert history[2].status == "unhealthy" and history[2].details["outcome"] == "healthy"  # 1 of 2 successes
    assert [r.time_ns for r in history] == sorted((r.time_ns for r in history), reverse=True)


async def test_a_first_failure_keeps_unknown_until_the_retries_run_out(monitor, clock):
    health = HealthCheckService(monitor)
    register(health, "cache", Switch(False), failures_before_unhealthy=2)
    assert (await tick(health, clock))["cache"] == "unknown"
    assert (await tick(health, clock))["cache"] == "unhealthy"


async def test_a_dependency_outage_degrades_and_inhibits_dependents_with_the_root_cause(monitor, clock):
    health = HealthCheckService(monitor)
    events = monitor.events.subscribe(["health"])
    db = register(health, "db", Switch())
    api = register(health, "api", Switch(), depends_on=["db"])
    register(health, "web", Switch(), depends_on=["api"])
    assert await tick(health, clock) == {"api": "healthy", "db": "healthy", "web": "healthy"}
    events.drain()

    db.value = api.value = False  # the api fails *because* the db is down
    assert await tick(health, clock) == {"api": "degraded", "db": "unhealthy", "web": "degraded"}
    assert health.inhibited("api") == "db" and health.inhibited("web") == "db"
    assert health.inhibited("db") is None
    api_now = health.component("api")
    assert (api_now.status, api_now.check_status, api_now.cause) == ("degraded", "unhealthy", "db")
    assert health.status().status == "unhealthy"
    changed = {e.data["component"]: (e.data["to"], e.data["cause"]) for e in events.drain() if e.type == "changed"}
    assert changed == {"db": ("unhealthy", None), "api": ("degraded", "db"), "web": ("degraded", "db")}
    [stored] = await monitor.storage.health_history("web", limit=1)
    assert stored.status == "degraded" and stored.details["cause"] == "db"

    db.value = True  # the db recovers first: the api's own failure is now the root cause
    assert await tick(health, clock) == {"api": "unhealthy", "db": "healthy", "web": "degraded"}
    assert health.inhibited("api") is None and health.inhibited("web") == "api"
    api.value = True
    assert await tick(health, clock) == {"api": "healthy", "db": "healthy", "web": "healthy"}
    assert health.inhibited("web") is None


async def test_system_status_is_the_worst_critical_component_and_non_critical_can_only_degrade(monitor, clock):
    health = HealthCheckService(monitor)
    events = monitor.events.subscribe(["health"])
    assert health.status().status == "unknown"
    core = register(health, "core", Switch())
    extra = register(health, "extra", Switch(), critical=False)
    await tick(health, clock)
    assert health.status().status == "healthy"
    extra.value = False
    await tick(health, clock)
    assert health.status().status == "degraded"
    core.value = "degraded"
    extra.value = True
    await tick(health, clock)
    assert health.status().status == "degraded"
    core.value = False
    await tick(health, clock)
    assert health.status().status == "unhealthy"
    system = [(e.data["from"], e.data["to"]) for e in events.drain() if e.type == "system"]
    assert system == [("unknown", "healthy"), ("healthy", "degraded"), ("degraded", "unhealthy")]


async def test_raising_hanging_and_bad_checks_are_unhealthy_with_the_reason(monitor, clock):
    health = HealthCheckService(monitor)
    register(health, "raises", Switch(ConnectionError("refused by peer")))
    register(health, "odd", Switch(42))

    @health.check("hangs", timeout=0.05)
    async def hangs():
        await asyncio.sleep(3600)

    results = {result.component: result for result in await health.run_due()}
    assert results["raises"].status == "unhealthy"
    assert results["raises"].message == "check raised ConnectionError: refused by peer"
    assert results["hangs"].message == "timed out after 0.05s"
    assert results["odd"].status == "unhealthy" and "returned int 42" in results["odd"].message


async def test_a_hung_plain_function_is_not_started_again_until_it_returns(monitor, clock):
    health = HealthCheckService(monitor)
    release = threading.Event()
    calls = []

    @health.check("legacy", timeout=0.05)
    def legacy():
        calls.append(1)
        release.wait(10)
        return True

    [first] = await health.run_due()
    assert first.message == "timed out after 0.05s"
    [second] = await tick_results(health, clock)
    assert second.status == "unhealthy" and "(hung)" in second.message
    assert len(calls) == 1  # no second thread piled up behind the hung one
    release.set()
    for _ in range(100):
        [third] = await tick_results(health, clock)
        if third.status == "healthy":
            break
        await asyncio.sleep(0.01)
    assert third.status == "healthy" and len(calls) == 2


async def tick_results(health, clock, seconds: float = 30):
    clock.set(clock.now_ns() + round(seconds * 1e9))
    return await health.run_due()


async def test_the_scheduler_never_stalls_behind_a_hung_check(monitor, clock):
    health = HealthCheckService(monitor)
    fast = register(health, "fast", Switch(), interval=1)
    stuck = asyncio.Event()

    @health.check("stuck", interval=1, timeout=30)
    async def stuck_check():
        await stuck.wait()

    await health.start()
    try:
        await clock.advance(0)
        for _ in range(5):
            await clock.advance(1)
        assert fast.calls == 6  # at start, then once a second, while "stuck" has not returned at all
        assert health.component("stuck").status == "unknown"
        stuck.set()
        await clock.advance(1)
        for _ in range(100):
            if health.component("stuck").status == "healthy":
                break
            await asyncio.sleep(0.01)
        assert health.component("stuck").status == "healthy"
    finally:
        await health.stop()


async def test_heartbeats_follow_period_plus_grace(monitor, clock):
    health = HealthCheckService(monitor)
    backup = health.heartbeat("nightly-backup", period=3600, grace=600, interval=60)
    assert health.heartbeat("nightly-backup") is backup
    await health.start()
    try:
        await clock.advance(4100)
        assert health.component("nightly-backup").status == "unknown"  # waiting for the first beat
        await clock.advance(200)
        assert health.component("nightly-backup").status == "unhealthy"
        assert "no beat since" in health.component("nightly-backup").message

        backup.beat()  # runs at once, not at the next 60 s interval
        await clock.advance(0)
        await asyncio.sleep(0)
        assert health.component("nightly-backup").status == "healthy"
        await clock.advance(3600 + 540)
        assert health.component("nightly-backup").status == "healthy"
        await clock.advance(120)
        assert health.component("nightly-backup").status == "unhealthy"
        assert "last beat" in health.component("nightly-backup").message

        backup.beat()
        backup.start()  # a run that never finishes: unhealthy once the grace is over
        await clock.advance(660)
        assert health.component("nightly-backup").status == "unhealthy"
        assert "has not beaten within" in health.component("nightly-backup").message

        backup.beat()
        await clock.advance(0)
        await asyncio.sleep(0)
        assert health.component("nightly-backup").status == "healthy"
        backup.fail("exit code 3")
        await clock.advance(0)
        await asyncio.sleep(0)
        assert health.component("nightly-backup").status == "unhealthy"
        assert health.component("nightly-backup").message == "exit code 3"
    finally:
        await health.stop()


async def test_a_heartbeat_keeps_its_last_beat_across_a_restart(clock):
    config = {"health": {"checks": [{"name": "backup", "type": "heartbeat", "period": "1h", "grace": "10m"}]}}
    first = make_monitor(clock=clock, config=config)
    async with first:
        health = first.health
        health.heartbeat("backup").beat()
        await health.run_due()
        stored = await first.storage.health_history("backup")
    assert stored[0].details["last_beat_ns"] == START

    second = make_monitor(clock=clock, config=config)
    second.services.remove(second.health)  # started below, after the reopened store is seeded
    async with second:
        await second.storage.write_health(stored)  # the same database, reopened
        clock.set(START + 3600 * 10**9)  # the process was down for an hour
        health = HealthCheckService(second)
        await health.start()
        try:
            await clock.advance(0)
            assert health.component("backup").status == "healthy"  # not "waiting for the first beat"
            await clock.advance(11 * 60)
            assert health.component("backup").status == "unhealthy"
        finally:
            await health.stop()


class QueueDepth(HealthCheck):
    """A plugin check type: unhealthy when a queue holds more than `max_depth` items."""

    depth = 0

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        max_depth: int

    async def check(self) -> CheckOutcome:
        healthy = QueueDepth.depth <= self.config.max_depth
        return CheckOutcome(status="healthy" if healthy else "unhealthy", observed=QueueDepth.depth,
                            message=f"{QueueDepth.depth} queued")


class QueuePlugin:
    __name__ = "queue-checks"

    @hookimpl
    def register_health_checks(self, register):
        register("queue", QueueDepth)


async def test_a_plugin_check_type_runs_from_config(clock):
    config = {"health": {"interval": "5s", "checks": [
        {"name": "jobs", "type": "queue", "max_depth": 10, "critical": False},
    ]}}  # fmt: skip
    monitor = make_monitor(QueuePlugin(), clock=clock, config=config)
    async with monitor:
        health = HealthCheckService(monitor)
        QueueDepth.depth = 3
        [ok] = await health.run_due()
        assert (ok.status, ok.observed, ok.message) == ("healthy", 3, "3 queued")
        QueueDepth.depth = 50
        clock.set(clock.now_ns() + 4 * 10**9)
        assert await health.run_due() == []  # not due: the interval comes from [health] interval
        clock.set(clock.now_ns() + 10**9)
        [bad] = await health.run_due()
        assert bad.status == "unhealthy"
        assert health.status().status == "degraded"  # not critical


async def test_bad_registrations_are_clear_errors(monitor):
    health = HealthCheckService(monitor)
    register(health, "db", Switch())
    with pytest.raises(ConfigError, match="already registered"):
        register(health, "db", Switch())
    with pytest.raises(ConfigError, match="must be 1-64 letters"):
        register(health, "no spaces", Switch())
    with pytest.raises(ConfigError, match="failures_before_unhealthy must be a whole number >= 1"):
        register(health, "x", Switch(), failures_before_unhealthy=0)
    with pytest.raises(ConfigError, match="interval: expected a duration"):
        register(health, "y", Switch(), interval="soon")
    with pytest.raises(ConfigError, match="is a CallableCheck, not a heartbeat"):
        health.heartbeat("db")
    register(health, "api", Switch(), depends_on=["cache"])
    with pytest.raises(ConfigError, match="depends on 'cache', which is not a component"):
        await health.run_due()
    register(health, "cache", Switch(), depends_on=["api"])
    with pytest.raises(ConfigError, match="cycle: api -> cache -> api"):
        await health.run_due()
    with pytest.raises(TocsinError, match="no health component 'nope'; known: api, cache, db"):
        health.component("nope")


def test_a_config_check_that_cannot_be_built_names_its_entry():
    with pytest.raises(ConfigError, match=r"health.checks\[0\]: callable health check 'broken' needs `target"):
        make_monitor(config={"health": {"checks": [{"name": "broken", "type": "callable"}]}})


async def test_run_due_needs_a_started_monitor():
    with pytest.raises(TocsinError, match="not started"):
        await HealthCheckService(make_monitor()).run_due()
