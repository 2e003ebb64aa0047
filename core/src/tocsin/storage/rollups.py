"""Metric query evaluation over stored rollups, shared by every storage backend.

A backend finds the rollups of the series that match a `MetricQuery` (name and label matchers); this module
groups them (`by`), buckets them (`step_s`, aligned to `start_ns`) and aggregates each bucket from the
rollup fields as `MetricRollup` defines them, never from raw points:

* avg = Σsum / Σcount, sum = Σsum, count = Σcount, min / max = min of min / max of max;
* rate = Σsum / the bucket's seconds (the last bucket is cut at `end_ns`);
* last = `last` of the latest rollup (ties between series broken by their labels, for a stable answer);
* p50 / p95 / p99 merge the rollups' sketches; rollups without a sketch give no percentile.

Buckets without rollups, or whose aggregate is undefined, produce no point; series without points are
left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from tocsin.errors import QueryError
from tocsin.models import AGGREGATES, MetricRollup, SeriesPoints
from tocsin.signals.sketch import LogSketch
from tocsin.storage.protocol import MetricQuery

MAX_POINTS = 11_000
"""Most buckets a query may ask for per series (Prometheus' limit), so a tiny step cannot stall a backend."""

QUANTILES: dict[str, float] = {"p50": 0.5, "p95": 0.95, "p99": 0.99}

LabelKey = tuple[tuple[str, str], ...]
Aggregator = Callable[[Sequence[MetricRollup], float], "float | None"]


def labels_key(labels: Mapping[str, str]) -> LabelKey:
    """A hashable, sortable form of a label set; result series are ordered by it."""
    return tuple(sorted(labels.items()))


def check_query(query: MetricQuery) -> None:
    """Raise QueryError when a metric query is malformed or asks for more than MAX_POINTS buckets."""
    if query.aggregate not in AGGREGATES:
        raise QueryError(
            f"metric query aggregate {query.aggregate!r} is unknown; use one of {', '.join(AGGREGATES)}"
        )
    if query.end_ns <= query.start_ns:
        raise QueryError(f"metric query end_ns {query.end_ns} must be after start_ns {query.start_ns}")
    if query.step_s is None:
        return
    if not (math.isfinite(query.step_s) and round(query.step_s * 1e9) >= 1):
        raise QueryError(f"metric query step_s must be a positive number of seconds, got {query.step_s}")
    buckets = math.ceil((query.end_ns - query.start_ns) / round(query.step_s * 1e9))
    if buckets > MAX_POINTS:
        raise QueryError(
            f"metric query asks for {buckets} points per series (step_s={query.step_s}); "
            f"the most is {MAX_POINTS}: use a larger step_s or a shorter range"
        )


def _avg(rollups: Sequence[MetricRollup], _seconds: float) -> float | None:
    count = sum(r.count for r in rollups)
    return sum(r.sum for r in rollups) / count if count else None


def _rate(rollups: Sequence[MetricRollup], seconds: float) -> float | None:
    return sum(r.sum for r in rollups) / seconds


def _last(rollups: Sequence[MetricRollup], _seconds: float) -> float | None:
    return max(rollups, key=lambda r: (r.start_ns, labels_key(r.labels))).last


def _percentile(q: float) -> Aggregator:
    def aggregate(rollups: Sequence[MetricRollup], _seconds: float) -> float | None:
        sketches = [r.sketch for r in rollups if r.sketch is not None]
        if not sketches:
            return None
        merged = LogSketch(sketches[0].gamma)
        try:
            for sketch in sketches:
                merged.merge(sketch)
        except ValueError as error:
            raise QueryError(f"cannot merge the stored sketches: {error}") from None
        return merged.quantile(q)

    return aggregate


AGGREGATORS: dict[str, Aggregator] = {
    "avg": _avg,
    "min": lambda rollups, _seconds: min(r.min for r in rollups),
    "max": lambda rollups, _seconds: max(r.max for r in rollups),
    "sum": lambda rollups, _seconds: sum(r.sum for r in rollups),
    "count": lambda rollups, _seconds: float(sum(r.count for r in rollups)),
    "rate": _rate,
    "last": _last,
    **{name: _percentile(q) for name, q in QUANTILES.items()},
}


def _group_labels(labels: Mapping[str, str], by: list[str] | None) -> dict[str, str]:
    if by is None:
        return dict(labels)
    return {name: labels[name] for name in by if name in labels}


def evaluate(rollups: Iterable[MetricRollup], query: MetricQuery) -> list[SeriesPoints]:
    """Aggregate the rollups of the matching series as `query` asks; rollups outside the range are ignored."""
    check_query(query)
    start, end = query.start_ns, query.end_ns
    step_ns = end - start if query.step_s is None else round(query.step_s * 1e9)
    buckets: dict[LabelKey, dict[int, list[MetricRollup]]] = {}
    for rollup in rollups:
        if not start <= rollup.start_ns < end:
            continue
        bucket_ns = start + (rollup.start_ns - start) // step_ns * step_ns
        group = labels_key(_group_labels(rollup.labels, query.by))
        buckets.setdefault(group, {}).setdefault(bucket_ns, []).append(rollup)

    aggregator = AGGREGATORS[query.aggregate]
    series: list[SeriesPoints] = []
    for group in sorted(buckets):
        points: list[tuple[int, float]] = []
        for bucket_ns, members in sorted(buckets[group].items()):
            value = aggregator(members, min(step_ns, end - bucket_ns) / 1e9)
            if value is not None:
                points.append((bucket_ns, value))
        if points:
            series.append(SeriesPoints(labels=dict(group), points=points))
    return series
