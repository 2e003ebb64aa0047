"""Rule unit tests in the style of `promtool test rules`: run each test of a rule test file on a virtual clock and
report every difference between the expected and the actual alerts and notifications.

Each `[[tests]]` entry (the format is described in `tocsin.testing.rulefile`) writes its inputs to a fresh
in-memory store, then runs the real alerting service on a virtual clock, evaluating at 0,
`evaluation_interval`, 2 × `evaluation_interval`, ... up to the last time the test mentions (or `duration`).
A failure prints what was expected and what happened as a diff.
"""

from __future__ import annotations

import asyncio
import difflib
from pathlib import Path

import msgspec

from tocsin.alerting.service import AlertingService
from tocsin.alerting.state import QUIET_STATES, notification_kind
from tocsin.clock import VirtualClock
from tocsin.config.schema import Config
from tocsin.errors import ConfigError, TocsinError
from tocsin.models import Alert, Event, HealthResult, LogRecord, MetricRollup, WorkflowExecution
from tocsin.plugins import PluginManager, build_registries, make_plugin_manager
from tocsin.signals.sketch import LogSketch
from tocsin.storage.protocol import AlertQuery, StorageBackend
from tocsin.testing.rulefile import (
    HEALTH_WORDS,
    ActionInput,
    AlertCheck,
    ExpectedAlert,
    ExpectedNotification,
    RuleTest,
    RuleTestFile,
    S,
    SeriesInput,
    expand_values,
    expand_words,
    load_test_file,
    parse_test_file,
)

IGNORED_LABELS = ("alertname", "severity")


class TestOutcome(msgspec.Struct, kw_only=True):
    """The result of one test: its problems, each a readable block (none: it passed)."""

    file: str
    name: str
    problems: list[str] = []

    @property
    def passed(self) -> bool:
        """True when nothing differed."""
        return not self.problems


# -- inputs ------------------------------------------------------------------------------------------------


def _rollups(series: SeriesInput, interval_s: float) -> list[MetricRollup]:
    rollups = []
    previous: float | None = None
    for i, value in enumerate(expand_values(series.values)):
        if value is None:
            continue
        start = round(i * interval_s * S)
        common = {"name": series.metric, "kind": series.kind, "labels": series.labels, "start_ns": start,
                  "interval_s": interval_s, "count": 1}
        if series.kind == "counter":
            increase = 0.0 if previous is None else value - previous if value >= previous else value
            previous = value
            rollups.append(MetricRollup(**common, sum=increase, min=increase, max=increase, last=value))
        else:
            sketch = None
            if series.kind == "histogram":
                observed = LogSketch()
                observed.add(value)
                sketch = observed.to_model()
            rollups.append(MetricRollup(**common, sum=value, min=value, max=value, last=value, sketch=sketch))
    return rollups


async def _write_inputs(storage: StorageBackend, test: RuleTest, interval_s: float) -> None:
    await storage.write_metrics([rollup for series in test.series for rollup in _rollups(series, interval_s)])
    await storage.write_logs([
        LogRecord(time_ns=round(log.at * S), level=log.level, message=log.message, service=log.service)
        for log in test.logs for _ in range(log.count)
    ])
    await storage.write_health([
        HealthResult(component=item.component, status=status, time_ns=round(i * interval_s * S))  # type: ignore[arg-type]
        for item in test.health
        for i, status in enumerate(expand_words(item.statuses, HEALTH_WORDS))
        if status is not None
    ])
    number = 0
    for run in test.workflows:
        for _ in range(run.count):
            number += 1
            start = round(run.at * S)
            await storage.save_execution(WorkflowExecution(id=f"run-{number}", name=run.name, status=run.status,
                                                           started_ns=start, ended_ns=start + round(run.duration * S)))
    for silence in test.silences:
        await storage.save_silence(silence.to_silence())


# -- comparing ---------------------------------------------------------------------------------------------


def _labels(labels: dict[str, str]) -> str:
    shown = {key: value for key, value in sorted(labels.items()) if key not in IGNORED_LABELS}
    return "{" + ", ".join(f'{key}="{value}"' for key, value in shown.items()) + "}"


def _at(time_ns: int) -> str:
    """A time as the test file would write it (a duration from the start)."""
    for size, unit in ((3600 * S, "h"), (60 * S, "m"), (S, "s"), (1_000_000, "ms")):
        if time_ns % size == 0 and (time_ns or unit == "s"):
            return f"{time_ns // size}{unit}"
    return f"{time_ns / S:g}s"


def _alert_line(alert: Alert | ExpectedAlert, shape: ExpectedAlert | None) -> str:
    line = f"{_labels(alert.labels)} {alert.state}"
    if shape is not None and shape.severity is not None:
        line += f" severity={alert.severity}"
    if shape is not None and shape.value is not None:
        line += f" value={alert.value:g}" if alert.value is not None else " value=none"
    if shape is not None and shape.annotations is not None:
        line += f" annotations={dict(sorted((alert.annotations or {}).items()))}"
    return line


def _diff(title: str, expected: list[str], got: list[str]) -> str | None:
    if expected == got:
        return None
    lines = difflib.unified_diff(expected, got, fromfile="expected", tofile="got", lineterm="", n=max(len(expected),
                                                                                                     len(got)))
    return "\n".join([title, *("    " + line for line in list(lines)[2:] if not line.startswith("@@"))])


def _check_alerts(check: AlertCheck, alerts: list[Alert]) -> str | None:
    shapes = {_labels(expected.labels): expected for expected in check.expect}
    expected_lines = sorted(_alert_line(expected, expected) for expected in check.expect)
    got_lines = sorted(_alert_line(alert, shapes.get(_labels(alert.labels))) for alert in alerts)
    return _diff(f"alerts of rule {check.rule!r} at {_at(round(check.at * S))}:", expected_lines, got_lines)


class Sent(msgspec.Struct, kw_only=True):
    """A notification the service decided on (read from its `alerts` events)."""

    time_ns: int
    rule: str
    kind: str
    labels: dict[str, str]
    severity: str


def _notification_line(time_ns: int, rule: str, kind: str, labels: dict[str, str], severity: str | None) -> str:
    return f"{_at(time_ns)} {kind} {rule} {_labels(labels)}" + (f" severity={severity}" if severity else "")


def _check_notifications(expected: list[ExpectedNotification], sent: list[Sent]) -> str | None:
    with_severity = any(item.severity is not None for item in expected)
    expected_lines = sorted((round(item.at * S), _notification_line(round(item.at * S), item.rule, item.kind,
                                                                      item.labels, item.severity))
                            for item in expected)
    got_lines = sorted((item.time_ns, _notification_line(item.time_ns, item.rule, item.kind, item.labels,
                                                         item.severity if with_severity else None))
                       for item in sent)
    return _diff("notifications:", [line for _, line in expected_lines], [line for _, line in got_lines])


# -- running -----------------------------------------------------------------------------------------------


async def _act(service: AlertingService, action: ActionInput, now_ns: int) -> None:
    storage = service.monitor.storage
    assert storage is not None
    page = await storage.list_alerts(AlertQuery(rule=action.rule, limit=10_000))
    wanted = _labels(action.labels)
    targets = [alert for alert in page.items if _labels(alert.labels) == wanted and alert.state not in QUIET_STATES
               and action.severity in (None, alert.severity)]
    if len(targets) != 1:
        severity = "" if action.severity is None else f" and severity {action.severity}"
        raise TocsinError(f"{action.action} at {_at(now_ns)}: {len(targets)} active alerts of rule "
                          f"{action.rule!r} have labels {wanted}{severity}; need exactly one")
    if action.action == "acknowledge":
        until = None if action.until is None else round(action.until * S)
        await service.acknowledge(targets[0].fingerprint, action.by, action.comment, until)
    else:
        await service.resolve(targets[0].fingerprint, action.by, action.comment)


def _sent(events: list[Event]) -> list[Sent]:
    return [Sent(time_ns=event.time_ns, rule=event.data["rule"], kind=notification_kind(event.data["to_state"]),
                 labels=event.data["labels"], severity=event.data["severity"])
            for event in events if event.data.get("notified")]


async def run_test(test: RuleTest, config: Config, pm: PluginManager, file: str = "") -> TestOutcome:
    """Run one test on a fresh in-memory monitor with a virtual clock."""
    from tocsin.monitor import Monitor

    clock = VirtualClock(0)
    monitor = Monitor(config, pm=pm, registries=build_registries(pm), clock=clock)
    interval = float(config.alerting.evaluation_interval)
    step_s = float(test.interval or interval)
    outcome = TestOutcome(file=file, name=test.name)
    times = [check.at for check in test.alerts] + [item.at for item in test.notifications or []]
    times += [action.at for action in test.actions] + ([test.duration] if test.duration is not None else [])
    end_ns = round(max(times, default=0.0) * S)
    sent: list[Sent] = []
    async with monitor:
        service = AlertingService(monitor)
        events = monitor.events.subscribe(["alerts"], maxsize=1_000_000)
        storage = monitor.storage
        assert storage is not None
        await _write_inputs(storage, test, step_s)
        actions = sorted(test.actions, key=lambda action: action.at)
        checks = sorted(test.alerts, key=lambda check: check.at)
        interval_ns = round(interval * S)
        for now in range(0, end_ns + 1, interval_ns):
            clock.set(now)
            while actions and round(actions[0].at * S) <= now:
                try:
                    await _act(service, actions.pop(0), now)
                except TocsinError as error:
                    outcome.problems.append(str(error))
            await service.evaluate(now)
            sent += _sent(events.drain())
            while checks and round(checks[0].at * S) < now + interval_ns:
                check = checks.pop(0)
                page = await storage.list_alerts(AlertQuery(rule=check.rule, limit=10_000))
                problem = _check_alerts(check, [alert for alert in page.items if alert.state not in QUIET_STATES])
                if problem:
                    outcome.problems.append(problem)
        events.close()
    if test.notifications is not None:
        checked = {item.rule for item in test.notifications}
        problem = _check_notifications(test.notifications, [item for item in sent
                                                            if not checked or item.rule in checked])
        if problem:
            outcome.problems.append(problem)
    return outcome


async def arun_file(path: str | Path, pm: PluginManager | None = None) -> list[TestOutcome]:
    """Run every test of a rule test file."""
    pm = pm or make_plugin_manager()
    spec, config = load_test_file(path, build_registries(pm))
    return await _run_all(spec, config, pm, str(path))


async def arun_text(text: str, pm: PluginManager, source: str = "<request>") -> list[TestOutcome]:
    """Run every test of a rule test file given as text (an API request's body); it may not name a config
    file, so it cannot read the server's files."""
    spec, config = parse_test_file(text, build_registries(pm), source=source)
    return await _run_all(spec, config, pm, source)


async def _run_all(spec: RuleTestFile, config: Config, pm: PluginManager, source: str) -> list[TestOutcome]:
    named = {check.rule for test in spec.tests for check in [*test.alerts, *test.actions]}
    unknown = named - {rule.name for rule in config.alerting.rules}
    if unknown:
        raise ConfigError(f"tests check rules that are not defined: {', '.join(sorted(unknown))}", source)
    return [await run_test(test, config, pm, source) for test in spec.tests]


def run_file(path: str | Path, pm: PluginManager | None = None) -> list[TestOutcome]:
    """Run every test of a rule test file (synchronous wrapper for the CLI)."""
    return asyncio.run(arun_file(path, pm))


def render(outcome: TestOutcome) -> str:
    """`ok  file :: name`, or `FAIL` followed by each difference."""
    head = f"{'ok  ' if outcome.passed else 'FAIL'}  {outcome.file} :: {outcome.name}"
    return "\n".join([head, *("  " + block.replace("\n", "\n  ") for block in outcome.problems)])

