"""`/api/v1` metrics endpoints: what is stored, aggregate queries, label values, and ingest of samples.

Queries read the stored rollups through `storage.query_metrics` (the same evaluation every backend shares,
`tocsin.ext.evaluate`), so the aggregates are exactly the core's: avg, min, max, sum, count, rate, last and
the p50/p95/p99 of merged sketches. A range defaults to the hour before `end` (default: now).

Posted samples are recorded through `monitor.metrics` like in-process recording: each is aggregated into the
current flush interval of its series and stored at the next flush, not stored as a point of its own.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from typing import Annotated, Literal

import msgspec
from litestar import get, post
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from tocsin import InstrumentError
from tocsin.ext import MetricKind, MetricQuery, SeriesPoints, StorageBackend
from tocsin_api import params
from tocsin_api.deps import MonitorDep, storage_of

AGGREGATES: tuple[str, ...] = typing.get_args(typing.get_type_hints(MetricQuery)["aggregate"])
"""The aggregates the core evaluates (read from `MetricQuery.aggregate`, so they stay in step with it)."""

RESERVED_PREFIX = "tocsin_"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class MetricDescription(msgspec.Struct, kw_only=True):
    """A stored metric: its kind, series count and label names; unit and description when this process
    declared the instrument (storage keeps neither)."""

    name: str
    kind: MetricKind
    series: int
    label_names: list[str]
    unit: str = ""
    description: str = ""


class MetricResult(msgspec.Struct, kw_only=True):
    """The answer to a metric query: the query as evaluated (defaults filled in) and one entry per series."""

    name: str
    aggregate: str
    start_ns: int
    end_ns: int
    step_s: float | None
    by: list[str] | None
    series: list[SeriesPoints]


class LabelValues(msgspec.Struct, kw_only=True):
    """The distinct values one label of a metric took over [start_ns, end_ns), sorted."""

    metric: str
    label: str
    start_ns: int
    end_ns: int
    values: list[str]


class MetricSample(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One sample to record: a counter increment, a gauge value or a histogram observation."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    value: float
    labels: dict[str, str] = {}


class SamplesAccepted(msgspec.Struct, kw_only=True):
    """How many samples were recorded (all of them: a batch is recorded whole or not at all)."""

    accepted: int




def _label_names(values: list[str] | None, name: str) -> list[str] | None:
    """`by=a,b` or `by=a&by=b` as label names; absent is None (every series apart), empty merges all."""
    if values is None:
        return None
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    for label in names:
        if not _LABEL_NAME.fullmatch(label):
            raise params.bad(name, f"{label!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
    return list(dict.fromkeys(names))


def _bad_sample(index: int, field: str, reason: str) -> ValidationException:
    """A 400 naming the sample (`[3]`) or its field (`[3].value`) in the body, and why."""
    key = f"[{index}].{field}" if field else f"[{index}]"
    return ValidationException(f"{key}: {reason}", extra=[{"key": key, "message": reason, "source": "body"}])


async def _known_or_404(storage: StorageBackend, name: str) -> None:
    if name not in {info.name for info in await storage.list_metrics()}:
        raise NotFoundException(f"no metric {name!r} is stored")


@get("/metrics", summary="Stored metrics with their kind, series, labels and unit", tags=["metrics"])
async def list_metrics(monitor: MonitorDep) -> list[MetricDescription]:
    """Every stored metric name, sorted, with unit and description where this process declared it."""
    declared = {info.name: info for info in monitor.metrics.instruments()}
    found = []
    for info in await storage_of(monitor).list_metrics():
        instrument = declared.get(info.name)
        found.append(MetricDescription(
            name=info.name, kind=info.kind, series=info.series, label_names=info.label_names,
            unit=instrument.unit if instrument is not None else "",
            description=instrument.description if instrument is not None else "",
        ))
    return found


@get("/metrics/{name:str}/query", summary="Aggregate a metric per step, by labels", tags=["metrics"])
async def query_metric(
    monitor: MonitorDep,
    name: FromPath[str],
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
    step: FromQuery[str | None] = None,
    agg: FromQuery[str] = "avg",
    match: Annotated[list[str] | None, QueryParameter(name="match[]")] = None,
    by: FromQuery[list[str] | None] = None,
) -> MetricResult:
    """One point per step (or one for the whole range without `step`) per series or `by` group."""
    if agg not in AGGREGATES:
        raise params.bad("agg", f"{agg!r} is not an aggregate; use one of {', '.join(AGGREGATES)}")
    start_ns, end_ns = params.time_range(start, end)
    step_s = params.seconds(step, "step")
    if step_s is not None and step_s <= 0:
        raise params.bad("step", "must be a positive duration")
    group = _label_names(by, "by")
    storage = storage_of(monitor)
    query = MetricQuery(name=name, start_ns=start_ns, end_ns=end_ns, aggregate=agg,  # type: ignore[arg-type]
                        step_s=step_s, matchers=params.matchers(match), by=group)
    series = await storage.query_metrics(query)
    if not series:
        await _known_or_404(storage, name)
    return MetricResult(name=name, aggregate=agg, start_ns=start_ns, end_ns=end_ns, step_s=step_s, by=group,
                        series=series)


@get("/metrics/{name:str}/labels/{label:str}/values", summary="Distinct values of a metric's label",
     tags=["metrics"])
async def label_values(
    monitor: MonitorDep,
    name: FromPath[str],
    label: FromPath[str],
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
    match: Annotated[list[str] | None, QueryParameter(name="match[]")] = None,
) -> LabelValues:
    """The values `label` took in series of `name` with data in [start, end), sorted."""
    if not _LABEL_NAME.fullmatch(label):
        raise params.bad_path("label", f"{label!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
    start_ns, end_ns = params.time_range(start, end)
    storage = storage_of(monitor)
    query = MetricQuery(name=name, start_ns=start_ns, end_ns=end_ns, aggregate="count",
                        matchers=params.matchers(match), by=[label])
    series = await storage.query_metrics(query)
    if not series:
        await _known_or_404(storage, name)
    values = sorted({s.labels[label] for s in series if label in s.labels})
    return LabelValues(metric=name, label=label, start_ns=start_ns, end_ns=end_ns, values=values)


@post("/metrics", status_code=202, opt={"scope": "write"}, summary="Record a batch of metric samples",
      tags=["metrics"])
async def ingest_metrics(monitor: MonitorDep, data: JSONBody[list[MetricSample]]) -> SamplesAccepted:
    """Record samples through `monitor.metrics`, aggregated into the current interval; all or none."""
    if not monitor.config.metrics.enabled:
        raise HTTPException(status_code=409, detail="metrics are disabled ([metrics] enabled = false)")
    registry = monitor.metrics
    recorders: list[Callable[[float], None]] = []
    for index, sample in enumerate(data):  # check every sample before recording any
        if sample.name.startswith(RESERVED_PREFIX):
            raise _bad_sample(index, "name", f"{sample.name!r}: names starting with {RESERVED_PREFIX!r} are "
                                             "reserved for tocsin's own metrics")
        if sample.kind == "counter" and sample.value < 0:
            raise _bad_sample(index, "value", f"counter {sample.name!r}: an increment must be >= 0, "
                                              f"got {sample.value!r}")
        try:
            if sample.kind == "counter":
                recorders.append(registry.counter(sample.name).labels(**sample.labels).inc)
            elif sample.kind == "gauge":
                recorders.append(registry.gauge(sample.name).labels(**sample.labels).set)
            else:
                recorders.append(registry.histogram(sample.name).labels(**sample.labels).observe)
        except InstrumentError as error:
            raise _bad_sample(index, "", str(error)) from None
    for index, (record, sample) in enumerate(zip(recorders, data, strict=True)):
        try:
            record(sample.value)
        except InstrumentError as error:  # checked above; kept so a rule added in the core is still a 400
            raise _bad_sample(index, "value", str(error)) from None
    return SamplesAccepted(accepted=len(recorders))


ROUTES = [list_metrics, query_metric, label_values, ingest_metrics]
