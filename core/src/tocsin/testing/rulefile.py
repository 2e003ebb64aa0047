"""The rule test file format of `tocsin rules test`, read into strict Structs and checked before anything runs, so
a mistake is reported with its path instead of surfacing mid-test.

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

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import msgspec

from tocsin.alerting.rules import MIN_INTERVAL_S
from tocsin.alerting.silences import new_silence
from tocsin.assembly import config_from_data, load_config
from tocsin.config.schema import Config, StorageConfig
from tocsin.config.walker import Walker
from tocsin.errors import ConfigError, ConfigProblem, QueryError
from tocsin.models import LogLevel, Severity, Silence
from tocsin.values import Duration

HEALTH_WORDS = ("healthy", "degraded", "unhealthy", "unknown")
S = 1_000_000_000
"""Nanoseconds per second: test files give times in seconds, storage keeps nanoseconds."""


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

    def to_silence(self) -> Silence:
        """The silence this input stands for, with its times from the start of the test."""
        start = round(self.start * S)
        return new_silence(self.matchers, created_by="rule-test", now_ns=start, starts_ns=start,
                           ends_ns=None if self.end is None else round(self.end * S), comment=self.comment,
                           until_resolved=self.until_resolved)


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
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read rule test file: {error}", str(path)) from None
    return parse_test_file(text, registries, source=str(path), base=path.parent)


def parse_test_file(text: str, registries: Any, *, source: str, base: Path | None = None
                    ) -> tuple[RuleTestFile, Config]:
    """A test file's text and the config its rules make; `config = "file"` is read relative to `base`, and
    refused without one (text from a request must not read the server's files)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"cannot read rule test file: {error}", source) from None
    walker = Walker(registries)
    spec = walker.convert(data, RuleTestFile, "")
    if walker.problems:
        raise ConfigError(walker.problems, source)
    assert spec is not None
    if spec.config is not None:
        if spec.rules or spec.channels:
            raise ConfigError([ConfigProblem("config", "give rules either inline or as a config file, not both")],
                              source)
        if base is None:
            raise ConfigError([ConfigProblem("config", "a config file cannot be named here; give the rules inline")],
                              source)
        config = load_config(base / spec.config, registries=registries, environ={})
    else:
        config = config_from_data({"alerting": {"rules": spec.rules}, "channels": spec.channels},
                                  registries=registries, environ={}, source=source)
    alerting = config.alerting
    if spec.evaluation_interval is not None:
        alerting = msgspec.structs.replace(alerting, evaluation_interval=spec.evaluation_interval)
    problems = _input_problems(spec, float(alerting.evaluation_interval))
    if problems:
        raise ConfigError(problems, source)
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
        checks += [(f"{where}.silences[{j}]", lambda item=item: item.to_silence())
                   for j, item in enumerate(test.silences)]
        for path, check in checks:
            try:
                check()
            except (ConfigError, QueryError) as error:
                problems.append(ConfigProblem(path, " ".join(str(error).split())))
    return problems
