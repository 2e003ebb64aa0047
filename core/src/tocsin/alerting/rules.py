"""Alert rules: the checks a `[[alerting.rules]]` entry must pass beyond its types, and the compiled rule.

The config walker already checks types, literals (kind, aggregate, severity, nodata_state, ...) and the
names of operators and channels. `alerting_problems` adds what only makes sense per rule kind:

    kind      needs        may use                        value compared with `op` and `threshold`
    metric    metric       aggregate window match         the aggregate over the window, per `by` group
                           matchers by
    absent    metric       window match matchers          (fires when the metric has no data in the window)
    log       query/level  window                         how many logs match in the window
    health    component    window                         latest status in the window: 0 healthy,
                                                          1 degraded, 2 unhealthy (unknown/none: nodata)
    workflow  workflow     measure aggregate window       failure_rate (failed / finished), failures, or
                                                          the aggregate of run durations in seconds

plus operator/threshold shapes (`inside`/`outside` take `[low, high]`, comparisons a number), a severity
ladder whose severities differ, labels that are not reserved (`alertname` and `severity` are set by
tocsin), annotation templates that compile and render in the sandbox, and log queries that parse.

A `CompiledRule` is what the evaluator runs: the operator resolved from the registry, the matchers
parsed, and the severity ladder as `Step`s (the rule's own severity is the first step). Every step is its
own alert instance, labelled with its `severity`; a firing higher step inhibits the lower ones of the same
series, so receivers hear the escalation without hearing the lower level twice.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tocsin.alerting.silences import parse_matchers
from tocsin.alerting.state import Policy, ProblemState
from tocsin.alerting.templates import check_template
from tocsin.config.schema import AlertingConfig, RuleConfig
from tocsin.config.walker import Walker
from tocsin.errors import ConfigError, ConfigProblem, InstrumentError, QueryError
from tocsin.models import SEVERITIES, LabelMatcher, Severity
from tocsin.signals.naming import LABEL_NAME_RULE, check_label_name, check_metric_name
from tocsin.storage.logquery import parse as parse_log_query

KIND_KEYS: dict[str, frozenset[str]] = {
    "metric": frozenset({"metric", "aggregate", "match", "matchers", "by"}),
    "absent": frozenset({"metric", "match", "matchers"}),
    "log": frozenset({"query", "level"}),
    "health": frozenset({"component"}),
    "workflow": frozenset({"workflow", "measure", "aggregate"}),
}
"""The kind-specific keys each rule kind may set (`aggregate` is only checked where it has a default)."""
_KIND_SPECIFIC = ("metric", "query", "level", "component", "workflow", "measure", "match", "matchers", "by")
RANGE_OPERATORS = frozenset({"inside", "outside"})
NUMBER_OPERATORS = frozenset({"gt", "gte", "lt", "lte", "eq", "neq"})
RESERVED_LABELS = ("alertname", "severity")
CONDITION_LABEL = "tocsin_condition"
"""Label of a rule's nodata / error instance (value `nodata` or `error`), kept apart from its series alerts."""
HEALTH_VALUES: dict[str, float] = {"healthy": 0.0, "degraded": 1.0, "unhealthy": 2.0}
SEVERITY_RANK: dict[str, int] = {severity: rank for rank, severity in enumerate(SEVERITIES)}
MIN_INTERVAL_S = 1.0
MAX_REMEMBERED = 50_000
"""Most instance fingerprints a compiled rule remembers."""

Operator = Callable[[float, Any], bool]


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """The identity of one alert instance: a short hash of the rule name and its sorted labels."""
    text = "\x00".join([rule, *(f"{key}\x01{value}" for key, value in sorted(labels.items()))])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _threshold_problem(op: str, threshold: float | list[float]) -> str | None:
    if op in RANGE_OPERATORS:
        if not isinstance(threshold, list) or len(threshold) != 2:
            return f"operator {op!r} takes [low, high], got {threshold!r}"
        if not all(math.isfinite(bound) for bound in threshold) or threshold[0] > threshold[1]:
            return f"operator {op!r} needs finite bounds with low <= high, got {threshold!r}"
    elif op in NUMBER_OPERATORS:
        if isinstance(threshold, list):
            return f"operator {op!r} takes one number, got a list {threshold!r}"
        if not math.isfinite(threshold):
            return f"operator {op!r} needs a finite threshold, got {threshold!r}"
    return None


def _kind_problems(rule: RuleConfig, path: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    named = f"rule {rule.name!r}"
    allowed = KIND_KEYS[rule.kind]
    for key in _KIND_SPECIFIC:
        if getattr(rule, key) not in (None, [], {}) and key not in allowed:
            problems.append(ConfigProblem(f"{path}.{key}", f"{named}: {key!r} does not apply to a {rule.kind} rule"))
    needs = {"metric": "metric", "absent": "metric", "health": "component", "workflow": "workflow"}.get(rule.kind)
    if needs is not None and not getattr(rule, needs):
        problems.append(ConfigProblem(f"{path}.{needs}", f"{named}: a {rule.kind} rule needs {needs!r}"))
    if rule.kind == "log" and rule.query is None and rule.level is None:
        problems.append(ConfigProblem(f"{path}.query", f"{named}: a log rule needs 'query' or 'level'"))
    if rule.metric and rule.kind in ("metric", "absent"):
        try:
            check_metric_name(rule.metric)
        except InstrumentError as error:
            problems.append(ConfigProblem(f"{path}.metric", f"{named}: {error}"))
    if rule.kind == "log" and rule.query:
        try:
            parse_log_query(rule.query)
        except QueryError as error:
            problems.append(ConfigProblem(f"{path}.query", f"{named}: {error}"))
    if rule.kind == "workflow" and rule.measure == "duration" and rule.aggregate == "rate":
        problems.append(ConfigProblem(f"{path}.aggregate", f"{named}: 'rate' does not apply to run durations; "
                                                          "use avg, min, max, sum, count, last or a percentile"))
    return problems


def _label_problems(rule: RuleConfig, path: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    named = f"rule {rule.name!r}"
    for key in (*rule.by, *rule.match, *rule.labels):
        try:
            check_label_name(rule.name, key)
        except InstrumentError:
            where = "by" if key in rule.by else "match" if key in rule.match else "labels"
            problems.append(ConfigProblem(f"{path}.{where}", f"{named}: label name {key!r} must match "
                                                            f"{LABEL_NAME_RULE}"))
    for key, instead in zip(RESERVED_LABELS, ("name", "severity"), strict=True):
        if key in rule.labels:
            problems.append(ConfigProblem(f"{path}.labels.{key}",
                                          f"{named}: the {key!r} label is set by tocsin (use the rule's {instead})"))
    for j, text in enumerate(rule.matchers):
        try:
            parse_matchers(text)
        except QueryError as error:
            problems.append(ConfigProblem(f"{path}.matchers[{j}]", f"{named}: {error}"))
    return problems


def _ladder_problems(rule: RuleConfig, path: str) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    named = f"rule {rule.name!r}"
    if rule.kind != "absent":
        message = _threshold_problem(rule.op, rule.threshold)
        if message:
            problems.append(ConfigProblem(f"{path}.threshold", f"{named}: {message}"))
    elif rule.levels:
        problems.append(ConfigProblem(f"{path}.levels", f"{named}: an absent rule has no threshold to ladder"))
    seen = {rule.severity}
    for j, level in enumerate(rule.levels):
        if level.severity in seen:
            problems.append(ConfigProblem(f"{path}.levels[{j}].severity",
                                          f"{named}: severity {level.severity!r} appears twice in the ladder"))
        seen.add(level.severity)
        message = _threshold_problem(rule.op, level.threshold)
        if message:
            problems.append(ConfigProblem(f"{path}.levels[{j}].threshold", f"{named}: {message}"))
    return problems


def rule_problems(rule: RuleConfig, path: str) -> list[ConfigProblem]:
    """Everything wrong with one rule that its types cannot say (see the module docstring)."""
    problems = [*_kind_problems(rule, path), *_label_problems(rule, path), *_ladder_problems(rule, path)]
    if rule.window <= 0:
        problems.append(ConfigProblem(f"{path}.window", f"rule {rule.name!r}: the window must be longer than 0s"))
    for key, source in rule.annotations.items():
        message = check_template(source)
        if message:
            problems.append(ConfigProblem(f"{path}.annotations.{key}", f"rule {rule.name!r}: template error: "
                                                                      f"{message}"))
    return problems


def alerting_problems(alerting: AlertingConfig) -> list[ConfigProblem]:
    """Problems of the `[alerting]` section beyond its types; tocsin.assembly hands it to the config loader."""
    problems = []
    for key in ("evaluation_interval", "evaluation_timeout"):
        if getattr(alerting, key) < MIN_INTERVAL_S:
            problems.append(ConfigProblem(f"alerting.{key}", f"must be at least {MIN_INTERVAL_S:g}s"))
    for i, rule in enumerate(alerting.rules):
        problems.extend(rule_problems(rule, f"alerting.rules[{i}]"))
    return problems


def rule_from_spec(spec: RuleConfig | Mapping[str, Any], registries: Any, channels: set[str]) -> RuleConfig:
    """A rule given in Python (a RuleConfig or a dict with config keys), checked like one from a config file."""
    name = spec.name if isinstance(spec, RuleConfig) else spec.get("name", "?")
    path = f"rule {name!r}"
    walker = Walker(registries)
    rule = spec if isinstance(spec, RuleConfig) else walker.convert(dict(spec), RuleConfig, path)
    problems = list(walker.problems)
    if rule is not None:
        problems.extend(rule_problems(rule, path))
        if registries is not None and rule.op not in registries.operators:
            problems.append(ConfigProblem(f"{path}.op", f"unknown {registries.operators.kind} {rule.op!r}; "
                                                        f"{registries.operators.describe()}"))
        for level in [rule, *rule.levels]:
            for channel in level.channels:
                if channel not in channels:
                    known = ", ".join(sorted(channels)) or "none configured"
                    problems.append(ConfigProblem(f"{path}.channels", f"unknown channel {channel!r}; {known}"))
    if problems:
        raise ConfigError(problems)
    assert rule is not None
    return rule


@dataclass(frozen=True)
class Step:
    """One rung of a rule's severity ladder: its severity, threshold, timing and channels."""

    severity: Severity
    threshold: float | list[float]
    policy: Policy
    channels: tuple[str, ...]


class CompiledRule:
    """A checked rule ready to evaluate: operator resolved, matchers parsed, ladder built."""

    def __init__(self, config: RuleConfig, operator: Operator) -> None:
        self.config = config
        self.name = config.name
        self.kind = config.kind
        self.operator = operator
        self.matchers = [LabelMatcher(label=key, value=value) for key, value in config.match.items()]
        for text in config.matchers:
            self.matchers.extend(parse_matchers(text))
        base = Step(config.severity, config.threshold, self._policy(config.for_), tuple(config.channels))
        levels = [Step(level.severity, level.threshold,
                       self._policy(config.for_ if level.for_ is None else level.for_),
                       tuple(level.channels or config.channels)) for level in config.levels]
        self.steps = sorted([base, *levels], key=lambda step: SEVERITY_RANK[step.severity])
        self.base = base
        self.static_labels = {**config.labels, "alertname": config.name}
        self._instances: dict[tuple[tuple[tuple[str, str], ...], str], tuple[dict[str, str], str]] = {}

    def _policy(self, for_s: float, problem_state: ProblemState = "firing") -> Policy:
        config = self.config
        keep = config.keep_firing_for if problem_state == "firing" else 0.0
        return Policy(for_s=float(for_s), keep_firing_for_s=float(keep), cooldown_s=float(config.cooldown),
                      problem_state=problem_state)

    def condition_policy(self, condition: ProblemState) -> Policy:
        """The timing of the rule's nodata / error instance: the rule's `for`, no keep_firing_for."""
        return self._policy(self.config.for_, condition)

    def labels_for(self, series: Mapping[str, str], step: Step) -> dict[str, str]:
        """An instance's labels: the series' labels, the rule's labels, `alertname` and `severity`."""
        return {**series, **self.static_labels, "severity": step.severity}

    def instance(self, series: Mapping[str, str], step: Step) -> tuple[dict[str, str], str]:
        """An instance's labels and fingerprint (remembered per series and step: they never change)."""
        key = (tuple(series.items()), step.severity)
        found = self._instances.get(key)
        if found is None:
            if len(self._instances) >= MAX_REMEMBERED:  # series churn: start over rather than grow
                self._instances.clear()
            labels = self.labels_for(series, step)
            found = self._instances[key] = (labels, fingerprint(self.name, labels))
        return dict(found[0]), found[1]

    def condition_labels(self, condition: str) -> dict[str, str]:
        """The labels of the rule's nodata / error instance."""
        return {**self.static_labels, "severity": self.base.severity, CONDITION_LABEL: condition}

    def breaches(self, step: Step, value: float | None) -> bool:
        """Whether a value breaches a step (an absent rule breaches when there is no value)."""
        if self.kind == "absent":
            return value is None
        return value is not None and bool(self.operator(value, step.threshold))

    def step_for(self, severity: str) -> Step:
        """The ladder step of a severity (the base step for an unknown one)."""
        return next((step for step in self.steps if step.severity == severity), self.base)
