"""OTLP/JSON as msgspec Structs that read like the protobuf messages, so one mapping serves both encodings.

Field names are the protobuf ones (snake_case), spelled lowerCamelCase on the wire (`rename="camel"`); the
decoder runs with `strict=False`, so 64-bit integers arrive as decimal strings or numbers alike. Trace and span
ids are hex text (`HexId`, decoded to bytes as protobuf has them), other bytes are base64, enums are integers.
Unknown fields are ignored, as the OTLP spec requires of receivers — which is why these wire Structs, unlike
tocsin's own data, do not forbid them. `WhichOneof` and `HasField` mirror the protobuf message API.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class HexId(bytes):
    """A trace or span id written as hex in OTLP/JSON; decoded to its bytes."""


def _decode_hook(kind: type, value: Any) -> Any:
    if kind is HexId and isinstance(value, str):
        return HexId(bytes.fromhex(value))
    raise NotImplementedError(f"cannot decode {kind!r}")


class Wire(msgspec.Struct, rename="camel", kw_only=True):
    """An OTLP/JSON message; fields of a oneof group default to None."""

    _oneof: ClassVar[tuple[str, ...]] = ()

    def WhichOneof(self, group: str) -> str | None:
        """The name of the oneof field that is set, or None."""
        return next((name for name in self._oneof if getattr(self, name) is not None), None)

    def HasField(self, name: str) -> bool:
        """Whether an optional field was sent."""
        return getattr(self, name) is not None


class AnyValue(Wire):
    """A value of any OTLP type; exactly one field is set."""

    _oneof = ("string_value", "bool_value", "int_value", "double_value", "array_value", "kvlist_value",
              "bytes_value")
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: int | None = None
    double_value: float | None = None
    array_value: ArrayValue | None = None
    kvlist_value: KeyValueList | None = None
    bytes_value: bytes | None = None


class ArrayValue(Wire):
    """A list of AnyValues."""

    values: list[AnyValue] = []


class KeyValue(Wire):
    """One attribute: key and value."""

    key: str = ""
    value: AnyValue = msgspec.field(default_factory=AnyValue)


class KeyValueList(Wire):
    """A nested map of attributes."""

    values: list[KeyValue] = []


class Resource(Wire):
    """What emitted the records (service.name and friends)."""

    attributes: list[KeyValue] = []


class Scope(Wire):
    """The instrumentation scope (library) that recorded them."""

    name: str = ""
    version: str = ""
    attributes: list[KeyValue] = []


# -- traces -------------------------------------------------------------------------------------------------


class Status(Wire):
    """A span's status code and message."""

    message: str = ""
    code: int = 0


class Event(Wire):
    """A timestamped span event."""

    time_unix_nano: int = 0
    name: str = ""
    attributes: list[KeyValue] = []


class Link(Wire):
    """A link from a span to another span."""

    trace_id: HexId = HexId()
    span_id: HexId = HexId()
    trace_state: str = ""
    attributes: list[KeyValue] = []


class Span(Wire):
    """One span."""

    trace_id: HexId = HexId()
    span_id: HexId = HexId()
    trace_state: str = ""
    parent_span_id: HexId = HexId()
    flags: int = 0
    name: str = ""
    kind: int = 0
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    attributes: list[KeyValue] = []
    events: list[Event] = []
    links: list[Link] = []
    status: Status = msgspec.field(default_factory=Status)


class ScopeSpans(Wire):
    """The spans of one scope."""

    scope: Scope = msgspec.field(default_factory=Scope)
    spans: list[Span] = []


class ResourceSpans(Wire):
    """The spans of one resource."""

    resource: Resource = msgspec.field(default_factory=Resource)
    scope_spans: list[ScopeSpans] = []


class TracesRequest(Wire):
    """ExportTraceServiceRequest."""

    resource_spans: list[ResourceSpans] = []


# -- logs ---------------------------------------------------------------------------------------------------


class LogRecord(Wire):
    """One log record."""

    time_unix_nano: int = 0
    observed_time_unix_nano: int = 0
    severity_number: int = 0
    severity_text: str = ""
    body: AnyValue = msgspec.field(default_factory=AnyValue)
    attributes: list[KeyValue] = []
    flags: int = 0
    trace_id: HexId = HexId()
    span_id: HexId = HexId()
    event_name: str = ""


class ScopeLogs(Wire):
    """The log records of one scope."""

    scope: Scope = msgspec.field(default_factory=Scope)
    log_records: list[LogRecord] = []


class ResourceLogs(Wire):
    """The log records of one resource."""

    resource: Resource = msgspec.field(default_factory=Resource)
    scope_logs: list[ScopeLogs] = []


class LogsRequest(Wire):
    """ExportLogsServiceRequest."""

    resource_logs: list[ResourceLogs] = []


# -- metrics ------------------------------------------------------------------------------------------------


class NumberDataPoint(Wire):
    """A Gauge or Sum point: an int or a double."""

    _oneof = ("as_double", "as_int")
    attributes: list[KeyValue] = []
    start_time_unix_nano: int = 0
    time_unix_nano: int = 0
    as_double: float | None = None
    as_int: int | None = None
    flags: int = 0


class HistogramDataPoint(Wire):
    """An explicit-bucket histogram point."""

    attributes: list[KeyValue] = []
    start_time_unix_nano: int = 0
    time_unix_nano: int = 0
    count: int = 0
    sum: float | None = None
    bucket_counts: list[int] = []
    explicit_bounds: list[float] = []
    flags: int = 0
    min: float | None = None
    max: float | None = None


class Buckets(Wire):
    """One side (positive or negative) of an exponential histogram."""

    offset: int = 0
    bucket_counts: list[int] = []


class ExponentialHistogramDataPoint(Wire):
    """An exponential histogram point."""

    attributes: list[KeyValue] = []
    start_time_unix_nano: int = 0
    time_unix_nano: int = 0
    count: int = 0
    sum: float | None = None
    scale: int = 0
    zero_count: int = 0
    positive: Buckets = msgspec.field(default_factory=Buckets)
    negative: Buckets = msgspec.field(default_factory=Buckets)
    flags: int = 0
    min: float | None = None
    max: float | None = None


class Gauge(Wire):
    """Gauge points."""

    data_points: list[NumberDataPoint] = []


class Sum(Wire):
    """Sum points, with temporality and monotonicity."""

    data_points: list[NumberDataPoint] = []
    aggregation_temporality: int = 0
    is_monotonic: bool = False


class Histogram(Wire):
    """Explicit-bucket histogram points."""

    data_points: list[HistogramDataPoint] = []
    aggregation_temporality: int = 0


class ExponentialHistogram(Wire):
    """Exponential histogram points."""

    data_points: list[ExponentialHistogramDataPoint] = []
    aggregation_temporality: int = 0


class Summary(Wire):
    """Summary points (refused; only counted)."""

    data_points: list[msgspec.Raw] = []


class Metric(Wire):
    """One metric: name, unit and one kind of data."""

    _oneof = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
    name: str = ""
    description: str = ""
    unit: str = ""
    gauge: Gauge | None = None
    sum: Sum | None = None
    histogram: Histogram | None = None
    exponential_histogram: ExponentialHistogram | None = None
    summary: Summary | None = None


class ScopeMetrics(Wire):
    """The metrics of one scope."""

    scope: Scope = msgspec.field(default_factory=Scope)
    metrics: list[Metric] = []


class ResourceMetrics(Wire):
    """The metrics of one resource."""

    resource: Resource = msgspec.field(default_factory=Resource)
    scope_metrics: list[ScopeMetrics] = []


class MetricsRequest(Wire):
    """ExportMetricsServiceRequest."""

    resource_metrics: list[ResourceMetrics] = []


def decoder(request: type[Wire]) -> msgspec.json.Decoder[Any]:
    """A lenient OTLP/JSON decoder for one request message (numbers as strings accepted, hex ids checked)."""
    return msgspec.json.Decoder(request, dec_hook=_decode_hook, strict=False)
