"""The bodies real exporters sent (tests/fixtures, captured 2026-11-27) decode to the expected records."""

from __future__ import annotations

from pathlib import Path

import pytest
import tocsin_otlp
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from tocsin.ext import LogQuery, MetricQuery
from tocsin.testing import make_monitor

FIXTURES = Path(__file__).parent / "fixtures"
TRACE_ID = "6d0794aa2065976e801a2e8879bd4c48"
PARENT, CHILD = "88d6a8baef171d3f", "2722da967e7d7a64"
RESOURCE = {"resource.telemetry.sdk.language": "python", "resource.telemetry.sdk.name": "opentelemetry",
            "resource.telemetry.sdk.version": "1.45.2",
            "resource.service.instance.id": "4997719a-7020-414c-a18a-956f9c744f2d",
            "resource.deployment.environment": "test"}


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
async def monitor():
    async with make_monitor(tocsin_otlp) as running:
        yield running


async def test_captured_protobuf_traces(monitor):
    answer = await tocsin_otlp.ingest(monitor, "traces", _fixture("captured_otlp_traces_request.bin"))
    assert (answer.accepted, answer.rejected, answer.body) == (2, 0, b"")
    parent, child = await monitor.storage.get_trace(TRACE_ID)
    assert (parent.span_id, parent.name, parent.parent_span_id) == (PARENT, "parent", None)
    assert (child.span_id, child.name, child.parent_span_id) == (CHILD, "child", PARENT)
    assert parent.service == child.service == "tocsin-demo"
    assert parent.kind == child.kind == "internal" and parent.status == child.status == "unset"
    assert (parent.start_ns, parent.end_ns) == (1795739011788597176, 1795739011788979092)
    assert (child.start_ns, child.end_ns) == (1795739011788642162, 1795739011788864933)
    assert parent.attributes == {**RESOURCE, "otel.scope.name": "tocsin.demo", "http.method": "GET",
                                 "retry.count": 3}
    [event] = child.events
    assert (event.name, event.time_ns, event.attributes) == ("cache-miss", 1795739011788657866, {"key": "k1"})


async def test_captured_gzip_protobuf_logs(monitor):
    answer = await tocsin_otlp.ingest(monitor, "logs", _fixture("captured_otlp_logs_request.bin"),
                                      content_encoding="gzip")
    assert (answer.accepted, answer.rejected) == (1, 0)
    [hit] = (await monitor.storage.search_logs(LogQuery(limit=10))).items
    record = hit.record
    assert (record.time_ns, record.level, record.message) == (1795739011788693248, "warning", "disk almost full: 93%")
    assert (record.service, record.logger) == ("tocsin-demo", "demo")
    assert (record.trace_id, record.span_id) == (TRACE_ID, CHILD)
    assert record.attributes == {
        **RESOURCE, "otel.scope.name": "demo", "code.file.path": "/tmp/research/contracts/handson/otel_send.py",
        "code.function.name": "<module>", "code.line.number": 32, "otel.severity_text": "WARN",
        "otel.severity_number": 13}


async def _counter(monitor, aggregate: str) -> list[tuple[dict[str, str], float]]:
    start, end = 1795739011788960434, 1795739011796217121
    series = await monitor.storage.query_metrics(MetricQuery(name="tocsin_demo_requests", start_ns=start - 10**9,
                                                             end_ns=end + 10**9, aggregate=aggregate))
    return [(s.labels, s.points[0][1]) for s in series]


async def test_captured_metrics_sum_counts_from_its_start_when_tocsin_listened_before(monitor):
    tocsin_otlp.receiver_for(monitor).metrics.tracker.started_ns = 0  # listening since before the point's start
    body = _fixture("captured_otlp_metrics_request.bin")
    answer = await tocsin_otlp.ingest(monitor, "metrics", body)
    assert (answer.accepted, answer.rejected) == (1, 0)
    [info] = await monitor.storage.list_metrics()
    assert (info.name, info.kind, sorted(info.label_names)) == ("tocsin_demo_requests", "counter",
                                                                ["route", "service"])
    labels = {"route": "/x", "service": "tocsin-demo"}
    assert await _counter(monitor, "sum") == [(labels, 5.0)]
    assert await _counter(monitor, "last") == [(labels, 5.0)]
    again = await tocsin_otlp.ingest(monitor, "metrics", body)  # a resend: nothing new is counted
    assert (again.accepted, again.rejected) == (0, 0)
    assert await _counter(monitor, "sum") == [(labels, 5.0)]
    request = ExportMetricsServiceRequest.FromString(body)
    point = request.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
    point.as_int, point.time_unix_nano = 9, point.time_unix_nano + 10**9
    await tocsin_otlp.ingest(monitor, "metrics", request.SerializeToString())
    assert await _counter(monitor, "sum") == [(labels, 9.0)]  # 5, then the increase of 4


async def test_captured_metrics_sum_started_before_tocsin_only_sets_the_baseline(monitor):
    answer = await tocsin_otlp.ingest(monitor, "metrics", _fixture("captured_otlp_metrics_request.bin"))
    assert (answer.accepted, answer.rejected) == (1, 0)
    assert await _counter(monitor, "last") == [({"route": "/x", "service": "tocsin-demo"}, 5.0)]
    assert await _counter(monitor, "sum") == [({"route": "/x", "service": "tocsin-demo"}, 0.0)]


async def test_captured_json_traces(monitor):
    answer = await tocsin_otlp.ingest(monitor, "traces", _fixture("captured_otlp_traces_request.json"),
                                      content_type="application/json")
    assert (answer.accepted, answer.rejected, answer.body) == (1, 0, b"{}")
    [span] = await monitor.storage.get_trace("be96ea206abef538cab35e8f4e741c6e")
    assert (span.span_id, span.name, span.kind, span.parent_span_id) == ("737e1f8648aa0004", "json-span",
                                                                          "internal", None)
    assert (span.status, span.status_message, span.service) == ("error", "boom", "tocsin-json-demo")
    assert (span.start_ns, span.end_ns) == (1795739045251109779, 1795739045251357536)
    assert span.attributes["n"] == 42 and span.attributes["otel.scope.name"] == "j"
