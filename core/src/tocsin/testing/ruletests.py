"""Rule unit tests in the style of `promtool test rules`: inputs over virtual time, expected alerts and notifications.

A test file is TOML. Rules come inline (`[[rules]]`, the keys of `[[alerting.rules]]`, with `[[channels]]`
if they name any) or from a config file (`config = "tocsin.toml"`, relative to the test file). Each
`[[tests]]` entry writes its inputs to a fresh in-memory store, then runs the real alerting service on a
virtual clock, evaluating at 0, `evaluation_interval`, 2 × `evaluation_interval`, ... up to the last time
the test mentions (or `duration`). Times are durations from the start: `"90s"`, `"5m"`.

    evaluation_interval = "1m"

    [[rules]]
    name = "latency-high"
    metric = "latency_seconds"
    aggregate = "last"
    threshold = 0.5
    for = "2m"

    [[tests]]
    name = "fires after two minutes above 0.5"
    interval = "1m"                              # spacing of series values (default: evaluation_interval)

    [[tests.series]]
    metric = "latency_seconds"
    kind = "gauge"                               # gauge | counter (cumulative values) | histogram (observations)
    labels = { route = "/checkout" }
    values = "0.1 0.9x4 0.1x3"                   # promtool notation: a+bxn = n+1 values a, a+b, ...; _ = none

    [[tests.alerts]]                             # every alert of the rule that is not inactive or resolved
    at = "3m"
    rule = "latency-high"
    expect = [{ labels = { route = "/checkout" }, state = "firing" }]

    [[tests.notifications]]                      # every notification of the rules named here, exactly
    at = "3m"
    rule = "latency-high"
    kind = "firing"
    labels = { route = "/checkout" }

Other inputs: `[[tests.logs]]` (at, message, level, service, count), `[[tests.health]]` (component,
statuses = "healthy unhealthyx3", one per interval), `[[tests.workflows]]` (name, at, status, duration,
count), `[[tests.silences]]` (matchers, start, end, until_resolved) and `[[tests.actions]]` (at, action =
acknowledge | resolve, rule, labels, severity, by, comment, until) which run just before the evaluation
at `at`.
Expected labels leave out `alertname` and `severity` (give `severity` on its own to check it); `state`
defaults to `firing`; `annotations` and `value`, when given, must match exactly. `[[tests.notifications]]`
lists every notification of the rules it names (`notifications = []`: no rule notifies at all). A failure prints what
was expected and what happened as a diff.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

from tocsin.alerting.rules import MIN_INTERVAL_S
from tocsin.alerting.service import AlertingService
from tocsin.alerting.silences import new_silence
from tocsin.alerting.state import QUIET_STATES, notification_kind
from tocsin.assembly import config_from_data, load_config
from tocsin.clock import VirtualClock
from tocsin.config.schema import Config, StorageConfig
from tocsin.config.walker import Walker
from tocsin.errors import ConfigError, ConfigProblem, QueryError, TocsinError
from tocsin.models import (
    Alert,
    Event,
    HealthResult,
    LogLevel,
    LogRecord,
    MetricRollup,
    Severity,
    Silence,
    WorkflowExecution,
)
from tocsin.plugins import PluginManager, build_registries, make_plugin_manager
from tocsin.signals.sketch import LogSketch
from tocsin.storage.protocol import AlertQuery, StorageBackend
from tocsin.values import Duration

IGNORED_LABELS = ("alertname", "severity")
HEALTH_WORDS = ("healthy", "degraded", "unhealthy", "unknown")


class Part(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of the test file's tables: strict about unknown keys."""


class SeriesInput(Part, kw_only=True):
    """A metric series: one value per interval from time 0."""

    metric: str
    kind: Literal["gauge", "counter", "histogram"] = "gauge"
    labels: dict[str, str] = {}
    values: str


class LogInput(Part, kw_only=True):
    """Log records written at one time."""

    at: Duration
    message: str
    level: LogLevel = "info"
    service: str = ""
    count: int = 1


class HealthInput(Part, kw_only=True):
    """A component's health results: one status per interval from time 0."""

    component: str
    statuses: str


class WorkflowInput(Part, kw_only=True):
    """Workflow runs that start at `at` and end `duration` later."""

    name: str
    at: Duration
    status: Literal["succeeded", "failed", "cancelled"] = "succeeded"
    duration: Duration = Duration(1)
    count: int = 1


class SilenceInput(Part, kw_only=True):
    """A silence from `start` to `end` (or until its alerts resolve)."""

    matchers: str
    start: Duration = Duration(0)
    end: Duration | None = None
    until_resolved: bool = False
    comment: str = ""


class ActionInput(Part, kw_only=True):
    """A person acknowledging or resolving an alert, just before the evaluation at `at`."""

    at: Duration
    action: Literal["acknowledge", "resolve"]
    rule: str
    labels: dict[str, str] = {}
    severity: Severity | None = None
    by: str = "rule-test"
    comment: str = ""
    until: Duration | None = None


class ExpectedAlert(Part, kw_only=True):
    """One alert expected at a time."""

    labels: dict[str, str] = {}
    state: str = "firing"
    severity: Severity | None = None
    annotations: dict[str, str] | None = None
    value: float | None = None


class AlertCheck(Part, kw_only=True):
    """The alerts of a rule expected at a time (every one not inactive or resolved)."""

    at: Duration
    rule: str
    expect: list[ExpectedAlert] = []


class ExpectedNotification(Part, kw_only=True):
    """A notification expected at a time."""

    at: Duration
    rule: str
    kind: Literal["firing", "resolved", "acknowledged"] = "firing"
    labels: dict[str, str] = {}
    severity: Severity | None = None


class RuleTest(Part, kw_only=True):
    """One test: inputs, actions and expectations."""

    name: str
    interval: Duration | None = None
    duration: Duration | None = None
    series: list[SeriesInput] = []
    logs: list[LogInput] = []
    health: list[HealthInput] = []
    workflows: list[WorkflowInput] = []
    silences: list[SilenceInput] = []
    actions: list[ActionInput] = []
    alerts: list[AlertCheck] = []
    notifications: list[ExpectedNotification] | None = None


class RuleTestFile(Part, kw_only=True):
    """A whole test file: where the rules come from, and the tests."""

    config: str | None = None
    evaluation_interval: Duration | None = None
    rules: list[dict[str, Any]] = []
    channels: list[dict[str, Any]] = []
    tests: list[RuleTest] = []


class TestOutcome(msgspec.Struct, kw_only=True):
    """The result of one test: its problems, each a readable block (none: it passed)."""

    file: str
    name: str
    problems: list[str] = []

    @property
    def passed(self) -> bool:
        """True when nothing differed."""
        return not self.problems


# -- values in promtool notation ---------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN"
_SERIES_TOKEN = re.compile(rf"(?P<a>{_NUMBER})(?:(?P<b>[-+](?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)?x(?P<n>\d+))?")
_MISSING_TOKEN = re.compile(r"(?:_|stale)(?:x(?P<n>\d+))?")
_WORD_TOKEN = re.compile(r"(?P<word>[a-z]+?)(?:x(?P<n>\d+))?")


def expand_values(text: str) -> list[float | None]:
    """promtool's expanding notation: `a+bxn` is n+1 values from a by b, `axn` n+1 times a, `_xn` n gaps."""
    values: list[float | None] = []
    for token in text.split():
        if missing := _MISSING_TOKEN.fullmatch(token):
            values += [None] * int(missing.group("n") or 1)
        elif number := _SERIES_TOKEN.fullmatch(token):
            start, step = float(number.group("a")), float(number.group("b") or 0)
            values += [start + i * step for i in range(int(number.group("n") or 0) + 1)]
        else:
            raise ConfigError(f"cannot read {token!r} in series values {text!r}: use numbers, a+bxn, axn or _xn")
    return values


def expand_words(text: str, allowed: tuple[str, ...]) -> list[str | None]:
    """The same notation over words (`healthy unhealthyx3`): `wxn` is n+1 times w, `_xn` n gaps."""
    words: list[str | None] = []
    for token in text.split():
        if missing := _MISSING_TOKEN.fullmatch(token):
            words += [None] * int(missing.group("n") or 1)
        elif (word := _WORD_TOKEN.fullmatch(token)) and word.group("word") in allowed:
            words += [word.group("word")] * (int(word.group("n") or 0) + 1)
        else:
            raise ConfigError(f"cannot read {token!r} in {text!r}: use {', '.join(allowed)}, wxn or _xn")
    return words


# -- loading -----------------------------------------------------------------------------------------------


def load_test_file(path: str | Path, registries: Any) -> tuple[RuleTestFile, Config]:
    """Read a test file and the config its rules make, or ConfigError naming every problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read rule test file: {error}", str(path)) from None
    walker = Walker(registries)
    spec = walker.convert(data, RuleTestFile, "")
    if walker.problems:
        raise ConfigError(walker.problems, str(path))
    assert spec is not None
    if spec.config is not None:
        if spec.rules or spec.channels:
            raise ConfigError([ConfigProblem("config", "give rules either inline or as a config file, not both")],
                              str(path))
        config = load_config(path.parent / spec.config, registries=registries, environ={})
    else:
        config = config_from_data({"alerting": {"rules": spec.rules}, "channels": spec.channels},
                                  registries=registries, environ={}, source=str(path))
    alerting = config.alerting
    if spec.evaluation_interval is not None:
        alerting = msgspec.structs.replace(alerting, evaluation_interval=spec.evaluation_interval)
    problems = _input_problems(spec, float(alerting.evaluation_interval))
    if problems:
        raise ConfigError(problems, str(path))
    config = msgspec.structs.replace(config, alerting=alerting, storage=StorageConfig(backend="memory"))
    return spec, config


def _input_problems(spec: RuleTestFile, interval_s: float) -> list[ConfigProblem]:
    """Inputs that cannot be written, found before anything runs, each with its path."""
    problems = []
    if interval_s < MIN_INTERVAL_S:
        problems.append(ConfigProblem("evaluation_interval", f"must be at least {MIN_INTERVAL_S:g}s"))
    for i, test in enumerate(spec.tests):
        where = f"tests[{i}]"
        if test.interval is not None and test.interval <= 0:
            problems.append(ConfigProblem(f"{where}.interval", "must be longer than 0s"))
        checks: list[tuple[str, Callable[[], object]]] = [
            (f"{where}.series[{j}].values", lambda text=series.values: expand_values(text))
            for j, series in enumerate(test.series)]
        checks += [(f"{where}.health[{j}].statuses", lambda text=item.statuses: expand_words(text, HEALTH_WORDS))
                   for j, item in enumerate(test.health)]
        checks += [(f"{where}.silences[{j}]", lambda item=item: _silence(item)) for j, item in enumerate(test.silences)]
        for path, check in checks:
            try:
                check()
            except (ConfigError, QueryError) as error:
                problems.append(ConfigProblem(path, " ".join(str(error).split())))
    return problems


def _silence(item: SilenceInput) -> Silence:
    start = round(item.start * S)
    return new_silence(item.matchers, created_by="rule-test", now_ns=start, starts_ns=start,
                       ends_ns=None if item.end is None else round(item.end * S), comment=item.comment,
                       until_resolved=item.until_resolved)


# -- inputs ------------------------------------------------------------------------------------------------

S = 1_000_000_000


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
        await storage.save_silence(_silence(silence))


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
    named = {check.rule for test in spec.tests for check in [*test.alerts, *test.actions]}
    unknown = named - {rule.name for rule in config.alerting.rules}
    if unknown:
        raise ConfigError(f"tests check rules that are not defined: {', '.join(sorted(unknown))}", str(path))
    return [await run_test(test, config, pm, str(path)) for test in spec.tests]


def run_file(path: str | Path, pm: PluginManager | None = None) -> list[TestOutcome]:
    """Run every test of a rule test file (synchronous wrapper for the CLI)."""
    return asyncio.run(arun_file(path, pm))


def render(outcome: TestOutcome) -> str:
    """`ok  file :: name`, or `FAIL` followed by each difference."""
    head = f"{'ok  ' if outcome.passed else 'FAIL'}  {outcome.file} :: {outcome.name}"
    return "\n".join([head, *("  " + block.replace("\n", "\n  ") for block in outcome.problems)])

