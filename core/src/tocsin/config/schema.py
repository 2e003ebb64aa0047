"""tocsin's configuration as msgspec Structs, one per section of tocsin.toml, each with working defaults.

Loading and checking them is `tocsin.config.load`; checks that need another wing (rule expressions,
routing, templates) are added by `tocsin.assembly`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from tocsin.config.schedules import parse_schedule
from tocsin.errors import ConfigError
from tocsin.models import Aggregate, LogLevel, Severity
from tocsin.values import BufferSize, Duration, Secret

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Ratio = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Overflow = Literal["drop", "block"]
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
    max_body_bytes: Positive = 10 * 1024 * 1024
    rate_limit: Annotated[int, msgspec.Meta(ge=0)] = 12_000
    cors_origins: list[str] = []
    ws_snapshot_interval: Duration = Duration(5)
    ws_queue: Positive = 1000


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
    leader_lease: Duration = Duration(15)
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
    buffer_size: BufferSize = BufferSize("64MiB")
    overflow: Overflow = "drop"
    flush_interval: Duration = Duration(5)
    live_after: Duration = Duration(5)


class LoggingConfig(Section, kw_only=True):
    """`[logging]`: tocsin's structured log buffer, and whether stdlib `logging` is captured too."""

    level: LogLevel = "info"
    buffer_size: BufferSize = BufferSize("64MiB")
    overflow: Overflow = "drop"
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
    streaming: bool = True
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

    buffer_size: BufferSize = BufferSize("32MiB")
    overflow: Overflow = "drop"
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


class RuleTemplates(Section, kw_only=True):
    """`[notifications.rule_templates.<rule>]`: the title and body templates for one rule's notifications."""

    title: str | None = None
    body: str | None = None


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

