"""Notification reliability against real HTTP receivers on loopback, on a virtual clock.

The channel under test is a minimal webhook written here (the real channel plugins are another package):
httpx through the egress guard, with 127.0.0.1 allowed, driven by the real dispatcher.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from typing import ClassVar

import msgspec
import pytest

from tocsin import hookimpl
from tocsin.clock import VirtualClock
from tocsin.errors import EgressDenied
from tocsin.models import Alert, AlertTransition, Notification
from tocsin.notify.channel import NotificationChannel, RateLimit, raise_for_status
from tocsin.notify.service import NotifyService
from tocsin.testing import make_monitor
from tocsin.testing.receiver import HttpReceiver, Reply
from tocsin.values import Secret

T0 = 1_700_000_000 * 10**9


class HookChannel(NotificationChannel):
    """POSTs JSON with an Idempotency-Key header; fails with the status so the dispatcher can classify it."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        url: Secret

    async def send(self, notification: Notification) -> None:
        body = {"title": notification.title, "kind": notification.kind, "body": notification.body}
        response = await self.http.post(self.config.url.reveal(), json=body,
                                        headers={"Idempotency-Key": notification.idempotency_key})
        raise_for_status(response, f"webhook {self.name!r}")

    def validate_config(self) -> list[str]:
        try:
            self.egress.check_url(self.config.url.reveal())
        except EgressDenied as error:
            return [f"url: {error}"]
        return []

    def destination(self) -> str:
        return self.config.url.reveal()


class SlackLikeChannel(HookChannel):
    """The same webhook with Slack's limit: one message per second per URL."""

    rate_limit: ClassVar[RateLimit] = RateLimit(1, 1.0)


class HookPlugin:
    __name__ = "test-notify-hooks"

    @hookimpl
    def register_notification_channels(self, register):
        register("hook", HookChannel)
        register("slackish", SlackLikeChannel)


def monitor_for(channels: list[dict], clock: VirtualClock, **notifications):
    settings = {"group_wait": "0s", "egress": {"allow": ["127.0.0.1"]}, **notifications}
    return make_monitor(HookPlugin(), config={"channels": channels, "notifications": settings}, clock=clock)


def firing(fingerprint: str = "fp1", rule: str = "disk-full", **labels: str) -> tuple[Alert, AlertTransition]:
    alert = Alert(fingerprint=fingerprint, rule=rule, labels=labels, state="firing", severity="critical", episode=1)
    return alert, AlertTransition(fingerprint=fingerprint, rule=rule, time_ns=T0, from_state="pending",
                                  to_state="firing")


async def route(service: NotifyService, alert: Alert, transition: AlertTransition, now_ns: int):
    rows = service.router.deliveries_for(alert, transition, now_ns)
    await service.monitor.storage.save_alert(alert, [transition], rows)
    return rows


async def run_until_final(service: NotifyService, clock: VirtualClock, delivery_id: str, rounds: int = 20):
    """Dispatch, wait, and jump the clock to each next attempt until the delivery is sent or failed."""
    for _ in range(rounds):
        await service.dispatch_due()
        await service.settled()
        row = await service.delivery(delivery_id)
        if row.state in ("sent", "failed", "dropped"):
            return row
        await clock.advance((row.next_attempt_ns - clock.now_ns()) / 1e9)
    raise AssertionError(f"delivery {delivery_id} still {row.state} after {rounds} rounds")


async def until_sent(service: NotifyService, delivery_id: str) -> None:
    """Poll the outbox until a delivery is sent (the healthy send runs while another is stuck)."""
    for _ in range(500):
        if (await service.delivery(delivery_id)).state == "sent":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"delivery {delivery_id} was not sent")


async def test_500_five_times_then_200_is_one_success_with_one_key_and_growing_gaps():
    clock = VirtualClock(T0)
    async with HttpReceiver([500] * 5, default=200, clock=clock) as receiver:
        monitor = monitor_for([{"name": "hook", "type": "hook", "url": receiver.url}], clock)
        async with monitor:
            service = monitor.notify
            (row,) = await route(service, *firing(), clock.now_ns())
            final = await run_until_final(service, clock, row.id)
            attempts = await service.attempts(row.id)
            await service.stop()
    assert final.state == "sent" and final.attempts == 6
    assert [a.outcome for a in attempts] == ["retryable"] * 5 + ["sent"]
    assert [a.status_code for a in attempts[:5]] == [500] * 5
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {row.idempotency_key}
    assert len(receiver.requests) == 6
    gaps = [later.time_ns - earlier.time_ns for earlier, later in itertools.pairwise(attempts)]
    assert all(gap > 0 for gap in gaps) and gaps == sorted(gaps) and len(set(gaps)) == 5
    assert service.dispatcher.stats.sent == 1


async def test_400_is_one_attempt_recorded_as_permanent_and_reaches_the_fallback():
    clock = VirtualClock(T0)
    async with HttpReceiver(clock=clock) as receiver:
        url = receiver.url + "services/T0/SECRET-TOKEN"
        receiver.script.append(Reply(400, body=f"invalid_payload for {url} ".encode() * 100))
        monitor = monitor_for([{"name": "hook", "type": "hook", "url": url, "fallback": "backup"},
                               {"name": "backup", "type": "captured", "match": {"team": "nobody"}}], clock)
        async with monitor:
            events = monitor.events.subscribe(["notifications"])
            service = monitor.notify
            rows = await route(service, *firing(), clock.now_ns())
            (row,) = [r for r in rows if r.channel == "hook"]
            final = await run_until_final(service, clock, row.id)
            (attempt,) = await service.attempts(row.id)
            await service.dispatch_due()  # the notice for the fallback
            await service.settled()
            await service.stop()
    assert final.state == "failed" and len(receiver.requests) == 1
    assert attempt.outcome == "permanent" and attempt.status_code == 400
    assert "invalid_payload" in attempt.error and len(attempt.error) <= 1024
    assert "SECRET-TOKEN" not in attempt.error and receiver.url[:-1] + "/…" in attempt.error  # URLs are secrets
    failed = [e for e in events.drain() if e.type == "failed"]
    assert [(e.data["channel"], e.data["fallback"], e.data["attempts"]) for e in failed] == [("hook", "backup", 1)]
    (notice,) = service.channels["backup"].sent
    assert notice.kind == "failed" and "hook" in notice.title and "disk-full" in notice.body


async def test_429_with_retry_after_waits_at_least_that_long_and_caps_it():
    clock = VirtualClock(T0)
    script = [Reply(429, {"Retry-After": "7"}), Reply(429, {"Retry-After": "3600"})]
    async with HttpReceiver(script, default=200, clock=clock) as receiver:
        monitor = monitor_for([{"name": "hook", "type": "hook", "url": receiver.url}], clock, max_retry_after="60s")
        async with monitor:
            service = monitor.notify
            (row,) = await route(service, *firing(), clock.now_ns())
            await service.dispatch_due()
            await service.settled()
            first = await service.delivery(row.id)
            assert first.next_attempt_ns - T0 == 7 * 10**9
            await clock.advance(6.9)
            assert await service.dispatch_due() == 0 and len(receiver.requests) == 1
            await clock.advance(0.1)
            await service.dispatch_due()
            await service.settled()
            second = await service.delivery(row.id)
            assert second.next_attempt_ns - clock.now_ns() == 60 * 10**9  # Retry-After: 3600 capped at 60 s
            final = await run_until_final(service, clock, row.id)
            attempts = await service.attempts(row.id)
            await service.stop()
    assert final.state == "sent"
    assert [a.outcome for a in attempts] == ["rate_limited", "rate_limited", "sent"]
    assert [r.time_ns - T0 for r in receiver.requests] == [0, 7 * 10**9, 67 * 10**9]


async def test_a_hanging_receiver_times_out_without_holding_up_a_healthy_channel():
    clock = VirtualClock(T0)
    async with HttpReceiver([Reply(hang=True)], clock=clock) as stuck, HttpReceiver(clock=clock) as healthy:
        monitor = monitor_for([{"name": "stuck", "type": "hook", "url": stuck.url},
                               {"name": "healthy", "type": "hook", "url": healthy.url}], clock)
        async with monitor:
            service = monitor.notify
            rows = {r.channel: r for r in await route(service, *firing(), clock.now_ns())}
            assert await service.dispatch_due() == 2
            await stuck.wait_for(1)
            await healthy.wait_for(1)
            await until_sent(service, rows["healthy"].id)
            assert (await service.delivery(rows["stuck"].id)).state == "sending"
            assert clock.now_ns() - T0 <= 2 * 10**9  # the healthy channel did not wait for the stuck one
            await clock.advance(10)  # the per-attempt timeout (10 s) on the virtual clock
            await service.settled()
            (attempt,) = await service.attempts(rows["stuck"].id)
            retry = await service.delivery(rows["stuck"].id)
            for _ in range(100):
                if not stuck.open_connections:
                    break
                await asyncio.sleep(0.01)
            await service.stop()
    assert attempt.outcome == "timeout" and attempt.latency_s == 10.0
    assert retry.state == "pending" and retry.next_attempt_ns > clock.now_ns()
    assert stuck.open_connections == 0  # the hung connection was closed, not leaked


async def test_a_storm_of_10000_alerts_keeps_the_rate_limit_and_bounded_memory():
    clock = VirtualClock(T0)
    async with HttpReceiver(clock=clock) as receiver:
        monitor = monitor_for(
            [{"name": "slack", "type": "slackish", "url": receiver.url, "group_by": ["service"]},
             {"name": "pager", "type": "captured"}], clock, max_pending=10_000)
        async with monitor:
            events = monitor.events.subscribe(["notifications"], maxsize=100)
            service = monitor.notify
            tracemalloc.start()
            try:
                for i in range(10_000):
                    alert, transition = firing(f"fp{i}", service=f"svc{i % 50}", host=f"h{i}")
                    await route(service, alert, transition, clock.now_ns())
                overflow, transition = firing("one-too-many", service="svc0")
                assert await route(service, overflow, transition, clock.now_ns()) == []
                for second in range(200):  # a poll every 10 s; sends wake on their rate-limit slots in between
                    if second % 10 == 0:
                        await service.dispatch_due()
                    await service.settled()
                    if service.dispatcher.stats.sent == 20_000:
                        break
                    await clock.advance(1)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            await service.stop()
    assert service.dispatcher.stats.sent == 20_000  # every row of both channels delivered
    assert len(receiver.requests) == 50  # one message per service group, not 10,000
    times = sorted(r.time_ns for r in receiver.requests)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 10**9  # ≤ 1 message/s to the webhook
    assert sum(len(r.json()["body"]) for r in receiver.requests) < 50 * 4096  # bodies list 20 alerts, then count
    (pager_message,) = service.channels["pager"].sent  # one group (the rule): one message
    assert pager_message.title == "[FIRING:10000] disk-full (critical)" and "… and 9980 more" in pager_message.body
    assert [e.data["channel"] for e in events.drain() if e.type == "dropped"] == ["slack", "pager"]
    assert service.overflow == 2
    assert service.dispatcher.stats.deferred > 0  # messages past half a lease away waited in the outbox
    assert peak < 160 * 2**20, f"peak traced memory {peak / 2**20:.0f} MiB"


# -- kill -9 between sending and marking sent ---------------------------------------------------------

CHILD = textwrap.dedent("""
    import asyncio, importlib.util, sys
    spec = importlib.util.spec_from_file_location("notify_http", sys.argv[1])
    module = sys.modules["notify_http"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    asyncio.run(module.child(*sys.argv[2:]))
""")


async def child(database: str, url: str, phase: str) -> None:
    """One life of a tocsin process on a SQLite file: queue (first life) and dispatch until sent."""
    config = {"storage": {"backend": "sqlite", "path": database},
              "channels": [{"name": "hook", "type": "hook", "url": url}],
              "notifications": {"group_wait": "0s", "lease": "1s", "poll_interval": "50ms",
                                "egress": {"allow": ["127.0.0.1"]}}}
    monitor = make_monitor(HookPlugin(), config=config, entrypoints=True)
    async with monitor:
        service = monitor.notify
        alert, transition = firing()
        if phase == "first":
            await route(service, alert, transition, monitor.clock.now_ns())
        elif phase == "resolved":
            resolved = msgspec.structs.replace(alert, state="resolved")
            back = AlertTransition(fingerprint=alert.fingerprint, rule=alert.rule, time_ns=monitor.clock.now_ns(),
                                   from_state="firing", to_state="resolved")
            await route(service, resolved, back, monitor.clock.now_ns())
        await service.start()
        while True:
            page = await service.deliveries()
            if page.items and all(row.state in ("sent", "dropped") for row in page.items):
                break
            await asyncio.sleep(0.05)
        await service.stop()


def sqlite_available() -> bool:
    from tocsin.plugins import build_registries, make_plugin_manager

    return "sqlite" in build_registries(make_plugin_manager()).storage


@pytest.mark.skipif(not sqlite_available(), reason="needs the sqlite storage backend (tocsin-sqlite)")
@pytest.mark.parametrize("then", ["restart", "resolve-and-restart"])
async def test_kill_9_between_send_and_mark_sent_sends_again_after_restart(tmp_path, then):
    database = str(tmp_path / "tocsin.db")
    async with HttpReceiver([Reply(hang=True)], default=200) as receiver:
        def spawn(phase: str) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-c", CHILD, __file__, database, receiver.url, phase],
                                    env={**os.environ, "TOCSIN_LOAD_PLUGINS": "tocsin-sqlite"})

        first = spawn("first")
        await receiver.wait_for(1, within_s=60)  # the child is sending; its 200 is held back
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = spawn("again" if then == "restart" else "resolved")
        await receiver.wait_for(2, within_s=60)
        assert await asyncio.to_thread(second.wait, 60) == 0
    kinds = [request.json()["kind"] for request in receiver.requests]
    keys = {request.headers["idempotency-key"] for request in receiver.requests}
    if then == "restart":
        assert kinds == ["firing", "firing"]  # sent again: at least once, never zero
    else:
        assert kinds == ["firing", "resolved"]  # the stale trigger is not re-sent after its resolve
    assert keys == {"tocsin/disk-full/fp1/1"}
