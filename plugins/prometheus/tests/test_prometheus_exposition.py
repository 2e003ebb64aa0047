"""The exposition without Prometheus: escaping, negotiation, name mapping, promtool, the OpenMetrics parser,
and the Alertmanager v2 receiver's answers over a live server."""

from __future__ import annotations

import gzip
import math
import os
import shutil
import subprocess

import httpx
import pytest
import tocsin_api
import tocsin_prometheus
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from tocsin_api.testing import LiveServer
from tocsin_prometheus import OPENMETRICS_1_0_0, TEXT_0_0_4, exposition, negotiate
from tocsin_prometheus.text import Family, Sample, escape_help, escape_label_value, format_value, render

from tocsin.testing import make_monitor

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
NASTY = 'quote " backslash \\ newline \n end'


def test_escaping_follows_each_format():
    assert escape_label_value(NASTY) == 'quote \\" backslash \\\\ newline \\n end'
    assert escape_help(NASTY, openmetrics=False) == 'quote " backslash \\\\ newline \\n end'
    assert escape_help(NASTY, openmetrics=True) == 'quote \\" backslash \\\\ newline \\n end'
    assert [format_value(v) for v in (1, 0.25, math.inf, -math.inf, math.nan, 1e300)] == [
        "1.0", "0.25", "+Inf", "-Inf", "NaN", "1e+300"]


@pytest.mark.parametrize(("accept", "expected"), [
    (PROMETHEUS_ACCEPT, OPENMETRICS_1_0_0),
    (None, TEXT_0_0_4),
    ("", TEXT_0_0_4),
    ("*/*", TEXT_0_0_4),
    ("text/plain", TEXT_0_0_4),
    ("application/openmetrics-text", OPENMETRICS_1_0_0),
    ("application/openmetrics-text; version=0.0.1", "application/openmetrics-text; version=0.0.1; charset=utf-8"),
    ("application/openmetrics-text;version=2.0.0", TEXT_0_0_4),  # a version we do not write
    ("application/openmetrics-text;q=0.2, text/plain;q=0.9", TEXT_0_0_4),
    ("text/plain;q=0.2, application/openmetrics-text;q=0.9", OPENMETRICS_1_0_0),
    ("application/openmetrics-text;q=0", TEXT_0_0_4),
    ("application/openmetrics-text;q=bogus", TEXT_0_0_4),
    ("application/json", TEXT_0_0_4),
])
def test_negotiation_picks_openmetrics_only_when_preferred(accept, expected):
    assert negotiate(accept) == expected


def test_counter_metadata_differs_between_formats_and_openmetrics_ends_with_eof():
    family = Family(name="jobs", kind="counter", help="Jobs done", unit="", samples=[Sample("_total", (), 3)])
    text = render([family], openmetrics=False)
    assert text == b"# HELP jobs_total Jobs done\n# TYPE jobs_total counter\njobs_total 3.0\n"
    assert render([family], openmetrics=True) == b"# HELP jobs Jobs done\n# TYPE jobs counter\njobs_total 3.0\n# EOF\n"


@pytest.fixture
def monitor():
    monitor = make_monitor(config={"service": "exposition-test"})
    requests = monitor.metrics.counter("http_requests_total", f"Requests {NASTY}")
    requests.inc(3, route=NASTY)
    requests.inc(route="/")
    monitor.metrics.counter("jobs", "Jobs done").inc(2)  # no _total: the sample gets it
    monitor.metrics.gauge("queue_depth", "Jobs waiting").set(-4.5, queue="mail")
    latency = monitor.metrics.histogram("http_request_seconds", "Request time", unit="s")
    for value in (0.010, 0.020, 0.030, 0.040, 1.0):
        latency.observe(value, quantile="clash")
    monitor.metrics.gauge("jobs_total").set(1)  # its name is the counter `jobs`'s sample: left out
    return monitor


def test_text_exposition_maps_names_and_passes_promtool(monitor):
    body = exposition(monitor)
    families = {family.name: family for family in parse_text(body.decode())}
    assert families["http_requests"].type == "counter"
    by_route = {s.labels["route"]: s.value for s in families["http_requests"].samples}
    assert by_route == {NASTY: 3.0, "/": 1.0}  # the label value round-trips exactly
    assert families["http_requests"].documentation == f"Requests {NASTY}"
    assert [s.value for s in families["jobs"].samples] == [2.0]
    assert [(s.labels, s.value) for s in families["queue_depth"].samples] == [({"queue": "mail"}, -4.5)]
    summary = {(s.name, s.labels.get("quantile")): s for s in families["http_request_seconds"].samples}
    assert summary["http_request_seconds_count", None].value == 5
    assert summary["http_request_seconds_sum", None].value == pytest.approx(1.1)
    assert summary["http_request_seconds", "0.5"].value == pytest.approx(0.030, rel=0.01)  # the sketch's 1 %
    assert summary["http_request_seconds", "0.5"].labels["exported_quantile"] == "clash"
    assert "jobs_total" not in {s.name for f in families.values() for s in f.samples if f.name != "jobs"}
    assert {"tocsin_buffer_items", "tocsin_buffer_capacity_items", "tocsin_leader"} <= set(families)
    promtool = shutil.which("promtool")
    if promtool is None:  # promtool ships with prometheus: required where the live tests are
        if os.environ.get("TOCSIN_REQUIRE_SERVICES") == "1":
            pytest.fail("promtool is required (TOCSIN_REQUIRE_SERVICES=1) but is not installed")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    checked = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_openmetrics_exposition_parses_strictly_with_units(monitor):
    body = exposition(monitor, openmetrics=True).decode()
    assert body.endswith("# EOF\n")
    families = {family.name: family for family in parse_openmetrics(body)}
    assert families["http_request_seconds"].unit == "seconds"
    assert families["http_request_seconds"].type == "summary"
    assert {s.labels["route"]: s.value for s in families["http_requests"].samples} == {NASTY: 3.0, "/": 1.0}
    assert families["http_requests"].documentation == f"Requests {NASTY}"


@pytest.fixture
def server(tmp_path):
    monitor = make_monitor(tocsin_api, tocsin_prometheus, config={
        "server": {"api_keys": [{"name": "prom", "key": "scrape-key", "scopes": ["read"]},
                                {"name": "rules", "key": "alert-key", "scopes": ["write"]}]}})
    server = LiveServer(monitor).start()
    yield server
    server.stop()


def test_metrics_route_negotiates_gzips_and_needs_a_read_key(server):
    assert httpx.get(server.url("/metrics")).status_code == 401
    key = {"Authorization": "Bearer scrape-key"}
    plain = httpx.get(server.url("/metrics"), headers={**key, "Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.headers["content-type"] == TEXT_0_0_4
    assert "content-encoding" not in plain.headers and "# TYPE tocsin_leader gauge" in plain.text
    assert "tocsin_storage_bytes" in plain.text  # the route reads the store's size
    with httpx.Client(headers={**key, "Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}) as client:
        raw = client.send(client.build_request("GET", server.url("/metrics")), stream=True)
        compressed = b"".join(raw.iter_raw())
    assert raw.headers["content-type"] == OPENMETRICS_1_0_0 and raw.headers["content-encoding"] == "gzip"
    assert gzip.decompress(compressed).endswith(b"# EOF\n")


@pytest.mark.parametrize(("body", "field"), [
    ({"labels": {"alertname": "X"}}, "body"),
    ([{"annotations": {}}], "[0]"),
    ([{"labels": {}}], "[0].labels"),
    ([{"labels": {"bad-name": "x"}}], "[0].labels"),
    ([{"labels": {"a": "1"}, "startsAt": "2026-01-02T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"}],
     "[0].startsAt"),
    ([{"labels": {"a": "1"}, "startsAt": "yesterday"}], "[0].startsAt"),
])
def test_alert_bodies_alertmanager_refuses_get_a_400_naming_the_field(server, body, field):
    response = httpx.post(server.url("/api/v2/alerts"), json=body, headers={"Authorization": "Bearer alert-key"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field
    assert server.call(server.monitor.alerting.alerts()) == []  # nothing of a refused body is stored


def test_posted_alerts_need_the_write_scope_and_are_stored_once(server):
    alert = [{"labels": {"alertname": "DiskFull", "severity": "critical"}, "annotations": {"summary": "93%"},
              "startsAt": "2026-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph"}]
    assert httpx.post(server.url("/api/v2/alerts"), json=alert,
                      headers={"Authorization": "Bearer scrape-key"}).status_code == 403
    for _ in range(3):
        response = httpx.post(server.url("/api/v2/alerts"), json=alert, headers={"Authorization": "Bearer alert-key"})
        assert (response.status_code, response.content) == (200, b"")
    [stored] = server.call(server.monitor.alerting.alerts())
    assert (stored.rule, stored.state, stored.severity, stored.episode) == ("prometheus:DiskFull", "firing",
                                                                            "critical", 1)
    status = httpx.get(server.url("/api/v2/status"), headers={"Authorization": "Bearer scrape-key"}).json()
    assert status["cluster"]["status"] == "disabled" and status["versionInfo"]["version"]
