"""Fixtures for the dashboard's tests: a live `tocsin serve` (SQLite, plugins api + dashboard) seeded with a
shop's data through the API and the monitor, and one Debian Chromium per test module driven by Playwright."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import tocsin_api
import tocsin_dashboard
import tocsin_sqlite
from tocsin_api.testing import LiveServer

from tocsin.testing import make_monitor

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
RULES = [{"name": "queue-deep", "metric": "queue_depth", "aggregate": "last", "window": "5m", "by": ["queue"],
          "threshold": 100, "severity": "warning",
          "annotations": {"summary": "{{ labels.queue }} holds {{ value }} jobs"}}]
CONFIG = {"alerting": {"rules": RULES}, "channels": [{"name": "ops", "type": "log"}],
          "notifications": {"group_wait": 0}}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def require_chromium() -> None:
    """Skip without Chromium, or fail when CI says the service must be there."""
    if shutil.which(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return
    if os.environ.get("TOCSIN_REQUIRE_SERVICES") == "1":
        pytest.fail(f"Chromium is required (TOCSIN_REQUIRE_SERVICES=1) but {CHROMIUM} is missing")
    pytest.skip(f"no Chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium for the test module."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


class Tab:
    """A browser page that remembers console errors, uncaught exceptions and dialogs."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))

    def open(self, path: str) -> Any:
        """Load `path` and wait until the page has drawn from the API."""
        self.page.goto(self.base + path)
        self.page.wait_for_selector("main[data-ready]", timeout=15000)
        return self.page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser, shop) -> Iterator[Tab]:
    """A fresh browser context on the seeded server."""
    opened = Tab(browser, shop.base)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def serve_dashboard(tmp_path_factory) -> Iterator[Callable[..., LiveServer]]:
    """`serve_dashboard(config)` starts a live server with the API and the dashboard on a new SQLite file."""
    servers: list[LiveServer] = []

    def start(config: dict[str, Any] | None = None) -> LiveServer:
        data = dict(config or {})
        path = tmp_path_factory.mktemp("dashboard") / "tocsin.db"
        data.setdefault("storage", {"backend": "sqlite", "path": str(path)})
        monitor = make_monitor(tocsin_api, tocsin_sqlite, tocsin_dashboard, config=data)
        server = LiveServer(monitor).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def span(span_id: int, parent: int | None, name: str, start_ms: float, end_ms: float | None, **extra: Any
         ) -> dict[str, Any]:
    """A span of the seeded trace: times in ms after the trace's start (a minute ago)."""
    base = time.time_ns() - 60_000_000_000
    return {"trace_id": TRACE_ID, "span_id": f"{span_id:016x}",
            "parent_span_id": None if parent is None else f"{parent:016x}",
            "name": name, "service": extra.pop("service", "shop"), "kind": "internal",
            "start_ns": base + int(start_ms * 1e6), "end_ns": None if end_ms is None else base + int(end_ms * 1e6),
            **extra}


def fifty_spans() -> list[dict[str, Any]]:
    """A 50-span checkout trace: a root, 7 calls with 6 children each, one failing and one still running."""
    spans = [span(1, None, "GET /checkout", 0, 900, kind="server", attributes={"route": "/checkout"})]
    for call in range(7):
        call_id = 100 + call
        service = "payments" if call % 2 else "shop"
        spans.append(span(call_id, 1, f"call {call}", call * 120, call * 120 + 110, service=service))
        for child in range(6):
            start = call * 120 + child * 15
            extra: dict[str, Any] = {"attributes": {"row": child}}
            if call == 3 and child == 2:
                extra.update(status="error", status_message="card declined",
                             events=[{"name": "exception", "time_ns": 0, "attributes": {"type": "CardError"}}])
            end = None if (call, child) == (6, 5) else start + 12
            spans.append(span(call_id * 10 + child, call_id, f"query {call}.{child}", start, end, **extra))
    return spans


def fire(server: LiveServer, **queues: float) -> dict[str, str]:
    """Set queue_depth per queue, flush and evaluate once; the alerts' fingerprints by queue."""

    async def run() -> dict[str, str]:
        for queue, value in queues.items():
            server.monitor.metrics.gauge("queue_depth").set(value, queue=queue)
        await server.monitor.flush()
        report = await server.monitor.alerting.evaluate()
        return {alert.labels["queue"]: alert.fingerprint for alert in report.alerts}

    return server.call(run())


def seed(server: LiveServer) -> None:
    """A little shop: requests and latencies, a 50-span trace with logs, workflow runs, a firing alert, health."""
    monitor = server.monitor
    requests = monitor.metrics.counter("http_requests_total")
    latency = monitor.metrics.histogram("http_request_seconds")
    for i in range(200):
        route = ("/cart", "/checkout", "/pay")[i % 3]
        requests.inc(route=route, code="500" if i % 17 == 0 else "200")
        latency.observe(0.01 + (i % 50) / 100, route=route)
    now = time.time_ns()
    logs = [{"time_ns": now - 50_000_000_000 + i * 1_000_000, "level": ("info", "warning", "error")[i % 3],
             "message": f"charge {i} connection refused by db-1" if i % 5 == 0 else f"served request {i}",
             "service": ("shop", "payments")[i % 2], "trace_id": TRACE_ID,
             "span_id": f"{1034 if i % 5 == 0 else 1:016x}",
             "attributes": {"n": i}} for i in range(40)]
    with httpx.Client(base_url=server.base, timeout=10) as http:
        assert http.post("/api/v1/traces", json=fifty_spans()).status_code == 202
        assert http.post("/api/v1/logs", json=logs).status_code == 202

    async def runs() -> None:
        monitor.health.check("db", interval="1h")(lambda: True)
        monitor.health.check("api", interval="1h", depends_on=["db"])(lambda: True)
        async with monitor.workflows.execution("nightly-etl", params={"day": "2026-12-02"}) as run:
            async with run.step("extract"):
                monitor.log.info("extracted rows", rows=1200)
            async with run.step("load"):
                pass
        try:
            async with (monitor.workflows.execution("nightly-etl", params={"day": "2026-12-03"}) as run,
                        run.step("extract")):
                raise ValueError("disk full")
        except ValueError:
            pass
        await monitor.flush()

    server.call(runs())
    fire(server, mail=250)


class Shop:
    """The seeded server and what tests do to it."""

    trace_id = TRACE_ID

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.base = server.base
        self.monitor = server.monitor

    def fire(self, **queues: float) -> dict[str, str]:
        """Set queue_depth per queue and evaluate once; the alerts' fingerprints by queue."""
        return fire(self.server, **queues)

    def get(self, path: str, **params: Any) -> Any:
        """GET an API path (open API) and return its JSON."""
        with httpx.Client(base_url=self.base, timeout=10) as http:
            response = http.get(path, params=params)
            response.raise_for_status()
            return response.json()


@pytest.fixture(scope="module")
def shop(serve_dashboard) -> Shop:
    """A live server with the dashboard and the seeded shop."""
    server = serve_dashboard(CONFIG)
    seed(server)
    return Shop(server)


@pytest.fixture(scope="module")
def make_shop(serve_dashboard) -> Callable[..., Shop]:
    """`make_shop(config)`: another live server (the shop's rules and channel plus `config`), not seeded."""
    return lambda config: Shop(serve_dashboard({**CONFIG, **config}))


@pytest.fixture
def new_tab(browser) -> Iterator[Callable[[str], Tab]]:
    """`new_tab(base_url)`: a fresh browser context on another server, closed after the test."""
    tabs: list[Tab] = []

    def make(base: str) -> Tab:
        tabs.append(Tab(browser, base))
        return tabs[-1]

    yield make
    for opened in tabs:
        opened.close()
