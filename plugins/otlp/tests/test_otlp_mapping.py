"""How OTLP metrics, log severities and attribute values map to tocsin's model, checked through storage."""

from __future__ import annotations

import math

import msgspec
import pytest
import tocsin_otlp
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from tocsin_otlp import wire
from tocsin_otlp.histograms import explicit
from tocsin_otlp.logs import level_of
from tocsin_otlp.names import label_name, metric_name

from tocsin.ext import LogQuery, LogSketch, MetricQuery
from tocsin.testing import make_monitor

T0 = 1_800_000_000_000_000_000
SECOND = 1_000_000_000
DELTA, CUMULATIVE = 1, 2


@pytest.fixture
async def monitor():
    async with make_monitor(tocsin_otlp) as running:
        tocsin_otlp.receiver_for(running).metrics.tracker.started_ns = 0  # listening since before T0
        yield running


def metrics_request() -> tuple[ExportMetricsServiceRequest, object]:
    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    resource.resource.attributes.add(key="service.name", value=AnyValue(string_value="billing"))
    return request, resource.scope_metrics.add()


async def query(monitor, name: str, aggregate: str, **labels: str) -> float | None:
    series = await monitor.storage.query_metrics(MetricQuery(name=name, start_ns=T0 - 3600 * SECOND,
                                                             end_ns=T0 + 3600 * SECOND, aggregate=aggregate))
    found = [s for s in series if all(s.labels.get(k) == v for k, v in labels.items())]
    return found[0].points[0][1] if found else None


async def send(monitor, request) -> tocsin_otlp.Export:
    return await tocsin_otlp.ingest(monitor, "metrics", request.SerializeToString())


async def test_explicit_histogram_keeps_count_and_sum_exact_and_quantiles_within_a_bucket(monitor):
    request, scope = metrics_request()
    metric = scope.metrics.add(name="db.query.duration")
    metric.histogram.aggregation_temporality = DELTA
    point = metric.histogram.data_points.add(start_time_unix_nano=T0, time_unix_nano=T0 + 10 * SECOND, count=100,
                                             sum=1234.5, min=0.5, max=480.0)
    point.explicit_bounds.extend([1, 10, 100, 1000])
    point.bucket_counts.extend([10, 40, 45, 5, 0])
    point.attributes.add(key="db.system", value=AnyValue(string_value="postgresql"))
    assert (await send(monitor, request)).accepted == 1
    assert await query(monitor, "db_query_duration", "count", db_system="postgresql", service="billing") == 100
    assert await query(monitor, "db_query_duration", "sum") == 1234.5
    assert await query(monitor, "db_query_duration", "min") == 0.5
    assert await query(monitor, "db_query_duration", "max") == 480.0
    assert 1 < await query(monitor, "db_query_duration", "p50") <= 10  # rank 50 is in (1, 10]
    assert 100 < await query(monitor, "db_query_duration", "p99") <= 480


async def test_cumulative_histogram_stores_each_window(monitor):
    request, scope = metrics_request()
    metric = scope.metrics.add(name="latency")
    metric.histogram.aggregation_temporality = CUMULATIVE
    point = metric.histogram.data_points.add(start_time_unix_nano=T0, time_unix_nano=T0 + SECOND, count=3, sum=6.0)
    point.explicit_bounds.extend([1, 10])
    point.bucket_counts.extend([1, 2, 0])
    await send(monitor, request)
    point.time_unix_nano, point.count, point.sum = T0 + 2 * SECOND, 5, 60.0
    del point.bucket_counts[:]
    point.bucket_counts.extend([1, 2, 2])
    await send(monitor, request)
    assert await query(monitor, "latency", "count") == 5
    assert await query(monitor, "latency", "sum") == 60.0
    # the second window only grew the (10, +inf) bucket; with no max sent, its one finite bound stands for it
    assert await query(monitor, "latency", "max") == 10.0
    assert await query(monitor, "latency", "p99") == pytest.approx(10.0, rel=0.02)


async def test_exponential_histogram(monitor):
    request, scope = metrics_request()
    metric = scope.metrics.add(name="payload.size")
    metric.exponential_histogram.aggregation_temporality = DELTA
    point = metric.exponential_histogram.data_points.add(start_time_unix_nano=T0, time_unix_nano=T0 + SECOND,
                                                         count=11, sum=3000.0, scale=3, zero_count=1)
    point.positive.offset = 80  # base 2^(1/8): bucket 80 is (1024, 1097.5]
    point.positive.bucket_counts.extend([10])
    assert (await send(monitor, request)).accepted == 1
    assert await query(monitor, "payload_size", "count") == 11
    assert await query(monitor, "payload_size", "sum") == 3000.0
    p50 = await query(monitor, "payload_size", "p50")
    assert 1024 * 0.98 < p50 < 1097.5 * 1.02


async def test_delta_counter_gauges_and_updown_sums(monitor):
    request, scope = metrics_request()
    counter = scope.metrics.add(name="jobs.done")
    counter.sum.is_monotonic, counter.sum.aggregation_temporality = True, DELTA
    counter.sum.data_points.add(start_time_unix_nano=T0, time_unix_nano=T0 + SECOND, as_int=4)
    gauge = scope.metrics.add(name="cpu.temp")
    gauge.gauge.data_points.add(time_unix_nano=T0 + SECOND, as_double=71.5)
    updown = scope.metrics.add(name="pool.in_use")
    updown.sum.is_monotonic, updown.sum.aggregation_temporality = False, DELTA
    updown.sum.data_points.add(start_time_unix_nano=T0, time_unix_nano=T0 + SECOND, as_int=5)
    await send(monitor, request)
    counter.sum.data_points[0].start_time_unix_nano = T0 + SECOND
    counter.sum.data_points[0].time_unix_nano = T0 + 2 * SECOND
    updown.sum.data_points[0].time_unix_nano, updown.sum.data_points[0].as_int = T0 + 2 * SECOND, -2
    gauge.gauge.data_points[0].time_unix_nano, gauge.gauge.data_points[0].as_double = T0 + 2 * SECOND, 70.0
    await send(monitor, request)
    assert await query(monitor, "jobs_done", "sum") == 8
    assert await query(monitor, "jobs_done", "last") == 8  # the running total
    assert await query(monitor, "cpu_temp", "last") == 70.0 and await query(monitor, "cpu_temp", "max") == 71.5
    assert await query(monitor, "pool_in_use", "last") == 3


async def test_summaries_nan_and_tocsins_own_names_are_refused(monitor):
    request, scope = metrics_request()
    summary = scope.metrics.add(name="rpc.latency")
    summary.summary.data_points.add(time_unix_nano=T0, count=2, sum=3.0)
    bad = scope.metrics.add(name="ratio")
    bad.gauge.data_points.add(time_unix_nano=T0, as_double=math.nan)
    own = scope.metrics.add(name="tocsin.records.written.total")
    monitor.metrics.counter("tocsin_records_written_total")
    own.sum.is_monotonic = True
    own.sum.data_points.add(time_unix_nano=T0, as_int=1)
    skipped = scope.metrics.add(name="idle")
    skipped.gauge.data_points.add(time_unix_nano=T0, as_double=1, flags=1)  # no recorded value
    answer = await send(monitor, request)
    assert (answer.accepted, answer.rejected) == (0, 3)
    partial = ExportMetricsServiceResponse.FromString(answer.body).partial_success
    assert partial.rejected_data_points == 3 and "Summary" in partial.error_message
    assert {info.name for info in await monitor.storage.list_metrics()} == set()


def test_names():
    assert metric_name("http.server.request.duration") == "http_server_request_duration"
    assert metric_name("9lives") == "_9lives" and metric_name("a:b-c") == "a:b_c"
    assert label_name("http.route") == "http_route" and label_name("__x") == "key__x"
    assert label_name("2fa") == "key_2fa"


@pytest.mark.parametrize(("number", "text", "level"), [
    (1, "", "debug"), (5, "DEBUG", "debug"), (9, "", "info"), (13, "WARN", "warning"), (16, "", "warning"),
    (17, "", "error"), (21, "", "critical"), (24, "", "critical"), (0, "Warning", "warning"), (0, "FATAL2", "critical"),
    (0, "", "info"), (0, "chatty", "info"), (99, "error", "error"),
])
def test_severity_levels(number, text, level):
    assert level_of(number, text) == level


async def test_log_bodies_and_attribute_values(monitor):
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add()
    structured = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="user", value=AnyValue(int_value=7))]))
    record = records.log_records.add(time_unix_nano=T0, severity_number=17, body=structured)
    record.attributes.extend([
        KeyValue(key="blob", value=AnyValue(bytes_value=b"\x00\xff")),
        KeyValue(key="list", value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1),
                                                                           AnyValue(string_value="two")]))),
        KeyValue(key="http", value=structured),
        KeyValue(key="empty", value=AnyValue()),
    ])
    records.log_records.add(time_unix_nano=T0, trace_id=b"\x01" * 5)  # a malformed trace id
    answer = await tocsin_otlp.ingest(monitor, "logs", request.SerializeToString())
    assert (answer.accepted, answer.rejected) == (1, 1)
    [hit] = (await monitor.storage.search_logs(LogQuery(limit=10))).items
    assert hit.record.message == '{"user":7}' and hit.record.level == "error"
    assert hit.record.attributes == {"blob": "AP8=", "list": [1, "two"], "http.user": 7, "empty": None,
                                     "otel.severity_number": 17}


async def test_otlp_json_metrics_and_logs(monitor):
    metrics = {"resourceMetrics": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "billing"}}]}, "scopeMetrics": [{"metrics": [
            {"name": "queue.size", "gauge": {"dataPoints": [{"timeUnixNano": str(T0), "asInt": "17"}]}},
            {"name": "rpc.size", "exponentialHistogram": {"aggregationTemporality": 1, "dataPoints": [
                {"startTimeUnixNano": str(T0), "timeUnixNano": str(T0 + SECOND), "count": "4", "sum": 40.5,
                 "scale": 0, "zeroCount": "1", "positive": {"offset": 3, "bucketCounts": ["3"]}}]}},
            {"name": "bad", "sum": {"isMonotonic": True, "dataPoints": [{"timeUnixNano": "1", "asDouble": "NaN"}]}},
        ]}]}]}
    answer = await tocsin_otlp.ingest(monitor, "metrics", msgspec.json.encode(metrics),
                                      content_type="application/json; charset=utf-8")
    assert (answer.accepted, answer.rejected) == (2, 1)
    assert msgspec.json.decode(answer.body) == {"partialSuccess": {
        "rejectedDataPoints": "1", "errorMessage": "metric 'bad': a point's value must be a finite number, got nan"}}
    assert await query(monitor, "queue_size", "last", service="billing") == 17
    assert await query(monitor, "rpc_size", "count") == 4 and await query(monitor, "rpc_size", "sum") == 40.5
    assert 8 < await query(monitor, "rpc_size", "p99") <= 16 * 1.02  # bucket 3 at scale 0 is (8, 16]

    logs = {"resourceLogs": [{"scopeLogs": [{"scope": {"name": "worker"}, "logRecords": [
        {"timeUnixNano": str(T0), "severityText": "Error", "body": {"stringValue": "disk full"},
         "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174"}]}]}]}
    answer = await tocsin_otlp.ingest(monitor, "logs", msgspec.json.encode(logs), content_type="application/json")
    assert (answer.accepted, answer.body) == (1, b"{}")
    [hit] = (await monitor.storage.search_logs(LogQuery(limit=10))).items
    assert (hit.record.level, hit.record.logger, hit.record.message) == ("error", "worker", "disk full")
    assert (hit.record.trace_id, hit.record.span_id) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")


@pytest.mark.parametrize("value", [0.001, 1.0, 3.7, 250.0, 1e6, -42.0, 0.0])
def test_histogram_buckets_land_where_tocsins_own_sketch_puts_the_value(value):


    point = wire.HistogramDataPoint(count=1, sum=value, bucket_counts=[1], min=value, max=value)
    native = LogSketch()
    native.add(value)
    assert explicit(point).sketch() == native.to_model()


async def test_a_cumulative_counter_without_a_start_time_only_sets_the_baseline(monitor):
    request, scope = metrics_request()
    metric = scope.metrics.add(name="restarts")
    metric.sum.is_monotonic, metric.sum.aggregation_temporality = True, CUMULATIVE
    point = metric.sum.data_points.add(time_unix_nano=T0, as_int=1000)
    await send(monitor, request)
    point.time_unix_nano, point.as_int = T0 + SECOND, 1003
    await send(monitor, request)
    assert await query(monitor, "restarts", "sum") == 3 and await query(monitor, "restarts", "last") == 1003
