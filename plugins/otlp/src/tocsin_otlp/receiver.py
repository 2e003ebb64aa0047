"""The OTLP receiver of one monitor: decode a request, map it to tocsin records, store them, and say how it went.

`Receiver.export(signal, body, ...)` is what both `POST /v1/<signal>` and the in-process `tocsin_otlp.ingest`
call. The records are written through `monitor.ingest` before it returns, so an answer of success means
committed. Metrics exports take turns, and the cumulative series they teach the tracker are kept only once
their rollups are stored (a refused export is resent, and must count again). At most
`max_concurrent_requests` exports run at once; one more is refused at once with 503 and
Retry-After rather than queued, and a batch storage did not take is answered the same way (the client
retries; OTLP accepts the duplicates that may make).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_pb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_pb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_pb

from tocsin import Monitor
from tocsin.ext import StorageUnavailable
from tocsin_otlp import wire
from tocsin_otlp.answers import export_body
from tocsin_otlp.body import Encoding, encoding_of, inflate
from tocsin_otlp.errors import ExportRefused
from tocsin_otlp.logs import logs_of
from tocsin_otlp.metrics import Mapper, Tracker
from tocsin_otlp.rejections import Rejections
from tocsin_otlp.settings import Settings
from tocsin_otlp.traces import spans_of

THREAD_AT = 256 * 1024
"""Bodies at least this large are decoded on a worker thread, so the server's loop keeps answering."""


@dataclass(frozen=True)
class Signal:
    """How one OTLP signal is decoded, mapped, stored and answered."""

    request: type[Any]
    json: msgspec.json.Decoder[Any]
    store: str
    response: type[Any]
    partial: type[Any]
    rejected_field: str


SIGNALS: dict[str, Signal] = {
    "traces": Signal(trace_pb.ExportTraceServiceRequest, wire.decoder(wire.TracesRequest), "spans",
                     trace_pb.ExportTraceServiceResponse, trace_pb.ExportTracePartialSuccess, "rejected_spans"),
    "logs": Signal(logs_pb.ExportLogsServiceRequest, wire.decoder(wire.LogsRequest), "logs",
                   logs_pb.ExportLogsServiceResponse, logs_pb.ExportLogsPartialSuccess, "rejected_log_records"),
    "metrics": Signal(metrics_pb.ExportMetricsServiceRequest, wire.decoder(wire.MetricsRequest), "metrics",
                      metrics_pb.ExportMetricsServiceResponse, metrics_pb.ExportMetricsPartialSuccess,
                      "rejected_data_points"),
}


MAPPERS: dict[str, Callable[[Any, Rejections], list[Any]]] = {"traces": spans_of, "logs": logs_of}
"""The stateless mappings; metrics go through the receiver's Mapper, which remembers cumulative series."""


class Export(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What became of one export: records stored, records refused (with the first reason), and the answer
    body OTLP expects in the request's encoding."""

    signal: str
    accepted: int
    rejected: int
    message: str = ""
    encoding: Encoding = "protobuf"
    body: bytes = b""


class Receiver:
    """Decodes, maps and stores OTLP exports for `monitor`, with the limits of `[plugins.otlp]`."""

    def __init__(self, monitor: Monitor, settings: Settings | None = None) -> None:
        self.monitor = monitor
        self.settings = settings or Settings()
        self.metrics = Mapper(Tracker(self.settings.max_tracked_series))
        self._metrics_turn = asyncio.Lock()
        self._active = 0

    @property
    def active(self) -> int:
        """Exports being decoded or written right now."""
        return self._active

    def busy(self) -> ExportRefused | None:
        """The 503 to answer when `max_concurrent_requests` exports are running, else None."""
        if self._active >= self.settings.max_concurrent_requests:
            return ExportRefused(503, "the receiver is busy; retry later", retry_after_s=self.settings.retry_after_s)
        return None

    async def export(self, signal: str, body: bytes, *, content_type: str | None,
                     content_encoding: str | None = None) -> Export:
        """Store one OTLP export request body; raises ExportRefused when nothing of it can be taken."""
        kind = SIGNALS.get(signal)
        if kind is None:
            raise ValueError(f"unknown OTLP signal {signal!r}; one of {', '.join(SIGNALS)}")
        encoding = encoding_of(content_type)
        refusal = self.busy()
        if refusal is not None:
            raise refusal
        if self.monitor.storage is None:
            raise ExportRefused(503, "tocsin is not running (starting or stopping); retry later",
                                retry_after_s=self.settings.retry_after_s)
        self._active += 1
        try:
            if signal != "metrics":
                return await self._store(signal, kind, body, encoding, content_encoding)
            async with self._metrics_turn:  # one at a time: the tracker learns only from stored points
                try:
                    answer = await self._store(signal, kind, body, encoding, content_encoding)
                except BaseException:
                    self.metrics.tracker.rollback()
                    raise
                self.metrics.tracker.commit()
                return answer
        finally:
            self._active -= 1

    async def _store(self, signal: str, kind: Signal, body: bytes, encoding: Encoding,
                     content_encoding: str | None) -> Export:
        """Inflate, decode, map and write one export; the answer counts refused and unstorable records."""
        raw = inflate(body, content_encoding, self.settings.max_body_bytes)
        rejected = Rejections()
        if len(raw) >= THREAD_AT:
            records = await asyncio.to_thread(self._records, signal, kind, raw, encoding, rejected)
        else:
            records = self._records(signal, kind, raw, encoding, rejected)
        try:
            outcome = await self.monitor.ingest(kind.store, records)
        except StorageUnavailable:
            raise ExportRefused(503, "storage did not take the batch; retry later",
                                retry_after_s=self.settings.retry_after_s) from None
        dropped = sum(outcome.dropped.values())
        if dropped:
            rejected.add(f"{dropped} record(s) could not be stored: {', '.join(sorted(outcome.dropped))}", dropped)
        answer = export_body(kind.response, kind.partial, kind.rejected_field, rejected.count, rejected.reason,
                             encoding)
        return Export(signal=signal, accepted=outcome.written, rejected=rejected.count, message=rejected.reason,
                      encoding=encoding, body=answer)

    def _records(self, signal: str, kind: Signal, raw: bytes, encoding: Encoding, rejected: Rejections) -> list[Any]:
        """Decode and map; any decoding failure is a 400 naming what went wrong."""
        try:
            request = kind.request.FromString(raw) if encoding == "protobuf" else kind.json.decode(raw)
        except (DecodeError, msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError) as error:
            raise ExportRefused(400, f"cannot decode the {encoding} body as an OTLP {signal} export request: "
                                     f"{str(error)[:300]}") from None
        if signal in MAPPERS:
            return MAPPERS[signal](request, rejected)
        own = frozenset(info.name for info in self.monitor.metrics.instruments())
        return self.metrics.rollups_of(request, rejected, own)
