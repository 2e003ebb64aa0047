"""tocsin-otlp: OTLP/HTTP protobuf span export committed to SQLite per second, against decoding the same requests
with the opentelemetry-proto classes alone (upb), in the same run.

Each request is an `ExportTraceServiceRequest` of 512 spans (the SDK's BatchSpanProcessor batch size), each span
with 5 attributes and 1 event, the resource with 3 attributes; every round sends new ids, so each span is a new
row. "Over HTTP" is `POST /v1/traces` to `tocsin serve` on loopback (uvicorn, this process's background thread,
httpx client with keep-alive): the answer comes after the batch is committed to the SQLite file. "In process" is
`tocsin_otlp.ingest` on the same monitor (no HTTP). "Decode only" is `ExportTraceServiceRequest.FromString`.

The JSON group decodes the same request as OTLP/JSON (hex ids) with the receiver's msgspec Structs against
protobuf's `json_format.Parse`, the choice the receiver made for OTLP/JSON.

Run: uv run pytest benchmarks/test_otlp_bench.py --benchmark-only -s
"""

from __future__ import annotations

import base64
import os
import time

import httpx
import msgspec
import pytest
import tocsin_api
import tocsin_otlp
import tocsin_sqlite
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from tocsin_api.testing import LiveServer
from tocsin_otlp import wire

from tocsin.testing import make_monitor

SPANS = 512
ROUNDS = 30
WARMUP = 2
RESULTS: dict[str, float] = {}


def _request(start_ns: int) -> bytes:
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    for key, value in (("service.name", "bench"), ("host.name", "bench-1"), ("deployment.environment", "prod")):
        resource.resource.attributes.add(key=key, value=AnyValue(string_value=value))
    scope = resource.scope_spans.add()
    scope.scope.name = "bench.tracer"
    trace_id = os.urandom(16)
    for i in range(SPANS):
        span = scope.spans.add(trace_id=trace_id if i % 8 else os.urandom(16), span_id=os.urandom(8),
                               name=f"GET /items/{i % 20}", kind=2, start_time_unix_nano=start_ns + i * 1000,
                               end_time_unix_nano=start_ns + i * 1000 + 250_000)
        span.attributes.extend([
            KeyValue(key="http.request.method", value=AnyValue(string_value="GET")),
            KeyValue(key="http.response.status_code", value=AnyValue(int_value=200)),
            KeyValue(key="url.path", value=AnyValue(string_value=f"/items/{i}")),
            KeyValue(key="cache.hit", value=AnyValue(bool_value=i % 2 == 0)),
            KeyValue(key="db.duration_ms", value=AnyValue(double_value=1.5 * i)),
        ])
        span.events.add(time_unix_nano=start_ns + i * 1000 + 100, name="cache.lookup",
                        attributes=[KeyValue(key="key", value=AnyValue(string_value=f"item:{i}"))])
        span.status.code = 1
    return request.SerializeToString()


@pytest.fixture(scope="module")
def bodies():
    """Enough distinct requests for every round of every test."""
    now = time.time_ns()
    return iter([_request(now + n * 10**9) for n in range(3 * (ROUNDS + WARMUP))])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = tmp_path_factory.mktemp("otlp") / "bench.db"
    monitor = make_monitor(tocsin_api, tocsin_sqlite, tocsin_otlp, config={
        "storage": {"backend": "sqlite", "path": str(path)}, "server": {"rate_limit": 0}})
    live = LiveServer(monitor).start()
    yield live
    live.stop()


def _record(benchmark, name: str) -> None:
    per_s = SPANS / benchmark.stats.stats.median
    RESULTS[name] = per_s
    benchmark.extra_info.update(spans_per_round=SPANS, spans_per_s=round(per_s))
    print(f"\n{name}: {per_s:,.0f} spans/s (median of {benchmark.stats.stats.rounds} requests of {SPANS} spans)")


@pytest.mark.benchmark(group="OTLP protobuf traces, 512 spans per request")
def test_otlp_spans_committed_over_http(benchmark, server, bodies):
    with httpx.Client(base_url=server.base, timeout=30) as http:
        def post() -> None:
            answer = http.post("/v1/traces", content=next(bodies), headers={"content-type": "application/x-protobuf"})
            assert answer.status_code == 200 and answer.content == b""

        benchmark.pedantic(post, rounds=ROUNDS, warmup_rounds=WARMUP)
    _record(benchmark, "committed over HTTP")


@pytest.mark.benchmark(group="OTLP protobuf traces, 512 spans per request")
def test_otlp_spans_committed_in_process(benchmark, server, bodies):
    def ingest() -> None:
        answer = server.call(tocsin_otlp.ingest(server.monitor, "traces", next(bodies)))
        assert answer.accepted == SPANS

    benchmark.pedantic(ingest, rounds=ROUNDS, warmup_rounds=WARMUP)
    _record(benchmark, "committed in process")


@pytest.mark.benchmark(group="OTLP protobuf traces, 512 spans per request")
def test_otlp_spans_decode_only(benchmark, bodies):
    def decode() -> None:
        assert len(ExportTraceServiceRequest.FromString(next(bodies)).resource_spans[0].scope_spans[0].spans) == SPANS

    benchmark.pedantic(decode, rounds=ROUNDS, warmup_rounds=WARMUP)
    _record(benchmark, "decode only (opentelemetry-proto, upb)")
    if "committed over HTTP" in RESULTS:
        ratio = RESULTS["decode only (opentelemetry-proto, upb)"] / RESULTS["committed over HTTP"]
        benchmark.extra_info["decode_over_committed"] = round(ratio, 1)
        print(f"decode only is {ratio:.1f}x the committed rate over HTTP")


def _otlp_json(body: bytes) -> bytes:
    """The request as OTLP/JSON: json_format's form with ids as hex, as OTLP/JSON has them."""
    data = json_format.MessageToDict(ExportTraceServiceRequest.FromString(body), use_integers_for_enums=True)
    for span in data["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId"):
            span[key] = base64.b64decode(span[key]).hex()
    return msgspec.json.encode(data)


@pytest.fixture(scope="module")
def json_body() -> bytes:
    return _otlp_json(_request(time.time_ns()))


@pytest.mark.benchmark(group="OTLP/JSON traces decode, 512 spans per request")
def test_otlp_json_decode_msgspec(benchmark, json_body):
    decoder = wire.decoder(wire.TracesRequest)
    result = benchmark(decoder.decode, json_body)
    assert len(result.resource_spans[0].scope_spans[0].spans) == SPANS
    _record(benchmark, "OTLP/JSON decode, msgspec wire Structs")


@pytest.mark.benchmark(group="OTLP/JSON traces decode, 512 spans per request")
def test_otlp_json_decode_json_format(benchmark, json_body):
    # json_format reads the hex ids as base64 (wrong bytes, no error): timed only, for the comparison
    result = benchmark(json_format.Parse, json_body, ExportTraceServiceRequest())
    assert len(result.resource_spans[0].scope_spans[0].spans) == SPANS
    _record(benchmark, "OTLP/JSON decode, protobuf json_format.Parse")
