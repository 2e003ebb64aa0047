"""Debian's real `prometheus` against a live `tocsin serve`: it scrapes `/metrics` (values read back through
its HTTP API), and it fires an alert rule to tocsin as its Alertmanager, which notifies a channel and resolves.

A missing `prometheus` binary skips these tests, or fails them under TOCSIN_REQUIRE_SERVICES=1 (as in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tocsin_api
import tocsin_prometheus
from tocsin_api.testing import LiveServer, free_port

from tocsin.testing import make_monitor

SCRAPE_KEY, ALERT_KEY = "scrape-key-1234", "alert-key-5678"
KEYS = [{"name": "prometheus", "key": SCRAPE_KEY, "scopes": ["read"]},
        {"name": "prometheus-alerts", "key": ALERT_KEY, "scopes": ["write"]}]
SHOP = 'north "main" \\ store'


def prometheus_binary() -> str:
    """The prometheus binary, or a skip (a failure under TOCSIN_REQUIRE_SERVICES=1) when it is missing."""
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)
    if found is None:
        if os.environ.get("TOCSIN_REQUIRE_SERVICES") == "1":
            pytest.fail("prometheus is required (TOCSIN_REQUIRE_SERVICES=1) but is not installed")
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    return found


class Prometheus:
    """A prometheus process on a free loopback port with its own config and data directory."""

    def __init__(self, binary: str, folder: Path, config: str, rules: str = "") -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        (folder / "prometheus.yml").write_text(config)
        (folder / "rules.yml").write_text(rules or "groups: []\n")
        self.log = (folder / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--rules.alert.resend-delay=1s", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_for(lambda: self._ready(), "prometheus to be ready", timeout=20)

    def _ready(self) -> bool:
        assert self.process.poll() is None, f"prometheus exited: {Path(self.log.name).read_text()[-2000:]}"
        try:
            return httpx.get(self.base + "/-/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of `expr` now (an empty list when no series matches)."""
        answer = httpx.get(self.base + "/api/v1/query", params={"query": expr}, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, expr: str) -> float | None:
        """The value of a one-series result, or None when there is no series."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    @staticmethod
    def wait_for(condition: Callable[[], object], what: str, timeout: float = 15) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.log.close()


def yaml_config(port: int, *, alerting: bool = False) -> str:
    """prometheus.yml: scrape tocsin every second with a read key; optionally use it as the Alertmanager."""
    config = f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tocsin
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials: {SCRAPE_KEY}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""
    if alerting:
        config += f"""
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - api_version: v2
      authorization:
        type: Bearer
        credentials: {ALERT_KEY}
      static_configs:
        - targets: ["127.0.0.1:{port}"]
"""
    return config


RULES = """
groups:
  - name: tocsin-queue
    interval: 1s
    rules:
      - alert: QueueDeep
        expr: queue_depth > 10
        labels:
          severity: critical
        annotations:
          summary: "queue {{ $labels.queue }} holds {{ $value }} jobs"
"""


@pytest.fixture
def tocsin_server() -> Iterator[LiveServer]:
    monitor = make_monitor(tocsin_api, tocsin_prometheus, config={
        "service": "shop", "server": {"api_keys": KEYS},
        "channels": [{"name": "ops", "type": "captured"}],
        "notifications": {"group_wait": "0s", "group_interval": "1s", "poll_interval": "100ms"}})
    server = LiveServer(monitor).start()
    yield server
    server.stop()


@pytest.fixture
def prometheus(tmp_path) -> Iterator[Callable[..., Prometheus]]:
    binary = prometheus_binary()
    started: list[Prometheus] = []

    def start(config: str, rules: str = "") -> Prometheus:
        started.append(Prometheus(binary, tmp_path, config, rules))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def test_prometheus_scrapes_what_tocsin_recorded(tocsin_server, prometheus):
    monitor = tocsin_server.monitor
    orders = monitor.metrics.counter("orders_total", "Orders placed")
    orders.inc(7, shop=SHOP)
    monitor.metrics.gauge("queue_depth", "Jobs waiting").set(4, queue="mail")
    latency = monitor.metrics.histogram("checkout_seconds", "Checkout time", unit="s")
    for value in (0.1, 0.2, 0.3, 0.4, 2.0):
        latency.observe(value)
    prom = prometheus(yaml_config(tocsin_server.port))

    prom.wait_for(lambda: prom.value('up{job="tocsin"}') == 1, "a successful scrape")
    [series] = prom.query("orders_total")
    assert series["metric"]["shop"] == SHOP  # quotes and backslashes survived both escapings
    assert float(series["value"][1]) == 7
    assert prom.value("queue_depth") == 4
    assert prom.value("checkout_seconds_count") == 5
    assert prom.value("checkout_seconds_sum") == pytest.approx(3.0)
    assert prom.value('checkout_seconds{quantile="0.5"}') == pytest.approx(0.3, rel=0.01)
    assert prom.value('tocsin_buffer_capacity_items{buffer="logs"}') == monitor.log_buffer.capacity
    assert prom.value("tocsin_leader") in (0, 1)

    orders.inc(5, shop=SHOP)  # a later scrape sees the running total
    prom.wait_for(lambda: prom.value("orders_total") == 12, "the counter's new total")
    totals = {info.name: series for info, series in monitor.metrics.totals()}
    assert prom.value("orders_total") == totals["orders_total"][0].value
    [target] = httpx.get(prom.base + "/api/v1/targets").json()["data"]["activeTargets"]
    assert (target["health"], target["lastError"]) == ("up", "")


def test_prometheus_fires_to_tocsin_as_its_alertmanager_and_the_resolve_follows(tocsin_server, prometheus):
    monitor = tocsin_server.monitor
    depth = monitor.metrics.gauge("queue_depth", "Jobs waiting")
    depth.set(50, queue="mail")
    prom = prometheus(yaml_config(tocsin_server.port, alerting=True), RULES)
    channel = monitor.notify.channels["ops"]

    prom.wait_for(lambda: channel.sent, "the firing notification", timeout=20)
    prom.wait_for(lambda: len(prom.query('ALERTS{alertstate="firing"}')) == 1, "the alert firing in prometheus")
    time.sleep(3)  # prometheus re-sends every second (resend-delay 1s): none of that may notify again
    [firing] = channel.sent
    assert firing.kind == "firing" and firing.severity == "critical"
    assert firing.alert.rule == "prometheus:QueueDeep"
    assert firing.alert.labels["queue"] == "mail" and firing.alert.labels["alertname"] == "QueueDeep"
    assert firing.alert.annotations["summary"] == "queue mail holds 50 jobs"
    [stored] = tocsin_server.call(monitor.alerting.alerts(state="firing"))
    assert stored.fingerprint == firing.alert.fingerprint and stored.episode == 1

    depth.set(2, queue="mail")
    prom.wait_for(lambda: len(channel.sent) == 2, "the resolved notification", timeout=20)
    time.sleep(2)  # resolved alerts are re-sent too: still two notifications
    assert [n.kind for n in channel.sent] == ["firing", "resolved"]
    [resolved] = tocsin_server.call(monitor.alerting.alerts(state="resolved"))
    assert resolved.fingerprint == firing.alert.fingerprint
