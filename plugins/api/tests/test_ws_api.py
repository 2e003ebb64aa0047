"""The WebSocket `/api/v1/ws` over a real socket: keys, subscribe and unsubscribe, ping, errors that keep the
socket open, live alerts, logs with a query, traces and metric snapshots, `since` replay from storage, and the
slow client that is closed with 1013 while the others keep working."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import pytest
from tocsin_api.hub import Hub
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tocsin.ext import Alert, AlertTransition, Event, HealthResult, MetricQuery, WorkflowExecution

KEYS = {"server": {"api_keys": [
    {"name": "reader", "key": "r-secret-0123456789abcdef", "scopes": ["read"]},
]}}
READ_KEY = "r-secret-0123456789abcdef"


def url(server, query: str = "") -> str:
    return server.ws_base + "/api/v1/ws" + (f"?{query}" if query else "")


def recv(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def recv_until(ws: ClientConnection, match, timeout: float = 5) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first message `match` accepts, and the ones before it."""
    before: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        message = recv(ws, max(0.01, deadline - time.monotonic()))
        if match(message):
            return message, before
        before.append(message)


FAN_OUT_CLIENTS = 40
FAN_OUT_EVENTS = 25

ROUTINE = {"evaluated", "rule_health"}
"""Alerting publishes these every evaluation cycle; the tests look past them."""


def recv_event(ws: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    """The next message that is not a routine alerting cycle report."""
    return recv_until(ws, lambda m: m.get("type") not in ROUTINE, timeout)[0]


def read_to_close(ws: ClientConnection, timeout: float = 10) -> ConnectionClosed:
    """Read until the server closes; the ConnectionClosed that says how."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as closed:
            return closed
    raise AssertionError("the server did not close the connection")


def send(ws: ClientConnection, body: dict[str, Any]) -> None:
    ws.send(json.dumps(body))


def subscribe(ws: ClientConnection, *topics: str, **extra: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Subscribe; the `subscribed` acknowledgement and what came before it (replayed messages)."""
    send(ws, {"subscribe": list(topics), **extra})
    ack, before = recv_until(ws, lambda m: m.get("type") in ("subscribed", "error"))
    return ack, [m for m in before if m.get("type") not in ROUTINE]


def alert_event(server, kind: str = "firing", **data: Any) -> Event:
    return Event(topic="alerts", type=kind, time_ns=server.monitor.clock.now_ns(), data={"rule": "disk", **data})


def test_the_socket_needs_a_read_key_in_the_header_or_access_token(serve):
    server = serve(KEYS)
    for query in ("", "access_token=not-a-key"):
        with pytest.raises(InvalidStatus) as refused:  # Litestar closes before accepting: uvicorn answers 403
            connect(url(server, query), open_timeout=5)
        assert refused.value.response.status_code == 403
    with connect(url(server, f"access_token={READ_KEY}")) as ws:
        send(ws, {"ping": 1})
        assert recv(ws) == {"pong": 1}
    with connect(url(server), additional_headers={"Authorization": f"Bearer {READ_KEY}"}) as ws:
        ack, _ = subscribe(ws, "alerts")
        assert ack["type"] == "subscribed" and ack["data"]["topics"] == ["alerts"]


def test_ping_answers_pong_and_bad_messages_get_errors_on_an_open_socket(server):
    with connect(url(server)) as ws:
        send(ws, {"ping": {"n": 7, "s": "x"}})
        assert recv(ws) == {"pong": {"n": 7, "s": "x"}}
        send(ws, {"ping": None})
        assert recv(ws) == {"pong": None}
        ws.send("{not json")
        error = recv(ws)
        assert error["type"] == "error" and error["data"]["reason"].startswith("bad message")
        send(ws, {"subscribe": ["alerts", "weather"]})
        error = recv(ws)
        assert error["type"] == "error" and "unknown topic 'weather'" in error["data"]["reason"]
        send(ws, {"subscribe": ["logs"], "query": "x"})
        assert "query" in recv(ws)["data"]["reason"]
        send(ws, {"subscribe": ["logs"], "q": "-debug"})
        assert recv(ws)["data"]["reason"].startswith("q:")
        send(ws, {"subscribe": ["metrics:x"], "aggregate": "median"})
        assert recv(ws)["data"]["reason"].startswith("aggregate:")
        send(ws, {"subscribe": ["alerts"], "since": "yesterday-ish"})
        assert recv(ws)["data"]["reason"].startswith("since:")
        send(ws, {"subscribe": [f"metrics:m{i}" for i in range(65)]})
        assert recv(ws)["data"]["reason"].startswith("too many topics")
        send(ws, {})
        assert recv(ws)["type"] == "error"
        ws.send(b"\x00binary")
        assert recv(ws)["type"] == "error"
        send(ws, {"ping": "still open"})
        assert recv(ws) == {"pong": "still open"}
        ack, _ = subscribe(ws)  # an empty subscribe just reports; the refused ones subscribed nothing
        assert ack["data"]["topics"] == []


def test_a_published_alert_arrives_and_stops_after_unsubscribe(server):
    with connect(url(server)) as ws:
        ack, _ = subscribe(ws, "alerts", "workflows")
        assert ack["data"]["topics"] == ["alerts", "workflows"] and ack["cursor"].startswith("v1.")
        event = alert_event(server, fingerprint="f1")
        server.monitor.events.publish(event)
        got = recv_event(ws, timeout=1)
        assert got["topic"] == "alerts" and got["type"] == "firing"
        assert got["data"] == {"rule": "disk", "fingerprint": "f1"}
        assert got["cursor"].startswith("v1.a") and got["cursor"].endswith(ack["cursor"][-20:])  # .w<ns> kept
        assert int(got["cursor"].split(".")[1][1:]) >= event.time_ns
        server.monitor.events.publish(Event(topic="health", type="changed", time_ns=1, data={}))  # not subscribed

        send(ws, {"unsubscribe": ["alerts"]})
        ack = recv_event(ws)
        assert ack["type"] == "unsubscribed" and ack["data"]["topics"] == ["workflows"]
        assert ".a" not in ack["cursor"]
        server.monitor.events.publish(alert_event(server, fingerprint="f2"))
        server.monitor.events.publish(Event(topic="workflows", type="started", time_ns=server.monitor.clock.now_ns(),
                                            data={"execution_id": "e1", "workflow": "nightly"}))
        got = recv(ws, timeout=1)  # the bus keeps order: the alert before it was not sent (nor a cycle report)
        assert got["topic"] == "workflows" and got["data"]["execution_id"] == "e1"


def test_a_burst_of_alerts_reaches_every_client_once_and_in_order(server):
    """The fan-out the benchmark times: every subscribed client gets each event of a burst exactly once, in the
    bus's order, each with its own cursor advanced to the event's time."""
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(url(server))) for _ in range(FAN_OUT_CLIENTS)]
        for ws in clients:
            subscribe(ws, "alerts")
        events = [alert_event(server, fingerprint=f"f{n}") for n in range(FAN_OUT_EVENTS)]
        for event in events:
            server.monitor.events.publish(event)
        for ws in clients:
            got = [recv_event(ws) for _ in events]
            assert [m["data"]["fingerprint"] for m in got] == [f"f{n}" for n in range(FAN_OUT_EVENTS)]
            assert [int(m["cursor"].split(".")[1][1:]) for m in got] == [event.time_ns for event in events]
            send(ws, {"ping": "end"})
            assert recv_event(ws) == {"pong": "end"}  # the answer queued after the burst: nothing came twice


def test_reconnecting_with_since_replays_the_alert_transitions_missed(server):
    now = server.monitor.clock.now_ns
    with connect(url(server)) as ws:
        subscribe(ws, "alerts")
        event = alert_event(server, fingerprint="fp1")
        server.monitor.events.publish(event)
        cursor = recv_event(ws, timeout=1)["cursor"]
    alert = Alert(fingerprint="fp1", rule="disk", state="firing", updated_ns=now())
    before = AlertTransition(fingerprint="fp1", rule="disk", time_ns=event.time_ns - 10, from_state="inactive",
                             to_state="pending")
    missed = [AlertTransition(fingerprint="fp1", rule="disk", time_ns=now(), from_state="firing",
                              to_state="resolved", reason="value back under 0.9"),
              AlertTransition(fingerprint="fp1", rule="disk", time_ns=now() + 1, from_state="active",
                              to_state="acknowledged", actor="ann")]
    server.call(server.monitor.storage.save_alert(alert, [before, *missed]))

    with connect(url(server, f"since={cursor}")) as ws:
        ack, replayed = subscribe(ws, "alerts")
        assert [(m["type"], m["data"]["time_ns"]) for m in replayed] == [(t.to_state, t.time_ns) for t in missed]
        assert all(m["topic"] == "alerts" and m["replayed"] is True for m in replayed)
        assert replayed[0]["data"]["reason"] == "value back under 0.9" and replayed[1]["data"]["actor"] == "ann"
        assert ack["data"]["replayed"] == {"alerts": 2} and ack["data"]["truncated"] == []
        assert ack["cursor"] == f"v1.a{missed[1].time_ns}"
        server.monitor.events.publish(alert_event(server, "resolved", fingerprint="fp2"))
        live = recv_event(ws, timeout=1)
        assert live["data"]["fingerprint"] == "fp2" and "replayed" not in live

    with connect(url(server, "since=1h")) as ws:  # a time works too: everything of the last hour
        ack, replayed = subscribe(ws, "alerts")
        assert [m["data"]["to_state"] for m in replayed] == ["pending", "resolved", "acknowledged"]
    with connect(url(server)) as ws:  # a since in the subscribe message
        ack, replayed = subscribe(ws, "alerts", since=str(missed[0].time_ns))
        assert [m["data"]["to_state"] for m in replayed] == ["acknowledged"]


def test_since_replays_logs_traces_health_and_workflows_oldest_first(server):
    monitor = server.monitor
    now = monitor.clock.now_ns
    topics = ["logs", "traces", "health", "workflows"]

    async def register() -> None:
        monitor.health.heartbeat("backup", period="1h")

    server.call(register())
    with connect(url(server)) as ws:
        ack, _ = subscribe(ws, *topics, q="level:error")
        cursor = ack["cursor"]
    monitor.log.error("missed error")
    monitor.log.info("missed info")
    with monitor.tracer.span("missed span"):
        pass
    server.call(monitor.flush())
    server.call(monitor.storage.write_health([HealthResult(component="backup", status="unhealthy", time_ns=now(),
                                                           message="no beat for 2h")]))
    run = WorkflowExecution(id="e1", name="nightly", status="succeeded", started_ns=now() - 10**9, ended_ns=now())
    server.call(monitor.storage.save_execution(run))

    with connect(url(server, f"since={cursor}")) as ws:
        ack, replayed = subscribe(ws, *topics, q="level:error")
    assert all(m["replayed"] is True for m in replayed)
    by_topic = {topic: [m for m in replayed if m["topic"] == topic] for topic in topics}
    assert [r["message"] for m in by_topic["logs"] for r in m["data"]["records"]] == ["missed error"]
    assert [s["name"] for m in by_topic["traces"] for s in m["data"]["spans"]] == ["missed span"]
    assert "no beat for 2h" in [m["data"]["message"] for m in by_topic["health"] if m["type"] == "result"]
    assert [(m["type"], m["data"]["id"], m["data"]["status"]) for m in by_topic["workflows"]] == [
        ("execution", "e1", "succeeded")]
    assert ack["data"]["replayed"]["logs"] == 1 and ack["data"]["replayed"]["workflows"] == 1

    def when(m: dict[str, Any]) -> int:
        data = m["data"]
        return {"logs": lambda: data["records"][-1]["time_ns"], "traces": lambda: data["spans"][-1]["start_ns"],
                "health": lambda: data["time_ns"], "workflows": lambda: max(data["started_ns"], data["ended_ns"])
                }[m["topic"]]()

    times = [when(m) for m in replayed]
    assert times == sorted(times)  # oldest first across the topics
    assert replayed[-1]["cursor"] == ack["cursor"]


def test_a_bad_since_on_the_url_is_an_error_then_close_1008(server):
    with connect(url(server, "since=v1.z12")) as ws:
        assert recv(ws)["type"] == "error"
        closed = read_to_close(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1008


def test_logs_with_a_query_push_the_new_matching_records_with_one_read_per_query(server):
    monitor = server.monitor
    hub = Hub.of(monitor)
    bus = monitor.events.subscribe(["logs"])
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(connect(url(server))) for _ in range(3)]
        stack.callback(bus.close)
        for ws in sockets:
            ack, _ = subscribe(ws, "logs", q="level:error disk")
            assert ack["data"]["q"] == "level:error disk"
        other = sockets[0]
        reads = hub.reads
        monitor.log.error("disk full on /var", disk="sda")
        monitor.log.info("disk is fine")
        monitor.log.error("network down")
        server.call(monitor.flush())
        for ws in sockets:
            got = recv(ws)
            assert got["topic"] == "logs" and got["type"] == "records" and got["data"]["truncated"] is False
            assert [r["message"] for r in got["data"]["records"]] == ["disk full on /var"]
            assert got["data"]["records"][0]["attributes"] == {"disk": "sda"}
        written = len([e for e in bus.drain() if e.type == "written"])
        assert 1 <= hub.reads - reads <= written  # one read per write for all three clients, not three

        send(other, {"subscribe": ["logs"], "q": "network"})  # a new query moves the client to another feed
        assert recv(other)["data"]["q"] == "network"
        monitor.log.error("network down again")
        monitor.log.error("disk full again")
        server.call(monitor.flush())
        assert [r["message"] for r in recv(other)["data"]["records"]] == ["network down again"]
        assert [r["message"] for r in recv(sockets[1])["data"]["records"]] == ["disk full again"]


def test_new_spans_are_pushed_on_the_traces_topic(server):
    monitor = server.monitor
    with connect(url(server)) as ws:
        subscribe(ws, "traces")
        with monitor.tracer.span("checkout", attributes={"cart": 3}):
            pass
        server.call(monitor.flush())
        got = recv(ws)
        assert got["topic"] == "traces" and got["type"] == "spans"
        assert [(s["name"], s["attributes"]) for s in got["data"]["spans"]] == [("checkout", {"cart": 3})]
        server.call(monitor.flush())
        with monitor.tracer.span("pay"):
            pass
        server.call(monitor.flush())
        assert [s["name"] for s in recv(ws)["data"]["spans"]] == ["pay"]  # checkout is not pushed twice


def test_a_metric_topic_gets_a_snapshot_every_interval(serve):
    server = serve({"server": {"ws_snapshot_interval": "100ms"}})
    monitor = server.monitor
    monitor.metrics.gauge("queue_depth").set(42, queue="mail")
    server.call(monitor.flush())
    with connect(url(server)) as ws:
        ack, _ = subscribe(ws, "metrics:queue_depth", aggregate="max")
        assert ack["data"]["topics"] == ["metrics:queue_depth"]
        snapshots = [recv(ws, timeout=2) for _ in range(3)]
        for snapshot in snapshots:
            assert snapshot["topic"] == "metrics:queue_depth" and snapshot["type"] == "snapshot"
            assert snapshot["data"]["aggregate"] == "max" and snapshot["data"]["step_s"] == 10
            assert snapshot["data"]["end_ns"] - snapshot["data"]["start_ns"] == 60 * 10**9
        assert [value for _, value in snapshots[-1]["data"]["points"]] == [42]
        assert snapshots[0]["data"]["end_ns"] < snapshots[-1]["data"]["end_ns"]
        send(ws, {"unsubscribe": ["metrics:queue_depth"]})
        recv_until(ws, lambda m: m.get("type") == "unsubscribed")
        assert Hub.of(monitor).feeds == 0


def test_a_client_that_does_not_read_is_closed_with_1013_and_the_others_keep_working(serve):
    server = serve({"server": {"ws_queue": 20}})
    monitor = server.monitor
    hub = Hub.of(monitor)
    with connect(url(server), max_queue=4) as slow, connect(url(server)) as healthy:
        subscribe(slow, "alerts")
        subscribe(healthy, "workflows")
        padding = "x" * 16384
        deadline = time.monotonic() + 30
        while hub.dropped == 0 and time.monotonic() < deadline:
            for _ in range(50):
                monitor.events.publish(alert_event(server, padding=padding))
            time.sleep(0.005)
        assert hub.dropped == 1
        closed = read_to_close(slow)  # what was in flight, then the close frame
        assert closed.rcvd is not None and closed.rcvd.code == 1013
        assert "too slow" in closed.rcvd.reason

        monitor.events.publish(Event(topic="workflows", type="succeeded", time_ns=monitor.clock.now_ns(),
                                     data={"execution_id": "e9"}))
        assert recv(healthy, timeout=1)["data"] == {"execution_id": "e9"}
        send(healthy, {"ping": 2})
        assert recv(healthy) == {"pong": 2}
    server.call(monitor.flush())
    series = server.call(monitor.storage.query_metrics(MetricQuery(
        name="tocsin_ws_dropped_clients_total", start_ns=0, end_ns=2**63 - 1, aggregate="sum", by=[])))
    assert sum(value for s in series for _, value in s.points) == 1


def test_the_hub_lets_go_of_the_bus_when_the_last_client_leaves(server):
    hub = Hub.of(server.monitor)
    subscriptions = len(server.monitor.events._subscriptions)
    with connect(url(server)) as ws:
        subscribe(ws, "alerts", "logs", "traces", "metrics:m")
        assert hub.running and hub.feeds == 3
        assert len(server.monitor.events._subscriptions) == subscriptions + 1
    deadline = time.monotonic() + 5
    while (hub.running or hub.clients) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not hub.running and hub.feeds == 0 and not hub.clients
    assert len(server.monitor.events._subscriptions) == subscriptions


def test_a_record_stamped_a_little_earlier_than_one_already_pushed_still_goes_out(server):
    """SQLite log ids are time keys: a late record (another process's clock) has a smaller id than one already
    pushed, and must be pushed all the same."""
    from tocsin.ext import LogRecord

    monitor = server.monitor
    with connect(url(server)) as ws:
        subscribe(ws, "logs", q="shipped")
        now = time.time_ns() + 3 * 10**9  # both records are after the subscription began
        server.call(monitor.storage.write_logs([LogRecord(time_ns=now, level="info", message="order 2 shipped")]))
        monitor.events.publish(Event(topic="logs", type="written", time_ns=now))
        assert [r["message"] for r in recv(ws)["data"]["records"]] == ["order 2 shipped"]
        late = LogRecord(time_ns=now - 2 * 10**9, level="info", message="order 1 shipped")
        server.call(monitor.storage.write_logs([late]))
        monitor.events.publish(Event(topic="logs", type="written", time_ns=now))
        assert [r["message"] for r in recv(ws)["data"]["records"]] == ["order 1 shipped"]
