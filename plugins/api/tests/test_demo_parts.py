"""The parts of `tocsin demo` on their own: the traffic model, its config, the seeded history, the banner."""

from __future__ import annotations

import random
import socket
import tempfile
import time

import pytest
import tocsin_api
import tocsin_sqlite
from click.testing import CliRunner
from tocsin_api.demo.command import banner, demo
from tocsin_api.demo.config import demo_config
from tocsin_api.demo.history import seed
from tocsin_api.demo.narrate import line
from tocsin_api.demo.shop import Shop, Timeline, fraud_check_down, in_incident, payments_down

from tocsin.ext import Event, MetricQuery, SpanQuery
from tocsin.testing import make_monitor


def traffic(seed_value: int) -> list[tuple[str, int, float, list[tuple[str, str, str]]]]:
    shop = Shop(random.Random(seed_value))
    out = []
    for demo_s in (0.0, 25.0, 40.0):
        for request in shop.requests(demo_s, 50):
            spans, _ = shop.records(request, 1_000)
            out.append((request.route, request.status, request.seconds,
                        [(span.span_id, span.service, span.status) for span in spans]))
    return out


def test_a_seed_replays_the_same_traffic_and_ids():
    assert traffic(5) == traffic(5)
    assert traffic(5) != traffic(6)


def test_incidents_slow_checkout_and_time_it_out():
    shop = Shop(random.Random(1))
    calm = [shop.checkout(incident=False) for _ in range(400)]
    stormy = [shop.checkout(incident=True) for _ in range(400)]
    assert sum(r.status == 504 for r in stormy) > 100 > sum(r.status == 504 for r in calm)
    assert sorted(r.seconds for r in stormy)[200] > 3 * sorted(r.seconds for r in calm)[200]
    declined = next(r for r in calm if r.status == 402)
    spans, logs = shop.records(declined, 10**18)
    assert {span.service for span in spans} == {"web", "inventory", "payments"}
    assert [span.status_message for span in spans if span.status == "error"] == ["card declined"]
    assert all(log.trace_id == spans[0].trace_id for log in logs)


def test_the_story_has_an_incident_a_failing_dependency_and_a_flapping_one():
    assert not in_incident(5) and in_incident(25) and not in_incident(100) and in_incident(175)
    assert payments_down(40) and not payments_down(20)
    assert [fraud_check_down(s) for s in (0, 10, 20, 45, 49)] == [False, False, True, True, True]
    assert Timeline(start_ns=0, speed=6).demo_s(2 * 10**9) == 12.0


@pytest.mark.parametrize("speed", [1.0, 6.0, 60.0])
def test_the_demo_config_loads_at_every_speed(speed, tmp_path):
    monitor = make_monitor(tocsin_api, tocsin_sqlite, config=demo_config(str(tmp_path / "d.db"), speed))
    rules = {rule.name for rule in monitor.config.alerting.rules}
    assert {"checkout-latency-high", "nightly-etl-failed", "fraud-check-down"} <= rules
    assert float(monitor.config.alerting.evaluation_interval) >= 1


async def test_history_fills_the_last_minutes_with_metrics_traces_and_logs():
    config = demo_config(None, 1.0)
    monitor = make_monitor(tocsin_api, tocsin_sqlite, config=config)
    start_ns = time.time_ns()
    async with monitor:
        made = await seed(monitor, Shop(random.Random(2)), Timeline(start_ns, 1.0), minutes=15, rps=6)
        storage = monitor.storage
        assert 3000 < made < 8000
        result = await storage.query_metrics(MetricQuery(
            name="http_request_seconds", aggregate="p99", start_ns=start_ns - 16 * 60 * 10**9, end_ns=start_ns,
            step_s=60, by=[]))
        points = [point for series in result for point in series.points]
        assert len(points) >= 14
        spans = await storage.search_spans(SpanQuery(status="error", limit=1000))
        assert {span.service for span in spans.items} >= {"web", "payments"}
        assert all(start_ns - 16 * 60 * 10**9 < span.start_ns < start_ns for span in spans.items)


def test_the_banner_names_the_dashboard_only_when_it_is_served():
    with_page = banner("http://127.0.0.1:8420", "/tmp/x/demo.db", False, True, 7, 100)
    without = banner("http://127.0.0.1:8420", "/tmp/x/demo.db", False, False, 7, 100)
    assert "dashboard: http://127.0.0.1:8420/" in with_page
    assert "dashboard:" not in without and "API:       http://127.0.0.1:8420/api/v1" in without
    assert "removed on exit" in without
    assert "kept on exit" in banner("http://127.0.0.1:8420", "/tmp/x/demo.db", True, True, 7, 100)


def test_the_terminal_hears_of_alerts_and_failed_runs_only():
    firing = Event(topic="alerts", type="firing", time_ns=0, data={
        "rule": "checkout-latency-high", "severity": "error", "notified": True, "flapping": False})
    stuck = Event(topic="workflows", type="stuck", time_ns=0, data={
        "workflow": "nightly-etl", "message": "running for 9s, over max_duration 8s"})
    assert line(firing).endswith("alert checkout-latency-high firing [error], notified through the log channel")
    assert line(stuck).endswith("nightly-etl run stuck: running for 9s, over max_duration 8s")
    assert line(Event(topic="alerts", type="evaluated", time_ns=0)) is None
    assert line(Event(topic="workflows", type="succeeded", time_ns=0, data={"workflow": "nightly-etl"})) is None


async def test_the_same_seed_writes_the_same_history():
    async def history(seed_value: int) -> list[tuple[str, str, int]]:
        config = demo_config(None, 1.0)
        async with make_monitor(tocsin_api, tocsin_sqlite, config=config) as monitor:
            await seed(monitor, Shop(random.Random(seed_value)), Timeline(10**18, 1.0), minutes=2, rps=6)
            page = await monitor.storage.search_spans(SpanQuery(limit=10_000))
            return sorted((span.span_id, span.name, span.start_ns) for span in page.items)

    first = await history(9)
    assert first and first == await history(9)
    assert first != await history(10)


def test_the_demo_refuses_a_network_address_and_a_busy_port(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    runner = CliRunner()
    refused = runner.invoke(demo, ["--host", "0.0.0.0"])
    assert refused.exit_code == 2 and "loopback only" in refused.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = runner.invoke(demo, ["--port", str(taken.getsockname()[1])])
    assert busy.exit_code == 1 and "cannot listen on 127.0.0.1" in busy.output and "--port" in busy.output
    assert list(tmp_path.iterdir()) == []  # no temporary store left behind
