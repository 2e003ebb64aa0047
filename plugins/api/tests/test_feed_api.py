"""The change feed over a real socket: a server sees what another process wrote to its SQLite file (logs),
and a follower server relays the alert transitions and health changes the leader stored."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from tocsin_api.feed import FEW, ChangeFeed
from tocsin_sqlite import SQLiteStorage
from websockets.sync.client import ClientConnection, connect

from tocsin.alerting.service import event_data
from tocsin.ext import Alert, AlertTransition, Delivery, Event, HealthResult
from tocsin.storage.lease import LEASE_NAME
from tocsin.testing import make_monitor

HEARTBEAT = {"checks": [{"name": "backup", "type": "heartbeat", "period": "1h"}]}


def sqlite(path: Path, **config: Any) -> dict[str, Any]:
    return {"storage": {"backend": "sqlite", "path": str(path)}, **config}


def recv_until(ws: ClientConnection, match, timeout: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The first message `match` accepts within `timeout` seconds, and the ones before it."""
    before: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if match(message):
            return message, before
        before.append(message)


def subscribe(ws: ClientConnection, *topics: str) -> None:
    ws.send(json.dumps({"subscribe": list(topics)}))
    ack, _ = recv_until(ws, lambda m: m.get("type") in ("subscribed", "error"), 5)
    assert ack["type"] == "subscribed", ack


def elsewhere(path: Path, work) -> Any:
    """Run `work(storage)` on another SQLiteStorage of the file (as another process would), on its own loop."""

    async def run() -> Any:
        storage = SQLiteStorage(SQLiteStorage.Config(path=str(path)))
        await storage.open()
        try:
            return await work(storage)
        finally:
            await storage.close()

    return asyncio.run(run())


def follower(serve, path: Path, config: dict[str, Any] | None = None):
    """A server on `path` that is not the leader: another holder has the lease for the length of the test."""
    elsewhere(path, lambda storage: storage.acquire_lease(LEASE_NAME, "another-process", 600, time.time_ns()))
    server = serve(sqlite(path, **(config or {})))
    assert server.monitor.is_leader is False
    return server


def test_the_server_streams_a_log_another_process_wrote(serve, tmp_path):
    path = tmp_path / "shared.db"
    server = serve(sqlite(path))
    script = textwrap.dedent(f"""
        import asyncio
        import tocsin_sqlite
        from tocsin.testing import make_monitor

        async def main():
            monitor = make_monitor(tocsin_sqlite, config={{"storage": {{"backend": "sqlite", "path": {str(path)!r}}}}})
            async with monitor:
                monitor.log.error("disk sda is 97% full, written by the app", disk="sda")
                await monitor.flush()

        asyncio.run(main())
    """)
    with connect(server.ws_base + "/api/v1/ws") as ws:
        subscribe(ws, "logs")
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        message, _ = recv_until(ws, lambda m: m.get("topic") == "logs", timeout=2)
    records = message["data"]["records"]
    assert [(r["message"], r["level"], r["attributes"]) for r in records] == [
        ("disk sda is 97% full, written by the app", "error", {"disk": "sda"})]
    assert message["type"] == "records" and message["data"]["truncated"] is False


def test_a_write_by_another_connection_is_announced_on_the_bus(serve, tmp_path):
    path = tmp_path / "shared.db"
    server = serve(sqlite(path))
    subscription = server.monitor.events.subscribe(("logs", "traces"))
    try:
        now = time.time_ns()
        elsewhere(path, lambda storage: storage.write_health([HealthResult(component="x", status="healthy",
                                                                           time_ns=now)]))
        seen = [subscription.wait(2), subscription.wait(2)]
    finally:
        subscription.close()
    assert [(e.topic, e.type, e.data) for e in seen if e is not None] == [
        ("logs", "written", {"source": "storage"}), ("traces", "written", {"source": "storage"})]


def test_a_follower_relays_alert_transitions_the_leader_stored(serve, tmp_path):
    path = tmp_path / "shared.db"
    server = follower(serve, path)
    now = time.time_ns()
    alert = Alert(fingerprint="fp-disk", rule="disk-full", labels={"disk": "sda"}, severity="critical",
                  state="firing", value=0.97, fired_at_ns=now, episode=1, updated_ns=now)
    firing = AlertTransition(fingerprint="fp-disk", rule="disk-full", time_ns=now, from_state="pending",
                             to_state="firing", value=0.97, reason="condition met (for: 0s)")
    delivery = Delivery(id="d1", channel="log", fingerprint="fp-disk", kind="firing", idempotency_key="k",
                        created_ns=now, next_attempt_ns=now)
    with connect(server.ws_base + "/api/v1/ws") as ws:
        subscribe(ws, "alerts")
        elsewhere(path, lambda storage: storage.save_alert(alert, [firing], [delivery]))
        message, before = recv_until(ws, lambda m: m.get("topic") == "alerts", timeout=2)
        assert before == []
        assert message["type"] == "firing"
        assert message["data"] == event_data(alert, firing, notified=True)  # what the leader publishes
        later = now + 10**9
        resolved = AlertTransition(fingerprint="fp-disk", rule="disk-full", time_ns=later, from_state="firing",
                                   to_state="resolved", value=0.5, reason="condition cleared")
        quiet = Alert(fingerprint="fp-disk", rule="disk-full", labels={"disk": "sda"}, severity="critical",
                      state="resolved", value=0.5, episode=1, resolved_at_ns=later, updated_ns=later)
        elsewhere(path, lambda storage: storage.save_alert(quiet, [resolved]))
        message, before = recv_until(ws, lambda m: m.get("topic") == "alerts", timeout=2)
    assert before == []  # the firing transition, read again inside the slack window, is not sent twice
    assert (message["type"], message["data"]) == ("resolved", event_data(quiet, resolved, notified=False))


def test_a_follower_relays_many_alerts_changing_at_once(serve, tmp_path):
    path = tmp_path / "shared.db"
    server = follower(serve, path)
    now = time.time_ns()
    count = FEW + 8  # more than the feed reads one by one: it reads a page of alerts and one of the outbox

    def save(storage, n: int):
        alert = Alert(fingerprint=f"fp-{n:02}", rule="disk-full", labels={"disk": f"sd{n}"}, state="firing",
                      episode=1, updated_ns=now)
        transition = AlertTransition(fingerprint=alert.fingerprint, rule="disk-full", time_ns=now,
                                     from_state="pending", to_state="firing")
        deliveries = [Delivery(id=f"d{n}", channel="log", fingerprint=alert.fingerprint, kind="firing",
                               idempotency_key=f"k{n}", created_ns=now, next_attempt_ns=now)] if n % 2 else []
        return storage.save_alert(alert, [transition], deliveries)

    async def save_all(storage) -> None:
        await asyncio.gather(*(save(storage, n) for n in range(count)))  # one group commit

    with connect(server.ws_base + "/api/v1/ws") as ws:
        subscribe(ws, "alerts")
        elsewhere(path, save_all)
        got = [recv_until(ws, lambda m: m.get("topic") == "alerts", timeout=2)[0] for _ in range(count)]
    assert sorted((m["data"]["fingerprint"], m["data"]["labels"]["disk"], m["data"]["notified"]) for m in got) == [
        (f"fp-{n:02}", f"sd{n}", bool(n % 2)) for n in range(count)]


def test_a_follower_does_not_send_twice_what_it_published_itself(serve, tmp_path):
    path = tmp_path / "shared.db"
    server = follower(serve, path)
    now = time.time_ns()
    alert = Alert(fingerprint="fp-1", rule="errors", state="firing", fired_at_ns=now, episode=1, updated_ns=now)
    elsewhere(path, lambda storage: storage.save_alert(alert, [AlertTransition(
        fingerprint="fp-1", rule="errors", time_ns=now, from_state="pending", to_state="firing")]))
    with connect(server.ws_base + "/api/v1/ws") as ws:
        subscribe(ws, "alerts")
        # acknowledged through this server: its alerting service stores the transition and publishes it itself
        server.call(server.monitor.alerting.acknowledge("fp-1", by="ops"))
        ack, _ = recv_until(ws, lambda m: m.get("type") == "acknowledged", timeout=2)
        assert ack["data"]["actor"] == "ops"
        # the next transition from elsewhere comes, and the acknowledgement was not relayed a second time
        later = time.time_ns()
        elsewhere(path, lambda storage: storage.save_alert(alert, [AlertTransition(
            fingerprint="fp-1", rule="errors", time_ns=later, from_state="firing", to_state="resolved")]))
        resolved, between = recv_until(ws, lambda m: m.get("type") == "resolved", timeout=2)
    assert resolved["data"]["fingerprint"] == "fp-1"
    assert [m["type"] for m in between if m.get("topic") == "alerts"] in ([], ["firing"])  # firing: if relayed late


def test_a_follower_relays_health_changes_and_the_system_status(serve, tmp_path):
    path = tmp_path / "shared.db"
    server = follower(serve, path, {"health": HEARTBEAT})
    with connect(server.ws_base + "/api/v1/ws") as ws:
        subscribe(ws, "health")
        now = time.time_ns()
        results = [HealthResult(component="backup", status="unhealthy", time_ns=now, message="no beat for 2h"),
                   HealthResult(component="backup", status="unhealthy", time_ns=now + 1, message="no beat for 2h")]
        elsewhere(path, lambda storage: storage.write_health(results))
        changed, before = recv_until(ws, lambda m: m.get("topic") == "health", timeout=2)
        system, _ = recv_until(ws, lambda m: m.get("topic") == "health", timeout=2)
        assert before == []
        assert (changed["type"], changed["data"]) == ("changed", {
            "component": "backup", "from": "unknown", "to": "unhealthy", "cause": None, "critical": True,
            "message": "no beat for 2h"})
        assert (system["type"], system["data"]) == ("system", {"from": "unknown", "to": "unhealthy"})
        healthy = HealthResult(component="backup", status="healthy", time_ns=time.time_ns(), message="beat")
        elsewhere(path, lambda storage: storage.write_health([healthy]))
        changed, _ = recv_until(ws, lambda m: m.get("topic") == "health", timeout=2)
        system, _ = recv_until(ws, lambda m: m.get("topic") == "health", timeout=2)
    assert (changed["data"]["from"], changed["data"]["to"]) == ("unhealthy", "healthy")
    assert system["data"] == {"from": "unhealthy", "to": "healthy"}


def test_a_leader_relays_no_alerts_its_own_services_publish(serve, tmp_path):
    path = tmp_path / "shared.db"
    server = serve(sqlite(path))
    assert server.monitor.is_leader is True
    subscription = server.monitor.events.subscribe(("alerts", "logs"))
    events: list[Event] = []

    def announced() -> None:
        """Wait for the feed to announce a change (its round, relay included, ends before the next one)."""
        while (event := subscription.wait(2)) is not None:
            events.append(event)
            if event.data.get("source") == "storage":
                return
        raise AssertionError("the change was not announced")

    try:
        now = time.time_ns()
        alert = Alert(fingerprint="fp-2", rule="errors", state="firing", updated_ns=now)
        elsewhere(path, lambda storage: storage.save_alert(alert, [AlertTransition(
            fingerprint="fp-2", rule="errors", time_ns=now, from_state="pending", to_state="firing")]))
        announced()
        elsewhere(path, lambda storage: storage.write_health([HealthResult(component="x", status="healthy",
                                                                           time_ns=now)]))
        announced()
        relayed = [e for e in [*events, *subscription.drain()] if e.data.get("fingerprint") == "fp-2"]
    finally:
        subscription.close()
    assert relayed == []


def test_storage_errors_are_logged_once_and_the_feed_goes_on(caplog):
    monitor = make_monitor()

    async def run() -> int:
        async with monitor:
            storage = monitor.storage
            feed = ChangeFeed(monitor)
            await feed.start()
            calls = 0
            failed_thrice = asyncio.Event()

            async def broken() -> int:
                nonlocal calls
                calls += 1
                if calls == 3:
                    failed_thrice.set()
                raise OSError("disk gone")

            storage.change_marker, working = broken, storage.change_marker  # type: ignore[method-assign]
            await asyncio.wait_for(failed_thrice.wait(), 5)
            storage.change_marker = working  # type: ignore[method-assign]
            subscription = monitor.events.subscribe(("logs",))
            await storage.write_logs([])
            async with asyncio.timeout(5):
                while (await subscription.get()).data.get("source") != "storage":
                    pass
            subscription.close()
            await feed.stop()
            return calls

    assert asyncio.run(run()) >= 3
    warnings = [r.getMessage() for r in caplog.records if "change feed" in r.getMessage()]
    assert warnings == ["tocsin-api: the change feed could not read storage: OSError('disk gone')",
                        "tocsin-api: the change feed reads storage again"]


def test_the_feed_announces_writes_on_memory_storage_too():
    monitor = make_monitor()

    async def run() -> list[Event]:
        async with monitor:
            feed = ChangeFeed(monitor)  # ticked by hand here, without its polling task
            subscription = monitor.events.subscribe(("logs",))
            try:
                assert await feed.tick() is False  # the first reading: nothing to announce
                monitor.log.info("hello")
                await monitor.flush()
                assert await feed.tick() is True
                return [e for e in subscription.drain() if e.data.get("source") == "storage"]
            finally:
                subscription.close()

    assert [(e.topic, e.type) for e in asyncio.run(run())] == [("logs", "written")]
