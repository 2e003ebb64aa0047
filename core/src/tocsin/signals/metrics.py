"""In-process metric instruments, aggregated per flush interval into MetricRollups.

    metrics = MetricsRegistry()
    requests = metrics.counter("http_requests_total", "Requests served")
    requests.inc(route="/", code=200)           # label values become str
    ok = requests.labels(route="/", code=200)   # a bound handle: the fastest way to record
    ok.inc()
    metrics.histogram("http_request_seconds").observe(0.042, route="/")
    rollups = metrics.collect()                 # everything since the previous collect
    for info, totals in metrics.totals():       # every series since it was created (a scrape's view)
        ...

Rollups per interval: a counter reports its increase as `sum`, the number of inc calls as `count`,
min/max over the increments and its running total as `last` (no rollup if it was not incremented);
a gauge reports count/sum/min/max/last of the values it held, or repeats its current value once if it
was left alone; a histogram reports count/sum/min/max/last and a LogSketch for percentiles.

Label sets are resolved through a cache keyed by the call's `tuple(labels.items())`, so a repeated
call with str values costs one dict lookup (int and bool values take a slower, type-aware cache; other
values are converted on every call). The first sight of a label set validates its names, turns its
values into str and finds or creates the series under the instrument's lock. Each metric holds at most
`max_series` label sets; later ones are recorded into one `{"overflow": "true"}` series and a single
"cardinality_limit" warning Event is sent. Recording itself takes no lock: see tocsin.signals.series.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import ClassVar, Generic, TypeVar

import msgspec

from tocsin.errors import ConfigError, InstrumentError
from tocsin.models import Event, MetricKind, MetricRollup
from tocsin.signals.naming import check_label_name, check_metric_name, finite_number
from tocsin.signals.series import FOLD_AT, CounterSeries, GaugeSeries, HistogramSeries, Series, Totals

__all__ = [
    "Counter",
    "CounterSeries",
    "Gauge",
    "GaugeSeries",
    "Histogram",
    "HistogramSeries",
    "InstrumentInfo",
    "MetricsRegistry",
    "Totals",
]

DEFAULT_MAX_SERIES = 2000
OVERFLOW_LABELS = (("overflow", "true"),)

_ONE = 1  # see tocsin.signals.series: identity with the cached small int 1
_MAX = sys.float_info.max  # see tocsin.signals.series: the inline value check
_logger = logging.getLogger(__name__)

_STR = frozenset({str})
_TYPED_CACHEABLE = frozenset({str, int, bool})  # equal values of one of these types print the same

S = TypeVar("S", bound=Series)
LabelKey = tuple[tuple[str, str], ...]


def _label_value(value: object) -> str:
    """A label value as str; a str subclass gives its string (a `(str, Enum)` member equals its value)."""
    return str.__str__(value) if isinstance(value, str) else str(value)


class InstrumentInfo(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """What `MetricsRegistry.instruments()` reports about one instrument."""

    name: str
    kind: MetricKind
    description: str
    unit: str
    series: int


class _Instrument(Generic[S]):
    """A named metric and its series, one per label set, capped at `max_series`."""

    __slots__ = (
        "_cache",
        "_cache_limit",
        "_lock",
        "_max_series",
        "_on_overflow",
        "_overflow",
        "_series",
        "_typed_cache",
        "_unlabeled",
        "description",
        "name",
        "unit",
    )
    kind: ClassVar[MetricKind]
    _series_type: ClassVar[type[Series]]

    def __init__(
        self,
        name: str,
        description: str,
        unit: str,
        *,
        max_series: int,
        on_overflow: Callable[[str, dict[str, str]], None],
    ) -> None:
        self.name = name
        self.description = description
        self.unit = unit
        self._max_series = max_series
        self._on_overflow = on_overflow
        self._series: dict[LabelKey, S] = {}
        self._overflow: S | None = None
        self._unlabeled: S | None = None  # the series for no labels, without a dict lookup
        # call-site key -> series; read without a lock (a dict lookup is atomic), written under _lock.
        self._cache: dict[tuple, S] = {}
        self._typed_cache: dict[tuple, S] = {}
        self._cache_limit = 4 * max_series
        self._lock = threading.Lock()

    def labels(self, **labels: object) -> S:
        """The series (bound handle) for this label set; keep it to record without any label lookup."""
        return self.series_for(labels)

    def series_for(self, labels: dict[str, object]) -> S:
        """The series for a label dict (Counter.inc and Histogram.observe inline this lookup for speed)."""
        if not labels:
            return self._unlabeled or self._resolve(labels)
        try:
            return self._cache.get(tuple(labels.items())) or self._resolve(labels)
        except TypeError:  # an unhashable label value
            return self._resolve(labels)

    def _resolve(self, labels: dict[str, object]) -> S:
        """The slow path of a label lookup: non-str values, or a label set not seen at this call site yet.

        `_cache` holds only label sets whose values are all exact str, because a lookup by value finds any
        EQUAL key and `1 == 1.0 == True` print differently; int and bool values are cached in `_typed_cache`
        with their exact types; any other value is converted on every call.
        """
        raw = tuple(labels.items())
        types = tuple(map(type, labels.values()))
        typed = (raw, types) if _TYPED_CACHEABLE.issuperset(types) else None
        if typed is not None and (series := self._typed_cache.get(typed)) is not None:
            return series
        for label in labels:
            check_label_name(self.name, label)
        key: LabelKey = tuple(sorted((label, _label_value(value)) for label, value in raw))
        overflowed = False
        with self._lock:
            series = self._series.get(key)
            if series is None:
                if len(self._series) < self._max_series:
                    series = self._series[key] = self._series_type(self.name, dict(key))
                else:
                    series = self._overflow
                    if series is None:
                        series = self._overflow = self._series_type(self.name, dict(OVERFLOW_LABELS))
                        overflowed = True
            if not raw:
                self._unlabeled = series
            elif len(self._cache) + len(self._typed_cache) < self._cache_limit:
                if _STR.issuperset(types):
                    self._cache[raw] = series
                elif typed is not None:
                    self._typed_cache[typed] = series
        if overflowed:
            self._on_overflow(self.name, dict(key))
        return series

    def all_series(self) -> list[S]:
        """Every series, the overflow series last (a snapshot; safe while others record)."""
        series = list(self._series.values())
        if self._overflow is not None:
            series.append(self._overflow)
        return series

    def info(self) -> InstrumentInfo:
        """Name, kind, description, unit and series count."""
        return InstrumentInfo(
            name=self.name,
            kind=self.kind,
            description=self.description,
            unit=self.unit,
            series=len(self.all_series()),
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} series={len(self.all_series())}>"


class Counter(_Instrument[CounterSeries]):
    """A monotonically increasing count; each interval reports its increase."""

    __slots__ = ()
    kind = "counter"
    _series_type = CounterSeries

    def inc(self, value: float = 1, **labels: object) -> None:
        """Add `value` (>= 0, default 1) to the series for `labels`."""
        if labels:  # series_for, inlined
            try:
                series = self._cache.get(tuple(labels.items())) or self._resolve(labels)
            except TypeError:  # an unhashable label value
                series = self._resolve(labels)
        else:
            series = self._unlabeled or self._resolve(labels)
        if value is _ONE:
            series._tick()  # CounterSeries.inc's +1 path, inlined: this is the hottest call there is
        else:
            series.inc(value)


class Gauge(_Instrument[GaugeSeries]):
    """A value that goes up and down; each interval reports the values it held and its last value."""

    __slots__ = ()
    kind = "gauge"
    _series_type = GaugeSeries

    def set(self, value: float, **labels: object) -> None:
        """Set the series for `labels` to `value`."""
        self.series_for(labels).set(value)

    def inc(self, value: float = 1, **labels: object) -> None:
        """Add `value` (default 1) to the series for `labels`."""
        self.series_for(labels).inc(value)

    def dec(self, value: float = 1, **labels: object) -> None:
        """Subtract `value` (default 1) from the series for `labels`."""
        self.series_for(labels).dec(value)


class Histogram(_Instrument[HistogramSeries]):
    """A distribution of observations: count/sum/min/max/last and a percentile sketch per interval."""

    __slots__ = ()
    kind = "histogram"
    _series_type = HistogramSeries

    def observe(self, value: float, **labels: object) -> None:
        """Record `value` in the series for `labels`."""
        if labels:  # series_for, inlined
            try:
                series = self._cache.get(tuple(labels.items())) or self._resolve(labels)
            except TypeError:  # an unhashable label value
                series = self._resolve(labels)
        else:
            series = self._unlabeled or self._resolve(labels)
        # HistogramSeries.observe inlined (one Python frame less on the hot path).
        if not ((value.__class__ is float or value.__class__ is int) and -_MAX <= value <= _MAX):
            value = finite_number(self.name, value)
        pending = series._pending
        pending.append(value)
        if len(pending) >= FOLD_AT:
            series.fold()


InstrumentT = TypeVar("InstrumentT", Counter, Gauge, Histogram)


class MetricsRegistry:
    """Declares instruments by name and drains their per-interval rollups, from any thread."""

    def __init__(
        self,
        *,
        max_series: int = DEFAULT_MAX_SERIES,
        on_event: Callable[[Event], None] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if isinstance(max_series, bool) or not isinstance(max_series, int) or max_series < 1:
            raise ConfigError(f"metrics max_series must be an int >= 1, got {max_series!r}")
        self.max_series = max_series
        self._on_event = on_event
        self._clock = clock
        self._instruments: dict[str, Counter | Gauge | Histogram] = {}
        self._declare_lock = threading.Lock()
        self._collect_lock = threading.Lock()
        self._interval_start = clock()

    def counter(self, name: str, description: str = "", unit: str = "") -> Counter:
        """The counter called `name`, declared on first use; the same object on every later call."""
        return self._declare(Counter, name, description, unit)

    def gauge(self, name: str, description: str = "", unit: str = "") -> Gauge:
        """The gauge called `name`, declared on first use; the same object on every later call."""
        return self._declare(Gauge, name, description, unit)

    def histogram(self, name: str, description: str = "", unit: str = "") -> Histogram:
        """The histogram called `name`, declared on first use; the same object on every later call."""
        return self._declare(Histogram, name, description, unit)

    def record(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        """Record an ad-hoc observation of `name`, aggregated like a histogram (declared on first use)."""
        try:
            instrument = self._instruments[name]
        except (KeyError, TypeError):
            instrument = self.histogram(name)
        if instrument.__class__ is not Histogram:
            instrument = self.histogram(name)  # raises: the name is another kind
        instrument.series_for(labels or {}).observe(value)

    def declares(self, name: str) -> bool:
        """Whether an instrument called `name` is declared here (this process records the metric)."""
        return name in self._instruments

    @property
    def interval_start_ns(self) -> int:
        """When the interval being aggregated now began: the start of the next collect's rollups."""
        return self._interval_start

    def collect(self) -> list[MetricRollup]:
        """Drain everything aggregated since the previous collect into rollups, one per active series."""
        with self._collect_lock:
            start_ns = self._interval_start
            now_ns = self._interval_start = self._clock()
            interval_s = (now_ns - start_ns) / 1e9
            rollups = []
            for instrument in list(self._instruments.values()):
                for series in instrument.all_series():
                    rollup = series.rollup(start_ns, interval_s)
                    if rollup is not None:
                        rollups.append(rollup)
            return rollups

    def totals(self) -> list[tuple[InstrumentInfo, list[Totals]]]:
        """Every instrument (by name) with each series' totals since it was created; starts no new interval,
        so exporters such as a Prometheus scrape read cumulative values without disturbing the flusher."""
        result = []
        for _, instrument in sorted(self._instruments.items()):
            series = [totals for series in instrument.all_series() if (totals := series.totals()) is not None]
            result.append((instrument.info(), series))
        return result

    def instruments(self) -> list[InstrumentInfo]:
        """Every declared instrument with its kind, description, unit and series count, by name."""
        return [instrument.info() for _, instrument in sorted(self._instruments.items())]

    def _declare(self, kind: type[InstrumentT], name: str, description: str, unit: str) -> InstrumentT:
        instrument = self._instruments.get(name) if isinstance(name, str) else None
        if instrument is None:
            check_metric_name(name)
            with self._declare_lock:
                instrument = self._instruments.get(name)
                if instrument is None:
                    instrument = self._instruments[name] = kind(
                        name, description, unit, max_series=self.max_series, on_overflow=self._overflowed
                    )
        if instrument.__class__ is not kind:
            raise InstrumentError(
                f"metric {name!r} is already declared as a {instrument.kind}; it cannot also be a {kind.kind}"
            )
        return instrument  # type: ignore[return-value]  # its class is `kind`, checked above

    def _overflowed(self, metric: str, labels: dict[str, str]) -> None:
        """Warn once per metric that its series cap was reached and new label sets now go to overflow."""
        if self._on_event is None:
            return
        event = Event(
            topic="metrics",
            type="cardinality_limit",
            time_ns=self._clock(),
            data={
                "severity": "warning",
                "metric": metric,
                "max_series": self.max_series,
                "labels": labels,
                "message": (
                    f"metric {metric!r} reached {self.max_series} label sets; new label sets "
                    f"(first: {labels}) are recorded in the series {dict(OVERFLOW_LABELS)}"
                ),
            },
        )
        try:
            self._on_event(event)
        except Exception:  # a failing event sink must not break the application's recording call
            _logger.exception("on_event failed for the cardinality_limit event of metric %r", metric)
