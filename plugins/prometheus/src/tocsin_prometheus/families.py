"""tocsin's metrics as Prometheus metric families: the monitor's instruments plus what a scrape reads live.

Mapping (docs/interop.md has the table):

- a counter `x_total` or `x` becomes the counter family `x`, sample `x_total` (its running total);
- a gauge keeps its name and value;
- a histogram `x` becomes a **summary**: `x{quantile="0.5|0.9|0.95|0.99"}` from its lifetime sketch (1 %
  relative error, the sketch tocsin keeps instead of fixed buckets), `x_sum` and `x_count`;
- a label that a summary reserves (`quantile`) is renamed `exported_quantile`, as Prometheus does;
- a family whose sample names another family already used is left out (the first by name wins).

Scrape-time gauges: buffer fill and capacity, whether this process leads, and the store's size and rows
(from `storage.stats()`, read at most every `storage_stats_every`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from tocsin.ext import StorageStats
from tocsin_prometheus.text import Family, Sample

if TYPE_CHECKING:
    from tocsin import Monitor

QUANTILES = (0.5, 0.9, 0.95, 0.99)
UNITS = {"s": "seconds", "seconds": "seconds", "ms": "milliseconds", "By": "bytes", "bytes": "bytes",
         "1": "ratio", "ratio": "ratio"}
"""Declared units (tocsin's, or UCUM as OpenTelemetry writes them) and the OpenMetrics unit they name."""

HELP = {
    "tocsin_records_written_total": "Records written to storage, by signal (recorded and ingested)",
    "tocsin_records_dropped_total": "Records dropped before storage, by signal and reason",
    "tocsin_records_sanitized_total": "Record values changed to be storable, by signal and reason",
    "tocsin_flush_errors_total": "Failed writes to storage (the batch is kept and retried), by signal",
    "tocsin_flush_seconds": "Time to write one batch to storage, by signal",
    "tocsin_rule_evaluation_seconds": "Time to evaluate one alert rule, by rule",
    "tocsin_rule_evaluation_failures_total": "Alert rule evaluations that failed, by rule",
    "tocsin_alert_evaluation_seconds": "Time of one alert evaluation cycle (every rule)",
    "tocsin_notification_seconds": "Time of one notification delivery attempt, by channel",
    "tocsin_notification_attempts_total": "Notification delivery attempts, by channel and outcome",
    "tocsin_notifications_sent_total": "Notifications delivered, by channel",
    "tocsin_notifications_failed_total": "Notifications that failed for good, by channel",
    "tocsin_notifications_dropped_total": "Notifications dropped, by channel and reason",
}
"""HELP for tocsin's own instruments, which are declared without a description."""


def _unit(name: str, declared: str) -> str:
    """The OpenMetrics unit: the declared one (or the name's own suffix) when the name ends with it."""
    for unit in (UNITS.get(declared, declared), *UNITS.values()):
        if unit and name.endswith("_" + unit):
            return unit
    return ""


def _labels(labels: dict[str, str], reserved: str = "") -> tuple[tuple[str, str], ...]:
    return tuple(sorted((f"exported_{key}" if key == reserved else key, value) for key, value in labels.items()))


def instrument_families(monitor: Monitor) -> list[Family]:
    """The monitor's instruments as families, each series at its value since the process started."""
    families = []
    for info, series in monitor.metrics.totals():
        help_text = info.description or HELP.get(info.name) or f"tocsin {info.kind} {info.name}"
        if info.kind == "counter":
            name = info.name.removesuffix("_total")
            samples = [Sample("_total", _labels(s.labels), s.value) for s in series]
            families.append(Family(name=name, kind="counter", help=help_text, unit=_unit(name, info.unit),
                                   samples=samples))
        elif info.kind == "gauge":
            samples = [Sample("", _labels(s.labels), s.value) for s in series]
            families.append(Family(name=info.name, kind="gauge", help=help_text,
                                   unit=_unit(info.name, info.unit), samples=samples))
        else:
            samples = []
            for s in series:
                labels = _labels(s.labels, reserved="quantile")
                if s.sketch is not None:
                    samples += [Sample("", (*labels, ("quantile", str(q))), s.sketch.quantile(q) or 0.0)
                                for q in QUANTILES]
                samples += [Sample("_sum", labels, s.sum), Sample("_count", labels, s.count)]
            families.append(Family(name=info.name, kind="summary", help=help_text,
                                   unit=_unit(info.name, info.unit), samples=samples))
    return families


def live_families(monitor: Monitor, stats: StorageStats | None) -> list[Family]:
    """What is read at scrape time: buffers, leadership and (when given) the store's size."""
    buffers = {"logs": monitor.log_buffer, "spans": monitor.span_buffer, "workflows": monitor.workflows.buffer}
    families = [
        Family(name="tocsin_buffer_items", kind="gauge", help="Records waiting in an in-memory buffer, by buffer",
               samples=[Sample("", (("buffer", name),), len(b)) for name, b in buffers.items()]),
        Family(name="tocsin_buffer_capacity_items", kind="gauge",
               help="Records an in-memory buffer holds before it drops new ones, by buffer",
               samples=[Sample("", (("buffer", name),), b.capacity) for name, b in buffers.items()]),
        Family(name="tocsin_leader", kind="gauge",
               help="1 while this process holds the leader lease (runs alerting, dispatch, checks, sweeps)",
               samples=[Sample("", (), 1.0 if monitor.is_leader else 0.0)]),
    ]
    if stats is not None:
        families.append(Family(name="tocsin_storage_bytes", kind="gauge", unit="bytes",
                               help="Bytes the store takes (0 where unknown, as in memory)",
                               samples=[Sample("", (), stats.bytes)]))
        families.append(Family(name="tocsin_storage_rows", kind="gauge", help="Rows stored, by table",
                               samples=[Sample("", (("table", table),), rows)
                                        for table, rows in sorted(stats.rows.items())]))
    return families


_NAMES = {"counter": ("", "_total", "_created"), "summary": ("", "_sum", "_count", "_created")}


def without_clashes(families: Iterable[Family]) -> list[Family]:
    """The families by name, leaving out any whose sample names another family already uses."""
    taken: set[str] = set()
    kept = []
    for family in sorted(families, key=lambda f: f.name):
        names = {family.name + suffix for suffix in _NAMES.get(family.kind, ("",))}
        if not names & taken:
            taken |= names
            kept.append(family)
    return kept
