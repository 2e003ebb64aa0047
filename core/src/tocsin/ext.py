"""The plugin surface: everything a plugin (storage backend, channel, health check, HTTP surface) builds on.

Plugins import from two places only: `tocsin` (Monitor, hookimpl, the errors) and this module. Everything
else in the core may move between releases; these names stay. docs/plugin-hooks.md lists them by kind:

- data: the models every backend stores and every channel sends, and the storage protocol's queries;
- storage building blocks: query value checks, cursors, label matchers, rollup evaluation, the log query
  language, the sketch;
- channel building blocks: the channel base class, verdicts, rate limits, the egress guard, redaction,
  routing labels and the notification templates;
- health check building blocks: the check base class and its outcome;
- config value types: `Duration`, `Secret`, `Port`; the narrow `Runtime` a service or plugin is given;
- commands: `LazyCommand`, a command imported only when it runs.
"""

from __future__ import annotations

from tocsin.alerting.backtest import BacktestResult, WouldNotify
from tocsin.alerting.evaluator import RuleStatus
from tocsin.alerting.external import ExternalAlert
from tocsin.alerting.service import event_data as alert_event_data
from tocsin.alerting.silences import parse_matchers
from tocsin.config.schema import ApiKey, Port, ServerConfig
from tocsin.errors import (
    ConfigError,
    DeliveryError,
    DeliveryRefused,
    EgressDenied,
    QueryError,
    SchemaVersionError,
    StorageError,
    StorageUnavailable,
    TocsinError,
    UnstorableRecord,
)
from tocsin.events import Subscription
from tocsin.health.check import CheckOutcome, HealthCheck, outcome_of
from tocsin.health.state import worst_status
from tocsin.hookspecs import hookimpl
from tocsin.models import (
    LOG_LEVELS,
    SEVERITIES,
    Alert,
    AlertTransition,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Event,
    GroupMember,
    GroupState,
    HealthResult,
    HealthStatus,
    LabelMatcher,
    LogHit,
    LogLevel,
    LogRecord,
    MetricInfo,
    MetricKind,
    MetricRollup,
    Notification,
    NotifyGroup,
    RepeatMark,
    SeriesPoints,
    Severity,
    Silence,
    Sketch,
    Span,
    SpanEvent,
    SpanLink,
    WorkflowExecution,
    WorkflowStep,
)
from tocsin.notify.channel import NotificationChannel, RateLimit, Verdict, parse_retry_after, raise_for_status
from tocsin.notify.egress import EgressGuard
from tocsin.notify.redact import scrub, secrets_in
from tocsin.notify.routing import ChannelRoute, episode_key, routing_labels
from tocsin.notify.service import TestResult
from tocsin.notify.templates import (
    HTML,
    RenderContext,
    RenderError,
    Template,
    compile_template,
    context_for,
    current_render,
)
from tocsin.plugins import LazyCommand, PluginInfo, describe_plugins
from tocsin.runtime import Runtime
from tocsin.signals.sketch import LogSketch
from tocsin.storage.batches import WriteOutcome
from tocsin.storage.cursors import decode_cursor, encode_cursor
from tocsin.storage.logquery import AllOf, AnyOf, Node, Not, ParsedQuery, Term
from tocsin.storage.logquery import parse as parse_log_query
from tocsin.storage.matchers import LabelPredicate, compile_matchers
from tocsin.storage.protocol import (
    MAX_QUERY_LIMIT,
    RETENTION_SIGNALS,
    SPAN_GROUPINGS,
    AlertQuery,
    DeliveryQuery,
    ExecutionQuery,
    LogQuery,
    MetricQuery,
    Page,
    Retention,
    SpanQuery,
    StorageBackend,
    StorageStats,
    check_lease,
    check_limit,
    check_query_values,
    check_span_grouping,
)
from tocsin.storage.rollups import QUANTILES, check_query, evaluate
from tocsin.storage.tokens import token_spans, tokenize
from tocsin.values import Duration, Secret
from tocsin.workflows.stats import WorkflowStats

__all__ = [
    "HTML",
    "LOG_LEVELS",
    "MAX_QUERY_LIMIT",
    "QUANTILES",
    "RETENTION_SIGNALS",
    "SEVERITIES",
    "SPAN_GROUPINGS",
    "Alert",
    "AlertQuery",
    "AlertTransition",
    "AllOf",
    "AnyOf",
    "ApiKey",
    "BacktestResult",
    "ChannelRoute",
    "CheckOutcome",
    "ConfigError",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryError",
    "DeliveryQuery",
    "DeliveryRefused",
    "DeliveryState",
    "Duration",
    "EgressDenied",
    "EgressGuard",
    "Event",
    "ExecutionQuery",
    "ExternalAlert",
    "GroupMember",
    "GroupState",
    "HealthCheck",
    "HealthResult",
    "HealthStatus",
    "LabelMatcher",
    "LabelPredicate",
    "LazyCommand",
    "LogHit",
    "LogLevel",
    "LogQuery",
    "LogRecord",
    "LogSketch",
    "MetricInfo",
    "MetricKind",
    "MetricQuery",
    "MetricRollup",
    "Node",
    "Not",
    "Notification",
    "NotificationChannel",
    "NotifyGroup",
    "Page",
    "ParsedQuery",
    "PluginInfo",
    "Port",
    "QueryError",
    "RateLimit",
    "RenderContext",
    "RenderError",
    "RepeatMark",
    "Retention",
    "RuleStatus",
    "Runtime",
    "SchemaVersionError",
    "Secret",
    "SeriesPoints",
    "ServerConfig",
    "Severity",
    "Silence",
    "Sketch",
    "Span",
    "SpanEvent",
    "SpanLink",
    "SpanQuery",
    "StorageBackend",
    "StorageError",
    "StorageStats",
    "StorageUnavailable",
    "Subscription",
    "Template",
    "Term",
    "TestResult",
    "TocsinError",
    "UnstorableRecord",
    "Verdict",
    "WorkflowExecution",
    "WorkflowStats",
    "WorkflowStep",
    "WouldNotify",
    "WriteOutcome",
    "alert_event_data",
    "check_lease",
    "check_limit",
    "check_query",
    "check_query_values",
    "check_span_grouping",
    "compile_matchers",
    "compile_template",
    "context_for",
    "current_render",
    "decode_cursor",
    "describe_plugins",
    "encode_cursor",
    "episode_key",
    "evaluate",
    "hookimpl",
    "outcome_of",
    "parse_log_query",
    "parse_matchers",
    "parse_retry_after",
    "raise_for_status",
    "routing_labels",
    "scrub",
    "secrets_in",
    "token_spans",
    "tokenize",
    "worst_status",
]
