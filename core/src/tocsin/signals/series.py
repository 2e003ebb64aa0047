"""One labelled series of an instrument: its lock-free recording path and its per-interval rollup.

A series is also the bound handle `Counter.labels(...)` and friends return, so a cached handle records
with no label lookup at all.

Thread safety without a lock per call: every recording is ONE operation that CPython runs atomically
under the GIL. A counter's `inc()` by 1 is `next()` on an `itertools.count`; every other recording is a
`list.append` onto the series' pending list. Pending values are folded into the interval's aggregate
under the series lock, either by `rollup()` or by the recording thread once `FOLD_AT` values wait (so
memory stays bounded between collects). A fold copies the pending list and then deletes exactly the
values it copied, so a value appended meanwhile stays for the next fold: nothing is lost or counted twice.

`totals()` reads a series since its creation without starting a new interval (what a Prometheus scrape
needs): a counter's running total, a gauge's value, a histogram's count, sum and lifetime sketch.
"""

from __future__ import annotations

import itertools
import math
import sys
import threading
from typing import ClassVar, NamedTuple

from tocsin.models import MetricKind, MetricRollup, Sketch
from tocsin.signals.naming import counter_increment, finite_number
from tocsin.signals.sketch import LogSketch

FOLD_AT = 256
"""Pending values that make the recording thread fold them (bounds memory at ~8 KiB per busy series)."""

_ONE = 1  # `value is _ONE` is true for the int 1 (CPython caches small ints), never for 1.0 or True
_INF = math.inf
_NEG_INF = -math.inf
_MAX = sys.float_info.max  # the inline value check: a float or int within +-_MAX (so no nan, no inf)
_UP = (1,)  # a gauge's pending list holds set values as numbers and inc/dec deltas as 1-tuples
_DOWN = (-1,)


class Totals(NamedTuple):
    """One series since it was created: `value` is a counter's total, a gauge's value, a histogram's last value;
    `count`, `sum` and `sketch` are a histogram's observations (a counter's count is its inc calls)."""

    labels: dict[str, str]
    value: float
    count: int = 0
    sum: float = 0.0
    sketch: LogSketch | None = None


class _Aggregate:
    """count/sum/min/max/last of the values folded during one interval."""

    __slots__ = ("count", "high", "last", "low", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.low = _INF
        self.high = _NEG_INF
        self.last = 0.0

    def add(self, values: list[float]) -> None:
        self.count += len(values)
        self.total += sum(values)
        self.low = min(self.low, min(values))
        self.high = max(self.high, max(values))
        self.last = values[-1]

    def add_repeated(self, value: float, times: int) -> None:
        self.count += times
        self.total += value * times
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        self.last = value

    def rollup(
        self, series: Series, start_ns: int, interval_s: float, last: float, sketch: Sketch | None = None
    ) -> MetricRollup:
        return MetricRollup(
            name=series.metric,
            kind=series.kind,
            labels=dict(series.labels),
            start_ns=start_ns,
            interval_s=interval_s,
            count=self.count,
            sum=float(self.total),
            min=float(self.low),
            max=float(self.high),
            last=float(last),
            sketch=sketch,
        )


class Series:
    """The state shared by every kind of series: metric name, labels, pending values and the fold lock."""

    __slots__ = ("_agg", "_lock", "_pending", "labels", "metric")
    kind: ClassVar[MetricKind]

    def __init__(self, metric: str, labels: dict[str, str]) -> None:
        self.metric = metric
        self.labels = labels
        self._pending: list = []
        self._lock = threading.RLock()  # re-entrant: a finalizer run by the GC mid-fold may record here
        self._agg = _Aggregate()

    def _push(self, item: object) -> None:
        pending = self._pending
        pending.append(item)
        if len(pending) >= FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Fold the pending values into the interval aggregate now; recording does it every FOLD_AT values."""
        with self._lock:
            self._fold_pending()

    def _fold_pending(self) -> None:
        """Fold what is pending now into the interval's aggregate; the caller holds the lock."""
        pending = self._pending
        batch = pending.copy()
        if batch:
            del pending[: len(batch)]  # appends made since the copy sit after the first len(batch) items
            self._fold(batch)

    def rollup(self, start_ns: int, interval_s: float) -> MetricRollup | None:
        """What the series did since its last rollup (None if nothing to report); starts a new interval."""
        with self._lock:
            self._fold_pending()
            return self._close(start_ns, interval_s)

    def totals(self) -> Totals | None:
        """The series since it was created, without closing the interval (None: it holds no value yet)."""
        with self._lock:
            self._fold_pending()
            return self._totals()

    def _fold(self, batch: list) -> None:
        self._agg.add(batch)

    def _close(self, start_ns: int, interval_s: float) -> MetricRollup | None:
        raise NotImplementedError

    def _totals(self) -> Totals | None:
        raise NotImplementedError


class CounterSeries(Series):
    """A counter series: `sum` is the increase in the interval and `last` the running total."""

    __slots__ = ("_count", "_tick", "_tick_base", "_ticks", "_total")
    kind = "counter"

    def __init__(self, metric: str, labels: dict[str, str]) -> None:
        super().__init__(metric, labels)
        self._ticks = itertools.count()
        self._tick = self._ticks.__next__  # the +1 hot path: one C call, atomic under the GIL
        self._tick_base = 0
        self._total = 0.0
        self._count = 0

    def inc(self, value: float = 1) -> None:
        """Add `value` (>= 0, default 1)."""
        if value is _ONE:
            self._tick()
        else:
            self._push(counter_increment(self.metric, value))

    def _fold_ticks(self) -> None:
        """Move the +1 ticks counted so far into the interval's aggregate; the caller holds the lock."""
        # Reading an itertools.count is one more next(): it returns the ticks so far plus our own reads.
        seen = next(self._ticks)
        units = seen - self._tick_base
        self._tick_base = seen + 1
        if units:
            self._agg.add_repeated(1, units)

    def _close(self, start_ns: int, interval_s: float) -> MetricRollup | None:
        self._fold_ticks()
        agg, self._agg = self._agg, _Aggregate()
        if not agg.count:
            return None
        self._total += agg.total
        self._count += agg.count
        return agg.rollup(self, start_ns, interval_s, last=self._total)

    def _totals(self) -> Totals:
        self._fold_ticks()
        total = self._total + self._agg.total
        return Totals(dict(self.labels), total, self._count + self._agg.count, total)


class GaugeSeries(Series):
    """A gauge series: count/sum/min/max/last of the values it held; repeats its value when left alone."""

    __slots__ = ("_value",)
    kind = "gauge"

    def __init__(self, metric: str, labels: dict[str, str]) -> None:
        super().__init__(metric, labels)
        self._value: float | None = None

    def set(self, value: float) -> None:
        """Set the current value."""
        if not ((value.__class__ is float or value.__class__ is int) and -_MAX <= value <= _MAX):
            value = finite_number(self.metric, value)
        self._push(value)

    def inc(self, value: float = 1) -> None:
        """Add `value` (default 1) to the current value, which starts at 0."""
        self._push(_UP if value is _ONE else (finite_number(self.metric, value),))

    def dec(self, value: float = 1) -> None:
        """Subtract `value` (default 1) from the current value, which starts at 0."""
        self._push(_DOWN if value is _ONE else (-finite_number(self.metric, value),))

    def _fold(self, batch: list) -> None:
        current = 0 if self._value is None else self._value
        values = []
        for op in batch:  # replay sets and deltas in the order they were appended
            current = current + op[0] if op.__class__ is tuple else op
            values.append(current)
        self._value = current
        self._agg.add(values)

    def _close(self, start_ns: int, interval_s: float) -> MetricRollup | None:
        value = self._value
        if value is None:
            return None
        agg, self._agg = self._agg, _Aggregate()
        if not agg.count:
            agg.add([value])
        return agg.rollup(self, start_ns, interval_s, last=value)

    def _totals(self) -> Totals | None:
        return None if self._value is None else Totals(dict(self.labels), self._value)


class HistogramSeries(Series):
    """A histogram series: count/sum/min/max/last plus a mergeable 1%-relative-error sketch."""

    __slots__ = ("_life", "_life_count", "_life_last", "_life_sum", "_sketch")
    kind = "histogram"

    def __init__(self, metric: str, labels: dict[str, str]) -> None:
        super().__init__(metric, labels)
        self._sketch = LogSketch()
        self._life = LogSketch()  # the closed intervals' sketches merged: the lifetime distribution
        self._life_count = 0
        self._life_sum = 0.0
        self._life_last = 0.0

    def observe(self, value: float) -> None:
        """Record one observation."""
        # Series._push inlined: one Python frame less on the histogram hot path (Histogram.observe too).
        if not ((value.__class__ is float or value.__class__ is int) and -_MAX <= value <= _MAX):
            value = finite_number(self.metric, value)
        pending = self._pending
        pending.append(value)
        if len(pending) >= FOLD_AT:
            self.fold()

    def _fold(self, batch: list) -> None:
        self._agg.add(batch)
        self._sketch.add_many(batch)

    def _close(self, start_ns: int, interval_s: float) -> MetricRollup | None:
        agg, self._agg = self._agg, _Aggregate()
        if not agg.count:
            return None
        sketch, self._sketch = self._sketch, LogSketch()
        self._life.merge(sketch)
        self._life_count += agg.count
        self._life_sum += agg.total
        self._life_last = agg.last
        return agg.rollup(self, start_ns, interval_s, last=agg.last, sketch=sketch.to_model())

    def _totals(self) -> Totals | None:
        agg = self._agg
        count = self._life_count + agg.count
        if not count:
            return None
        sketch = LogSketch(self._life.gamma)
        sketch.merge(self._life)
        sketch.merge(self._sketch)
        return Totals(dict(self.labels), agg.last if agg.count else self._life_last, count,
                      self._life_sum + agg.total, sketch)
