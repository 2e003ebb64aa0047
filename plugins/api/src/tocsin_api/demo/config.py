"""The demo's config: a SQLite file (or memory), a `log` channel and the alert rules the simulated shop trips.

Every duration is in demo seconds and divided by `speed`, so `--speed 6` plays the same story six times faster
(the tests use that); at speed 1 the first alerts fire, repeat and resolve within about two minutes.
"""

from __future__ import annotations

from typing import Any

CHANNEL = "ops"


def demo_config(db_path: str | None, speed: float) -> dict[str, Any]:
    """The config of `tocsin demo` for a SQLite store at `db_path` (None: in memory), with every interval
    compressed by `speed`."""

    def s(seconds: float, least: float = 0.2) -> float:
        return max(least, seconds / speed)

    quick = {"for": s(10, 0), "cooldown": s(30), "flap_window": s(300)}
    return {
        "service": "shop",
        "storage": ({"backend": "memory"} if db_path is None else {"backend": "sqlite", "path": db_path})
        | {"leader_lease": 0},
        "metrics": {"flush_interval": s(5, 1)},
        "tracing": {"flush_interval": s(2, 0.5)},
        "alerting": {"evaluation_interval": s(5, 1), "rules": [
            {"name": "checkout-latency-high", "metric": "http_request_seconds", "aggregate": "p99",
             "window": s(30), "match": {"route": "/checkout"}, "op": "gt", "threshold": 1.0, "severity": "error",
             **quick, "annotations": {"summary": "checkout P99 is {{ '%.2f' | format(value) }}s (over 1s)"}},
            {"name": "server-errors", "metric": "http_requests_total", "aggregate": "rate", "window": s(30),
             "matchers": ['status=~"5.."'], "op": "gt", "threshold": 0.25, "severity": "warning", **quick,
             "annotations": {"summary": "{{ '%.2f' | format(value) }} server errors per second"}},
            {"name": "payment-timeouts", "kind": "log", "query": "timeout service:web", "level": "warning",
             "window": s(30), "op": "gt", "threshold": 2, "severity": "warning", **quick,
             "annotations": {"summary": "{{ value | int }} timeouts logged"}},
            {"name": "payments-api-down", "kind": "health", "component": "payments-api", "window": s(30),
             "op": "gte", "threshold": 2, "severity": "critical", "cooldown": s(30), "flap_window": s(300)},
            {"name": "fraud-check-down", "kind": "health", "component": "fraud-check", "window": s(30),
             "op": "gte", "threshold": 2, "severity": "warning", "cooldown": s(30)},
            {"name": "nightly-etl-failed", "kind": "workflow", "workflow": "nightly-etl", "measure": "failures",
             "window": s(60), "op": "gt", "threshold": 0, "severity": "error", "cooldown": s(30),
             "flap_window": s(300),
             "annotations": {"summary": "nightly-etl failed {{ value | int }} time(s) in the last night"}},
        ]},
        "health": {"interval": s(2, 0.5)},
        "workflows": {"check_interval": s(2, 0.5), "flush_interval": s(1, 0.2),
                      "expect": [{"name": "nightly-etl", "max_duration": s(8)}]},
        "channels": [{"name": CHANNEL, "type": "log", "group_by": ["..."], "group_wait": s(2, 0),
                      "group_interval": s(10), "repeat_interval": s(30)}],
        "notifications": {"poll_interval": s(1, 0.2)},
    }
