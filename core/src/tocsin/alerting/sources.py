"""What a rule sees at one evaluation time: values per label set, read from storage only.

Every kind reads the window (now - window, now] through the storage protocol, so rules work the same on
every backend, in backtests (any past `now`) and before the health and workflow services exist:

* metric: `query_metrics` with the rule's aggregate, matchers and `by` groups, one value per group;
* absent: the same query counting points; no series at all is the single value None;
* log: how many records match the query and minimum level (`search_logs(...).total`);
* health: the component's latest result (0 healthy, 1 degraded, 2 unhealthy); none, or `unknown`, is nodata;
* workflow: executions that started in the window: failed / finished, failures, or run durations.

Within one cycle, rules that run the same metric query share its result (`Source`). A `Reading` with
`nodata` set means the query worked and found nothing to judge; errors propagate to
the evaluator, which maps them per rule.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import msgspec

from tocsin.alerting.rules import HEALTH_VALUES, CompiledRule
from tocsin.alerting.windows import Cycle
from tocsin.models import SeriesPoints
from tocsin.storage.protocol import ExecutionQuery, LogQuery, MetricQuery, StorageBackend
from tocsin.storage.rollups import QUANTILES

MAX_EXECUTIONS = 100_000
"""Most workflow executions one evaluation reads; beyond it the newest ones are judged."""
PAGE = 1000


class Source:
    """Storage as one evaluation cycle reads it: a metric query that several rules share runs once, and one
    the streaming state can answer (`tocsin.alerting.windows`) is answered from memory."""

    def __init__(self, storage: StorageBackend, streamed: Cycle | None = None) -> None:
        self.storage = storage
        self.streamed = streamed
        self._metrics: dict[bytes, list[SeriesPoints]] = {}

    async def query_metrics(self, query: MetricQuery) -> list[SeriesPoints]:
        """The query's result, from this cycle's earlier identical query when there was one."""
        key = _ENCODE(query)
        found = self._metrics.get(key)
        if found is None:
            found = self.streamed.answer(query) if self.streamed is not None else None
            if found is None:
                found = await self.storage.query_metrics(query)
            self._metrics[key] = found
        return found


_ENCODE = msgspec.msgpack.Encoder().encode


class Reading(msgspec.Struct, kw_only=True):
    """A rule's view at one time: (series labels, value) pairs, or `nodata` when there is nothing to judge."""

    values: list[tuple[dict[str, str], float | None]] = []
    nodata: bool = False


def _window(rule: CompiledRule, now_ns: int) -> tuple[int, int]:
    """(start, end) of the half-open storage range that is the window (now - window, now]."""
    return now_ns - round(rule.config.window * 1e9) + 1, now_ns + 1


async def _metric(rule: CompiledRule, source: Source, now_ns: int) -> Reading:
    start, end = _window(rule, now_ns)
    absent = rule.kind == "absent"
    query = MetricQuery(name=rule.config.metric or "", start_ns=start, end_ns=end,
                        aggregate="count" if absent else rule.config.aggregate, matchers=rule.matchers,
                        by=[] if absent else list(rule.config.by))
    series = await source.query_metrics(query)
    if absent:
        return Reading(values=[({}, series[0].points[-1][1] if series else None)])
    values = [(item.labels, item.points[-1][1]) for item in series if item.points]
    return Reading(values=values, nodata=not values)


async def _log(rule: CompiledRule, source: Source, now_ns: int) -> Reading:
    storage = source.storage
    start, end = _window(rule, now_ns)
    query = LogQuery(text=rule.config.query or "", level=rule.config.level, start_ns=start, end_ns=end, limit=1)
    page = await storage.search_logs(query)
    total = page.total
    if total is None:  # the backend could not count: page through (bounded by the window)
        total, cursor = len(page.items), page.next_cursor
        while cursor is not None:
            page = await storage.search_logs(msgspec.structs.replace(query, limit=PAGE, cursor=cursor))
            total, cursor = total + len(page.items), page.next_cursor
    return Reading(values=[({}, float(total))])


async def _health(rule: CompiledRule, source: Source, now_ns: int) -> Reading:
    storage = source.storage
    start, end = _window(rule, now_ns)
    component = rule.config.component or ""
    latest = await storage.health_history(component, start_ns=start, end_ns=end, limit=1)
    if not latest or latest[0].status not in HEALTH_VALUES:
        return Reading(nodata=True)
    return Reading(values=[({"component": component}, HEALTH_VALUES[latest[0].status])])


def _aggregate(name: str, values: list[float]) -> float:
    """An aggregate over exact values (run durations); percentiles by nearest rank."""
    ordered = sorted(values)
    if name in QUANTILES:
        rank = max(1, math.ceil(QUANTILES[name] * len(ordered)))
        return ordered[rank - 1]
    return {
        "avg": lambda: sum(ordered) / len(ordered),
        "min": lambda: ordered[0],
        "max": lambda: ordered[-1],
        "sum": lambda: sum(ordered),
        "count": lambda: float(len(ordered)),
        "last": lambda: values[0],
    }[name]()


async def _workflow(rule: CompiledRule, source: Source, now_ns: int) -> Reading:
    storage = source.storage
    start, end = _window(rule, now_ns)
    name = rule.config.workflow or ""
    query = ExecutionQuery(name=name, start_ns=start, end_ns=end, limit=PAGE)
    finished: list[tuple[str, float]] = []  # newest first: (status, duration seconds)
    seen = 0
    while seen < MAX_EXECUTIONS:
        page = await storage.list_executions(query)
        seen += len(page.items)
        finished += [(run.status, (run.ended_ns - run.started_ns) / 1e9) for run in page.items
                     if run.ended_ns is not None and run.status != "running"]
        if page.next_cursor is None:
            break
        query = msgspec.structs.replace(query, cursor=page.next_cursor)
    labels = {"workflow": name}
    failures = sum(1 for status, _ in finished if status == "failed")
    measure = rule.config.measure or "failure_rate"
    if measure == "failures":
        return Reading(values=[(labels, float(failures))])
    if not finished:
        return Reading(nodata=True)
    if measure == "failure_rate":
        return Reading(values=[(labels, failures / len(finished))])
    return Reading(values=[(labels, _aggregate(rule.config.aggregate, [duration for _, duration in finished]))])


READERS: dict[str, Callable[[CompiledRule, Source, int], Awaitable[Reading]]] = {
    "metric": _metric,
    "absent": _metric,
    "log": _log,
    "health": _health,
    "workflow": _workflow,
}


async def read(rule: CompiledRule, source: Source, now_ns: int) -> Reading:
    """What `rule` sees at `now_ns`."""
    return await READERS[rule.kind](rule, source, now_ns)
