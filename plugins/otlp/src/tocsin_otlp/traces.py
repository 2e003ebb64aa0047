"""OTLP spans as tocsin Spans: ids as hex, kind and status by name, events, links and attributes flattened.

A span is refused (and counted in the partial-success answer) when its trace or span id is not 16 / 8 bytes or
is all zeros, when its parent id is neither empty nor 8 bytes, or when a time does not fit tocsin's signed
64-bit nanoseconds or it ends before it starts.
"""

from __future__ import annotations

from typing import Any

from tocsin.ext import Span, SpanEvent, SpanLink
from tocsin_otlp.origin import Origin
from tocsin_otlp.rejections import MAX_NS, SPAN_ID_BYTES, TRACE_ID_BYTES, Rejections, hex_id
from tocsin_otlp.values import flatten

KINDS = ("internal", "internal", "server", "client", "producer", "consumer")
"""tocsin's span kind by OTLP SpanKind number (0, unspecified, is internal)."""
STATUSES = ("unset", "ok", "error")
"""tocsin's span status by OTLP Status.code."""


def spans_of(request: Any, rejected: Rejections) -> list[Span]:
    """Every span of an ExportTraceServiceRequest (protobuf or OTLP/JSON) that tocsin can store."""
    found: list[Span] = []
    for resource_spans in request.resource_spans:
        origin = Origin.of_resource(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            scoped = origin.with_scope(scope_spans.scope)
            for span in scope_spans.spans:
                mapped = _span(span, scoped)
                if isinstance(mapped, str):
                    rejected.add(mapped)
                else:
                    found.append(mapped)
    return found


def _span(span: Any, origin: Origin) -> Span | str:
    """The tocsin Span, or the reason it cannot be one."""
    trace_id = hex_id(span.trace_id, TRACE_ID_BYTES)
    span_id = hex_id(span.span_id, SPAN_ID_BYTES)
    if trace_id is None or span_id is None:
        return "trace_id must be 16 bytes and span_id 8 bytes, not all zeros"
    parent = span.parent_span_id
    parent_id = hex_id(parent, SPAN_ID_BYTES) if parent else None
    if parent and parent_id is None:
        return "parent_span_id must be empty or 8 bytes, not all zeros"
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if start > MAX_NS or end > MAX_NS or end < start:
        return "span times must fit in signed 64-bit nanoseconds and the end must not be before the start"
    attributes = flatten(span.attributes, dict(origin.attributes))
    if span.trace_state:
        attributes["otel.trace_state"] = span.trace_state
    status = span.status
    kind, code = span.kind, status.code
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_id,
        name=span.name,
        service=origin.service,
        kind=KINDS[kind] if 0 <= kind < len(KINDS) else "internal",
        start_ns=start,
        end_ns=end,
        status=STATUSES[code] if 0 <= code < len(STATUSES) else "unset",
        status_message=status.message,
        attributes=attributes,
        events=[SpanEvent(name=event.name, time_ns=min(event.time_unix_nano, MAX_NS),
                          attributes=flatten(event.attributes, {})) for event in span.events],
        links=[link for link in map(_link, span.links) if link is not None],
    )


def _link(link: Any) -> SpanLink | None:
    trace_id = hex_id(link.trace_id, TRACE_ID_BYTES)
    span_id = hex_id(link.span_id, SPAN_ID_BYTES)
    if trace_id is None or span_id is None:
        return None  # a link to nothing: the span is kept without it
    return SpanLink(trace_id=trace_id, span_id=span_id, attributes=flatten(link.attributes, {}))
