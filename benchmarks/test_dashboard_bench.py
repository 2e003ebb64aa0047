"""The dashboard at scale, in Debian Chromium: with ROWS stored log records (over the last 24 h) and 10,000
spans (the last hour), how long the overview and the logs page take to render from a fresh navigation until
every section has drawn its API data (`main[data-ready]`, read in the browser as ms since navigation start).

The store is a SQLite file written through the backend (`write_logs`, `write_spans`, `write_metrics`) before
the timing; the server is `tocsin serve`'s app (tocsin-api + tocsin-dashboard) on loopback in this process.
Each page is loaded ROUNDS times after a warm-up; the summary prints median and max per page against the
issue's target (under 1 s).

Run: uv run pytest benchmarks/test_dashboard_bench.py --benchmark-only -s
(TOCSIN_BENCH_ROWS=100000 for a quicker, smaller run.)
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import time

import pytest
import tocsin_api
import tocsin_dashboard
import tocsin_sqlite
from tocsin_api.testing import LiveServer

from tocsin.models import LOG_LEVELS, LogRecord, MetricRollup, Span
from tocsin.signals.sketch import LogSketch
from tocsin.testing import make_monitor

ROWS = int(os.environ.get("TOCSIN_BENCH_ROWS", "1000000"))
SPANS = 10_000
BATCH = 5_000
ROUNDS = 10
SECOND = 1_000_000_000
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PAGES = {"overview": "/", "logs": "/ui/logs", "logs, searched": "/ui/logs?q=refused", "traces": "/ui/traces"}
MESSAGES = ["GET /api/v1/users/{n} 200 in {ms} ms", "connection refused to 10.0.{n3}.7:5432 after {n3} retries",
            "payment {n} declined by provider code={n3}", "timeout after {ms} ms waiting for inventory-service",
            "worker {n3} picked job {n} from queue emails", "cache miss for key user:{n}:profile took {ms} ms"]
SUMMARY: dict[str, list[float]] = {}
CALLS: dict[str, dict[str, list[float]]] = {}
RESOURCES = """performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/'))
  .map(e => [new URL(e.name).pathname, e.duration])"""


def logs(now: int, rng: random.Random, first: int, count: int) -> list[LogRecord]:
    step = 86_400 * SECOND // ROWS
    return [LogRecord(time_ns=now - 86_400 * SECOND + i * step, level=LOG_LEVELS[rng.choice((0, 1, 1, 1, 2, 3))],
                      service=rng.choice(("api", "checkout", "billing", "worker")), logger="bench",
                      trace_id=f"{rng.getrandbits(128):032x}", span_id=f"{rng.getrandbits(64):016x}",
                      message=rng.choice(MESSAGES).format(n=rng.randrange(10**6), n3=rng.randrange(100),
                                                          ms=rng.randrange(2000)))
            for i in range(first, first + count)]


def spans(now: int, rng: random.Random) -> list[Span]:
    made = []
    for trace in range(SPANS // 10):
        trace_id = f"{rng.getrandbits(128):032x}"
        start = now - 3600 * SECOND + trace * (3600 * SECOND // (SPANS // 10))
        root = f"{rng.getrandbits(64):016x}"
        made.append(Span(trace_id=trace_id, span_id=root, name="GET /checkout", service="shop", kind="server",
                         start_ns=start, end_ns=start + 90_000_000, status="ok"))
        made += [Span(trace_id=trace_id, span_id=f"{rng.getrandbits(64):016x}", parent_span_id=root,
                      name=f"query {child}", service="db", start_ns=start + child * 9_000_000,
                      end_ns=start + child * 9_000_000 + 8_000_000, status="error" if child == 8 and trace % 7 == 0
                      else "ok") for child in range(9)]
    return made


def metrics(now: int, rng: random.Random) -> list[MetricRollup]:
    made = []
    for step in range(360):
        start = now - 3600 * SECOND + step * 10 * SECOND
        for route in ("/cart", "/checkout", "/pay"):
            for code in ("200", "500"):
                made.append(MetricRollup(name="http_requests_total", kind="counter",
                                         labels={"route": route, "code": code}, start_ns=start, interval_s=10.0,
                                         count=1, sum=rng.randrange(1, 50), min=0, max=0, last=0))
            sketch = LogSketch()
            values = [rng.lognormvariate(-3, 0.6) for _ in range(20)]
            sketch.add_many(values)
            made.append(MetricRollup(name="http_request_seconds", kind="histogram", labels={"route": route},
                                     start_ns=start, interval_s=10.0, count=20, sum=sum(values), min=min(values),
                                     max=max(values), last=values[-1], sketch=sketch.to_model()))
    return made


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kept = os.environ.get("TOCSIN_BENCH_DB")  # reuse a store built by an earlier run (written once if absent)
    path = kept or str(tmp_path_factory.mktemp("dashboard-bench") / "tocsin.db")
    fresh = not os.path.exists(path)
    monitor = make_monitor(tocsin_api, tocsin_sqlite, tocsin_dashboard,
                           config={"storage": {"backend": "sqlite", "path": path}})
    live = LiveServer(monitor).start()
    rng = random.Random(7)
    now = time.time_ns()
    began = time.perf_counter()
    for first in range(0, ROWS if fresh else 0, BATCH):
        live.call(monitor.storage.write_logs(logs(now, rng, first, min(BATCH, ROWS - first))), timeout=600)
    if fresh:
        live.call(monitor.storage.write_spans(spans(now, rng)), timeout=600)
        live.call(monitor.storage.write_metrics(metrics(now, rng)), timeout=600)
    print(f"\nstore: {ROWS:,} logs, {SPANS:,} spans written in {time.perf_counter() - began:.1f} s")
    yield live
    live.stop()
    print("\npage (fresh navigation until every section drew)   median    max   (target < 1000 ms)")
    for name, values in SUMMARY.items():
        print(f"{name:<50} {statistics.median(values):6.0f} {max(values):6.0f} ms")
        slowest = sorted(CALLS[name].items(), key=lambda item: -statistics.median(item[1]))[:3]
        print("    slowest API calls (median ms): " + ", ".join(f"{path} {statistics.median(times):.0f}"
                                                             for path, times in slowest))


@pytest.fixture(scope="module")
def page(server):
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield tab
        browser.close()


@pytest.mark.parametrize("name", list(PAGES))
@pytest.mark.benchmark(group="dashboard: render from a fresh navigation")
def test_page_renders_at_scale(benchmark, server, page, name):
    rendered: list[float] = []
    label = f"{name} ({ROWS:,} logs, {SPANS:,} spans)"
    calls = CALLS.setdefault(label, {})

    def load() -> None:
        page.goto(server.url(PAGES[name]))
        page.wait_for_selector("main[data-ready]", timeout=30_000)
        rendered.append(float(page.locator("main").get_attribute("data-ready")))
        for path, duration in page.evaluate(RESOURCES):
            calls.setdefault(path, []).append(duration)

    benchmark.pedantic(load, rounds=ROUNDS, warmup_rounds=1)
    assert page.locator(".problem").count() == 0
    rendered = rendered[1:]
    SUMMARY[label] = rendered
    benchmark.extra_info.update(browser_median_ms=statistics.median(rendered), browser_max_ms=max(rendered))
