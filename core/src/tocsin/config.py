"""tocsin's configuration: msgspec Structs for every section of tocsin.toml, and `load_config`.

Where the config comes from: an explicit path or dict, else the file named by `TOCSIN_CONFIG`, else
nothing at all — which is a working embedded setup (SQLite at ./tocsin.db when tocsin-sqlite is installed,
in-memory storage otherwise). Unknown keys, wrong types, bad durations, unset `${ENV}` variables and
names no plugin registered are all reported together, each with its path (and line, for TOML files).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from tocsin.config_source import interpolate, locate, read_file
from tocsin.errors import ConfigError, ConfigProblem
from tocsin.models import Aggregate, LogLevel, Severity
from tocsin.schedules import parse_schedule
from tocsin.validation import Walker
from tocsin.values import Duration, Secret

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Ratio = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


class Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every config section: keyword-only and strict about unknown keys."""


class ApiKey(Section, kw_only=True):
    """An API key for the HTTP API and what it may do."""

    name: str
    key: Secret
    scopes: list[Literal["read", "write", "admin"]] = msgspec.field(default_factory=lambda: ["read"])


class ServerConfig(Section, kw_only=True):
    """`[server]`: where `tocsin serve` listens and who may call it."""

    host: str = "127.0.0.1"
    port: Port = 8420
    api_keys: list[ApiKey] = []


class RetentionConfig(Section, kw_only=True):
    """`[storage.retention]`: how long each signal is kept (a duration, or 0 to keep forever)."""

    metrics: Duration = Duration(30 * 86400)
    traces: Duration = Duration(7 * 86400)
    logs: Duration = Duration(7 * 86400)
    alerts: Duration = Duration(90 * 86400)
    notifications: Duration = Duration(30 * 86400)
    health: Duration = Duration(30 * 86400)
    workflows: Duration = Duration(30 * 86400)
    sweep_interval: Duration = Duration(3600)


class StorageConfig(Section, kw_only=True):
    """`[storage]`: which backend keeps the data; every other key belongs to that backend's Config."""

    __tocsin_plugin__ = ("storage", "backend")

    backend: str = "memory"
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    options: Any = None


class MetricsConfig(Section, kw_only=True):
    """`[metrics]`: in-process aggregation of counters, gauges and histograms."""

    enabled: bool = True
    flush_interval: Duration = Duration(10)
    max_series_per_metric: Positive = 2000


class TracingConfig(Section, kw_only=True):
    """`[tracing]`: span sampling and buffering."""

    enabled: bool = True
    sampler: Literal["always_on", "always_off", "ratio", "parent_based"] = "parent_based"
    sample_rate: Ratio = 1.0
    buffer_size: Positive = 2048
    flush_interval: Duration = Duration(5)
    live_after: Duration = Duration(5)


class LoggingConfig(Section, kw_only=True):
    """`[logging]`: tocsin's structured log buffer, and whether stdlib `logging` is captured too."""

    level: LogLevel = "info"
    buffer_size: Positive = 10000
    batch_size: Positive = 512
    flush_interval: Duration = Duration(1)
    capture_stdlib: bool = False


class SeverityLevel(Section, kw_only=True):
    """One step of a rule's severity ladder: its own threshold, `for` and channels (unset: the rule's)."""

    severity: Severity
    threshold: float | list[float]
    for_: Duration | None = msgspec.field(name="for", default=None)
    channels: list[str] = []


class RuleConfig(Section, kw_only=True):
    """`[[alerting.rules]]`: one alert rule."""

    name: Name
    kind: Literal["metric", "log", "health", "workflow", "absent"] = "metric"
    metric: str | None = None
    query: str | None = None
    level: LogLevel | None = None
    component: str | None = None
    workflow: str | None = None
    aggregate: Aggregate = "avg"
    window: Duration = Duration(300)
    match: dict[str, str] = {}
    by: list[str] = []
    op: str = "gt"
    threshold: float | list[float] = 0.0
    for_: Duration = msgspec.field(name="for", default=Duration(0))
    keep_firing_for: Duration = Duration(0)
    cooldown: Duration = Duration(4 * 3600)
    severity: Severity = "warning"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    channels: list[str] = []
    levels: list[SeverityLevel] = []
    matchers: list[str] = []
    measure: Literal["failure_rate", "failures", "duration"] | None = None
    nodata_state: Literal["normal", "alerting", "nodata", "keep_last"] = "normal"
    error_state: Literal["error", "alerting", "normal", "keep_last"] = "error"
    flap_threshold: Annotated[int, msgspec.Meta(ge=0)] = 6
    flap_window: Duration = Duration(3600)


class AlertingConfig(Section, kw_only=True):
    """`[alerting]`: how often rules run, how long one may take, restart tolerances, and the rules."""

    evaluation_interval: Duration = Duration(60)
    evaluation_timeout: Duration = Duration(30)
    for_outage_tolerance: Duration = Duration(3600)
    for_grace_period: Duration = Duration(600)
    rules: list[RuleConfig] = []


class CheckConfig(Section, kw_only=True):
    """`[[health.checks]]`: one component's check; keys other than these belong to the check type's Config."""

    __tocsin_plugin__ = ("checks", "type")

    name: Name
    type: str
    interval: Duration | None = None
    timeout: Duration = Duration(10)
    failures_before_unhealthy: Positive = 1
    successes_before_healthy: Positive = 1
    critical: bool = True
    depends_on: list[str] = []
    options: Any = None


class HealthConfig(Section, kw_only=True):
    """`[health]`: default check interval and the checks."""

    interval: Duration = Duration(30)
    checks: list[CheckConfig] = []


class ExpectationConfig(Section, kw_only=True):
    """`[[workflows.expect]]`: how long a workflow may run and when it should run; breaking either raises an event."""

    name: str
    max_duration: Duration | None = None
    step_max_duration: dict[str, Duration] = {}
    schedule: str | None = None
    timezone: str = "UTC"
    grace: Duration = Duration(300)

    def __post_init__(self) -> None:
        if self.schedule is not None:
            try:
                parse_schedule(self.schedule, self.timezone)
            except ConfigError as error:
                raise ValueError(f"schedule: {error}") from None


class WorkflowsConfig(Section, kw_only=True):
    """`[workflows]`: how executions are written and how often expectations are checked."""

    buffer_size: Positive = 10000
    flush_interval: Duration = Duration(1)
    check_interval: Duration = Duration(30)
    expect: list[ExpectationConfig] = []


class ChannelConfig(Section, kw_only=True):
    """`[[channels]]`: one notification channel; keys other than these belong to the channel type's Config."""

    __tocsin_plugin__ = ("channels", "type")

    name: Name
    type: str
    min_severity: Severity = "info"
    match: dict[str, str] = {}
    send_resolved: bool = True
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    fallback: str | None = None
    title_template: str | None = None
    body_template: str | None = None
    options: Any = None

    def __post_init__(self) -> None:
        _check_templates(title_template=self.title_template, body_template=self.body_template)


def _check_templates(**templates: str | None) -> None:
    """Compile notification templates when the config loads; a bad one is a ValueError naming its key."""
    for key, source in templates.items():
        if source is not None:
            from tocsin.notify_templates import compile_template  # jinja2 only when templates are configured

            compile_template(source, what=key)


class RuleTemplates(Section, kw_only=True):
    """`[notifications.rule_templates.<rule>]`: the title and body templates for one rule's notifications."""

    title: str | None = None
    body: str | None = None

    def __post_init__(self) -> None:
        _check_templates(title=self.title, body=self.body)


class EgressConfig(Section, kw_only=True):
    """`[notifications.egress]`: which addresses HTTP channels may reach (public ones only, by default)."""

    allow: list[str] = []
    allow_private: bool = False
    max_response_bytes: Positive = 64 * 1024


class NotificationsConfig(Section, kw_only=True):
    """`[notifications]`: retries, timeouts, grouping, the outbox bound and egress, for every channel."""

    timeout: Duration = Duration(10)
    max_attempts: Positive = 10
    retry_initial: Duration = Duration(1)
    retry_max: Duration = Duration(60)
    retry_for: Duration = Duration(600)
    max_retry_after: Duration = Duration(60)
    group_by: list[str] = msgspec.field(default_factory=lambda: ["alertname"])
    group_wait: Duration = Duration(30)
    group_interval: Duration = Duration(300)
    repeat_interval: Duration = Duration(4 * 3600)
    max_pending: Positive = 10_000
    lease: Duration = Duration(60)
    poll_interval: Duration = Duration(1)
    fallback: str | None = None
    rule_templates: dict[str, RuleTemplates] = {}
    egress: EgressConfig = msgspec.field(default_factory=EgressConfig)


class Config(Section, kw_only=True):
    """The whole configuration; every section has working defaults."""

    service: str = "app"
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    tracing: TracingConfig = msgspec.field(default_factory=TracingConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    alerting: AlertingConfig = msgspec.field(default_factory=AlertingConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)
    workflows: WorkflowsConfig = msgspec.field(default_factory=WorkflowsConfig)
    channels: list[ChannelConfig] = []
    notifications: NotificationsConfig = msgspec.field(default_factory=NotificationsConfig)
    plugins: dict[str, Any] = {}


def _default_backend(registries: Any) -> str:
    """SQLite when tocsin-sqlite is installed (the embedded default), else in-memory storage."""
    return "sqlite" if registries is not None and "sqlite" in registries.storage else "memory"


def _check_references(config: Config, registries: Any) -> list[ConfigProblem]:
    """Cross-section checks: unique names, and every name a rule or check refers to exists."""
    problems: list[ConfigProblem] = []

    def unique(items: list[Any], path: str) -> set[str]:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.name in seen:
                problems.append(ConfigProblem(f"{path}[{i}].name", f"duplicate name {item.name!r}"))
            seen.add(item.name)
        return seen

    channels = unique(config.channels, "channels")
    checks = unique(config.health.checks, "health.checks")
    unique(config.alerting.rules, "alerting.rules")
    known_channels = ", ".join(sorted(channels)) or "none configured"
    for i, rule in enumerate(config.alerting.rules):
        path = f"alerting.rules[{i}]"
        if registries is not None and rule.op not in registries.operators:
            problems.append(ConfigProblem(f"{path}.op", f"unknown {registries.operators.kind} {rule.op!r}; "
                                                        f"{registries.operators.describe()}"))
        ladders = [(f"{path}.channels", rule.channels)]
        ladders += [(f"{path}.levels[{j}].channels", level.channels) for j, level in enumerate(rule.levels)]
        for where, names in ladders:
            for j, name in enumerate(names):
                if name not in channels:
                    problems.append(ConfigProblem(f"{where}[{j}]", f"unknown channel {name!r}; {known_channels}"))
    from tocsin.alert_rules import alerting_problems  # imported here: alert_rules imports this module

    problems.extend(alerting_problems(config.alerting))
    from tocsin.routing import notification_problems  # imported here: routing imports this module

    problems.extend(notification_problems(config))
    for i, check in enumerate(config.health.checks):
        for j, name in enumerate(check.depends_on):
            if name not in checks:
                problems.append(ConfigProblem(f"health.checks[{i}].depends_on[{j}]", f"unknown component {name!r}"))
    for section in config.plugins:
        if registries is not None and section not in registries.config:
            problems.append(ConfigProblem(f"plugins.{section}", f"unknown plugin section; "
                                                               f"{registries.config.describe()}"))
    return problems


def _plugin_sections(data: dict[str, Any], walker: Walker, registries: Any) -> None:
    """Validate each `[plugins.<section>]` against the Struct its plugin registered."""
    sections = data.get("plugins")
    if registries is None or not isinstance(sections, dict):
        return
    for name, value in sections.items():
        if name in registries.config:
            sections[name] = walker.convert(value, registries.config.get(name), f"plugins.{name}")


def config_from_data(
    data: Mapping[str, Any],
    *,
    registries: Any = None,
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
    text: str | None = None,
) -> Config:
    """Validate plain data into a Config, or raise ConfigError listing every problem."""
    resolved, problems = interpolate(dict(data), environ)
    storage = resolved.get("storage")
    if storage is None or isinstance(storage, dict):
        resolved["storage"] = {"backend": _default_backend(registries), **(storage or {})}
    walker = Walker(registries)
    walker.problems.extend(problems)
    _plugin_sections(resolved, walker, registries)
    config = walker.convert(resolved, Config, "")
    if config is not None:
        walker.problems.extend(_check_references(config, registries))
    if walker.problems:
        problems = locate(walker.problems, text)
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.path)), source)
    return config


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    registries: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load and validate a config from a path, a dict, `TOCSIN_CONFIG`, or defaults (in that order).

    `registries` (from `tocsin.plugins.build_registries`) lets plugin-owned keys and names be checked;
    without it they are kept as plain data.
    """
    env = os.environ if environ is None else environ
    if source is None and env.get("TOCSIN_CONFIG"):
        source = env["TOCSIN_CONFIG"]
    if source is None:
        return config_from_data({}, registries=registries, environ=env)
    if isinstance(source, Mapping):
        return config_from_data(source, registries=registries, environ=env)
    path = Path(source)
    data, text = read_file(path)
    is_toml = path.suffix.lower() != ".json"
    return config_from_data(data, registries=registries, environ=env, source=str(source),
                            text=text if is_toml else None)
