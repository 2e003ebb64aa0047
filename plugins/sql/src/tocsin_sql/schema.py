"""The tables every SQL backend keeps, as SQLAlchemy Core metadata (the current schema version).

Layout choices, shared by every dialect:

* Times are integer nanoseconds (`*_ns`), durations float seconds, as in `tocsin.models`.
* Trace ids are 16-byte and span ids 8-byte BLOBs (`tocsin_sql.ids`); label sets and other string maps are
  canonical JSON text; free-form values (attributes, payloads, params, details) are msgpack BLOBs, which
  round-trip exactly what the memory backend keeps.
* `logs.id` is a time key (`tocsin_sql.logkeys`): ordering by id is ordering by time, and a time range is an
  id range. A dialect adds its full-text index over `logs.message` (and `logs.level`) next to this table.
* `metric_series.id` is a hash of the metric name and label set, so writers never look a series up.
  `metric_tiers` holds per-minute and per-hour merges of `metric_rollups` (`tocsin_sql.tiers`).
* `leases` holds the named leases processes sharing a store take turns on (`tocsin_sql.leases`).
* `notify_groups`, `notify_members` and `notify_marks` hold the notification router's grouping state (group
  timers, their firing alerts, repeat marks; `tocsin_sql.groups`), so a restart continues each group.

`SCHEMA_VERSION` is the version this metadata describes; `tocsin_sql.migrations` upgrades older files to it.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 5
"""1: the first release. 2: metric_tiers (per-minute and per-hour merges of every series), backfilled.
3: leases (which process leads: runs the evaluator, dispatcher, health checks and sweeps).
4: notify_groups, notify_members, notify_marks (notification grouping state that survives a restart)."""

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""A 64-bit integer primary key; spelled INTEGER on SQLite so that it is the rowid itself."""

metadata = sa.MetaData()


def _ns(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.BigInteger, nullable=nullable)


def _text(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Text, nullable=nullable)


def _blob(name: str, *, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.LargeBinary, nullable=nullable)


schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    _ns("applied_ns"),
    _text("description"),
)

meta = sa.Table(
    "tocsin_meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
"""Small integer settings the store keeps about itself (see the META_* names)."""

META_LOG_SPILL = "log_id_spill"
"""How many time buckets past its own a log id has ever had to move (0 unless a bucket overflowed)."""
META_TIER_FLOOR = "metric_tier_floor_ns"
"""Tier rows start at or after this time; older ranges are read from the rollups (set by retention sweeps)."""

# -- metrics ----------------------------------------------------------------------------------------------

metric_series = sa.Table(
    "metric_series",
    metadata,
    sa.Column("id", RowId, primary_key=True, autoincrement=False),
    _text("name"),
    _text("kind"),
    _text("labels"),
    sa.Index("ix_metric_series_name", "name"),
)

def _rollup_values() -> list[sa.Column]:
    return [
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("sum", sa.Float, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
        sa.Column("last", sa.Float, nullable=False),
        _blob("sketch"),
    ]


metric_rollups = sa.Table(
    "metric_rollups",
    metadata,
    sa.Column("series_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("start_ns", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("interval_s", sa.Float, nullable=False),
    *_rollup_values(),
    sqlite_with_rowid=False,
)

metric_tiers = sa.Table(
    "metric_tiers",
    metadata,
    sa.Column("series_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("width_s", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("start_ns", sa.BigInteger, primary_key=True, autoincrement=False),
    _ns("last_start_ns"),
    *_rollup_values(),
    sqlite_with_rowid=False,
)

# -- traces -----------------------------------------------------------------------------------------------

spans = sa.Table(
    "spans",
    metadata,
    sa.Column("id", RowId, primary_key=True),
    _blob("span_id", nullable=False),
    _blob("trace_id", nullable=False),
    _blob("parent_id"),
    _text("name"),
    _text("service"),
    _text("kind"),
    _ns("start_ns"),
    _ns("end_ns", nullable=True),
    _text("status"),
    _text("status_message"),
    _blob("attributes"),
    _blob("events"),
    _blob("links"),
    sa.Index("ux_spans_span_id", "span_id", unique=True),
    sa.Index("ix_spans_trace", "trace_id"),
    sa.Index("ix_spans_start", "start_ns", "span_id"),
    sa.Index("ix_spans_service_start", "service", "start_ns", "span_id"),
)

# -- logs -------------------------------------------------------------------------------------------------

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("id", RowId, primary_key=True, autoincrement=False),
    _ns("time_ns"),
    sa.Column("level", sa.SmallInteger, nullable=False),
    _text("service"),
    _text("logger"),
    _blob("trace_id"),
    _blob("span_id"),
    _text("execution_id", nullable=True),
    _text("step", nullable=True),
    _text("message"),
    _blob("attributes"),
)
sa.Index(
    "ix_logs_trace",
    logs.c.trace_id,
    sqlite_where=logs.c.trace_id.is_not(None),
    postgresql_where=logs.c.trace_id.is_not(None),
)
sa.Index(
    "ix_logs_execution",
    logs.c.execution_id,
    sqlite_where=logs.c.execution_id.is_not(None),
    postgresql_where=logs.c.execution_id.is_not(None),
)

# -- health -----------------------------------------------------------------------------------------------

health = sa.Table(
    "health",
    metadata,
    sa.Column("id", RowId, primary_key=True),
    _text("component"),
    _text("status"),
    _ns("time_ns"),
    sa.Column("latency_s", sa.Float, nullable=False),
    _text("message"),
    sa.Column("observed", sa.Float, nullable=True),
    _blob("details"),
    sa.Index("ix_health_component_time", "component", "time_ns"),
    sa.Index("ix_health_time", "time_ns"),
)

# -- alerts and silences ----------------------------------------------------------------------------------

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("fingerprint", sa.Text, primary_key=True),
    _text("rule"),
    _text("labels"),
    _text("annotations"),
    _text("severity"),
    _text("state"),
    _text("handling"),
    sa.Column("value", sa.Float, nullable=True),
    _text("state_reason"),
    _ns("active_at_ns", nullable=True),
    _ns("fired_at_ns", nullable=True),
    _ns("resolved_at_ns", nullable=True),
    _ns("keep_firing_since_ns", nullable=True),
    _ns("last_eval_ns", nullable=True),
    _ns("last_notified_ns", nullable=True),
    sa.Column("episode", sa.Integer, nullable=False),
    _text("acknowledged_by", nullable=True),
    _text("ack_comment", nullable=True),
    _ns("ack_until_ns", nullable=True),
    _text("silenced_by"),
    _text("inhibited_by"),
    sa.Column("flapping", sa.Boolean, nullable=False),
    _ns("updated_ns"),
    sa.Index("ix_alerts_updated", "updated_ns", "fingerprint"),
)

alert_transitions = sa.Table(
    "alert_transitions",
    metadata,
    sa.Column("id", RowId, primary_key=True),
    _text("fingerprint"),
    _text("rule"),
    _ns("time_ns"),
    _text("from_state"),
    _text("to_state"),
    sa.Column("value", sa.Float, nullable=True),
    _text("reason"),
    _text("actor", nullable=True),
    sa.Index("ix_alert_transitions_fingerprint", "fingerprint", "time_ns"),
    sa.Index("ix_alert_transitions_time", "time_ns"),
)

silences = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    _text("matchers"),
    _ns("starts_ns"),
    _ns("ends_ns"),
    _text("created_by"),
    _text("comment"),
    sa.Column("until_resolved", sa.Boolean, nullable=False),
    _ns("created_ns"),
)

# -- notification outbox ----------------------------------------------------------------------------------

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    _text("channel"),
    _text("fingerprint"),
    _text("kind"),
    _text("idempotency_key"),
    _blob("payload"),
    _text("state"),
    sa.Column("attempts", sa.Integer, nullable=False),
    _ns("created_ns"),
    _ns("next_attempt_ns"),
    _ns("lease_until_ns", nullable=True),
    _ns("sent_ns", nullable=True),
    _text("last_error"),
    sa.Index("ix_deliveries_due", "state", "next_attempt_ns"),
    sa.Index("ix_deliveries_created", "created_ns", "id"),
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", RowId, primary_key=True),
    _text("delivery_id"),
    sa.Column("attempt", sa.Integer, nullable=False),
    _ns("time_ns"),
    _text("outcome"),
    sa.Column("latency_s", sa.Float, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    _text("error"),
    sa.Index("ix_delivery_attempts_delivery", "delivery_id", "time_ns"),
)

# -- workflows --------------------------------------------------------------------------------------------

workflow_executions = sa.Table(
    "workflow_executions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    _text("name"),
    _text("status"),
    _ns("started_ns"),
    _ns("ended_ns", nullable=True),
    _blob("params"),
    _blob("trace_id"),
    _blob("span_id"),
    _text("error", nullable=True),
    sa.Index("ix_workflow_executions_started", "started_ns", "id"),
)

workflow_steps = sa.Table(
    "workflow_steps",
    metadata,
    sa.Column("id", RowId, primary_key=True),
    _text("execution_id"),
    _text("name"),
    _ns("started_ns"),
    _text("status"),
    _ns("ended_ns", nullable=True),
    _blob("span_id"),
    _text("error", nullable=True),
    _text("traceback", nullable=True),
    sa.Index("ux_workflow_steps_key", "execution_id", "name", "started_ns", unique=True),
    sa.Index("ix_workflow_steps_started", "started_ns"),
)

# -- leases -----------------------------------------------------------------------------------------------

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    _text("holder"),
    _ns("expires_ns"),
)
"""Named leases (`tocsin_sql.leases`): held by `holder` while now < `expires_ns`; one row per name."""

# -- notification grouping state --------------------------------------------------------------------------

notify_groups = sa.Table(
    "notify_groups",
    metadata,
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("group_id", sa.Text, primary_key=True),
    _ns("first_ns"),
    _ns("last_ns"),
)
"""One notification group's timer per (channel, group): its first flush and the latest flush booked."""

notify_members = sa.Table(
    "notify_members",
    metadata,
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("group_id", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text, primary_key=True),
)
"""The firing alerts of each notification group (a group with none left ends at its next tick)."""

notify_marks = sa.Table(
    "notify_marks",
    metadata,
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.Text, primary_key=True),
    sa.Column("episode", sa.BigInteger, nullable=False),
    _ns("time_ns"),
)
"""When each channel was last sent a firing notification of an alert's episode (its `repeat_interval` mark)."""

ROW_COUNTED: tuple[sa.Table, ...] = (
    metric_series,
    metric_rollups,
    metric_tiers,
    spans,
    logs,
    health,
    alerts,
    alert_transitions,
    silences,
    deliveries,
    delivery_attempts,
    workflow_executions,
    workflow_steps,
)
"""The tables `stats()` reports row counts for, under their own names."""
