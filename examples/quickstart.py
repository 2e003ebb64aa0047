"""tocsin in one file: instrument a small "shop" app, then read back what it recorded.

Run it from the repository root:

    uv run python examples/quickstart.py

It uses the embedded default (no config file): SQLite at ./tocsin.db once tocsin-sqlite is installed,
in-memory storage until then. Nothing here needs a server.
"""

from __future__ import annotations

import logging
import random
import sys
import time

import tocsin
from tocsin.storage.protocol import LogQuery, MetricQuery, SpanQuery


def checkout(monitor: tocsin.Monitor, order: int) -> None:
    """One request: a span with a child span, a counter, a latency histogram and a log line."""
    requests = monitor.metrics.counter("shop_requests_total", "Checkout requests by outcome")
    latency = monitor.metrics.histogram("shop_checkout_seconds", "Checkout latency", unit="s")
    with monitor.tracer.span("POST /checkout", kind="server", attributes={"order": order}) as span:
        with monitor.tracer.span("charge card", kind="client"):
            seconds = random.lognormvariate(-3, 0.6)
        failed = random.random() < 0.05
        if failed:
            span.set_status("error", "card declined")
            monitor.log.warning("card declined", order=order)
        else:
            monitor.log.info("order placed", order=order, amount=round(random.uniform(5, 200), 2))
        requests.inc(outcome="error" if failed else "ok")
        latency.observe(seconds, route="/checkout")


def main() -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stdout)
    logging.getLogger("tocsin").setLevel(logging.INFO)  # tocsin's startup line says where the data goes
    random.seed(7)
    started = time.time_ns()
    monitor = tocsin.Monitor.from_config()  # TOCSIN_CONFIG, or the embedded default
    with monitor:  # a background thread owns the event loop; recording works from any thread
        for order in range(1, 501):
            checkout(monitor, order)
        monitor.run_sync(monitor.flush())
        ask = monitor.run_sync
        window = {"start_ns": started, "end_ns": time.time_ns() + 1}

        outcomes = ask(monitor.storage.query_metrics(MetricQuery(name="shop_requests_total", aggregate="sum",
                                                                 **window)))
        p99 = ask(monitor.storage.query_metrics(MetricQuery(name="shop_checkout_seconds", aggregate="p99", by=[],
                                                            **window)))
        errors = ask(monitor.storage.search_spans(SpanQuery(status="error", root_only=True, limit=3)))
        trace = ask(monitor.storage.get_trace(errors.items[0].trace_id)) if errors.items else []
        logs = ask(monitor.storage.search_logs(LogQuery(text="declined", limit=3)))

    print(f"storage backend: {monitor.config.storage.backend}")
    for series in outcomes:
        print(f"requests {series.labels}: {series.points[0][1]:.0f}")
    print(f"checkout p99 latency: {p99[0].points[0][1] * 1000:.1f} ms (merged from stored sketches)")
    print(f"failed checkouts found by span search: {errors.total}")
    for span in trace:
        indent = "  " if span.parent_span_id else ""
        print(f"  {indent}{span.name} [{span.status}] {(span.duration_ns or 0) / 1e6:.3f} ms")
    print(f"logs matching 'declined': {logs.total}; newest: {logs.items[0].snippet if logs.items else '-'}")
    if logs.items:
        print(f"  ...and it carries its trace: {logs.items[0].record.trace_id}")


if __name__ == "__main__":
    main()
