"""Contract tests for retention sweeps, row statistics and closing, which span every signal at once."""

from __future__ import annotations

from typing import Any

from tocsin.models import LabelMatcher, Silence
from tocsin.storage.protocol import RETENTION_SIGNALS, AlertQuery, Retention
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import (
    API_A,
    API_B,
    DAY,
    make_alert,
    make_attempt,
    make_delivery,
    make_execution,
    make_health,
    make_log,
    make_rollup,
    make_span,
    make_step,
    make_transition,
    ns_at,
    tid,
)


class HousekeepingContract(ContractBase):
    """`sweep` deleting only expired rows of the signals given, `stats` row counts, and a safe double close."""

    async def _write_old_and_new(self, backend: Any, old_s: float, new_s: float) -> None:
        """One old and one new row of every kind, plus the old rows a sweep must keep."""
        await backend.write_metrics(
            [
                make_rollup("latency", API_A, old_s, [1.0]),
                make_rollup("latency", API_A, new_s, [2.0]),
                make_rollup("gone", API_B, old_s, [1.0]),
            ]
        )
        await backend.write_spans([make_span(1, start_s=old_s), make_span(2, trace=2, start_s=new_s)])
        await backend.write_logs([make_log("old", old_s), make_log("new", new_s)])
        await backend.write_health([make_health("db", old_s), make_health("db", new_s)])
        await backend.save_alert(
            make_alert("resolved-old", state="resolved", updated_s=old_s),
            [make_transition("resolved-old", old_s, "firing", "resolved")],
        )
        await backend.save_alert(
            make_alert("firing-old", state="firing", updated_s=old_s),
            [make_transition("firing-old", new_s, "pending", "firing")],
        )
        await backend.save_alert(make_alert("resolved-new", state="resolved", updated_s=new_s))
        matcher = [LabelMatcher(label="service", value="api")]
        await backend.save_silence(
            Silence(
                id="expired", matchers=matcher, starts_ns=ns_at(old_s), ends_ns=ns_at(old_s + 1), created_by="ann"
            )
        )
        await backend.save_silence(
            Silence(
                id="current",
                matchers=matcher,
                starts_ns=ns_at(old_s),
                ends_ns=ns_at(new_s + DAY),
                created_by="ann",
            )
        )
        await backend.enqueue_deliveries(
            [
                make_delivery("sent-old", old_s),
                make_delivery("pending-old", old_s, next_s=new_s),
                make_delivery("sent-new", new_s),
            ]
        )
        await backend.record_attempt(
            make_attempt("sent-old", 1, old_s), "pending", next_attempt_ns=ns_at(old_s + 1)
        )
        await backend.record_attempt(make_attempt("sent-old", 2, old_s + 1, outcome="sent"), "sent")
        await backend.record_attempt(make_attempt("sent-new", 1, new_s, outcome="sent"), "sent")
        await backend.save_execution(make_execution("run-old", old_s))
        await backend.save_step(make_step("run-old", "extract", old_s))
        await backend.save_step(make_step("run-old", "load", old_s + 1))
        await backend.save_execution(make_execution("run-new", new_s))
        await backend.save_step(make_step("run-new", "extract", new_s))

    async def test_sweep_deletes_old_rows_and_keeps_live_ones(self, backend):
        now_s = 10 * DAY
        await self._write_old_and_new(backend, old_s=0, new_s=now_s - 3600)
        retention = Retention(
            metrics=DAY, traces=DAY, logs=DAY, alerts=DAY, notifications=DAY, health=DAY, workflows=DAY
        )
        deleted = await backend.sweep(retention, now_ns=ns_at(now_s))
        assert deleted == {
            "metrics": 2,
            "traces": 1,
            "logs": 1,
            "alerts": 3,  # the resolved alert, its transition, the expired silence
            "notifications": 3,  # the sent delivery and its two attempts
            "health": 1,
            "workflows": 3,  # the execution and its two steps
        }
        assert [(i.name, i.series) for i in await backend.list_metrics()] == [("latency", 1)]
        assert await backend.get_trace(tid(1)) == []
        assert len(await backend.get_trace(tid(2))) == 1
        assert await self._search(backend) == ["new"]
        assert len(await backend.health_history("db")) == 1
        alerts = await backend.list_alerts(AlertQuery())
        assert sorted(a.fingerprint for a in alerts.items) == ["firing-old", "resolved-new"]
        assert await backend.alert_history("resolved-old") == []
        assert len(await backend.alert_history("firing-old")) == 1
        assert [s.id for s in await backend.list_silences()] == ["current"]
        assert await backend.get_delivery("sent-old") is None
        assert await backend.list_attempts("sent-old") == []
        assert (await backend.get_delivery("pending-old")).state == "pending"
        assert (await backend.get_delivery("sent-new")).state == "sent"
        assert await backend.get_execution("run-old") is None
        assert len((await backend.get_execution("run-new"))[1]) == 1
        assert await backend.sweep(retention, now_ns=ns_at(now_s)) == dict.fromkeys(RETENTION_SIGNALS, 0)

    async def test_sweep_with_no_retention_keeps_everything(self, backend):
        await self._write_old_and_new(backend, old_s=0, new_s=10)
        before = (await backend.stats()).rows
        keep_all = Retention(
            metrics=None, traces=None, logs=None, alerts=None, notifications=None, health=None, workflows=None
        )
        assert await backend.sweep(keep_all, now_ns=ns_at(100 * DAY)) == dict.fromkeys(RETENTION_SIGNALS, 0)
        assert (await backend.stats()).rows == before

    async def test_sweep_only_touches_the_signals_it_is_given(self, backend):
        await self._write_old_and_new(backend, old_s=0, new_s=10 * DAY)
        logs_only = Retention(
            metrics=None, traces=None, logs=DAY, alerts=None, notifications=None, health=None, workflows=None
        )
        deleted = await backend.sweep(logs_only, now_ns=ns_at(10 * DAY))
        assert deleted == {**dict.fromkeys(RETENTION_SIGNALS, 0), "logs": 1}
        assert len(await backend.get_trace(tid(1))) == 1

    async def test_stats_count_rows(self, backend):
        empty = await backend.stats()
        assert all(count == 0 for count in empty.rows.values())
        await self._write_latency(backend)
        await self._write_span_set(backend)
        await self._write_log_set(backend)
        await self._write_alert_set(backend)
        await backend.enqueue_deliveries([make_delivery("d1", 0), make_delivery("d2", 0)])
        await backend.write_health([make_health("db", 0)])
        await backend.save_execution(make_execution("run-1", 0))
        stats = await backend.stats()
        assert {
            name: stats.rows[name]
            for name in (
                "metric_rollups",
                "spans",
                "logs",
                "alerts",
                "deliveries",
                "health",
                "workflow_executions",
            )
        } == {
            "metric_rollups": 6,
            "spans": 5,
            "logs": 5,
            "alerts": 4,
            "deliveries": 2,
            "health": 1,
            "workflow_executions": 1,
        }
        assert stats.bytes >= 0

    async def test_close_twice_is_safe(self, backend):
        await backend.write_logs([make_log("bye", 0)])
        await backend.close()
        await backend.close()
