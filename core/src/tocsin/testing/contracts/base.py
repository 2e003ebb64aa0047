"""Seed data sets that tests of several areas write, shared so each area mixin and housekeeping use one copy."""

from __future__ import annotations

from typing import Any

from tocsin.storage.protocol import LogQuery
from tocsin.testing.contracts.records import LATENCY, make_alert, make_log, make_rollup, make_span


class ContractBase:
    """Writers of the standard data sets (latency rollups, spans, logs, alerts) and the log search shorthand."""

    async def _write_latency(self, backend: Any) -> None:
        """The `LATENCY` rollups: three series of the "latency" histogram in [T0, T0+30s)."""
        await backend.write_metrics(
            [make_rollup("latency", labels, at, values) for labels, at, values in LATENCY]
        )

    async def _write_span_set(self, backend: Any) -> None:
        """Five spans in three traces across services "api" and "db", one failed and one still running."""
        await backend.write_spans(
            [
                make_span(1, service="api", name="GET /users", start_s=0, duration_s=0.5),
                make_span(
                    2,
                    parent=1,
                    service="db",
                    name="SELECT",
                    start_s=1,
                    duration_s=0.1,
                    attributes={"db.table": "users"},
                ),
                make_span(
                    3,
                    trace=2,
                    service="api",
                    name="POST /orders",
                    start_s=2,
                    duration_s=3.0,
                    status="error",
                    attributes={"http.status": 500},
                ),
                make_span(
                    4,
                    trace=2,
                    parent=3,
                    service="db",
                    name="INSERT",
                    start_s=3,
                    duration_s=2.0,
                    attributes={"db.table": "orders"},
                ),
                make_span(
                    5, trace=3, service="api", name="GET /users", start_s=4, duration_s=None, status="unset"
                ),
            ]
        )

    async def _write_log_set(self, backend: Any) -> None:
        """Five logs, one per level from debug to critical, written in two batches."""
        await backend.write_logs(
            [
                make_log("service started on port 8000", 0, level="info", service="api"),
                make_log(
                    "payment failed for order 7",
                    1,
                    level="error",
                    service="billing",
                    trace=1,
                    span=11,
                    execution="run-1",
                ),
                make_log("cache miss for user 42", 2, level="debug", service="api", trace=1, span=12),
            ]
        )
        await backend.write_logs(
            [
                make_log("failed payment retried for order 7", 3, level="warning", service="billing", trace=2),
                make_log("disk almost full", 4, level="critical", service="ops", execution="run-1"),
            ]
        )

    async def _search(self, backend: Any, **fields: Any) -> list[str]:
        """The messages of the first page of `search_logs` for a `LogQuery` of `fields`."""
        page = await backend.search_logs(LogQuery(**fields))
        return [hit.record.message for hit in page.items]

    async def _write_alert_set(self, backend: Any) -> None:
        """Alerts "a" to "d" of rules "high_latency" and "errors", updated in that order; "d" is resolved."""
        for alert in [
            make_alert(
                "a",
                rule="high_latency",
                state="firing",
                severity="warning",
                labels={"service": "api"},
                updated_s=1,
            ),
            make_alert(
                "b",
                rule="high_latency",
                state="pending",
                severity="warning",
                labels={"service": "web"},
                updated_s=2,
            ),
            make_alert(
                "c",
                rule="errors",
                state="firing",
                severity="critical",
                labels={"service": "api"},
                updated_s=3,
            ),
            make_alert(
                "d",
                rule="errors",
                state="resolved",
                severity="critical",
                labels={"service": "db"},
                updated_s=4,
            ),
        ]:
            await backend.save_alert(alert)
