"""Contract tests for the change marker, which tells a process that the store changed (its writes or another
process's) so that it reads what is new: the cross-process change feed of the API's WebSocket."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tocsin.models import LabelMatcher, Silence
from tocsin.storage.protocol import (
    AlertQuery,
    DeliveryQuery,
    ExecutionQuery,
    LogQuery,
    MetricQuery,
    Retention,
    SpanQuery,
)
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import (
    API_A,
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

SILENCE = Silence(id="s1", matchers=[LabelMatcher(label="service", value="api")], starts_ns=ns_at(0),
                  ends_ns=ns_at(3600), created_by="ops")

WRITES: dict[str, Callable[[Any], Awaitable[Any]]] = {
    "write_metrics": lambda b: b.write_metrics([make_rollup("latency", API_A, 0, [1.0])]),
    "write_spans": lambda b: b.write_spans([make_span(1, start_s=0, duration_s=1)]),
    "write_logs": lambda b: b.write_logs([make_log("disk almost full", 0)]),
    "write_health": lambda b: b.write_health([make_health("db", 0)]),
    "save_alert": lambda b: b.save_alert(make_alert("a", updated_s=1), [make_transition("a", 1, "pending", "firing")],
                                         [make_delivery("d0", 1, fingerprint="a")]),
    "save_silence": lambda b: b.save_silence(SILENCE),
    "delete_silence": lambda b: b.delete_silence("s1"),
    "enqueue_deliveries": lambda b: b.enqueue_deliveries([make_delivery("d1", 0)]),
    "claim_deliveries": lambda b: b.claim_deliveries(ns_at(10), limit=10, lease_s=30),
    "record_attempt": lambda b: b.record_attempt(make_attempt("d1", 1, 11, outcome="sent"), "sent"),
    "save_execution": lambda b: b.save_execution(make_execution("e1", 0, status="running")),
    "save_step": lambda b: b.save_step(make_step("e1", "extract", 1)),
    "write_workflows": lambda b: b.write_workflows([make_execution("e1", 0)], [make_step("e1", "load", 2)]),
    "acquire_lease": lambda b: b.acquire_lease("leader", "a", 15, ns_at(0)),
    "release_lease": lambda b: b.release_lease("leader", "a"),
    "sweep": lambda b: b.sweep(Retention(metrics=1, traces=1, logs=1, alerts=None, notifications=None, health=1,
                                         workflows=1), ns_at(DAY)),
}
"""Every kind of write, in an order where each one changes something (the sweep deletes what came before)."""

READS: dict[str, Callable[[Any], Awaitable[Any]]] = {
    "list_metrics": lambda b: b.list_metrics(),
    "query_metrics": lambda b: b.query_metrics(MetricQuery(name="latency", start_ns=ns_at(0), end_ns=ns_at(30))),
    "get_trace": lambda b: b.get_trace(tid(1)),
    "search_spans": lambda b: b.search_spans(SpanQuery()),
    "search_logs": lambda b: b.search_logs(LogQuery(text="payment")),
    "get_alert": lambda b: b.get_alert("a"),
    "list_alerts": lambda b: b.list_alerts(AlertQuery()),
    "alert_history": lambda b: b.alert_history("a"),
    "transitions_between": lambda b: b.transitions_between(ns_at(0), ns_at(10)),
    "list_silences": lambda b: b.list_silences(),
    "get_delivery": lambda b: b.get_delivery("d1"),
    "list_deliveries": lambda b: b.list_deliveries(DeliveryQuery()),
    "list_attempts": lambda b: b.list_attempts("d1"),
    "health_history": lambda b: b.health_history("db"),
    "get_execution": lambda b: b.get_execution("e1"),
    "list_executions": lambda b: b.list_executions(ExecutionQuery()),
    "stats": lambda b: b.stats(),
    "lease_holder": lambda b: b.lease_holder("leader", ns_at(1)),
}


class FeedContract(ContractBase):
    """`change_marker`: moves after every kind of write that changed the store, and stays put across reads."""

    async def test_the_change_marker_moves_after_every_kind_of_write(self, backend):
        marker = await backend.change_marker()
        assert isinstance(marker, int)
        for name, write in WRITES.items():
            await write(backend)
            after = await backend.change_marker()
            assert after > marker, f"the change marker did not move after {name}"
            marker = after

    async def test_reads_leave_the_change_marker_alone(self, backend):
        await self._write_latency(backend)
        await self._write_span_set(backend)
        await self._write_log_set(backend)
        await self._write_alert_set(backend)
        await backend.save_alert(make_alert("a", updated_s=5), [make_transition("a", 5, "pending", "firing")])
        await backend.write_health([make_health("db", 1)])
        await backend.enqueue_deliveries([make_delivery("d1", 0)])
        await backend.save_execution(make_execution("e1", 0))
        await backend.acquire_lease("leader", "a", 15, ns_at(0))
        marker = await backend.change_marker()
        assert await backend.change_marker() == marker  # asking again changes nothing either
        for name, read in READS.items():
            await read(backend)
            assert await backend.change_marker() == marker, f"the change marker moved after {name}"
