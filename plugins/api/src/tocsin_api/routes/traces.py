"""`/api/v1` traces endpoints: span search, a trace as a tree, its logs, services and operations, and ingest.

Span searches are newest (by start) first with cursor paging, as `storage.search_spans` serves them.
`/traces/services` and `.../operations` have the backend count the range's spans by service or name
(`count_spans_by`, an hour before `end` by default); a backend without that optional method has its newest
`SCAN_LIMIT` spans of the range read instead, and the answer says whether that covered it all.
"""

from __future__ import annotations

import json
import re
import time
import typing
from typing import Any

import msgspec
from litestar import get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, JSONBody

from tocsin.ext import LOG_LEVELS, MAX_QUERY_LIMIT, LogHit, LogQuery, Page, Span, SpanQuery, StorageBackend
from tocsin_api import params
from tocsin_api.deps import MonitorDep, storage_of
from tocsin_api.ingest import Accepted, accepted

SPAN_STATUSES: tuple[str, ...] = typing.get_args(typing.get_type_hints(Span)["status"])
SCAN_LIMIT = MAX_QUERY_LIMIT
"""The most spans `/traces/services` and `.../operations` read for one answer from a backend that cannot count."""
MIN_NS, MAX_NS = -(2**63), 2**63 - 1
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")


class TraceTree(msgspec.Struct, kw_only=True):
    """One trace: its spans by start time (running ones have `end_ns` null) and how they nest.

    `roots` are spans without a parent, or whose parent is not stored (yet); `children` maps a span id to its
    children's ids, by start time.
    """

    trace_id: str
    start_ns: int
    end_ns: int | None
    services: list[str]
    running: int
    errors: int
    roots: list[str]
    children: dict[str, list[str]]
    spans: list[Span]


class Names(msgspec.Struct, kw_only=True):
    """Distinct names of the spans of [start_ns, end_ns): `scanned` spans were counted (every one of the
    range, or on a backend that cannot count them, the newest ones read); `complete` is false when the range
    holds more spans than were read (older ones may name more)."""

    items: list[str]
    start_ns: int
    end_ns: int
    scanned: int
    complete: bool





def _trace_id(value: str) -> str:
    if not _TRACE_ID.fullmatch(value):
        raise params.bad_path("trace_id", f"must be 32 hex characters, got {value[:80]!r}")
    return value.lower()


def _attributes(values: list[str] | None) -> dict[str, Any]:
    """`attribute=key=value` filters; a value that is JSON (`500`, `true`, `"500"`) compares as that value."""
    found: dict[str, Any] = {}
    for item in values or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise params.bad("attribute", f"expected key=value, got {item[:80]!r}")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if isinstance(value, dict | list) or value is None:
            value = text
        found[key] = value
    return found


def _duration_ns(value: str | None, name: str) -> int | None:
    seconds = params.seconds(value, name)
    return None if seconds is None else round(seconds * 1e9)


def _bounds(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """Optional [start_ns, end_ns) of a search; when both are given, end must be after start."""
    now_ns = time.time_ns()
    start_ns, end_ns = params.time_ns(start, "start", now_ns=now_ns), params.time_ns(end, "end", now_ns=now_ns)
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise params.bad("end", "must be after start")
    return start_ns, end_ns


async def _distinct(storage: StorageBackend, field: str, start: str | None, end: str | None,
                    service: str | None = None) -> Names:
    start_ns, end_ns = params.time_range(start, end)
    count = getattr(storage, "count_spans_by", None)
    if count is not None:
        counts = await count(field, start_ns, end_ns, service)
        return Names(items=sorted(counts), start_ns=start_ns, end_ns=end_ns, scanned=sum(counts.values()),
                     complete=True)
    page = await storage.search_spans(SpanQuery(service=service, start_ns=start_ns, end_ns=end_ns,
                                                limit=SCAN_LIMIT))
    items = sorted({getattr(span, field) for span in page.items})
    return Names(items=items, start_ns=start_ns, end_ns=end_ns, scanned=len(page.items),
                 complete=page.next_cursor is None)


@get("/traces", summary="Search spans", tags=["traces"])
async def search_spans(
    monitor: MonitorDep,
    service: FromQuery[str | None] = None,
    name: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    min_duration: FromQuery[str | None] = None,
    max_duration: FromQuery[str | None] = None,
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
    root_only: FromQuery[bool] = False,
    attribute: FromQuery[list[str] | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
) -> Page[Span]:
    """Spans passing every filter, newest start first; `next_cursor` pages on."""
    if status is not None and status not in SPAN_STATUSES:
        raise params.bad("status", f"{status!r} is not a span status; use one of {', '.join(SPAN_STATUSES)}")
    low, high = _duration_ns(min_duration, "min_duration"), _duration_ns(max_duration, "max_duration")
    if low is not None and high is not None and high < low:
        raise params.bad("max_duration", "must not be less than min_duration")
    start_ns, end_ns = _bounds(start, end)
    query = SpanQuery(
        service=service, name=name, status=status, min_duration_ns=low, max_duration_ns=high,  # type: ignore[arg-type]
        attributes=_attributes(attribute), start_ns=start_ns, end_ns=end_ns, root_only=root_only,
        cursor=cursor or None, limit=params.limit(limit),
    )
    return await storage_of(monitor).search_spans(query)


@get("/traces/services", summary="Services with spans in a time range", tags=["traces"])
async def services(monitor: MonitorDep, start: FromQuery[str | None] = None,
                   end: FromQuery[str | None] = None) -> Names:
    """Distinct services of the newest spans in [start, end) (default: the last hour), sorted."""
    return await _distinct(storage_of(monitor), "service", start, end)


@get("/traces/services/{service:str}/operations", summary="Span names of a service", tags=["traces"])
async def operations(monitor: MonitorDep, service: FromPath[str], start: FromQuery[str | None] = None,
                     end: FromQuery[str | None] = None) -> Names:
    """Distinct span names of the service's newest spans in [start, end) (default: the last hour), sorted."""
    return await _distinct(storage_of(monitor), "name", start, end, service=service)


@get("/traces/{trace_id:str}", summary="A trace as a span tree", tags=["traces"])
async def get_trace(monitor: MonitorDep, trace_id: FromPath[str]) -> TraceTree:
    """Every stored span of the trace, running ones included, with roots and children."""
    trace_id = _trace_id(trace_id)
    spans = await storage_of(monitor).get_trace(trace_id)
    if not spans:
        raise NotFoundException(f"no span of trace {trace_id} is stored")
    ids = {span.span_id for span in spans}
    roots: list[str] = []
    children: dict[str, list[str]] = {}
    for span in spans:  # by start time, so roots and children are too
        if span.parent_span_id is None or span.parent_span_id not in ids:
            roots.append(span.span_id)
        else:
            children.setdefault(span.parent_span_id, []).append(span.span_id)
    ends = [span.end_ns for span in spans if span.end_ns is not None]
    return TraceTree(
        trace_id=trace_id,
        start_ns=min(span.start_ns for span in spans),
        end_ns=max(ends) if ends else None,
        services=sorted({span.service for span in spans}),
        running=sum(span.end_ns is None for span in spans),
        errors=sum(span.status == "error" for span in spans),
        roots=roots,
        children=children,
        spans=spans,
    )


@get("/traces/{trace_id:str}/logs", summary="Logs recorded in a trace", tags=["traces"])
async def trace_logs(
    monitor: MonitorDep,
    trace_id: FromPath[str],
    span_id: FromQuery[str | None] = None,
    level: FromQuery[str | None] = None,
    q: FromQuery[str] = "",
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
) -> Page[LogHit]:
    """Logs carrying the trace id (optionally one span's), newest first; `q` is a log search."""
    trace_id = _trace_id(trace_id)
    if span_id is not None and not _SPAN_ID.fullmatch(span_id):
        raise params.bad("span_id", f"must be 16 hex characters, got {span_id[:80]!r}")
    if level is not None and level not in LOG_LEVELS:
        raise params.bad("level", f"{level!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    start_ns, end_ns = _bounds(start, end)
    query = LogQuery(
        text=q, level=level, trace_id=trace_id, span_id=span_id.lower() if span_id else None,  # type: ignore[arg-type]
        start_ns=start_ns, end_ns=end_ns, cursor=cursor or None, limit=params.limit(limit),
    )
    return await storage_of(monitor).search_logs(query)


def _bad_span(index: int, field: str, reason: str) -> ValidationException:
    key = f"[{index}].{field}"
    return ValidationException(f"{key}: {reason}", extra=[{"key": key, "message": reason, "source": "body"}])


def _check_span(index: int, span: Span) -> None:
    """Ids as W3C trace context has them (any-case hex, made lowercase, not all zeros); times in 64 bits, the end
    not before the start."""
    if not _TRACE_ID.fullmatch(span.trace_id) or not span.trace_id.strip("0"):
        raise _bad_span(index, "trace_id", "must be 32 hex characters, not all zeros")
    if not _SPAN_ID.fullmatch(span.span_id) or not span.span_id.strip("0"):
        raise _bad_span(index, "span_id", "must be 16 hex characters, not all zeros")
    if span.parent_span_id is not None and not _SPAN_ID.fullmatch(span.parent_span_id):
        raise _bad_span(index, "parent_span_id", "must be 16 hex characters or null")
    for field, value in (("start_ns", span.start_ns), ("end_ns", span.end_ns),
                         *((f"events[{i}].time_ns", event.time_ns) for i, event in enumerate(span.events))):
        if value is not None and not MIN_NS <= value <= MAX_NS:
            raise _bad_span(index, field, "must fit in 64 bits (signed nanoseconds)")
    if span.end_ns is not None and span.end_ns < span.start_ns:
        raise _bad_span(index, "end_ns", "must not be before start_ns")
    span.trace_id, span.span_id = span.trace_id.lower(), span.span_id.lower()
    if span.parent_span_id is not None:
        span.parent_span_id = span.parent_span_id.lower()


@post("/traces", status_code=202, opt={"scope": "write"}, summary="Store a batch of spans", tags=["traces"])
async def ingest_spans(monitor: MonitorDep, data: JSONBody[list[Span]]) -> Accepted:
    """Store tocsin Spans now (a later write of the same span replaces it); unstorable ones are dropped."""
    for index, span in enumerate(data):
        _check_span(index, span)
    outcome = await monitor.ingest("spans", data)
    return accepted(outcome)


ROUTES = [search_spans, services, operations, get_trace, trace_logs, ingest_spans]
