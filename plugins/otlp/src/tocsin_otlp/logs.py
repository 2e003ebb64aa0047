"""OTLP log records as tocsin LogRecords: severity number (or text) to a level, body to the message.

SeverityNumber 1-8 (TRACE, DEBUG) is `debug`, 9-12 `info`, 13-16 `warning`, 17-20 `error`, 21-24 `critical`;
without a number the severity text decides (`WARN`, `fatal`…), else `info`. A body that is not a string
becomes its compact JSON. The scope name is the logger (the Python SDK names the scope after the logger). The
original `severity_text` and `severity_number` are kept as `otel.severity_text` / `otel.severity_number`.
A record is refused when its trace or span id is present but malformed, or its time does not fit 64 bits.
"""

from __future__ import annotations

import time
from typing import Any

from tocsin.ext import LogLevel, LogRecord
from tocsin_otlp.origin import Origin
from tocsin_otlp.rejections import MAX_NS, SPAN_ID_BYTES, TRACE_ID_BYTES, Rejections, hex_id
from tocsin_otlp.values import flatten, text_of

_BY_NUMBER: tuple[LogLevel, ...] = ("info", *("debug",) * 8, *("info",) * 4, *("warning",) * 4, *("error",) * 4,
                                    *("critical",) * 4)
_BY_TEXT: dict[str, LogLevel] = {
    "trace": "debug", "debug": "debug", "info": "info", "notice": "info", "warn": "warning", "warning": "warning",
    "error": "error", "fatal": "critical", "critical": "critical",
}


def level_of(number: int, text: str) -> LogLevel:
    """tocsin's level for an OTLP SeverityNumber, or its severity text when the number is unset."""
    if 0 < number < len(_BY_NUMBER):
        return _BY_NUMBER[number]
    return _BY_TEXT.get(text.strip().lower().rstrip("0123456789"), "info")


def logs_of(request: Any, rejected: Rejections) -> list[LogRecord]:
    """Every log record of an ExportLogsServiceRequest (protobuf or OTLP/JSON) that tocsin can store."""
    found: list[LogRecord] = []
    now_ns = time.time_ns()
    for resource_logs in request.resource_logs:
        origin = Origin.of_resource(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            scoped = origin.with_scope(scope_logs.scope)
            for record in scope_logs.log_records:
                mapped = _record(record, scoped, now_ns)
                if isinstance(mapped, str):
                    rejected.add(mapped)
                else:
                    found.append(mapped)
    return found


def _record(record: Any, origin: Origin, now_ns: int) -> LogRecord | str:
    """The tocsin LogRecord, or the reason it cannot be one."""
    raw_trace, raw_span = record.trace_id, record.span_id
    trace_id = hex_id(raw_trace, TRACE_ID_BYTES) if raw_trace else None
    span_id = hex_id(raw_span, SPAN_ID_BYTES) if raw_span else None
    if (raw_trace and trace_id is None) or (raw_span and span_id is None):
        return "a log record's trace_id must be empty or 16 bytes, its span_id empty or 8 bytes"
    time_ns = record.time_unix_nano or record.observed_time_unix_nano or now_ns
    if time_ns > MAX_NS:
        return "log record times must fit in signed 64-bit nanoseconds"
    attributes = flatten(record.attributes, dict(origin.attributes))
    number, text = record.severity_number, record.severity_text
    if text:
        attributes["otel.severity_text"] = text
    if number:
        attributes["otel.severity_number"] = number
    if record.event_name:
        attributes["otel.event_name"] = record.event_name
    return LogRecord(time_ns=time_ns, level=level_of(number, text), message=text_of(record.body),
                     service=origin.service, logger=origin.scope_name, trace_id=trace_id, span_id=span_id,
                     attributes=attributes)
