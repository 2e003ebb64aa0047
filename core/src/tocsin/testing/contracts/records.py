"""Record factories at fixed timestamps and query helpers, shared by every area of the storage contract."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tocsin.models import (
    Alert,
    AlertTransition,
    Delivery,
    DeliveryAttempt,
    HealthResult,
    LogRecord,
    MetricRollup,
    SeriesPoints,
    Span,
    WorkflowExecution,
    WorkflowStep,
)
from tocsin.signals.sketch import LogSketch
from tocsin.storage.protocol import Page

T0 = 1_700_000_000_000_000_000
"""Every timestamp in the contract is T0 plus a few seconds."""
SECOND = 1_000_000_000
DAY = 86_400


def ns_at(seconds: float) -> int:
    """The nanosecond timestamp `seconds` after T0."""
    return T0 + round(seconds * SECOND)


def make_rollup(
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
        start_ns=ns_at(at_s),
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


def sid(n: int) -> str:
    """The span id numbered `n`."""
    return f"{n:016x}"


def tid(n: int) -> str:
    """The trace id numbered `n`."""
    return f"{n:032x}"


def make_span(
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
    """Span `n` of trace `trace`, starting `start_s` after T0; `duration_s=None` makes it still running."""
    return Span(
        trace_id=tid(trace),
        span_id=sid(n),
        parent_span_id=None if parent is None else sid(parent),
        name=name,
        service=service,
        start_ns=ns_at(start_s),
        end_ns=None if duration_s is None else ns_at(start_s + duration_s),
        status=status,
        attributes=attributes or {},
    )


def make_log(
    message: str,
    at_s: float,
    *,
    level: str = "info",
    service: str = "api",
    trace: int | None = None,
    span: int | None = None,
    execution: str | None = None,
) -> LogRecord:
    """A log record at `at_s` after T0, optionally tied to a trace, span and workflow execution."""
    return LogRecord(
        time_ns=ns_at(at_s),
        level=level,
        message=message,
        service=service,
        trace_id=None if trace is None else tid(trace),
        span_id=None if span is None else sid(span),
        execution_id=execution,
    )


def make_alert(
    fingerprint: str,
    *,
    rule: str = "high_latency",
    state: str = "firing",
    severity: str = "warning",
    labels: dict[str, str] | None = None,
    updated_s: float = 0,
) -> Alert:
    """An alert last updated `updated_s` after T0."""
    return Alert(
        fingerprint=fingerprint,
        rule=rule,
        labels=labels or {},
        state=state,
        severity=severity,
        updated_ns=ns_at(updated_s),
    )


def make_transition(fingerprint: str, at_s: float, from_state: str, to_state: str) -> AlertTransition:
    """A transition of a "high_latency" alert at `at_s` after T0."""
    return AlertTransition(
        fingerprint=fingerprint,
        rule="high_latency",
        time_ns=ns_at(at_s),
        from_state=from_state,
        to_state=to_state,
    )


def make_delivery(
    delivery_id: str,
    created_s: float,
    *,
    next_s: float | None = None,
    channel: str = "log",
    fingerprint: str = "fp1",
    state: str = "pending",
) -> Delivery:
    """A firing delivery created at `created_s`, due at `next_s` (default: when created)."""
    return Delivery(
        id=delivery_id,
        channel=channel,
        fingerprint=fingerprint,
        kind="firing",
        idempotency_key=f"{fingerprint}:{delivery_id}",
        payload={"title": "High latency"},
        state=state,
        created_ns=ns_at(created_s),
        next_attempt_ns=ns_at(created_s if next_s is None else next_s),
    )


def make_attempt(
    delivery_id: str, number: int, at_s: float, outcome: str = "retryable", error: str = ""
) -> DeliveryAttempt:
    """Attempt `number` of a delivery at `at_s` after T0."""
    return DeliveryAttempt(
        delivery_id=delivery_id,
        attempt=number,
        time_ns=ns_at(at_s),
        outcome=outcome,
        latency_s=0.25,
        error=error,
    )


def make_health(component: str, at_s: float, status: str = "healthy") -> HealthResult:
    """A health check result for `component` at `at_s` after T0."""
    return HealthResult(component=component, status=status, time_ns=ns_at(at_s), latency_s=0.01)


def make_execution(
    execution_id: str, start_s: float, *, name: str = "nightly", status: str = "succeeded"
) -> WorkflowExecution:
    """An execution started at `start_s`, ended 5 s later unless still running."""
    ended = None if status == "running" else ns_at(start_s + 5)
    return WorkflowExecution(
        id=execution_id, name=name, status=status, started_ns=ns_at(start_s), ended_ns=ended
    )


def make_step(execution_id: str, name: str, start_s: float, status: str = "succeeded") -> WorkflowStep:
    """A step of an execution started at `start_s` after T0."""
    return WorkflowStep(execution_id=execution_id, name=name, status=status, started_ns=ns_at(start_s))


async def every_page(fetch: Callable[[str | None], Awaitable[Page[Any]]]) -> list[list[Any]]:
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


def approx_points(series: list[SeriesPoints]) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
    """Each series as (labels, points) with approximate values, to compare with `==`."""
    return [(s.labels, [(t, pytest.approx(v)) for t, v in s.points]) for s in series]
