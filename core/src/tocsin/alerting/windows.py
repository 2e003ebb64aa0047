"""Streaming evaluation: metric rules answered from the rollups this process flushes, not from storage.

The evaluator tells `MetricWindows` which metrics its rules read and their longest window (`track`); the
monitor hands it every rollup it flushes or ingests (`observe`), and it keeps, per series, the rollups of that
window (a ring, oldest dropped as time moves on). A metric rule's query is then answered from memory when
the rings hold everything storage would (`answer`), with the same math as `tocsin.storage.rollups.evaluate`:

* the metric is one this process records (declared in its `MetricsRegistry`) — a metric recorded only by
  another process, or only ingested (OTLP, the API), is read from storage;
* the window starts after the rings began (`since`), so no rollup of an earlier run or of before tracking
  can be missing;
* the query is one point for the whole window (`step_s` None), as rules ask.

Otherwise `answer` returns None and the caller queries storage. The rings begin at the start of the interval
being recorded when the metric was first tracked, or one window earlier once warmed: at its cycles (`warm`),
the evaluator fills the rings of each metric this process records whose rings do not reach back one window
yet (just tracked, or its longest window grew) with what storage holds from one window ago on
(`read_rollups`), so its rules are answered from memory from the first cycle of a process. Tracking and
that read happen under `exclusive` (the monitor's flush lock, which metric ingest takes too): a flush or an
ingest comes wholly before (its rollups are read) or after (they are observed), never both. A failed read
(a StorageError, logged at debug) or a backend without `read_rollups` leave the rings as they were; the
next cycle tries again, until the rings reach back one window by themselves. While another process writes
metrics into the store, the alerting service drops the rings at each cycle (`reset`), so they begin anew,
warmed with the others' rollups too, once it stops.

One pass serves every rule on a metric: per cycle, each series' window is merged once (count, sum, min,
max, last; the sketch only when a percentile is asked), and each rule merges the series its matchers select
(kept per rule until new series appear). Sums may differ from storage's in the last bits of a float, as any
change of summation order does.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec

from tocsin.alerting.rules import CompiledRule
from tocsin.errors import StorageError
from tocsin.models import MetricRollup, SeriesPoints
from tocsin.signals.sketch import LogSketch
from tocsin.storage.matchers import compile_matchers
from tocsin.storage.protocol import MetricQuery, StorageBackend
from tocsin.storage.rollups import QUANTILES, LabelKey, check_query, labels_key

internal_log = logging.getLogger("tocsin")

WINDOWED = ("metric", "absent")
"""Rule kinds whose reading is a metric query."""
END_NS = 2**63 - 1
"""The end of a warm-up read: every stored rollup from its start on (another process's clock may run ahead)."""


class Partial:
    """One series' (or one group's) rollups in a window, merged: what every aggregate is computed from."""

    __slots__ = ("count", "last", "last_key", "max", "min", "sketch", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.last = 0.0
        self.last_key: tuple[int, LabelKey] | None = None
        self.sketch: LogSketch | None = None

    def add(self, other: Partial) -> None:
        """Merge another partial into this one (sketches too, when both have them)."""
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.last_key is not None and (self.last_key is None or other.last_key > self.last_key):
            self.last, self.last_key = other.last, other.last_key
        if other.sketch is not None:
            if self.sketch is None:
                self.sketch = LogSketch(other.sketch.gamma)
            self.sketch.merge(other.sketch)

    def value(self, aggregate: str, seconds: float) -> float | None:
        """The aggregate, as `tocsin.storage.rollups.AGGREGATORS` computes it from the same rollups."""
        if aggregate == "avg":
            return self.sum / self.count if self.count else None
        if aggregate in QUANTILES:
            return None if self.sketch is None else self.sketch.quantile(QUANTILES[aggregate])
        return {"min": self.min, "max": self.max, "sum": self.sum, "count": float(self.count),
                "rate": self.sum / seconds, "last": self.last}[aggregate]


class _Slide:
    """Per-series sketches merged over [start, end) of one window length, moved forward by merging the
    rollups that enter and subtracting those that leave (exact: sketch counts are integers)."""

    __slots__ = ("end", "sketches", "start")

    def __init__(self) -> None:
        self.start = self.end = 0
        self.sketches: dict[LabelKey, LogSketch] = {}

    def take(self, key: LabelKey, rollup: MetricRollup) -> None:
        """Merge a rollup of series `key` that lies in the slide."""
        assert rollup.sketch is not None
        sketch = self.sketches.get(key)
        if sketch is None:
            sketch = self.sketches[key] = LogSketch(rollup.sketch.gamma)
        sketch.merge(rollup.sketch)


class _Metric:
    """The rings of one metric: per series, its rollups in arrival order, and sliding window sketches."""

    def __init__(self, since_ns: int, keep_ns: int) -> None:
        self.since_ns = since_ns
        self.keep_ns = keep_ns
        self.rings: dict[LabelKey, deque[MetricRollup]] = {}
        self.labels: dict[LabelKey, Mapping[str, str]] = {}
        self.version = 0  # moves when a series appears, so cached selections are redone
        self.selections: dict[bytes, tuple[int, list[LabelKey]]] = {}
        self.slides: dict[int, _Slide] = {}
        self.latest_ns = since_ns
        self.ordered = True  # every ring in start order (one process's flushes): scans stop at the window's start

    def add(self, rollup: MetricRollup) -> None:
        """Append a rollup to its series' ring, into the slides that cover its start, and drop what aged out."""
        key = labels_key(rollup.labels)
        ring = self.rings.get(key)
        if ring is None:
            ring = self.rings[key] = deque()
            self.labels[key] = rollup.labels
            self.version += 1
        if ring and rollup.start_ns < ring[-1].start_ns:
            self.ordered = False
        ring.append(rollup)
        if rollup.sketch is not None:
            for slide in self.slides.values():  # a rollup flushed after a cycle already covered its start
                if slide.start <= rollup.start_ns < slide.end:
                    slide.take(key, rollup)
        if rollup.start_ns > self.latest_ns:
            self.latest_ns = rollup.start_ns
        horizon = self.latest_ns - 2 * self.keep_ns  # twice the window: what a slide subtracts is still here
        while ring and ring[0].start_ns < horizon:
            gone = ring.popleft()
            for length, slide in list(self.slides.items()):
                if gone.sketch is not None and slide.start <= gone.start_ns < slide.end:
                    del self.slides[length]  # it can no longer be moved exactly: built anew when next asked

    def partials(self, start: int, end: int, sketches: bool) -> dict[LabelKey, Partial]:
        """Each series' rollups with start in [start, end), merged (sketches from the window's slide)."""
        result: dict[LabelKey, Partial] = {}
        ordered = self.ordered
        for key, ring in self.rings.items():
            partial = None
            for rollup in reversed(ring):
                begins = rollup.start_ns
                if not start <= begins < end:
                    if begins < start and ordered:
                        break
                    continue
                if partial is None:
                    partial = result[key] = Partial()
                partial.count += rollup.count
                partial.sum += rollup.sum
                if rollup.min < partial.min:
                    partial.min = rollup.min
                if rollup.max > partial.max:
                    partial.max = rollup.max
                if partial.last_key is None or begins > partial.last_key[0]:  # newest first: ties keep the later
                    partial.last, partial.last_key = rollup.last, (begins, key)
        if sketches:
            slid = self._slide(start, end)
            for key, partial in result.items():
                sketch = slid.get(key)
                partial.sketch = sketch if sketch is not None and sketch.count else None
        return result

    def _slide(self, start: int, end: int) -> dict[LabelKey, LogSketch]:
        """The per-series sketches of [start, end): the slide of this length moved there, or built anew."""
        slide = self.slides.get(end - start)
        if slide is None or start < slide.start or start >= slide.end:
            slide = self.slides[end - start] = _Slide()
            slide.start, slide.end = start, end
            for key, ring in self.rings.items():
                for rollup in ring:
                    if rollup.sketch is not None and start <= rollup.start_ns < end:
                        slide.take(key, rollup)
            return slide.sketches
        old_start, old_end = slide.start, slide.end
        slide.start, slide.end = start, end
        ordered = self.ordered
        for key, ring in self.rings.items():
            for rollup in reversed(ring):
                begins = rollup.start_ns
                if begins < old_start and ordered:
                    break
                if rollup.sketch is None:
                    continue
                if old_end <= begins < end:  # entered the window
                    slide.take(key, rollup)
                elif old_start <= begins < start:  # left it
                    slide.sketches[key].subtract(rollup.sketch)
        return slide.sketches


class MetricWindows:
    """Rings of the rollups of the metrics rules read, fed as the monitor flushes, answering rule queries."""

    def __init__(self, declared: Callable[[str], bool], interval_start: Callable[[], int]) -> None:
        self.declared = declared
        """Whether this process records a metric (its MetricsRegistry declares it)."""
        self.interval_start = interval_start
        """The start of the interval the registry is recording now: what the rings see from tracking on."""
        self.enabled = True
        self.exclusive: Callable[[], AbstractAsyncContextManager[Any]] = contextlib.nullcontext
        """Held while metrics are tracked and warmed, so that no flush falls in between: the monitor gives its
        flush lock (a rollup flushed then would be observed and read, or neither)."""
        self._metrics: dict[str, _Metric] = {}

    def track(self, windows: Mapping[str, int]) -> None:
        """Keep rings for these metrics (name -> longest window in ns); forget the others."""
        for name in [name for name in self._metrics if name not in windows]:
            del self._metrics[name]
        for name, keep_ns in windows.items():
            metric = self._metrics.get(name)
            if metric is None:
                self._metrics[name] = _Metric(self.interval_start(), keep_ns)
            else:
                metric.keep_ns = max(metric.keep_ns, keep_ns)

    def follow(self, rules: Iterable[CompiledRule]) -> None:
        """Track the metrics of these rules (metric and absent kinds) with their longest window."""
        self.track(_longest(rules))

    async def warm(self, rules: Iterable[CompiledRule], storage: StorageBackend) -> None:
        """`follow` these rules, and first fill from storage the rings of the metrics this process records
        whose rings do not reach back one window yet (see the module doc), under `exclusive`."""
        windows = _longest(rules)
        read = getattr(storage, "read_rollups", None)
        cold = [name for name, keep_ns in windows.items() if self._cold(name, keep_ns)] if read else []
        if not cold:
            self.track(windows)
            return
        async with self.exclusive():
            self.track(windows)
            for name in cold:
                await self._warm(name, read)

    def _cold(self, name: str, keep_ns: int) -> bool:
        """Whether warming would let the rings answer a window of `keep_ns` now: they start later than that."""
        metric = self._metrics.get(name)
        return (self.enabled and self.declared(name)
                and (metric is None or metric.since_ns > self.interval_start() - keep_ns))

    async def _warm(self, name: str, read: Callable[[str, int, int], Awaitable[list[MetricRollup]]]) -> None:
        """Replace a metric's rings by what storage holds from one window before now on, unless the read fails
        (then the rings stay as they are, and it is tried next cycle)."""
        keep_ns = self._metrics[name].keep_ns
        warmed = _Metric(self.interval_start() - keep_ns, keep_ns)
        try:
            rollups = await read(name, warmed.since_ns, END_NS)
        except StorageError as error:
            internal_log.debug("tocsin: warming the alerting window of %r from storage failed: %r", name, error)
            return
        for rollup in rollups:
            warmed.add(rollup)
        self._metrics[name] = warmed

    def reset(self) -> None:
        """Drop every ring (another process writes metrics they never see): they begin anew, and are warmed
        from storage with the others' rollups, at the next cycle that streams."""
        self._metrics.clear()

    def observe(self, rollups: Iterable[MetricRollup]) -> None:
        """Take rollups that were flushed or ingested into storage by this process (under `exclusive`)."""
        metrics = self._metrics
        for rollup in rollups:
            metric = metrics.get(rollup.name)
            if metric is not None:
                metric.add(rollup)

    def cycle(self) -> Cycle:
        """The state one evaluation cycle reads: series windows merged once, shared by every rule."""
        return Cycle(self)

    def metric(self, query: MetricQuery) -> _Metric | None:
        """The rings that hold everything storage has for `query`, or None when storage must answer it."""
        metric = self._metrics.get(query.name)
        if (not self.enabled or metric is None or query.step_s is not None or not self.declared(query.name)
                or query.start_ns < max(metric.since_ns, metric.latest_ns - 2 * metric.keep_ns)
                or query.end_ns - query.start_ns > metric.keep_ns):
            return None
        return metric


class Cycle:
    """One evaluation's view of the rings: per-series partials by window, and rule selections, computed once."""

    def __init__(self, windows: MetricWindows) -> None:
        self.windows = windows
        self._partials: dict[tuple[str, int, int, bool], dict[LabelKey, Partial]] = {}
        self._merged: dict[tuple[tuple[str, int, int, bool], tuple[LabelKey, ...]], Partial] = {}

    def answer(self, query: MetricQuery) -> list[SeriesPoints] | None:
        """The query's result from memory, or None when storage must answer it (see the module doc)."""
        metric = self.windows.metric(query)
        if metric is None:
            return None
        check_query(query)
        start, end = query.start_ns, query.end_ns
        sketches = query.aggregate in QUANTILES
        window = (query.name, start, end, sketches)
        partials = self._partials.get(window)
        if partials is None:
            partials = self._partials[window] = metric.partials(start, end, sketches)
        members: dict[LabelKey, list[LabelKey]] = {}
        by = query.by
        for key in _select(metric, query):
            if key in partials:
                group = key if by is None else labels_key(_group(metric.labels[key], by))
                members.setdefault(group, []).append(key)
        groups: dict[LabelKey, Partial] = {}
        for group, keys in members.items():
            if len(keys) == 1:
                groups[group] = partials[keys[0]]  # read only: no copy
                continue
            merged_key = (window, tuple(keys))
            merged = self._merged.get(merged_key)
            if merged is None:
                merged = self._merged[merged_key] = Partial()
                for key in keys:
                    merged.add(partials[key])
            groups[group] = merged
        seconds = (end - start) / 1e9
        series = []
        for group in sorted(groups):
            value = groups[group].value(query.aggregate, seconds)
            if value is not None:
                series.append(SeriesPoints(labels=dict(group), points=[(start, value)]))
        return series


def _longest(rules: Iterable[CompiledRule]) -> dict[str, int]:
    """The metrics these rules read (metric and absent kinds), each with its longest window in ns."""
    longest: dict[str, int] = {}
    for rule in rules:
        name = rule.config.metric
        if rule.kind in WINDOWED and name:
            longest[name] = max(longest.get(name, 0), round(rule.config.window * 1e9))
    return longest


def _select(metric: _Metric, query: MetricQuery) -> list[LabelKey]:
    """The series the query's matchers select (kept across cycles until a series appears)."""
    key = _ENCODE(query.matchers)
    cached = metric.selections.get(key)
    if cached is not None and cached[0] == metric.version:
        return cached[1]
    matches = compile_matchers(query.matchers)
    selected = [series for series, labels in metric.labels.items() if matches(labels)]
    metric.selections[key] = (metric.version, selected)
    return selected


_ENCODE = msgspec.msgpack.Encoder().encode


def _group(labels: Mapping[str, str], by: Sequence[str]) -> dict[str, str]:
    """The labels a `by` query groups a series under: those of `by` that the series has."""
    return {name: labels[name] for name in by if name in labels}
