"""The metrics endpoints over a real socket: listing, aggregate queries, label values, and ingest of samples."""

from __future__ import annotations

import httpx
import pytest

from tocsin.ext import MetricRollup

KEYS = {"server": {"api_keys": [
    {"name": "reader", "key": "r-secret-0123456789abcdef", "scopes": ["read"]},
    {"name": "writer", "key": "w-secret-0123456789abcdef", "scopes": ["read", "write"]},
]}}
BASE = 1_764_756_000 * 10**9  # 2025-12-03T10:00:00Z
MINUTE = 60 * 10**9


def record_shop(server) -> None:
    """Requests by route and code, a queue depth gauge and a latency histogram, recorded and flushed."""
    metrics = server.monitor.metrics
    requests = metrics.counter("http_requests_total", "Requests served", "1")
    requests.inc(3, route="/cart", code="200")
    requests.inc(1, route="/cart", code="500")
    requests.inc(5, route="/pay", code="200")
    metrics.gauge("queue_depth", "Jobs waiting").set(7, queue="mail")
    latency = metrics.histogram("http_request_seconds", "Request latency", "s")
    for millis in range(10, 1010, 10):  # 0.01 s to 1.00 s
        latency.observe(millis / 1000, route="/cart")
    server.call(server.monitor.flush())


def write_rollups(server) -> None:
    """Three minutes of a counter at fixed times, so steps and rates are exact."""
    rollups = [
        MetricRollup(name="jobs_total", kind="counter", labels={"queue": queue}, start_ns=BASE + i * MINUTE,
                     interval_s=60, count=1, sum=value, min=value, max=value, last=value)
        for i, (queue, value) in enumerate([("mail", 60.0), ("mail", 120.0), ("sms", 30.0)])
    ]
    server.call(server.monitor.storage.write_metrics(rollups))


def field_of(response: httpx.Response) -> str:
    body = response.json()
    assert response.status_code == 400, body
    assert response.headers["content-type"].startswith("application/problem+json")
    return body["errors"][0]["field"]


def by_labels(series: list[dict]) -> dict[tuple, list]:
    return {tuple(sorted(s["labels"].items())): s["points"] for s in series}


def test_metrics_are_listed_with_kind_series_labels_and_declared_unit(server, client):
    record_shop(server)
    listed = client.get("/api/v1/metrics")
    assert listed.status_code == 200
    found = {m["name"]: m for m in listed.json()}
    assert found["http_requests_total"] == {"name": "http_requests_total", "kind": "counter", "series": 3,
                                            "label_names": ["code", "route"], "unit": "1",
                                            "description": "Requests served"}
    assert found["queue_depth"]["kind"] == "gauge" and found["queue_depth"]["unit"] == ""
    assert found["http_request_seconds"]["kind"] == "histogram" and found["http_request_seconds"]["unit"] == "s"
    names = [m["name"] for m in listed.json()]
    assert names == sorted(names)


def test_a_query_aggregates_by_labels_and_filters_by_matchers(server, client):
    record_shop(server)
    url = "/api/v1/metrics/http_requests_total/query"
    by_route = client.get(url, params={"agg": "sum", "by": "route"})
    assert by_route.status_code == 200
    body = by_route.json()
    assert body["name"] == "http_requests_total" and body["aggregate"] == "sum" and body["by"] == ["route"]
    assert body["end_ns"] - body["start_ns"] == 3600 * 10**9 and body["step_s"] is None
    sums = {key: points[0][1] for key, points in by_labels(body["series"]).items()}
    assert sums == {(("route", "/cart"),): 4.0, (("route", "/pay"),): 5.0}

    apart = client.get(url, params={"agg": "sum"}).json()["series"]
    assert len(apart) == 3  # without `by`, every series apart

    merged = client.get(url, params={"agg": "sum", "by": ""}).json()["series"]
    assert merged == [{"labels": {}, "points": [[merged[0]["points"][0][0], 9.0]]}]

    errors = client.get(url, params={"agg": "sum", "by": "route", "match[]": 'code=~"5.."'}).json()["series"]
    assert [(s["labels"], s["points"][0][1]) for s in errors] == [({"route": "/cart"}, 1.0)]
    two = client.get(url, params={"agg": "count", "match[]": ['route="/cart"', 'code="200"']}).json()["series"]
    assert [s["labels"] for s in two] == [{"code": "200", "route": "/cart"}]


def test_percentiles_come_from_the_stored_sketches(server, client):
    record_shop(server)
    url = "/api/v1/metrics/http_request_seconds/query"
    values = {}
    for agg in ("p50", "p99", "max", "count", "avg"):
        series = client.get(url, params={"agg": agg, "by": ""}).json()["series"]
        values[agg] = series[0]["points"][0][1]
    assert values["p50"] == pytest.approx(0.5, rel=0.03)
    assert values["p99"] == pytest.approx(0.99, rel=0.03)
    assert values["max"] == 1.0 and values["count"] == 100.0 and values["avg"] == pytest.approx(0.505)


def test_steps_bucket_the_range_and_rate_is_per_second(server, client):
    write_rollups(server)
    window = {"start": str(BASE), "end": str(BASE + 3 * MINUTE)}
    url = "/api/v1/metrics/jobs_total/query"
    stepped = client.get(url, params={**window, "agg": "sum", "step": "1m", "by": ""}).json()
    assert stepped["step_s"] == 60.0
    assert stepped["series"][0]["points"] == [[BASE, 60.0], [BASE + MINUTE, 120.0], [BASE + 2 * MINUTE, 30.0]]
    rate = client.get(url, params={**window, "agg": "rate", "step": "60", "by": "queue"}).json()["series"]
    assert by_labels(rate) == {(("queue", "mail"),): [[BASE, 1.0], [BASE + MINUTE, 2.0]],
                               (("queue", "sms"),): [[BASE + 2 * MINUTE, 0.5]]}
    rfc3339 = client.get(url, params={"start": "2025-12-03T10:01:00Z", "end": "2025-12-03T10:02:00Z",
                                      "agg": "sum"}).json()
    assert rfc3339["start_ns"] == BASE + MINUTE
    assert [s["points"] for s in rfc3339["series"]] == [[[BASE + MINUTE, 120.0]]]


def test_an_unknown_metric_is_404_and_a_known_one_without_data_is_empty(server, client):
    write_rollups(server)
    missing = client.get("/api/v1/metrics/no_such_metric/query")
    assert missing.status_code == 404 and missing.json()["type"] == "urn:tocsin:problem:not-found"
    quiet = client.get("/api/v1/metrics/jobs_total/query", params={"start": "1h"})  # the rollups are old
    assert quiet.status_code == 200 and quiet.json()["series"] == []
    assert client.get("/api/v1/metrics/no_such_metric/labels/queue/values").status_code == 404


@pytest.mark.parametrize(("query", "field"), [
    ({"agg": "p90"}, "agg"),
    ({"agg": "median"}, "agg"),
    ({"step": "0"}, "step"),
    ({"step": "soon"}, "step"),
    ({"start": "yesterday"}, "start"),
    ({"start": "2025-12-03T10:00:00Z", "end": "2025-12-03T09:00:00Z"}, "end"),
    ({"match[]": "job"}, "match[]"),
    ({"by": "route,bad-label"}, "by"),
])
def test_bad_query_parameters_are_400_naming_the_parameter(server, client, query, field):
    write_rollups(server)
    assert field_of(client.get("/api/v1/metrics/jobs_total/query", params=query)) == field


def test_an_unsupported_aggregate_lists_the_allowed_ones(client):
    response = client.get("/api/v1/metrics/jobs_total/query", params={"agg": "p90"})
    assert response.status_code == 400
    reason = response.json()["errors"][0]["reason"]
    assert "'p90'" in reason and "p50, p95, p99" in reason and "rate" in reason


def test_a_query_asking_for_too_many_points_is_a_bad_query(server, client):
    write_rollups(server)
    response = client.get("/api/v1/metrics/jobs_total/query", params={"step": "1ms", "start": "1d"})
    assert response.status_code == 400 and response.json()["type"] == "urn:tocsin:problem:bad-query"


def test_label_values_are_distinct_sorted_and_follow_range_and_matchers(server, client):
    record_shop(server)
    write_rollups(server)
    routes = client.get("/api/v1/metrics/http_requests_total/labels/route/values")
    assert routes.status_code == 200
    assert routes.json()["values"] == ["/cart", "/pay"] and routes.json()["label"] == "route"
    codes = client.get("/api/v1/metrics/http_requests_total/labels/code/values",
                       params={"match[]": 'route="/pay"'}).json()["values"]
    assert codes == ["200"]
    assert client.get("/api/v1/metrics/http_requests_total/labels/absent/values").json()["values"] == []
    queues = client.get("/api/v1/metrics/jobs_total/labels/queue/values",
                        params={"start": str(BASE + 2 * MINUTE), "end": str(BASE + 3 * MINUTE)}).json()
    assert queues["values"] == ["sms"] and queues["start_ns"] == BASE + 2 * MINUTE
    assert field_of(client.get("/api/v1/metrics/jobs_total/labels/no-dash/values")) == "label"
    assert field_of(client.get("/api/v1/metrics/jobs_total/labels/queue/values", params={"end": "x"})) == "end"


def test_posted_samples_are_aggregated_into_the_current_interval(server, client):
    samples = [
        {"name": "orders_total", "kind": "counter", "value": 2, "labels": {"shop": "eu"}},
        {"name": "orders_total", "kind": "counter", "value": 3, "labels": {"shop": "eu"}},
        {"name": "stock_level", "kind": "gauge", "value": 41.5},
        {"name": "pick_seconds", "kind": "histogram", "value": 0.25, "labels": {"shop": "eu"}},
        {"name": "pick_seconds", "kind": "histogram", "value": 0.75, "labels": {"shop": "eu"}},
    ]
    response = client.post("/api/v1/metrics", json=samples)
    assert response.status_code == 202 and response.json() == {"accepted": 5}
    server.call(server.monitor.flush())
    orders = client.get("/api/v1/metrics/orders_total/query", params={"agg": "sum"}).json()["series"]
    assert [(s["labels"], s["points"][0][1]) for s in orders] == [({"shop": "eu"}, 5.0)]
    stock = client.get("/api/v1/metrics/stock_level/query", params={"agg": "last"}).json()["series"]
    assert stock[0]["points"][0][1] == 41.5
    picks = client.get("/api/v1/metrics/pick_seconds/query", params={"agg": "count"}).json()["series"]
    assert picks[0]["points"][0][1] == 2.0
    kinds = {m["name"]: m["kind"] for m in client.get("/api/v1/metrics").json()}
    assert kinds["orders_total"] == "counter" and kinds["stock_level"] == "gauge"
    assert kinds["pick_seconds"] == "histogram"


@pytest.mark.parametrize(("sample", "field", "reason"), [
    ({"name": "bad-name", "kind": "counter", "value": 1}, "[1]", "invalid metric name"),
    ({"name": "ok_total", "kind": "counter", "value": -1}, "[1].value", ">= 0"),
    ({"name": "ok_total", "kind": "counter", "value": 1, "labels": {"__x": "y"}}, "[1]", "invalid label name"),
    ({"name": "first_total", "kind": "gauge", "value": 1}, "[1]", "already declared as a counter"),
    ({"name": "tocsin_records_written_total", "kind": "counter", "value": 1}, "[1].name", "reserved"),
])
def test_a_bad_sample_is_400_naming_its_index_and_nothing_is_recorded(server, client, sample, field, reason):
    first = {"name": "first_total", "kind": "counter", "value": 1}
    response = client.post("/api/v1/metrics", json=[first, sample])
    assert field_of(response) == field
    assert reason in response.json()["errors"][0]["reason"]
    server.call(server.monitor.flush())
    assert client.get("/api/v1/metrics/first_total/query").status_code == 404  # the good sample was not kept


@pytest.mark.parametrize("body", [
    [{"name": "x_total", "kind": "summary", "value": 1}],
    [{"name": "x_total", "kind": "counter", "value": "many"}],
    [{"name": "x_total", "kind": "counter"}],
    [{"name": "x_total", "kind": "counter", "value": 1, "labels": {"a": 1}}],
    {"name": "x_total", "kind": "counter", "value": 1},
])
def test_a_malformed_body_is_400_never_5xx(client, body):
    response = client.post("/api/v1/metrics", json=body)
    assert response.status_code == 400 and response.json()["type"] == "urn:tocsin:problem:validation"


def test_posting_samples_needs_the_write_scope(serve):
    server = serve(KEYS)
    sample = [{"name": "scoped_total", "kind": "counter", "value": 1}]
    with httpx.Client(base_url=server.base) as http:
        reader = {"Authorization": "Bearer r-secret-0123456789abcdef"}
        writer = {"Authorization": "Bearer w-secret-0123456789abcdef"}
        denied = http.post("/api/v1/metrics", json=sample, headers=reader)
        assert denied.status_code == 403 and denied.json()["type"] == "urn:tocsin:problem:forbidden"
        assert http.post("/api/v1/metrics", json=sample).status_code == 401
        assert http.get("/api/v1/metrics", headers=reader).status_code == 200
        assert http.post("/api/v1/metrics", json=sample, headers=writer).status_code == 202


def test_ingest_is_refused_when_metrics_are_disabled(serve):
    server = serve({"metrics": {"enabled": False}})
    with httpx.Client(base_url=server.base) as http:
        response = http.post("/api/v1/metrics", json=[{"name": "a_total", "kind": "counter", "value": 1}])
        assert response.status_code == 409 and response.json()["type"] == "urn:tocsin:problem:conflict"
