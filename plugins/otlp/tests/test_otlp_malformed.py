"""Hostile and broken OTLP requests get the right 4xx (or a retryable 503) with a `google.rpc.Status` body in the
request's encoding, and never cost a record stored before them: each test ends with a valid export and counts."""

from __future__ import annotations

import asyncio
import gzip
import os
import sqlite3
import zlib

import httpx
import msgspec
import pytest
import tocsin_api
import tocsin_otlp
import tocsin_sqlite
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from tocsin_api.testing import LiveServer

from tocsin.ext import MetricQuery, SpanQuery
from tocsin.testing import make_monitor

from .conftest import WRITE_KEY

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def spans(*names: str, trace_id: bytes | None = None) -> ExportTraceServiceRequest:
    """A request with one span per name, in one fresh trace (or `trace_id`)."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add()
    scope.resource.attributes.add(key="service.name", value=AnyValue(string_value="hostile"))
    batch = scope.scope_spans.add()
    trace = os.urandom(16) if trace_id is None else trace_id
    for name in names:
        batch.spans.add(trace_id=trace, span_id=os.urandom(8), name=name, kind=2,
                        start_time_unix_nano=1_700_000_000_000_000_000, end_time_unix_nano=1_700_000_001_000_000_000)
    return request


def stored(server: LiveServer) -> int:
    """Spans of the test's service in the server's store."""
    return len(server.call(server.monitor.storage.search_spans(SpanQuery(service="hostile", limit=1000))).items)


def status_of(answer: httpx.Response) -> Status:
    assert answer.headers["content-type"] == "application/x-protobuf"
    return Status.FromString(answer.content)


@pytest.fixture
def seeded(otlp_server, writer) -> LiveServer:
    """The server holding 3 spans already, which every hostile request must leave alone."""
    answer = writer.post("/v1/traces", content=spans("a", "b", "c").SerializeToString(), headers=PROTOBUF)
    assert answer.status_code == 200 and stored(otlp_server) == 3
    return otlp_server


def still_fine(server: LiveServer, writer: httpx.Client, before: int = 3) -> None:
    """A valid export after the hostile one is stored, and nothing stored before is lost."""
    answer = writer.post("/v1/traces", content=spans("after").SerializeToString(), headers=PROTOBUF)
    assert answer.status_code == 200 and answer.content == b""
    assert stored(server) == before + 1


def test_truncated_protobuf_is_400(seeded, writer):
    body = spans("truncated-here").SerializeToString()
    answer = writer.post("/v1/traces", content=body[: len(body) - 20], headers=PROTOBUF)
    assert answer.status_code == 400
    status = status_of(answer)
    assert status.code == 3 and "cannot decode the protobuf body" in status.message
    still_fine(seeded, writer)


def test_wrong_content_type_is_415_and_a_mislabelled_body_is_400(seeded, writer):
    body = spans("x").SerializeToString()
    answer = writer.post("/v1/traces", content=body, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415 and "unsupported Content-Type 'text/plain'" in status_of(answer).message
    answer = writer.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.headers["content-type"] == "application/json"
    assert msgspec.json.decode(answer.content)["code"] == 3
    answer = writer.post("/v1/traces", content=body, headers={**PROTOBUF, "Content-Encoding": "br"})
    assert answer.status_code == 415
    still_fine(seeded, writer)


def test_100_mb_body_is_413(seeded, writer):
    huge = b"\x0a" * (100 * 1024 * 1024)
    try:
        answer = writer.post("/v1/traces", content=huge, headers=PROTOBUF)
        assert answer.status_code == 413 and "over 4194304 bytes" in status_of(answer).message
    except httpx.WriteError:  # the server answered 413 and closed before the client finished sending
        pass

    def chunks():  # no Content-Length: the limit holds on the bytes actually read
        for _ in range(100):
            yield huge[: 1024 * 1024]

    answer = writer.post("/v1/traces", content=chunks(), headers=PROTOBUF)
    assert answer.status_code == 413
    still_fine(seeded, writer)


def test_gzip_bomb_is_413_after_decompression(seeded, writer):
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), 9)
    assert len(bomb) < 4 * 1024 * 1024
    answer = writer.post("/v1/traces", content=bomb, headers={**PROTOBUF, "Content-Encoding": "gzip"})
    assert answer.status_code == 413 and "after decompression" in status_of(answer).message
    corrupt = zlib.compress(b"not gzip")
    answer = writer.post("/v1/traces", content=corrupt, headers={**PROTOBUF, "Content-Encoding": "gzip"})
    assert answer.status_code == 400
    still_fine(seeded, writer)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field, written by hand (the protobuf library refuses to build a tower)."""
    size, length = bytearray(), len(payload)
    while True:
        size.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
        length >>= 7
        if not length:
            break
    return bytes([number << 3 | 2]) + bytes(size) + payload


def tower(depth: int, name: str) -> bytes:
    """A traces request whose one span has attribute `deep` nested `depth` key-value lists deep."""
    value = _field(1, b"bottom")  # AnyValue.string_value
    for level in range(depth):  # AnyValue.kvlist_value(6) -> KeyValueList.values(1) -> KeyValue{key(1), value(2)}
        value = _field(6, _field(1, _field(1, f"l{level}".encode()) + _field(2, value)))
    span = spans(name).resource_spans[0].scope_spans[0].spans[0].SerializeToString()
    span += _field(9, _field(1, b"deep") + _field(2, value))  # Span.attributes
    resource = spans("").resource_spans[0].resource.SerializeToString()
    return _field(1, _field(1, resource) + _field(2, _field(2, span)))


def test_deeply_nested_attributes(seeded, writer, reader):
    answer = writer.post("/v1/traces", content=tower(500, "tower"), headers=PROTOBUF)
    assert answer.status_code == 400  # past protobuf's recursion limit: undecodable
    nested_json = b'{"resourceSpans": [' * 100_000 + b"]}" * 100_000
    answer = writer.post("/v1/traces", content=nested_json, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400

    answer = writer.post("/v1/traces", content=tower(12, "kept"), headers=PROTOBUF)
    assert answer.status_code == 200
    [span] = reader.get("/api/v1/traces", params={"name": "kept"}).json()["items"]
    assert span["attributes"]["deep.l11.l10.l9.l8.l7.l6.l5.l4"] == "<nested deeper than 8 levels>"
    still_fine(seeded, writer, before=4)


def test_invalid_utf8_is_400(seeded, writer):
    body = spans("XXXXNAME").SerializeToString().replace(b"XXXXNAME", b"\xff\xfe\xfdNAME\xff")
    answer = writer.post("/v1/traces", content=body, headers=PROTOBUF)
    assert answer.status_code == 400
    answer = writer.post("/v1/traces", content=b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "\xff"}]}]}]}',
                         headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    still_fine(seeded, writer)


def test_bad_spans_are_a_partial_success(seeded, writer):
    request = spans("good", "zero-trace")
    bad = request.resource_spans[0].scope_spans[0].spans[1]
    bad.trace_id = bytes(16)
    answer = writer.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert answer.status_code == 200
    partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
    assert partial.rejected_spans == 1 and "trace_id must be 16 bytes" in partial.error_message
    assert stored(seeded) == 4

    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0" * 32, "spanId": "00f067aa0ba902b7", "name": "zero", "startTimeUnixNano": "1"},
        {"traceId": "4BF92F3577B34DA6A3CE929D0E0E4736", "spanId": "00f067aa0ba902b7", "name": "upper-hex",
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": 1700000000000000001, "unknown": 1}]}]}]}
    answer = writer.post("/v1/traces", json=body)
    assert answer.status_code == 200
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert seeded.call(seeded.monitor.storage.get_trace("4bf92f3577b34da6a3ce929d0e0e4736"))[0].name == "upper-hex"
    answer = writer.post("/v1/traces", json={"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]})
    assert answer.status_code == 400 and "traceId" in answer.json()["message"]


def test_storage_busy_is_503_with_retry_after(tmp_path):
    path = tmp_path / "locked.db"
    config = {"storage": {"backend": "sqlite", "path": str(path), "busy_timeout": 0.2}, "server": {"rate_limit": 0}}
    server = LiveServer(make_monitor(tocsin_api, tocsin_sqlite, tocsin_otlp, config=config)).start()
    try:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        answer = httpx.post(server.url("/v1/traces"), content=spans("blocked").SerializeToString(), headers=PROTOBUF,
                            timeout=30)
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
        assert status_of(answer).code == 14
        holder.execute("ROLLBACK")
        holder.close()
        answer = httpx.post(server.url("/v1/traces"), content=spans("blocked").SerializeToString(), headers=PROTOBUF,
                            timeout=30)
        assert answer.status_code == 200
    finally:
        server.stop()


async def test_busy_receiver_refuses_at_once_instead_of_queueing(tmp_path):
    config = {"storage": {"backend": "sqlite", "path": str(tmp_path / "busy.db")},
              "plugins": {"otlp": {"max_concurrent_requests": 1}}}
    async with make_monitor(tocsin_sqlite, tocsin_otlp, config=config) as monitor:
        receiver = tocsin_otlp.receiver_for(monitor)
        body = spans(*map(str, range(2000))).SerializeToString()
        first = asyncio.create_task(receiver.export("traces", body, content_type="application/x-protobuf"))
        await asyncio.sleep(0)  # the first export runs until it waits for the SQLite writer thread
        assert receiver.active == 1
        with pytest.raises(tocsin_otlp.ExportRefused) as refused:
            await receiver.export("traces", body, content_type="application/x-protobuf")
        assert refused.value.status == 503 and refused.value.retry_after_s == 1 and refused.value.retryable
        assert (await first).accepted == 2000
        assert (await receiver.export("traces", body, content_type="application/x-protobuf")).accepted == 2000


def test_write_key_header_is_needed(otlp_server):
    answer = httpx.post(otlp_server.url("/v1/logs"), content=b"", headers={**PROTOBUF, "Authorization": "Bearer no"})
    assert answer.status_code == 401
    answer = httpx.post(otlp_server.url("/v1/logs"), content=b"",
                        headers={**PROTOBUF, "Authorization": f"Bearer {WRITE_KEY}"})
    assert answer.status_code == 200 and answer.content == b""


async def test_a_metrics_export_storage_refused_counts_again_when_resent(tmp_path):
    path = tmp_path / "metrics.db"
    config = {"storage": {"backend": "sqlite", "path": str(path), "busy_timeout": 0.2}}
    async with make_monitor(tocsin_sqlite, tocsin_otlp, config=config) as monitor:
        receiver = tocsin_otlp.receiver_for(monitor)
        request = ExportMetricsServiceRequest()
        metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="orders")
        metric.sum.is_monotonic, metric.sum.aggregation_temporality = True, 2
        start = receiver.metrics.tracker.started_ns + 1
        point = metric.sum.data_points.add(start_time_unix_nano=start, time_unix_nano=start + 10**9, as_int=5)
        assert (await tocsin_otlp.ingest(monitor, "metrics", request.SerializeToString())).accepted == 1
        point.time_unix_nano, point.as_int = start + 2 * 10**9, 12
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(tocsin_otlp.ExportRefused) as refused:
            await tocsin_otlp.ingest(monitor, "metrics", request.SerializeToString())
        assert refused.value.status == 503
        holder.execute("ROLLBACK")
        holder.close()
        assert (await tocsin_otlp.ingest(monitor, "metrics", request.SerializeToString())).accepted == 1  # resent
        series = await monitor.storage.query_metrics(MetricQuery(name="orders", start_ns=start - 10**9,
                                                                 end_ns=start + 10 * 10**9, aggregate="sum"))
        assert series[0].points[0][1] == 12.0
