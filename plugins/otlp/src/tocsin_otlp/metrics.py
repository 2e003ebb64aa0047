"""OTLP metrics as tocsin metric rollups, one per data point.

- Gauge, and a Sum that is not monotonic, become a `gauge` whose `last` is the value (a delta non-monotonic
  Sum is added to the running total first).
- A monotonic Sum becomes a `counter` whose rollup `sum` is the increase over the point's window and `last`
  the running total. A cumulative point is turned into the increase since the series' previous point (kept
  in `Tracker`); the first point of a series counts from its `start_time_unix_nano` when that is after the
  receiver started, else (or when it has no start time) it only sets the baseline (its increase may have
  happened before tocsin listened, and may be stored already). A lower value or a new start time is a
  reset: the increase counts from the new start.
- Histogram and ExponentialHistogram become a `histogram` rollup: exact count and sum, min, max and a sketch
  (`tocsin_otlp.histograms`); cumulative points are turned into the window's observations the same way.
- Summary has no tocsin counterpart and is refused, and so is a metric named like one tocsin records
  itself. Exemplars are dropped: a rollup has nowhere to keep them.

Metric names and attribute keys are made valid (`tocsin_otlp.names`); the resource's `service.name` becomes
the `service` label. Points flagged "no recorded value" are skipped; NaN or infinite values are refused.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Any, NamedTuple

from tocsin.ext import MetricKind, MetricRollup, Sketch
from tocsin_otlp.histograms import Shape, explicit, exponential
from tocsin_otlp.names import label_name, metric_name
from tocsin_otlp.origin import SERVICE_KEY
from tocsin_otlp.rejections import MAX_NS, Rejections
from tocsin_otlp.values import flatten, label_value

DELTA, CUMULATIVE = 1, 2
NO_RECORDED_VALUE = 1
SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class Seen(NamedTuple):
    """The last point of a series: its start, its time, and its value (a number, or a histogram Shape)."""

    start_ns: int
    time_ns: int
    value: Any


class Tracker:
    """The last point of each cumulative series (at most `limit`, least recently seen forgotten first), and the
    running total of delta series, so that points become per-window increases."""

    def __init__(self, limit: int, started_ns: int | None = None) -> None:
        self.limit = limit
        self.started_ns = time.time_ns() if started_ns is None else started_ns
        self._seen: OrderedDict[SeriesKey, Seen] = OrderedDict()
        self._journal: list[tuple[SeriesKey, Seen | None]] = []

    def swap(self, key: SeriesKey, point: Seen) -> Seen | None:
        """Remember `point` as the series' latest and return the one before it (None when new)."""
        seen = self._seen
        earlier = seen.pop(key, None)
        seen[key] = point
        self._journal.append((key, earlier))
        if len(seen) > self.limit:
            seen.popitem(last=False)
        return earlier

    def commit(self) -> None:
        """Keep what the points since the last commit or rollback taught (their rollups are stored)."""
        self._journal.clear()

    def rollback(self) -> None:
        """Forget the points since the last commit (their rollups were not stored, and the client will resend
        them: they must count again)."""
        for key, earlier in reversed(self._journal):
            if earlier is None:
                self._seen.pop(key, None)
            else:
                self._seen[key] = earlier
        self._journal.clear()

    def add(self, key: SeriesKey, point: Seen) -> float:
        """Add a delta point's value to the series' running total and return the new total."""
        earlier = self.swap(key, point)
        total = point.value + (earlier.value if earlier is not None else 0.0)
        self._seen[key] = point._replace(value=total)
        return total


class Mapper:
    """Maps the data points of OTLP metrics requests to rollups, keeping cumulative series in a Tracker."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker

    def rollups_of(self, request: Any, rejected: Rejections, own: frozenset[str] = frozenset()) -> list[MetricRollup]:
        """Every rollup of an ExportMetricsServiceRequest (protobuf or OTLP/JSON) tocsin can store; names in
        `own` (the metrics this tocsin records itself) are refused, so no export mixes into them."""
        found: list[MetricRollup] = []
        for resource_metrics in request.resource_metrics:
            service = flatten(resource_metrics.resource.attributes, {}).get(SERVICE_KEY)
            base = {"service": label_value(service)} if service is not None else {}
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    self._metric(metric, base, found, rejected, own)
        return found

    def _metric(self, metric: Any, base: dict[str, str], found: list[MetricRollup], rejected: Rejections,
                own: frozenset[str]) -> None:
        kind = metric.WhichOneof("data")
        data = getattr(metric, kind) if kind is not None else None
        points = list(data.data_points) if data is not None else []
        name = metric_name(metric.name)
        if kind == "summary" or name in own:
            rejected.add(f"metric {metric.name!r}: " + ("Summary points have no tocsin counterpart"
                         if kind == "summary" else f"{name!r} is one of tocsin's own metrics"), len(points))
            return
        for point in points:
            if point.flags & NO_RECORDED_VALUE:
                continue
            labels = dict(base)
            for key, value in flatten(point.attributes, {}).items():
                labels[label_name(key)] = label_value(value)
            start, end = point.start_time_unix_nano, point.time_unix_nano
            if start > MAX_NS or end > MAX_NS:
                rejected.add(f"metric {metric.name!r}: point times must fit in signed 64-bit nanoseconds")
                continue
            try:
                rollup = self._point(kind, data, name, labels, point)
            except (ValueError, OverflowError) as error:
                rejected.add(f"metric {metric.name!r}: {error}")
                continue
            if rollup is not None:
                found.append(rollup)

    def _point(self, kind: str | None, data: Any, name: str, labels: dict[str, str], point: Any
               ) -> MetricRollup | None:
        key: SeriesKey = (name, tuple(sorted(labels.items())))
        if kind in ("histogram", "exponential_histogram"):
            shape = explicit(point) if kind == "histogram" else exponential(point)
            return self._histogram(key, data.aggregation_temporality, point, shape)
        number = point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
        if number is None or not math.isfinite(number):
            raise ValueError(f"a point's value must be a finite number, got {number!r}")
        if kind == "sum" and data.is_monotonic:
            if number < 0:
                raise ValueError(f"a monotonic sum cannot be negative, got {number!r}")
            return self._counter(key, data.aggregation_temporality, point, float(number))
        if kind == "sum" and data.aggregation_temporality == DELTA:
            number = self.tracker.add(key, Seen(point.start_time_unix_nano, point.time_unix_nano, number))
        return _rollup(key, "gauge", point.time_unix_nano, 0, 1, number, number, number, number)

    def _before_us(self, point: Any) -> bool:
        """Whether a cumulative point may hold counts from before the receiver started (or says no start)."""
        start = point.start_time_unix_nano
        return not start or start < self.tracker.started_ns

    def _counter(self, key: SeriesKey, temporality: int, point: Any, value: float) -> MetricRollup | None:
        start, end = point.start_time_unix_nano or point.time_unix_nano, point.time_unix_nano
        if temporality != CUMULATIVE:
            total = self.tracker.add(key, Seen(start, end, value))
            return _rollup(key, "counter", start, end - start, 1, value, value, value, total)
        earlier = self.tracker.swap(key, Seen(point.start_time_unix_nano, end, value))
        if earlier is None and self._before_us(point):
            return _rollup(key, "counter", end, 0, 0, 0.0, 0.0, 0.0, value)  # the baseline: no increase known
        if earlier is not None and point.start_time_unix_nano == earlier.start_ns and value >= earlier.value:
            if end <= earlier.time_ns:
                return None  # a resent or out-of-order point: nothing new
            increase = value - earlier.value
            return _rollup(key, "counter", earlier.time_ns, end - earlier.time_ns, 1, increase, increase, increase,
                           value) if increase else None
        return _rollup(key, "counter", start, end - start, 1, value, value, value, value)

    def _histogram(self, key: SeriesKey, temporality: int, point: Any, shape: Shape) -> MetricRollup | None:
        start, end = point.start_time_unix_nano or point.time_unix_nano, point.time_unix_nano
        if temporality == CUMULATIVE:
            earlier = self.tracker.swap(key, Seen(point.start_time_unix_nano, end, shape))
            if earlier is None and self._before_us(point):
                return None  # the baseline: what it counted happened before tocsin listened
            if (earlier is not None and point.start_time_unix_nano == earlier.start_ns
                    and shape.count >= earlier.value.count):
                if end <= earlier.time_ns or shape.count == earlier.value.count:
                    return None
                shape, start = shape.minus(earlier.value), earlier.time_ns
        if not shape.count:
            return None
        return _rollup(key, "histogram", start, end - start, shape.count, shape.sum, shape.min, shape.max,
                       shape.sum / shape.count, shape.sketch())


def _rollup(key: SeriesKey, kind: MetricKind, start_ns: int, length_ns: int, count: int, total: float,
            low: float, high: float, last: float, sketch: Sketch | None = None) -> MetricRollup:
    return MetricRollup(name=key[0], kind=kind, labels=dict(key[1]), start_ns=start_ns,
                        interval_s=max(0, length_ns) / 1e9, count=count, sum=float(total), min=float(low),
                        max=float(high), last=float(last), sketch=sketch)
