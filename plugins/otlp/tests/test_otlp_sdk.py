"""The real OpenTelemetry Python SDK exports to a live `tocsin serve` over loopback, and what it sent is read
back through `/api/v1` (and fires alert rules) like native data.

The Python SDK has no OTLP/JSON exporter in the same release line (opentelemetry-exporter-otlp-json-http pins
an incompatible transport), so the JSON test builds OTLP/JSON from the SDK's own protobuf request with
protobuf's json_format, fixed up to the OTLP/JSON rules (hex ids, integer enums), and posts it.
"""

from __future__ import annotations

import logging
import time

import httpx
import pytest
import tocsin_api
import tocsin_otlp
import tocsin_sqlite
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from tocsin_api.testing import LiveServer

from tocsin.testing import make_monitor

from .conftest import READ_KEY, WRITE_KEY

RESOURCE = Resource.create({"service.name": "checkout", "deployment.environment": "test"})
AUTH = {"Authorization": f"Bearer {WRITE_KEY}"}


def _wait(check, timeout: float = 15.0):
    """Poll `check()` until it returns something truthy (the server commits before it answers, but alert
    evaluation runs on its own interval)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _traced(tracer) -> tuple[str, str, str]:
    """Record a parent span and a child (server kind, error status, event, link); return their ids."""
    with tracer.start_as_current_span("checkout", attributes={"cart.items": 3, "user.vip": True,
                                                             "tags": ["a", "b"], "amount": 12.5}) as parent:
        linked = parent.get_span_context()
        with tracer.start_as_current_span("charge", kind=SpanKind.SERVER, links=[Link(linked, {"why": "retry"})],
                                          attributes={"http.request.method": "POST"}) as child:
            child.add_event("card-declined", {"code": 51})
            child.set_status(Status(StatusCode.ERROR, "declined"))
    return (format(linked.trace_id, "032x"), format(linked.span_id, "016x"),
            format(child.get_span_context().span_id, "016x"))


def test_sdk_traces_read_back_through_the_api(otlp_server, reader):
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp_server.url("/v1/traces"),
                                                                     headers=AUTH)))
    trace_id, parent_id, child_id = _traced(provider.get_tracer("shop.checkout", "1.2"))
    provider.shutdown()

    tree = reader.get(f"/api/v1/traces/{trace_id}").json()
    assert tree["roots"] == [parent_id]
    assert tree["children"] == {parent_id: [child_id]}
    assert tree["services"] == ["checkout"] and tree["errors"] == 1
    spans = {span["span_id"]: span for span in tree["spans"]}
    parent, child = spans[parent_id], spans[child_id]
    assert parent["parent_span_id"] is None and child["parent_span_id"] == parent_id
    assert parent["attributes"]["cart.items"] == 3 and parent["attributes"]["user.vip"] is True
    assert parent["attributes"]["tags"] == ["a", "b"] and parent["attributes"]["amount"] == 12.5
    assert parent["attributes"]["resource.deployment.environment"] == "test"
    assert parent["attributes"]["otel.scope.name"] == "shop.checkout"
    assert parent["attributes"]["otel.scope.version"] == "1.2"
    assert child["kind"] == "server" and parent["kind"] == "internal"
    assert child["status"] == "error" and child["status_message"] == "declined"
    assert [(e["name"], e["attributes"]) for e in child["events"]] == [("card-declined", {"code": 51})]
    assert child["links"] == [{"trace_id": trace_id, "span_id": parent_id, "attributes": {"why": "retry"}}]
    assert child["end_ns"] > child["start_ns"] >= parent["start_ns"]

    found = reader.get("/api/v1/traces", params={"service": "checkout", "status": "error",
                                                 "attribute": "http.request.method=POST"}).json()
    assert [span["span_id"] for span in found["items"]] == [child_id]


@pytest.mark.filterwarnings("ignore:`LoggingHandler`:DeprecationWarning")
def test_sdk_logs_with_severity_and_trace_ids(otlp_server, reader):
    logs = LoggerProvider(resource=RESOURCE)
    logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(
        endpoint=otlp_server.url("/v1/logs"), headers=AUTH, compression=Compression.Gzip)))
    logger = logging.getLogger("shop.payments")
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=logs)
    logger.addHandler(handler)
    tracer_provider = TracerProvider(resource=RESOURCE)
    try:
        logger.debug("cache warm")
        logger.warning("card retry %d", 2)
        with tracer_provider.get_tracer("t").start_as_current_span("pay") as span:
            logger.error("payment failed for order 77")
            context = span.get_span_context()
        logger.critical("ledger offline")
        logs.force_flush()
    finally:
        logger.removeHandler(handler)
        logs.shutdown()

    items = reader.get("/api/v1/logs", params={"service": "checkout"}).json()["items"]
    by_message = {hit["record"]["message"]: hit["record"] for hit in items}
    assert {m: r["level"] for m, r in by_message.items()} == {
        "cache warm": "debug", "card retry 2": "warning", "payment failed for order 77": "error",
        "ledger offline": "critical"}
    failed = by_message["payment failed for order 77"]
    assert failed["trace_id"] == format(context.trace_id, "032x")
    assert failed["span_id"] == format(context.span_id, "016x")
    assert failed["logger"] == "shop.payments"
    assert failed["attributes"]["otel.severity_text"] == "ERROR"
    assert failed["attributes"]["otel.severity_number"] == 17
    assert by_message["cache warm"]["trace_id"] is None
    searched = reader.get("/api/v1/logs", params={"q": "payment", "level": "error"}).json()["items"]
    assert [hit["record"]["message"] for hit in searched] == ["payment failed for order 77"]
    trace_logs = reader.get(f"/api/v1/traces/{failed['trace_id']}/logs").json()["items"]
    assert [hit["record"]["message"] for hit in trace_logs] == ["payment failed for order 77"]


def _metric(reader: httpx.Client, name: str, agg: str, **params: str) -> list[dict]:
    answer = reader.get(f"/api/v1/metrics/{name}/query", params={"agg": agg, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["series"]


def test_sdk_metrics_counters_gauges_histograms(otlp_server, reader):
    reader_sdk = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=otlp_server.url("/v1/metrics"),
                                                                  headers=AUTH), export_interval_millis=3_600_000)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader_sdk])
    meter = provider.get_meter("shop")
    orders = meter.create_counter("orders.placed")
    queue = meter.create_up_down_counter("queue.depth")
    latency = meter.create_histogram("http.server.duration", unit="ms")
    try:
        orders.add(2, {"region": "eu"})
        orders.add(3, {"region": "us"})
        queue.add(5)
        for value in (3, 7, 12, 40, 90, 450):
            latency.record(value, {"route": "/pay"})
        provider.force_flush()
        orders.add(4, {"region": "eu"})  # the second export is cumulative: tocsin stores the increase
        queue.add(-2)
        latency.record(2500, {"route": "/pay"})
        provider.force_flush()
    finally:
        provider.shutdown()

    names = {info["name"]: info for info in reader.get("/api/v1/metrics").json()}
    assert names["orders_placed"]["kind"] == "counter" and names["queue_depth"]["kind"] == "gauge"
    assert names["http_server_duration"]["kind"] == "histogram"
    assert sorted(names["orders_placed"]["label_names"]) == ["region", "service"]

    sums = {s["labels"]["region"]: s["points"][0][1] for s in _metric(reader, "orders_placed", "sum", by="region")}
    assert sums == {"eu": 6.0, "us": 3.0}
    assert _metric(reader, "queue_depth", "last")[0]["points"][0][1] == 3.0
    [count] = _metric(reader, "http_server_duration", "count", **{"match[]": 'route="/pay"'})
    assert count["points"][0][1] == 7.0
    [total] = _metric(reader, "http_server_duration", "sum")
    assert total["points"][0][1] == 3 + 7 + 12 + 40 + 90 + 450 + 2500
    [p50] = _metric(reader, "http_server_duration", "p50")
    assert 25 <= p50["points"][0][1] <= 50  # the 4th of 7 values (40) lies in the SDK's (25, 50] bucket


@pytest.fixture
def alerting_server(tmp_path):
    config = {
        "storage": {"backend": "sqlite", "path": str(tmp_path / "alerts.db")},
        "server": {"rate_limit": 0},
        "alerting": {"evaluation_interval": 1, "rules": [
            {"name": "otlp-errors", "kind": "metric", "metric": "payment_errors", "aggregate": "sum",
             "window": 300, "op": "gt", "threshold": 2},
        ]},
    }
    server = LiveServer(make_monitor(tocsin_api, tocsin_sqlite, tocsin_otlp, config=config)).start()
    yield server
    server.stop()


def test_an_exported_metric_fires_an_alert_rule(alerting_server):
    exporter = OTLPMetricExporter(endpoint=alerting_server.url("/v1/metrics"))
    provider = MeterProvider(resource=RESOURCE, metric_readers=[
        PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)])
    provider.get_meter("shop").create_counter("payment.errors").add(5)
    provider.shutdown()
    with httpx.Client(base_url=alerting_server.base, timeout=10) as http:
        firing = _wait(lambda: [alert for alert in http.get("/api/v1/alerts").json()["items"]
                                if alert["rule"] == "otlp-errors" and alert["state"] == "firing"])
    assert firing and firing[0]["value"] == 5.0


class _Capture(SpanExporter):
    def __init__(self) -> None:
        self.spans = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def otlp_json(message) -> dict:
    """OTLP/JSON of a protobuf message: json_format's dict with ids as hex and enums as integers."""
    data = json_format.MessageToDict(message, use_integers_for_enums=True)

    def fix(value):
        if isinstance(value, dict):
            return {key: (json_format.base64.b64decode(item).hex() if key in ("traceId", "spanId", "parentSpanId")
                          else fix(item)) for key, item in value.items()}
        return [fix(item) for item in value] if isinstance(value, list) else value

    return fix(data)


def test_json_export_from_the_sdks_own_messages(otlp_server, writer, reader):
    capture = _Capture()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(capture))
    trace_id, parent_id, child_id = _traced(provider.get_tracer("shop.checkout"))
    provider.shutdown()
    body = otlp_json(encode_spans(capture.spans))
    assert body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] == trace_id

    answer = writer.post("/v1/traces", json=body)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == {}
    spans = {s["span_id"]: s for s in reader.get(f"/api/v1/traces/{trace_id}").json()["spans"]}
    assert spans[child_id]["parent_span_id"] == parent_id and spans[child_id]["kind"] == "server"
    assert spans[parent_id]["attributes"]["cart.items"] == 3  # an int64 sent as a JSON string
    assert spans[child_id]["links"][0]["span_id"] == parent_id


def test_write_scope_is_required(otlp_server):
    body = encode_spans([]).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    assert httpx.post(otlp_server.url("/v1/traces"), content=body, headers=headers).status_code == 401
    read_only = {**headers, "Authorization": f"Bearer {READ_KEY}"}
    assert httpx.post(otlp_server.url("/v1/traces"), content=body, headers=read_only).status_code == 403
    answer = httpx.post(otlp_server.url("/v1/traces"), content=body, headers={**headers, **AUTH})
    assert answer.status_code == 200 and answer.content == b""
