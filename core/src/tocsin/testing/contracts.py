"""The storage contract: one test class every storage backend must pass unchanged.

A backend's test module subclasses `StorageBackendContract` and supplies an async `backend` fixture that
yields an opened backend with nothing in it:

    class TestSQLiteStorage(StorageBackendContract):
        @pytest.fixture
        async def backend(self, tmp_path):
            storage = SQLiteStorage(SQLiteStorage.Config(path=tmp_path / "t.db"))
            await storage.open()
            yield storage
            await storage.close()

The tests use only the `StorageBackend` protocol (no peeking at internals), fixed nanosecond timestamps
(no sleeping), and log text queries made of plain words and one quoted phrase.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tocsin.errors import QueryError, StorageError
from tocsin.models import (
    Alert,
    AlertTransition,
    Delivery,
    DeliveryAttempt,
    HealthResult,
    LabelMatcher,
    LogRecord,
    MetricRollup,
    SeriesPoints,
    Silence,
    Span,
    SpanEvent,
    SpanLink,
    WorkflowExecution,
    WorkflowStep,
)
from tocsin.signals.sketch import LogSketch
from tocsin.storage.protocol import (
    RETENTION_SIGNALS,
    AlertQuery,
    DeliveryQuery,
    ExecutionQuery,
    LogQuery,
    MetricQuery,
    Page,
    Retention,
    SpanQuery,
)

T0 = 1_700_000_000_000_000_000
"""Every timestamp in the contract is T0 plus a few seconds."""
SECOND = 1_000_000_000
DAY = 86_400


def _at(seconds: float) -> int:
    return T0 + round(seconds * SECOND)


def _rollup(
    name: str,
    labels: dict[str, str],
    at_s: float,
    values: list[float],
    *,
    kind: str = "histogram",
    sketch: bool = True,
) -> MetricRollup:
    """A rollup summarising `values` exactly as an instrument would."""
    summary = LogSketch()
    for value in values:
        summary.add(value)
    return MetricRollup(
        name=name,
        kind=kind,
        labels=labels,
        start_ns=_at(at_s),
        interval_s=10.0,
        count=len(values),
        sum=float(sum(values)),
        min=min(values),
        max=max(values),
        last=values[-1],
        sketch=summary.to_model() if sketch else None,
    )


API_A = {"service": "api", "route": "/a"}
API_B = {"service": "api", "route": "/b"}
WEB_A = {"service": "web", "route": "/a"}
LATENCY = [  # (labels, start in seconds after T0, values); the range [T0, T0+30s) holds all of them
    (API_A, 0, [1.0, 2.0, 3.0]),
    (API_A, 10, [4.0]),
    (API_A, 20, [5.0, 6.0]),
    (API_B, 0, [10.0]),
    (API_B, 20, [20.0, 30.0]),
    (WEB_A, 10, [100.0]),
]
WHOLE_RANGE = {  # aggregate -> value per series over [T0, T0+30s), series in label order: api/a, web/a, api/b
    "avg": [3.5, 100.0, 20.0],
    "min": [1.0, 100.0, 10.0],
    "max": [6.0, 100.0, 30.0],
    "sum": [21.0, 100.0, 60.0],
    "count": [6.0, 1.0, 3.0],
    "rate": [0.7, 100.0 / 30, 2.0],
    "last": [6.0, 100.0, 30.0],
}


def _sid(n: int) -> str:
    return f"{n:016x}"


def _tid(n: int) -> str:
    return f"{n:032x}"


def _span(
    n: int,
    *,
    trace: int = 1,
    parent: int | None = None,
    name: str = "GET /",
    service: str = "api",
    start_s: float = 0,
    duration_s: float | None = 1.0,
    status: str = "ok",
    attributes: dict[str, Any] | None = None,
) -> Span:
    return Span(
        trace_id=_tid(trace),
        span_id=_sid(n),
        parent_span_id=None if parent is None else _sid(parent),
        name=name,
        service=service,
        start_ns=_at(start_s),
        end_ns=None if duration_s is None else _at(start_s + duration_s),
        status=status,
        attributes=attributes or {},
    )


def _log(
    message: str,
    at_s: float,
    *,
    level: str = "info",
    service: str = "api",
    trace: int | None = None,
    span: int | None = None,
    execution: str | None = None,
) -> LogRecord:
    return LogRecord(
        time_ns=_at(at_s),
        level=level,
        message=message,
        service=service,
        trace_id=None if trace is None else _tid(trace),
        span_id=None if span is None else _sid(span),
        execution_id=execution,
    )


def _alert(
    fingerprint: str,
    *,
    rule: str = "high_latency",
    state: str = "firing",
    severity: str = "warning",
    labels: dict[str, str] | None = None,
    updated_s: float = 0,
) -> Alert:
    return Alert(
        fingerprint=fingerprint,
        rule=rule,
        labels=labels or {},
        state=state,
        severity=severity,
        updated_ns=_at(updated_s),
    )


def _transition(fingerprint: str, at_s: float, from_state: str, to_state: str) -> AlertTransition:
    return AlertTransition(
        fingerprint=fingerprint,
        rule="high_latency",
        time_ns=_at(at_s),
        from_state=from_state,
        to_state=to_state,
    )


def _delivery(
    delivery_id: str,
    created_s: float,
    *,
    next_s: float | None = None,
    channel: str = "log",
    fingerprint: str = "fp1",
    state: str = "pending",
) -> Delivery:
    return Delivery(
        id=delivery_id,
        channel=channel,
        fingerprint=fingerprint,
        kind="firing",
        idempotency_key=f"{fingerprint}:{delivery_id}",
        payload={"title": "High latency"},
        state=state,
        created_ns=_at(created_s),
        next_attempt_ns=_at(created_s if next_s is None else next_s),
    )


def _attempt(
    delivery_id: str, number: int, at_s: float, outcome: str = "retryable", error: str = ""
) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=delivery_id,
        attempt=number,
        time_ns=_at(at_s),
        outcome=outcome,
        latency_s=0.25,
        error=error,
    )


def _health(component: str, at_s: float, status: str = "healthy") -> HealthResult:
    return HealthResult(component=component, status=status, time_ns=_at(at_s), latency_s=0.01)


def _execution(
    execution_id: str, start_s: float, *, name: str = "nightly", status: str = "succeeded"
) -> WorkflowExecution:
    ended = None if status == "running" else _at(start_s + 5)
    return WorkflowExecution(
        id=execution_id, name=name, status=status, started_ns=_at(start_s), ended_ns=ended
    )


def _step(execution_id: str, name: str, start_s: float, status: str = "succeeded") -> WorkflowStep:
    return WorkflowStep(execution_id=execution_id, name=name, status=status, started_ns=_at(start_s))


async def _every_page(fetch: Callable[[str | None], Awaitable[Page[Any]]]) -> list[list[Any]]:
    """Follow next_cursor from the first page to the last; the items of each page."""
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        pages.append(page.items)
        if page.next_cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not end"
        cursor = page.next_cursor


def _points(series: list[SeriesPoints]) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
    return [(s.labels, [(t, pytest.approx(v)) for t, v in s.points]) for s in series]


class StorageBackendContract:
    """Subclass it in a backend's tests with an async `backend` fixture yielding an opened, empty backend."""

    # -- metrics -----------------------------------------------------------------------------------
    async def _write_latency(self, backend: Any) -> None:
        await backend.write_metrics(
            [_rollup("latency", labels, at, values) for labels, at, values in LATENCY]
        )

    async def _query(self, backend: Any, **fields: Any) -> list[SeriesPoints]:
        fields.setdefault("name", "latency")
        fields.setdefault("start_ns", _at(0))
        fields.setdefault("end_ns", _at(30))
        return await backend.query_metrics(MetricQuery(**fields))

    @pytest.mark.parametrize("aggregate", sorted(WHOLE_RANGE))
    async def test_metric_whole_range_aggregates(self, backend, aggregate):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate=aggregate)
        expected = WHOLE_RANGE[aggregate]
        assert _points(result) == [
            (API_A, [(_at(0), expected[0])]),
            (WEB_A, [(_at(0), expected[1])]),
            (API_B, [(_at(0), expected[2])]),
        ]

    @pytest.mark.parametrize(
        ("aggregate", "api_a", "api_b"),
        [
            ("avg", [2.0, 4.0, 5.5], [10.0, 25.0]),
            ("sum", [6.0, 4.0, 11.0], [10.0, 50.0]),
            ("count", [3.0, 1.0, 2.0], [1.0, 2.0]),
            ("min", [1.0, 4.0, 5.0], [10.0, 20.0]),
            ("max", [3.0, 4.0, 6.0], [10.0, 30.0]),
            ("last", [3.0, 4.0, 6.0], [10.0, 30.0]),
            ("rate", [0.6, 0.4, 1.1], [1.0, 5.0]),
        ],
    )
    async def test_metric_steps_aligned_to_start_skip_empty_buckets(self, backend, aggregate, api_a, api_b):
        await self._write_latency(backend)
        result = await self._query(
            backend, aggregate=aggregate, step_s=10, matchers=[LabelMatcher(label="service", value="api")]
        )
        assert _points(result) == [
            (API_A, [(_at(0), api_a[0]), (_at(10), api_a[1]), (_at(20), api_a[2])]),
            (API_B, [(_at(0), api_b[0]), (_at(20), api_b[1])]),  # no rollup in [10s, 20s): no point
        ]

    async def test_metric_rate_uses_the_bucket_cut_at_the_range_end(self, backend):
        await self._write_latency(backend)
        result = await self._query(
            backend,
            aggregate="rate",
            step_s=20,
            matchers=[LabelMatcher(label="route", value="/a"), LabelMatcher(label="service", value="api")],
        )
        # [0s, 20s) holds 1+2+3+4 = 10 over 20 s; [20s, 30s) holds 5+6 = 11 over the 10 s left in range
        assert _points(result) == [(API_A, [(_at(0), 0.5), (_at(20), 1.1)])]

    async def test_metric_step_buckets_align_to_start_ns(self, backend):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="sum", start_ns=_at(5), step_s=10, by=[])
        # buckets [5s, 15s) and [15s, 25s): the rollups at 0s fall before the range
        assert _points(result) == [({}, [(_at(5), 104.0), (_at(15), 61.0)])]

    async def test_metric_range_includes_start_and_excludes_end(self, backend):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="count", start_ns=_at(10), end_ns=_at(20), by=[])
        assert _points(result) == [({}, [(_at(10), 2.0)])]

    async def test_metric_group_by_label(self, backend):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="avg", by=["service"])
        assert _points(result) == [
            ({"service": "api"}, [(_at(0), 9.0)]),
            ({"service": "web"}, [(_at(0), 100.0)]),
        ]

    async def test_metric_group_by_nothing_merges_every_series(self, backend):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="sum", by=[])
        assert _points(result) == [({}, [(_at(0), 181.0)])]

    async def test_metric_group_by_keeps_series_apart_by_default(self, backend):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="count")
        assert [s.labels for s in result] == [API_A, WEB_A, API_B]

    @pytest.mark.parametrize(
        ("matcher", "expected"),
        [
            (LabelMatcher(label="service", op="=", value="api"), [API_A, API_B]),
            (LabelMatcher(label="service", op="!=", value="api"), [WEB_A]),
            (LabelMatcher(label="route", op="=~", value="/a|/c"), [API_A, WEB_A]),
            (LabelMatcher(label="route", op="=~", value="/"), []),  # regexes match the whole value
            (LabelMatcher(label="route", op="!~", value="/b"), [API_A, WEB_A]),
            (LabelMatcher(label="route", op="!~", value="/.*"), []),
            (LabelMatcher(label="env", op="=", value=""), [API_A, WEB_A, API_B]),  # missing label is ""
            (LabelMatcher(label="env", op="!=", value=""), []),
        ],
        ids=["eq", "ne", "re", "re-full-match", "nre", "nre-all", "missing-eq-empty", "missing-ne-empty"],
    )
    async def test_metric_label_matchers(self, backend, matcher, expected):
        await self._write_latency(backend)
        result = await self._query(backend, aggregate="count", matchers=[matcher])
        assert [s.labels for s in result] == expected

    async def test_metric_matchers_all_must_hold(self, backend):
        await self._write_latency(backend)
        result = await self._query(
            backend,
            aggregate="count",
            matchers=[
                LabelMatcher(label="service", value="api"),
                LabelMatcher(label="route", op="!=", value="/a"),
            ],
        )
        assert [s.labels for s in result] == [API_B]

    async def test_metric_invalid_regex_is_a_query_error(self, backend):
        await self._write_latency(backend)
        with pytest.raises(QueryError, match="route"):
            await self._query(backend, matchers=[LabelMatcher(label="route", op="=~", value="(unclosed")])

    @pytest.mark.parametrize(("aggregate", "q"), [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)])
    async def test_metric_percentiles_merge_sketches_within_one_percent(self, backend, aggregate, q):
        values = [float((i * 7919) % 1000 + 1) for i in range(1000)]  # 1..1000 shuffled
        await backend.write_metrics(
            [_rollup("payload", {"host": f"h{i % 2}"}, i, values[i * 100 : (i + 1) * 100]) for i in range(10)]
        )
        result = await backend.query_metrics(
            MetricQuery(name="payload", start_ns=_at(0), end_ns=_at(10), aggregate=aggregate, by=[])
        )
        exact = sorted(values)[int(q * (len(values) - 1))]
        assert len(result) == 1
        assert len(result[0].points) == 1
        assert result[0].points[0][1] == pytest.approx(exact, rel=0.01)

    async def test_metric_percentiles_per_step(self, backend):
        await self._write_latency(backend)
        result = await self._query(
            backend, aggregate="p50", step_s=10, matchers=[LabelMatcher(label="route", value="/b")]
        )
        (series,) = result
        assert [t for t, _ in series.points] == [_at(0), _at(20)]
        assert series.points[0][1] == pytest.approx(10.0, rel=0.01)
        assert series.points[1][1] == pytest.approx(20.0, rel=0.01)

    async def test_metric_percentile_without_sketches_gives_no_point(self, backend):
        await backend.write_metrics([_rollup("requests", API_A, 0, [1.0, 1.0], kind="counter", sketch=False)])
        assert await self._query(backend, name="requests", aggregate="p99") == []
        assert _points(await self._query(backend, name="requests", aggregate="sum")) == [
            (API_A, [(_at(0), 2.0)])
        ]

    async def test_metric_unknown_name_and_empty_range_give_nothing(self, backend):
        await self._write_latency(backend)
        assert await self._query(backend, name="no_such_metric") == []
        assert await self._query(backend, start_ns=_at(100), end_ns=_at(200)) == []

    async def test_metric_malformed_queries_are_query_errors(self, backend):
        await self._write_latency(backend)
        with pytest.raises(QueryError, match="end_ns"):
            await self._query(backend, start_ns=_at(30), end_ns=_at(30))
        with pytest.raises(QueryError, match="step_s"):
            await self._query(backend, step_s=0)
        with pytest.raises(QueryError, match="step_s"):
            await self._query(backend, step_s=1e-6, end_ns=_at(3600))

    async def test_metric_rollup_written_twice_is_merged(self, backend):
        first = _rollup("latency", API_A, 0, [5.0, 7.0])
        second = _rollup("latency", API_A, 0, [1.0, 9.0, 3.0])
        await backend.write_metrics([first])
        await backend.write_metrics([second])
        values = {}
        for aggregate in ("count", "sum", "min", "max", "last", "p50"):
            (series,) = await self._query(backend, aggregate=aggregate)
            values[aggregate] = series.points
        assert values["count"] == [(_at(0), 5.0)]
        assert values["sum"] == [(_at(0), 25.0)]
        assert values["min"] == [(_at(0), 1.0)]
        assert values["max"] == [(_at(0), 9.0)]
        assert values["last"] == [(_at(0), 3.0)]
        assert values["p50"][0][1] == pytest.approx(
            5.0, rel=0.01
        )  # median of 1 3 5 7 9: both sketches merged
        assert (await backend.list_metrics())[0].series == 1

    async def test_list_metrics(self, backend):
        assert await backend.list_metrics() == []
        await self._write_latency(backend)
        await backend.write_metrics(
            [
                _rollup("errors", {"service": "api", "code": "500"}, 0, [1.0], kind="counter"),
                _rollup("errors", {"service": "api", "code": "500"}, 10, [2.0], kind="counter"),
                _rollup("cpu", {"host": "h1"}, 0, [0.5], kind="gauge"),
            ]
        )
        infos = await backend.list_metrics()
        assert [(i.name, i.kind, i.series, i.label_names) for i in infos] == [
            ("cpu", "gauge", 1, ["host"]),
            ("errors", "counter", 1, ["code", "service"]),
            ("latency", "histogram", 3, ["route", "service"]),
        ]

    # -- traces ------------------------------------------------------------------------------------
    async def test_running_span_is_replaced_by_its_completed_version(self, backend):
        await backend.write_spans([_span(1, duration_s=None, status="unset")])
        (running,) = await backend.get_trace(_tid(1))
        assert running.end_ns is None
        await backend.write_spans([_span(1, duration_s=2.5, status="error", attributes={"http.status": 500})])
        (done,) = await backend.get_trace(_tid(1))
        assert (done.end_ns, done.status, done.attributes) == (_at(2.5), "error", {"http.status": 500})
        page = await backend.search_spans(SpanQuery())
        assert [s.span_id for s in page.items] == [_sid(1)]

    async def test_span_round_trips_every_field(self, backend):
        span = Span(
            trace_id=_tid(7),
            span_id=_sid(7),
            parent_span_id=_sid(6),
            name="charge",
            service="billing",
            kind="client",
            start_ns=_at(1),
            end_ns=_at(2),
            status="error",
            status_message="card declined",
            attributes={"amount": 12.5, "retry": 2, "tags": ["a", "b"], "ok": False},
            events=[SpanEvent(name="exception", time_ns=_at(1.5), attributes={"type": "ValueError"})],
            links=[SpanLink(trace_id=_tid(8), span_id=_sid(8), attributes={"why": "retry of"})],
        )
        await backend.write_spans([span])
        assert await backend.get_trace(_tid(7)) == [span]

    async def test_get_trace_orders_by_start_and_unknown_is_empty(self, backend):
        await backend.write_spans(
            [
                _span(3, parent=1, start_s=2),
                _span(1, start_s=0, duration_s=5),
                _span(2, parent=1, start_s=1),
                _span(9, trace=2, start_s=0),
            ]
        )
        assert [s.span_id for s in await backend.get_trace(_tid(1))] == [_sid(1), _sid(2), _sid(3)]
        assert await backend.get_trace(_tid(99)) == []

    async def _write_span_set(self, backend: Any) -> None:
        await backend.write_spans(
            [
                _span(1, service="api", name="GET /users", start_s=0, duration_s=0.5),
                _span(
                    2,
                    parent=1,
                    service="db",
                    name="SELECT",
                    start_s=1,
                    duration_s=0.1,
                    attributes={"db.table": "users"},
                ),
                _span(
                    3,
                    trace=2,
                    service="api",
                    name="POST /orders",
                    start_s=2,
                    duration_s=3.0,
                    status="error",
                    attributes={"http.status": 500},
                ),
                _span(
                    4,
                    trace=2,
                    parent=3,
                    service="db",
                    name="INSERT",
                    start_s=3,
                    duration_s=2.0,
                    attributes={"db.table": "orders"},
                ),
                _span(
                    5, trace=3, service="api", name="GET /users", start_s=4, duration_s=None, status="unset"
                ),
            ]
        )

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (SpanQuery(), [5, 4, 3, 2, 1]),
            (SpanQuery(service="db"), [4, 2]),
            (SpanQuery(name="GET /users"), [5, 1]),
            (SpanQuery(status="error"), [3]),
            (SpanQuery(min_duration_ns=2 * SECOND), [4, 3]),  # inclusive; running spans have no duration
            (SpanQuery(max_duration_ns=SECOND // 2), [2, 1]),
            (SpanQuery(attributes={"db.table": "orders"}), [4]),
            (SpanQuery(attributes={"http.status": 500}), [3]),
            (SpanQuery(start_ns=_at(1), end_ns=_at(4)), [4, 3, 2]),  # start in [start_ns, end_ns)
            (SpanQuery(root_only=True), [5, 3, 1]),
            (SpanQuery(service="api", root_only=True, status="ok"), [1]),
        ],
        ids=[
            "all",
            "service",
            "name",
            "status",
            "min-duration",
            "max-duration",
            "attribute-str",
            "attribute-int",
            "time-range",
            "root-only",
            "combined",
        ],
    )
    async def test_search_spans_filters_newest_first(self, backend, query, expected):
        await self._write_span_set(backend)
        page = await backend.search_spans(query)
        assert [s.span_id for s in page.items] == [_sid(n) for n in expected]
        assert page.next_cursor is None

    async def test_search_spans_paginates_without_duplicates_or_gaps(self, backend):
        # 25 spans, several sharing a start time, so the cursor must break ties
        await backend.write_spans([_span(n, trace=n, start_s=n // 3) for n in range(1, 26)])
        pages = await _every_page(lambda cursor: backend.search_spans(SpanQuery(limit=10, cursor=cursor)))
        assert [len(page) for page in pages] == [10, 10, 5]
        spans = [span for page in pages for span in page]
        assert sorted(s.span_id for s in spans) == sorted(_sid(n) for n in range(1, 26))
        starts = [s.start_ns for s in spans]
        assert starts == sorted(starts, reverse=True)

    async def test_search_spans_exact_page_has_no_next_cursor(self, backend):
        await backend.write_spans([_span(n, start_s=n) for n in range(1, 5)])
        first = await backend.search_spans(SpanQuery(limit=2))
        second = await backend.search_spans(SpanQuery(limit=2, cursor=first.next_cursor))
        assert [s.span_id for s in first.items + second.items] == [_sid(n) for n in (4, 3, 2, 1)]
        assert second.next_cursor is None

    async def test_search_spans_rejects_a_bad_cursor(self, backend):
        await self._write_span_set(backend)
        with pytest.raises(QueryError, match="cursor"):
            await backend.search_spans(SpanQuery(cursor="not a cursor!"))

    # -- logs --------------------------------------------------------------------------------------
    async def _write_log_set(self, backend: Any) -> None:
        await backend.write_logs(
            [
                _log("service started on port 8000", 0, level="info", service="api"),
                _log(
                    "payment failed for order 7",
                    1,
                    level="error",
                    service="billing",
                    trace=1,
                    span=11,
                    execution="run-1",
                ),
                _log("cache miss for user 42", 2, level="debug", service="api", trace=1, span=12),
            ]
        )
        await backend.write_logs(
            [
                _log("failed payment retried for order 7", 3, level="warning", service="billing", trace=2),
                _log("disk almost full", 4, level="critical", service="ops", execution="run-1"),
            ]
        )

    async def _search(self, backend: Any, **fields: Any) -> list[str]:
        page = await backend.search_logs(LogQuery(**fields))
        return [hit.record.message for hit in page.items]

    async def test_write_logs_assigns_growing_ids(self, backend):
        await self._write_log_set(backend)
        page = await backend.search_logs(LogQuery())
        by_time = sorted(page.items, key=lambda hit: hit.record.time_ns)
        ids = [hit.record.id for hit in by_time]
        assert all(isinstance(i, int) for i in ids)
        assert ids == sorted(ids)
        assert len(set(ids)) == 5
        await backend.write_logs([_log("later", 5)])
        newest = (await backend.search_logs(LogQuery(limit=1))).items[0].record
        assert newest.id > max(ids)

    async def test_search_logs_newest_first_even_when_written_out_of_order(self, backend):
        await backend.write_logs([_log("second", 2), _log("third", 3), _log("first", 1)])
        assert await self._search(backend) == ["third", "second", "first"]

    async def test_search_logs_without_text_matches_all_with_plain_snippets(self, backend):
        await self._write_log_set(backend)
        page = await backend.search_logs(LogQuery())
        assert page.total == 5
        assert [hit.snippet for hit in page.items] == [hit.record.message for hit in page.items]
        assert page.items[0].record.message == "disk almost full"

    async def test_search_logs_by_word(self, backend):
        await self._write_log_set(backend)
        page = await backend.search_logs(LogQuery(text="payment"))
        assert [hit.record.message for hit in page.items] == [
            "failed payment retried for order 7",
            "payment failed for order 7",
        ]
        assert all("[payment]" in hit.snippet for hit in page.items)
        assert page.total == 2

    async def test_search_logs_words_must_all_appear(self, backend):
        await self._write_log_set(backend)
        assert await self._search(backend, text="order failed") == [
            "failed payment retried for order 7",
            "payment failed for order 7",
        ]
        assert await self._search(backend, text="order disk") == []

    async def test_search_logs_by_phrase(self, backend):
        await self._write_log_set(backend)
        assert await self._search(backend, text='"payment failed"') == ["payment failed for order 7"]

    @pytest.mark.parametrize(
        ("level", "expected"),
        [
            ("debug", 5),
            ("info", 4),
            ("warning", 3),
            ("error", 2),
            ("critical", 1),
        ],
    )
    async def test_search_logs_level_is_a_minimum(self, backend, level, expected):
        await self._write_log_set(backend)
        page = await backend.search_logs(LogQuery(level=level))
        assert page.total == expected
        assert len(page.items) == expected

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"service": "billing"}, ["failed payment retried for order 7", "payment failed for order 7"]),
            ({"trace_id": _tid(1)}, ["cache miss for user 42", "payment failed for order 7"]),
            ({"span_id": _sid(12)}, ["cache miss for user 42"]),
            ({"execution_id": "run-1"}, ["disk almost full", "payment failed for order 7"]),
            (
                {"start_ns": _at(1), "end_ns": _at(3)},
                ["cache miss for user 42", "payment failed for order 7"],
            ),
            ({"start_ns": _at(4)}, ["disk almost full"]),
            ({"end_ns": _at(1)}, ["service started on port 8000"]),
            ({"text": "order", "level": "error", "service": "billing"}, ["payment failed for order 7"]),
        ],
        ids=["service", "trace", "span", "execution", "range", "from", "until", "combined"],
    )
    async def test_search_logs_filters(self, backend, fields, expected):
        await self._write_log_set(backend)
        assert await self._search(backend, **fields) == expected

    async def test_search_logs_paginates_with_total(self, backend):
        await backend.write_logs([_log(f"tick {n}", n // 4) for n in range(23)])  # ties on time
        await backend.write_logs([_log(f"tock {n}", 100 + n) for n in range(4)])
        pages = await _every_page(
            lambda cursor: backend.search_logs(LogQuery(text="tick", limit=10, cursor=cursor))
        )
        assert [len(page) for page in pages] == [10, 10, 3]
        hits = [hit for page in pages for hit in page]
        assert sorted(hit.record.message for hit in hits) == sorted(f"tick {n}" for n in range(23))
        keys = [(hit.record.time_ns, hit.record.id) for hit in hits]
        assert keys == sorted(keys, reverse=True)
        first = await backend.search_logs(LogQuery(text="tick", limit=10))
        assert first.total == 23

    async def test_search_logs_rejects_bad_cursor_and_limit(self, backend):
        await self._write_log_set(backend)
        with pytest.raises(QueryError, match="cursor"):
            await backend.search_logs(LogQuery(cursor="%%%"))
        with pytest.raises(QueryError, match="limit"):
            await backend.search_logs(LogQuery(limit=0))

    async def test_concurrent_log_writers_get_distinct_ids(self, backend):
        batches = [[_log(f"writer {w} line {n}", n) for n in range(20)] for w in range(5)]
        await asyncio.gather(*(backend.write_logs(batch) for batch in batches))
        page = await backend.search_logs(LogQuery(limit=1000))
        assert page.total == 100
        assert len({hit.record.id for hit in page.items}) == 100

    # -- alerts ------------------------------------------------------------------------------------
    async def test_save_and_get_alert(self, backend):
        assert await backend.get_alert("fp1") is None
        alert = _alert("fp1", labels={"service": "api"}, state="pending")
        await backend.save_alert(alert)
        assert await backend.get_alert("fp1") == alert
        fired = _alert("fp1", labels={"service": "api"}, state="firing", updated_s=10)
        await backend.save_alert(fired)
        assert await backend.get_alert("fp1") == fired

    async def test_saved_alert_does_not_follow_later_mutation(self, backend):
        alert = _alert("fp1", labels={"service": "api"})
        await backend.save_alert(alert)
        alert.state = "resolved"
        alert.labels["service"] = "changed"
        alert.silenced_by.append("s1")
        stored = await backend.get_alert("fp1")
        assert (stored.state, stored.labels, stored.silenced_by) == ("firing", {"service": "api"}, [])

    async def _write_alert_set(self, backend: Any) -> None:
        for alert in [
            _alert(
                "a",
                rule="high_latency",
                state="firing",
                severity="warning",
                labels={"service": "api"},
                updated_s=1,
            ),
            _alert(
                "b",
                rule="high_latency",
                state="pending",
                severity="warning",
                labels={"service": "web"},
                updated_s=2,
            ),
            _alert(
                "c",
                rule="errors",
                state="firing",
                severity="critical",
                labels={"service": "api"},
                updated_s=3,
            ),
            _alert(
                "d",
                rule="errors",
                state="resolved",
                severity="critical",
                labels={"service": "db"},
                updated_s=4,
            ),
        ]:
            await backend.save_alert(alert)

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (AlertQuery(), ["d", "c", "b", "a"]),
            (AlertQuery(rule="high_latency"), ["b", "a"]),
            (AlertQuery(states=["firing"]), ["c", "a"]),
            (AlertQuery(states=["pending", "resolved"]), ["d", "b"]),
            (AlertQuery(severity="critical"), ["d", "c"]),
            (AlertQuery(matchers=[LabelMatcher(label="service", value="api")]), ["c", "a"]),
            (AlertQuery(matchers=[LabelMatcher(label="service", op="=~", value="w.*|d.*")]), ["d", "b"]),
            (AlertQuery(rule="errors", states=["firing"], severity="critical"), ["c"]),
        ],
        ids=["all", "rule", "state", "states", "severity", "matcher", "regex", "combined"],
    )
    async def test_list_alerts_filters_most_recently_updated_first(self, backend, query, expected):
        await self._write_alert_set(backend)
        page = await backend.list_alerts(query)
        assert [alert.fingerprint for alert in page.items] == expected

    async def test_list_alerts_paginates(self, backend):
        for n in range(7):
            await backend.save_alert(_alert(f"fp{n}", updated_s=n // 2))
        pages = await _every_page(lambda cursor: backend.list_alerts(AlertQuery(limit=3, cursor=cursor)))
        assert [len(page) for page in pages] == [3, 3, 1]
        alerts = [alert for page in pages for alert in page]
        assert sorted(a.fingerprint for a in alerts) == [f"fp{n}" for n in range(7)]
        assert [a.updated_ns for a in alerts] == sorted((a.updated_ns for a in alerts), reverse=True)

    async def test_alert_history_oldest_first_keeping_the_last(self, backend):
        steps = [
            ("inactive", "pending"),
            ("pending", "firing"),
            ("firing", "resolved"),
            ("resolved", "pending"),
        ]
        for n, (old, new) in enumerate(steps):
            await backend.save_alert(_alert("fp1", state=new, updated_s=n), [_transition("fp1", n, old, new)])
        await backend.save_alert(_alert("fp2"), [_transition("fp2", 1.5, "inactive", "firing")])
        history = await backend.alert_history("fp1")
        assert [(t.from_state, t.to_state) for t in history] == steps
        assert [t.time_ns for t in await backend.alert_history("fp1", limit=2)] == [_at(2), _at(3)]
        assert await backend.alert_history("unknown") == []

    async def test_transitions_between_is_half_open_and_oldest_first(self, backend):
        await backend.save_alert(
            _alert("fp1"),
            [_transition("fp1", 0, "inactive", "pending"), _transition("fp1", 2, "pending", "firing")],
        )
        await backend.save_alert(
            _alert("fp2"),
            [_transition("fp2", 1, "inactive", "firing"), _transition("fp2", 3, "firing", "resolved")],
        )
        found = await backend.transitions_between(_at(0), _at(3))
        assert [(t.fingerprint, t.time_ns) for t in found] == [
            ("fp1", _at(0)),
            ("fp2", _at(1)),
            ("fp1", _at(2)),
        ]
        assert await backend.transitions_between(_at(10), _at(20)) == []

    async def test_save_alert_with_deliveries_enqueues_them(self, backend):
        deliveries = [_delivery("d1", 0, channel="log"), _delivery("d2", 0, channel="slack")]
        await backend.save_alert(_alert("fp1"), [_transition("fp1", 0, "pending", "firing")], deliveries)
        assert await backend.get_delivery("d1") == deliveries[0]
        claimed = await backend.claim_deliveries(_at(1), limit=10, lease_s=30)
        assert sorted(d.id for d in claimed) == ["d1", "d2"]

    # -- silences ----------------------------------------------------------------------------------
    async def test_silences_save_list_and_delete(self, backend):
        matcher = [LabelMatcher(label="service", value="api")]
        late = Silence(id="s2", matchers=matcher, starts_ns=_at(10), ends_ns=_at(20), created_by="bob")
        early = Silence(
            id="s1", matchers=matcher, starts_ns=_at(0), ends_ns=_at(10), created_by="ann", comment="deploy"
        )
        await backend.save_silence(late)
        await backend.save_silence(early)
        assert await backend.list_silences() == [early, late]
        assert [s.id for s in await backend.list_silences(active_at_ns=_at(5))] == ["s1"]
        assert [s.id for s in await backend.list_silences(active_at_ns=_at(10))] == ["s2"]  # end is exclusive
        assert await backend.list_silences(active_at_ns=_at(20)) == []
        extended = Silence(id="s1", matchers=matcher, starts_ns=_at(0), ends_ns=_at(30), created_by="ann")
        await backend.save_silence(extended)
        assert [s.id for s in await backend.list_silences(active_at_ns=_at(25))] == ["s1"]
        assert await backend.delete_silence("s1") is True
        assert await backend.delete_silence("s1") is False
        assert [s.id for s in await backend.list_silences()] == ["s2"]

    # -- notification outbox -----------------------------------------------------------------------
    async def test_claim_takes_due_deliveries_oldest_first_up_to_limit(self, backend):
        await backend.enqueue_deliveries(
            [
                _delivery("d3", 3),
                _delivery("d1", 1),
                _delivery("d2", 2),
                _delivery("later", 0, next_s=100),
            ]
        )
        claimed = await backend.claim_deliveries(_at(10), limit=2, lease_s=30)
        assert [d.id for d in claimed] == ["d1", "d2"]
        assert all(d.state == "sending" and d.lease_until_ns == _at(40) for d in claimed)
        assert (await backend.get_delivery("d1")).state == "sending"
        assert [d.id for d in await backend.claim_deliveries(_at(10), limit=10, lease_s=30)] == ["d3"]
        assert await backend.claim_deliveries(_at(10), limit=10, lease_s=30) == []

    async def test_claimed_delivery_is_claimed_again_only_after_its_lease(self, backend):
        await backend.enqueue_deliveries([_delivery("d1", 0)])
        assert len(await backend.claim_deliveries(_at(1), limit=10, lease_s=60)) == 1
        assert await backend.claim_deliveries(_at(60), limit=10, lease_s=60) == []
        (again,) = await backend.claim_deliveries(_at(61), limit=10, lease_s=60)
        assert (again.id, again.state, again.lease_until_ns) == ("d1", "sending", _at(121))

    async def test_retry_moves_back_to_pending_until_next_attempt(self, backend):
        await backend.enqueue_deliveries([_delivery("d1", 0)])
        await backend.claim_deliveries(_at(1), limit=10, lease_s=60)
        await backend.record_attempt(
            _attempt("d1", 1, 2, error="HTTP 503"), "pending", next_attempt_ns=_at(30)
        )
        delivery = await backend.get_delivery("d1")
        assert (delivery.state, delivery.attempts, delivery.next_attempt_ns, delivery.last_error) == (
            "pending",
            1,
            _at(30),
            "HTTP 503",
        )
        assert await backend.claim_deliveries(_at(29), limit=10, lease_s=60) == []
        assert [d.id for d in await backend.claim_deliveries(_at(30), limit=10, lease_s=60)] == ["d1"]
        await backend.record_attempt(_attempt("d1", 2, 31, outcome="sent"), "sent")
        delivery = await backend.get_delivery("d1")
        assert (delivery.state, delivery.attempts, delivery.sent_ns) == ("sent", 2, _at(31))

    @pytest.mark.parametrize(("state", "outcome"), [("sent", "sent"), ("failed", "permanent")])
    async def test_sent_and_failed_are_final(self, backend, state, outcome):
        await backend.enqueue_deliveries([_delivery("d1", 0)])
        await backend.claim_deliveries(_at(1), limit=10, lease_s=5)
        await backend.record_attempt(_attempt("d1", 1, 2, outcome=outcome), state)
        assert await backend.claim_deliveries(_at(DAY), limit=10, lease_s=5) == []
        assert (await backend.get_delivery("d1")).state == state

    async def test_list_attempts_oldest_first(self, backend):
        await backend.enqueue_deliveries([_delivery("d1", 0), _delivery("d2", 0)])
        await backend.record_attempt(_attempt("d1", 1, 1, error="timeout"), "pending", next_attempt_ns=_at(5))
        await backend.record_attempt(_attempt("d2", 1, 2, outcome="sent"), "sent")
        await backend.record_attempt(_attempt("d1", 2, 6, outcome="sent"), "sent")
        attempts = await backend.list_attempts("d1")
        assert [(a.attempt, a.time_ns, a.error) for a in attempts] == [
            (1, _at(1), "timeout"),
            (2, _at(6), ""),
        ]
        assert attempts[0] == _attempt("d1", 1, 1, error="timeout")
        assert await backend.list_attempts("unknown") == []

    async def test_record_attempt_for_unknown_delivery_is_a_storage_error(self, backend):
        with pytest.raises(StorageError, match="nope"):
            await backend.record_attempt(_attempt("nope", 1, 0), "sent")

    async def test_enqueue_keeps_an_existing_delivery(self, backend):
        await backend.enqueue_deliveries([_delivery("d1", 0)])
        await backend.record_attempt(_attempt("d1", 1, 1, outcome="sent"), "sent")
        await backend.enqueue_deliveries([_delivery("d1", 0)])
        assert (await backend.get_delivery("d1")).state == "sent"
        assert await backend.get_delivery("unknown") is None

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (DeliveryQuery(), ["d4", "d3", "d2", "d1"]),
            (DeliveryQuery(channel="slack"), ["d4", "d2"]),
            (DeliveryQuery(fingerprint="fp2"), ["d3"]),
            (DeliveryQuery(state="sent"), ["d1"]),
            (DeliveryQuery(channel="slack", state="pending"), ["d4", "d2"]),
        ],
        ids=["all", "channel", "fingerprint", "state", "combined"],
    )
    async def test_list_deliveries_filters_newest_first(self, backend, query, expected):
        await backend.enqueue_deliveries(
            [
                _delivery("d1", 1, channel="log"),
                _delivery("d2", 2, channel="slack"),
                _delivery("d3", 3, channel="log", fingerprint="fp2"),
                _delivery("d4", 4, channel="slack"),
            ]
        )
        await backend.record_attempt(_attempt("d1", 1, 5, outcome="sent"), "sent")
        page = await backend.list_deliveries(query)
        assert [d.id for d in page.items] == expected

    async def test_list_deliveries_paginates(self, backend):
        await backend.enqueue_deliveries([_delivery(f"d{n:02}", n // 3) for n in range(11)])
        pages = await _every_page(
            lambda cursor: backend.list_deliveries(DeliveryQuery(limit=4, cursor=cursor))
        )
        assert [len(page) for page in pages] == [4, 4, 3]
        ids = [d.id for page in pages for d in page]
        assert sorted(ids) == [f"d{n:02}" for n in range(11)]

    # -- health ------------------------------------------------------------------------------------
    async def test_health_history_filters_newest_first(self, backend):
        await backend.write_health([_health("db", n, "healthy" if n % 3 else "unhealthy") for n in range(10)])
        await backend.write_health([_health("cache", 5, "degraded")])
        history = await backend.health_history("db")
        assert [r.time_ns for r in history] == [_at(n) for n in range(9, -1, -1)]
        assert history[0] == _health("db", 9, "unhealthy")
        assert [r.time_ns for r in await backend.health_history("db", limit=3)] == [_at(9), _at(8), _at(7)]
        ranged = await backend.health_history("db", start_ns=_at(2), end_ns=_at(5))
        assert [r.time_ns for r in ranged] == [_at(4), _at(3), _at(2)]
        bad = await backend.health_history("db", status="unhealthy")
        assert [r.time_ns for r in bad] == [_at(9), _at(6), _at(3), _at(0)]
        assert [r.status for r in await backend.health_history("cache")] == ["degraded"]
        assert await backend.health_history("unknown") == []

    # -- workflows ---------------------------------------------------------------------------------
    async def test_execution_with_steps(self, backend):
        assert await backend.get_execution("run-1") is None
        running = _execution("run-1", 0, status="running")
        await backend.save_execution(running)
        await backend.save_step(_step("run-1", "load", 2, status="running"))
        await backend.save_step(_step("run-1", "extract", 1))
        await backend.save_step(_step("run-1", "load", 2, status="failed"))  # same key: replaced
        await backend.save_step(_step("run-1", "load", 3))  # a retry starts a new step
        await backend.save_step(_step("run-2", "other", 1))
        execution, steps = await backend.get_execution("run-1")
        assert execution == running
        assert [(s.name, s.started_ns, s.status) for s in steps] == [
            ("extract", _at(1), "succeeded"),
            ("load", _at(2), "failed"),
            ("load", _at(3), "succeeded"),
        ]
        done = _execution("run-1", 0, status="failed")
        await backend.save_execution(done)
        assert (await backend.get_execution("run-1"))[0] == done

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (ExecutionQuery(), ["r4", "r3", "r2", "r1"]),
            (ExecutionQuery(name="backup"), ["r3", "r1"]),
            (ExecutionQuery(status="failed"), ["r2"]),
            (ExecutionQuery(start_ns=_at(20), end_ns=_at(40)), ["r3", "r2"]),
            (ExecutionQuery(name="nightly", status="running"), ["r4"]),
        ],
        ids=["all", "name", "status", "range", "combined"],
    )
    async def test_list_executions_filters_newest_first(self, backend, query, expected):
        for execution in [
            _execution("r1", 10, name="backup"),
            _execution("r2", 20, status="failed"),
            _execution("r3", 30, name="backup"),
            _execution("r4", 40, status="running"),
        ]:
            await backend.save_execution(execution)
        page = await backend.list_executions(query)
        assert [e.id for e in page.items] == expected

    async def test_list_executions_paginates(self, backend):
        for n in range(9):
            await backend.save_execution(_execution(f"r{n}", n // 2))
        pages = await _every_page(
            lambda cursor: backend.list_executions(ExecutionQuery(limit=4, cursor=cursor))
        )
        assert [len(page) for page in pages] == [4, 4, 1]
        assert sorted(e.id for page in pages for e in page) == [f"r{n}" for n in range(9)]

    # -- housekeeping ------------------------------------------------------------------------------
    async def _write_old_and_new(self, backend: Any, old_s: float, new_s: float) -> None:
        """One old and one new row of every kind, plus the old rows a sweep must keep."""
        await backend.write_metrics(
            [
                _rollup("latency", API_A, old_s, [1.0]),
                _rollup("latency", API_A, new_s, [2.0]),
                _rollup("gone", API_B, old_s, [1.0]),
            ]
        )
        await backend.write_spans([_span(1, start_s=old_s), _span(2, trace=2, start_s=new_s)])
        await backend.write_logs([_log("old", old_s), _log("new", new_s)])
        await backend.write_health([_health("db", old_s), _health("db", new_s)])
        await backend.save_alert(
            _alert("resolved-old", state="resolved", updated_s=old_s),
            [_transition("resolved-old", old_s, "firing", "resolved")],
        )
        await backend.save_alert(
            _alert("firing-old", state="firing", updated_s=old_s),
            [_transition("firing-old", new_s, "pending", "firing")],
        )
        await backend.save_alert(_alert("resolved-new", state="resolved", updated_s=new_s))
        matcher = [LabelMatcher(label="service", value="api")]
        await backend.save_silence(
            Silence(
                id="expired", matchers=matcher, starts_ns=_at(old_s), ends_ns=_at(old_s + 1), created_by="ann"
            )
        )
        await backend.save_silence(
            Silence(
                id="current",
                matchers=matcher,
                starts_ns=_at(old_s),
                ends_ns=_at(new_s + DAY),
                created_by="ann",
            )
        )
        await backend.enqueue_deliveries(
            [
                _delivery("sent-old", old_s),
                _delivery("pending-old", old_s, next_s=new_s),
                _delivery("sent-new", new_s),
            ]
        )
        await backend.record_attempt(
            _attempt("sent-old", 1, old_s), "pending", next_attempt_ns=_at(old_s + 1)
        )
        await backend.record_attempt(_attempt("sent-old", 2, old_s + 1, outcome="sent"), "sent")
        await backend.record_attempt(_attempt("sent-new", 1, new_s, outcome="sent"), "sent")
        await backend.save_execution(_execution("run-old", old_s))
        await backend.save_step(_step("run-old", "extract", old_s))
        await backend.save_step(_step("run-old", "load", old_s + 1))
        await backend.save_execution(_execution("run-new", new_s))
        await backend.save_step(_step("run-new", "extract", new_s))

    async def test_sweep_deletes_old_rows_and_keeps_live_ones(self, backend):
        now_s = 10 * DAY
        await self._write_old_and_new(backend, old_s=0, new_s=now_s - 3600)
        retention = Retention(
            metrics=DAY, traces=DAY, logs=DAY, alerts=DAY, notifications=DAY, health=DAY, workflows=DAY
        )
        deleted = await backend.sweep(retention, now_ns=_at(now_s))
        assert deleted == {
            "metrics": 2,
            "traces": 1,
            "logs": 1,
            "alerts": 3,  # the resolved alert, its transition, the expired silence
            "notifications": 3,  # the sent delivery and its two attempts
            "health": 1,
            "workflows": 3,  # the execution and its two steps
        }
        assert [(i.name, i.series) for i in await backend.list_metrics()] == [("latency", 1)]
        assert await backend.get_trace(_tid(1)) == []
        assert len(await backend.get_trace(_tid(2))) == 1
        assert await self._search(backend) == ["new"]
        assert len(await backend.health_history("db")) == 1
        alerts = await backend.list_alerts(AlertQuery())
        assert sorted(a.fingerprint for a in alerts.items) == ["firing-old", "resolved-new"]
        assert await backend.alert_history("resolved-old") == []
        assert len(await backend.alert_history("firing-old")) == 1
        assert [s.id for s in await backend.list_silences()] == ["current"]
        assert await backend.get_delivery("sent-old") is None
        assert await backend.list_attempts("sent-old") == []
        assert (await backend.get_delivery("pending-old")).state == "pending"
        assert (await backend.get_delivery("sent-new")).state == "sent"
        assert await backend.get_execution("run-old") is None
        assert len((await backend.get_execution("run-new"))[1]) == 1
        assert await backend.sweep(retention, now_ns=_at(now_s)) == dict.fromkeys(RETENTION_SIGNALS, 0)

    async def test_sweep_with_no_retention_keeps_everything(self, backend):
        await self._write_old_and_new(backend, old_s=0, new_s=10)
        before = (await backend.stats()).rows
        keep_all = Retention(
            metrics=None, traces=None, logs=None, alerts=None, notifications=None, health=None, workflows=None
        )
        assert await backend.sweep(keep_all, now_ns=_at(100 * DAY)) == dict.fromkeys(RETENTION_SIGNALS, 0)
        assert (await backend.stats()).rows == before

    async def test_sweep_only_touches_the_signals_it_is_given(self, backend):
        await self._write_old_and_new(backend, old_s=0, new_s=10 * DAY)
        logs_only = Retention(
            metrics=None, traces=None, logs=DAY, alerts=None, notifications=None, health=None, workflows=None
        )
        deleted = await backend.sweep(logs_only, now_ns=_at(10 * DAY))
        assert deleted == {**dict.fromkeys(RETENTION_SIGNALS, 0), "logs": 1}
        assert len(await backend.get_trace(_tid(1))) == 1

    async def test_stats_count_rows(self, backend):
        empty = await backend.stats()
        assert all(count == 0 for count in empty.rows.values())
        await self._write_latency(backend)
        await self._write_span_set(backend)
        await self._write_log_set(backend)
        await self._write_alert_set(backend)
        await backend.enqueue_deliveries([_delivery("d1", 0), _delivery("d2", 0)])
        await backend.write_health([_health("db", 0)])
        await backend.save_execution(_execution("run-1", 0))
        stats = await backend.stats()
        assert {
            name: stats.rows[name]
            for name in (
                "metric_rollups",
                "spans",
                "logs",
                "alerts",
                "deliveries",
                "health",
                "workflow_executions",
            )
        } == {
            "metric_rollups": 6,
            "spans": 5,
            "logs": 5,
            "alerts": 4,
            "deliveries": 2,
            "health": 1,
            "workflow_executions": 1,
        }
        assert stats.bytes >= 0

    async def test_close_twice_is_safe(self, backend):
        await backend.write_logs([_log("bye", 0)])
        await backend.close()
        await backend.close()
