"""Workflow expectations on a virtual clock: stuck executions and steps, and missed scheduled runs."""

from __future__ import annotations

import datetime as dt

import pytest

from tocsin.clock import VirtualClock
from tocsin.errors import ConfigError
from tocsin.testing import make_monitor
from tocsin.workflows.service import WorkflowMonitor

START = int(dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC).timestamp()) * 10**9  # a Wednesday, 10:00 UTC
MINUTE = 60 * 10**9


def monitor_with(clock: VirtualClock, expect: list[dict] | None = None):
    return make_monitor(clock=clock, config={"workflows": {"check_interval": "1m", "expect": expect or []}})


async def test_a_run_past_max_duration_is_stuck_once_and_clears_when_it_ends():
    clock = VirtualClock(START)
    async with monitor_with(clock, [{"name": "etl", "max_duration": "30m"}]) as monitor:
        workflows = monitor.workflows
        events = monitor.events.subscribe(["workflows"])
        run = workflows.execution("etl").start()
        quick = workflows.execution("etl").start()
        quick.succeed()
        assert await workflows.check_expectations(START + 30 * MINUTE) == []
        [event] = await workflows.check_expectations(START + 31 * MINUTE)
        assert event.type == "stuck" and event.data["execution_id"] == run.id
        assert await workflows.check_expectations(START + 40 * MINUTE) == []  # raised once, still open
        [problem] = workflows.problems()
        assert (problem.kind, problem.execution_id, problem.since_ns) == ("stuck", run.id, START + 30 * MINUTE)
        assert problem.message.endswith("has run 1860s, over its 1800s limit")
        run.succeed()
        await workflows.check_expectations(START + 41 * MINUTE)
        assert workflows.problems() == []
        assert [e.type for e in events.drain()] == ["started", "started", "succeeded", "stuck", "succeeded"]


async def test_a_step_past_its_own_limit_is_step_stuck():
    clock = VirtualClock(START)
    async with monitor_with(clock) as monitor:
        workflows = monitor.workflows
        workflows.expect("etl", step_max_duration={"load": "5m"})
        run_id = workflows.started("etl")
        workflows.step_started(run_id, "extract")  # no limit on this one
        workflows.step_started(run_id, "load")
        assert await workflows.check_expectations(START + 5 * MINUTE) == []
        [event] = await workflows.check_expectations(START + 6 * MINUTE)
        assert (event.type, event.data["step"], event.data["execution_id"]) == ("step_stuck", "load", run_id)
        workflows.step_completed(run_id, "load")
        assert await workflows.check_expectations(START + 7 * MINUTE) == []
        assert workflows.problems() == []


async def test_an_every_schedule_misses_a_run_after_period_plus_grace_on_the_running_watcher():
    clock = VirtualClock(START)
    expect = [{"name": "sync", "schedule": "every 1h", "grace": "5m"}]
    async with monitor_with(clock, expect) as monitor:
        workflows = monitor.workflows
        events = monitor.events.subscribe(["workflows"])
        await workflows.start()
        try:
            await clock.advance(30 * 60)
            with workflows.execution("sync"):
                pass  # ran at 10:30: the next is due at 11:30, missed after 11:35
            await clock.advance(64 * 60)  # 11:34
            assert workflows.problems() == []
            await clock.advance(2 * 60)  # 11:36: the watcher (every minute, on the clock) noticed
            [missed] = [e for e in events.drain() if e.type == "missed"]
            assert missed.data["expected_ns"] == START + 90 * MINUTE
            assert "missed a run" in missed.data["message"]
            await clock.advance(60 * 60)  # 12:36: a second slot (12:30) went by
            [again] = [e for e in events.drain() if e.type == "missed"]
            assert again.data["expected_ns"] == START + 150 * MINUTE and "missed 2 runs" in again.data["message"]
            with workflows.execution("sync"):
                pass
            await clock.advance(60)
            assert workflows.problems() == []
        finally:
            await workflows.stop()


async def test_a_cron_schedule_counts_from_when_the_watch_began():
    clock = VirtualClock(START)
    async with monitor_with(clock) as monitor:
        workflows = monitor.workflows
        workflows.expect("report", schedule="0 12 * * mon-fri", grace="10m")
        await workflows.start()
        try:
            assert await workflows.check_expectations(START + 129 * MINUTE) == []  # 12:09 Wednesday
            [event] = await workflows.check_expectations(START + 131 * MINUTE)
            assert event.type == "missed" and event.data["expected_ns"] == START + 120 * MINUTE
            assert "none started since the watch began" in event.data["message"]
            report = workflows.execution("report").start()
            assert await workflows.check_expectations(START + 132 * MINUTE) == []  # late, but it ran
            report.succeed()
            friday_noon = START + (2 * 24 * 60 + 120) * MINUTE
            assert await workflows.check_expectations(friday_noon + 9 * MINUTE) != []  # Thursday was missed
        finally:
            await workflows.stop()


def test_expectations_are_validated():
    with pytest.raises(ConfigError) as caught:
        make_monitor(config={"workflows": {"expect": [
            {"name": "a", "schedule": "0 25 * * *"},
            {"name": "b", "schedule": "every 1h", "grace": "-1s"},
            {"name": "c", "step_max_duration": {"load": "later"}},
        ]}})  # fmt: skip
    text = str(caught.value)
    assert "workflows.expect[0]: schedule: cron schedule '0 25 * * *': hour 25 is outside 0-23" in text
    assert "workflows.expect[1].grace: expected a duration" in text
    assert "workflows.expect[2].step_max_duration.load: expected a duration" in text

    with pytest.raises(ConfigError, match=r"workflows.expect\[1\].name: workflow 'a' already has an expectation"):
        make_monitor(config={"workflows": {"expect": [{"name": "a"}, {"name": "a"}]}})
    workflows = WorkflowMonitor(make_monitor())
    with pytest.raises(ConfigError, match=r"expectation for workflow 'x': .*expected a duration"):
        workflows.expect("x", max_duration="a while")
    with pytest.raises(ConfigError, match="schedule: cron schedule 'nope' must have 5 fields"):
        workflows.expect("x", schedule="nope")
