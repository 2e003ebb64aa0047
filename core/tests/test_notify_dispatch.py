"""The outbox dispatcher on a virtual clock: grouping, ordering, retries, give-up, fallbacks and restarts."""

from __future__ import annotations

import msgspec

from tocsin import hookimpl
from tocsin.clock import VirtualClock
from tocsin.models import Alert, AlertTransition, Delivery, Notification
from tocsin.notify.channel import RateLimit
from tocsin.notify.service import NotifyService
from tocsin.storage.protocol import DeliveryQuery
from tocsin.testing import CapturingChannel, make_monitor

S = 10**9
T0 = 1_700_000_000 * S


class OneAtATime(CapturingChannel):
    """A capturing channel that takes one alert per message, as PagerDuty does."""

    max_batch = 1


class Slow(CapturingChannel):
    """A capturing channel that accepts one message per 10 s."""

    rate_limit = RateLimit(1, 10.0)


class Plugins:
    __name__ = "test-notify-dispatch"

    @hookimpl
    def register_notification_channels(self, register):
        register("one-at-a-time", OneAtATime)
        register("slow", Slow)


def service_for(channels: list[dict], clock: VirtualClock, *plugins, **notifications):
    settings = {"group_wait": "0s", **notifications}
    monitor = make_monitor(Plugins(), *plugins, config={"channels": channels, "notifications": settings}, clock=clock)
    monitor.services.remove(monitor.notify)  # these tests drive dispatching (and restarts) by hand
    return monitor


def alert(fingerprint="fp1", episode=1, state="firing", rule="disk-full", **labels) -> Alert:
    return Alert(fingerprint=fingerprint, rule=rule, labels=labels, state=state, severity="error", episode=episode)


async def notify(service: NotifyService, a: Alert, to_state: str = "firing") -> list[Delivery]:
    now = service.monitor.clock.now_ns()
    transition = AlertTransition(fingerprint=a.fingerprint, rule=a.rule, time_ns=now, from_state="x",
                                 to_state=to_state)
    rows = service.router.deliveries_for(a, transition, now)
    await service.monitor.storage.save_alert(a, [transition], rows)
    return rows


async def flush(service: NotifyService) -> None:
    await service.dispatch_due()
    await service.settled()


def sent(service: NotifyService, channel: str = "cap") -> list[Notification]:
    return service.channels[channel].sent


async def test_a_group_is_sent_as_one_message_and_no_grouping_sends_one_each():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "cap", "type": "captured"},
                           {"name": "each", "type": "captured", "group_by": ["..."]}], clock, group_wait="30s")
    async with monitor:
        service = monitor.notify
        for i in range(3):
            await notify(service, alert(f"fp{i}", host=f"h{i}"))
        await flush(service)
        assert sent(service) == [] and sent(service, "each") == []  # group_wait
        await clock.advance(30)
        await flush(service)
    (message,) = sent(service)
    assert message.title == "[FIRING:3] disk-full (error)"
    assert [line.split("{")[1] for line in message.body.splitlines()] == ["host=h0}", "host=h1}", "host=h2}"]
    assert message.idempotency_key.startswith("tocsin/group/")
    assert sorted(n.idempotency_key for n in sent(service, "each")) == [f"tocsin/disk-full/fp{i}/1" for i in range(3)]


async def test_max_batch_one_sends_each_alert_with_its_own_key_on_the_group_timer():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "pd", "type": "one-at-a-time"}], clock, group_wait="10s")
    async with monitor:
        service = monitor.notify
        await notify(service, alert("a"))
        await notify(service, alert("b"))
        await clock.advance(10)
        await flush(service)
    assert [n.idempotency_key for n in sent(service, "pd")] == ["tocsin/disk-full/a/1", "tocsin/disk-full/b/1"]


async def test_an_alert_that_resolves_before_its_group_flushes_is_never_notified():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "cap", "type": "captured"}], clock, group_wait="30s")
    async with monitor:
        service = monitor.notify
        (firing,) = await notify(service, alert())
        await clock.advance(5)
        (resolved,) = await notify(service, alert(state="resolved"), "resolved")
        await clock.advance(30)
        await flush(service)
        rows = {row.id: row for row in (await service.deliveries()).items}
        (attempt,) = await service.attempts(resolved.id)
    assert sent(service) == []
    assert rows[firing.id].state == rows[resolved.id].state == "dropped"
    assert attempt.error == "the alert resolved before it was ever notified"
    assert service.router.pending["cap"] == 0


async def test_a_stale_trigger_still_retrying_is_dropped_once_its_resolve_is_queued():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "cap", "type": "captured", "fail_times": 1}], clock)
    async with monitor:
        service = monitor.notify
        (firing,) = await notify(service, alert())
        await flush(service)  # attempt 1 fails: the trigger waits for its retry
        await clock.advance(0.5)
        (resolved,) = await notify(service, alert(state="resolved"), "resolved")  # due at the next group tick
        await clock.advance(2)
        await flush(service)  # the trigger's retry is due first: dropped, not sent
        assert sent(service) == []
        await clock.advance(300)
        await flush(service)
        firing_row, resolved_row = await service.delivery(firing.id), await service.delivery(resolved.id)
    assert [n.kind for n in sent(service)] == ["resolved"]
    assert firing_row.state == "dropped" and resolved_row.state == "sent"
    assert firing_row.last_error == "superseded: the alert resolved before this was delivered"


async def test_a_delivered_trigger_is_followed_by_its_resolve_and_a_new_episode_by_both():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "cap", "type": "captured"}], clock)
    async with monitor:
        service = monitor.notify
        await notify(service, alert())
        await flush(service)
        await clock.advance(60)
        await notify(service, alert(state="resolved"), "resolved")
        await clock.advance(1)
        await notify(service, alert(episode=2))  # fires again before the resolve went out
        await clock.advance(600)
        await flush(service)
    assert [(n.kind, n.idempotency_key) for n in sent(service)] == [
        ("firing", "tocsin/disk-full/fp1/1"),
        ("resolved", "tocsin/disk-full/fp1/1"),
        ("firing", "tocsin/disk-full/fp1/2"),
    ]


async def test_retries_give_up_after_max_attempts_and_the_fallback_hears_about_it():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "cap", "type": "captured", "fail_times": 99, "fallback": "ops"},
                           {"name": "other", "type": "captured", "fail_times": 99, "fallback": "ops"},
                           {"name": "ops", "type": "log", "min_severity": "critical"}], clock, max_attempts=3)
    async with monitor:
        events = monitor.events.subscribe(["notifications"])
        service = monitor.notify
        rows = await notify(service, alert())
        for _ in range(3):
            await flush(service)
            await clock.advance(60)
        states = [(await service.delivery(row.id)).state for row in rows if row.channel != "ops"]
        await flush(service)  # the two notices, due now, go out together
        ops_rows = (await service.deliveries(DeliveryQuery(channel="ops"))).items
        attempts = await service.attempts(rows[0].id)
    assert states == ["failed", "failed"]
    assert [a.outcome for a in attempts] == ["retryable"] * 3
    failed = [e.data for e in events.drain() if e.type == "failed"]
    assert sorted((f["channel"], f["attempts"], f["fallback"]) for f in failed) == [("cap", 3, "ops"),
                                                                                     ("other", 3, "ops")]
    assert [row.kind for row in ops_rows] == ["failed", "failed"] and {row.state for row in ops_rows} == {"sent"}
    assert service.dispatcher.stats.messages == 1  # one notice message listing both failures


async def test_a_permanent_failure_is_not_retried():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "cap", "type": "captured", "fail_times": 5, "fail_permanently": True}], clock)
    async with monitor:
        service = monitor.notify
        (row,) = await notify(service, alert())
        await flush(service)
        await clock.advance(3600)
        await flush(service)
        final = await service.delivery(row.id)
    assert final.state == "failed" and final.attempts == 1 and service.channels["cap"].attempts == 1


async def test_rows_for_a_channel_no_longer_configured_fail_and_are_counted():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "cap", "type": "captured"}], clock)
    async with monitor:
        service = monitor.notify
        (row,) = await notify(service, alert())
        ghost = msgspec.structs.replace(row, id="ghost", channel="removed")
        await monitor.storage.enqueue_deliveries([ghost])
        await flush(service)
        assert (await service.delivery("ghost")).state == "failed"
        (attempt,) = await service.attempts("ghost")
    assert attempt.error == "no channel named 'removed' is configured"


async def test_after_a_restart_pending_rows_are_sent_and_stale_triggers_stay_dropped():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "cap", "type": "captured"}], clock)
    async with monitor:
        before = NotifyService(monitor)
        (_kept,) = await notify(before, alert("kept"))
        (stale,) = await notify(before, alert("stale"))
        await clock.advance(1)
        await notify(before, alert("stale", state="resolved"), "resolved")
        # "before" dies here; nothing was dispatched. A new process reads the same outbox.
        after = NotifyService(monitor)
        await after.start()
        assert after.router.pending["cap"] == 3
        await flush(after)
        assert [(n.kind, n.alert.fingerprint) for n in sent(after)] == [("firing", "kept")]
        assert (await after.delivery(stale.id)).state == "dropped"
        await clock.advance(300)  # the resolve is due at the group's next tick
        await flush(after)
        await after.stop()
    assert [(n.kind, n.alert.fingerprint) for n in sent(after)] == [("firing", "kept"), ("resolved", "stale")]
    assert after.router.pending["cap"] == 0


async def test_the_dispatcher_loop_runs_on_the_monitor_clock():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "cap", "type": "captured"}], clock, poll_interval="1s", group_wait="10s")
    async with monitor:
        service = monitor.notify
        await service.start()
        await notify(service, alert())
        await clock.advance(9)
        assert sent(service) == []
        await clock.advance(1)
        await service.settled()
        await service.stop()
        await clock.advance(60)
    assert len(sent(service)) == 1


async def test_channel_and_rule_templates_and_a_render_plugin_shape_the_message():
    class Shouting:
        __name__ = "shouting-renderer"

        @hookimpl
        def render_notification(self, monitor, notification, channel):
            if channel == "loud":
                return msgspec.structs.replace(notification, title="LOUD " + notification.alert.rule.upper())
            return None

    clock = VirtualClock(T0)
    channels = [{"name": "cap", "type": "captured", "title_template": "{{ kind }}: {{ alerts|length }} × {{ rule }}"},
                {"name": "plain", "type": "captured"}, {"name": "loud", "type": "captured"}]
    rule_templates = {"disk-full": {"body": "Disk full on {{ alert.labels.host }}{{ alert.labels.missing }}"}}
    monitor = service_for(channels, clock, Shouting(), rule_templates=rule_templates)
    async with monitor:
        service = monitor.notify
        await notify(service, alert(host="db-1"))
        await flush(service)
    (cap,), (plain,), (loud,) = sent(service), sent(service, "plain"), sent(service, "loud")
    assert (cap.title, cap.body) == ("firing: 1 × disk-full", "Disk full on db-1")  # channel title, rule body
    assert (plain.title, plain.body) == ("[FIRING] disk-full (error)", "Disk full on db-1")
    assert loud.title == "LOUD DISK-FULL"


async def test_a_custom_template_failing_at_render_time_falls_back_to_the_default():
    clock = VirtualClock(T0)
    channels = [{"name": "cap", "type": "captured", "body_template": "{{ 100 // (alert.value|int) }}"}]
    monitor = service_for(channels, clock)
    async with monitor:
        service = monitor.notify
        await notify(service, msgspec.structs.replace(alert(), value=0.0))
        await flush(service)
    (message,) = sent(service)
    assert message.body.startswith("- [FIRING] disk-full")


async def test_rate_limited_sends_wait_their_turn_and_stopping_leaves_them_leased_for_the_next_run():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "slow", "type": "slow", "group_by": ["..."]}], clock, lease="60s")
    async with monitor:
        service = monitor.notify
        rows = []
        for name in "abc":
            rows += await notify(service, alert(name))
            await clock.advance(0.001)  # claimed oldest first
        await flush(service)
        assert [n.alert.fingerprint for n in sent(service, "slow")] == ["a"]
        await clock.advance(10)
        await service.settled()
        assert [n.alert.fingerprint for n in sent(service, "slow")] == ["a", "b"]
        await service.stop()  # "c" was waiting for its slot: cancelled, still leased
        assert (await service.delivery(rows[2].id)).state == "sending"
        later = NotifyService(monitor)
        await clock.advance(49.9)
        await flush(later)
        assert sent(later, "slow") == []  # the lease has not run out yet
        await clock.advance(1)
        await flush(later)
    assert [n.alert.fingerprint for n in sent(later, "slow")] == ["c"]


class ContextSeeing(CapturingChannel):
    """A capturing channel that also records the render context it sees while sending."""

    def __init__(self, config: msgspec.Struct | None = None, *, name: str = "captured") -> None:
        super().__init__(config, name=name)
        self.contexts: list[object] = []

    async def send(self, notification: Notification) -> None:
        from tocsin.notify.templates import current_render

        self.contexts.append(current_render.get())
        await super().send(notification)


class SeeingPlugin:
    __name__ = "test-notify-dispatch-seeing"

    @hookimpl
    def register_notification_channels(self, register):
        register("seeing", ContextSeeing)


async def test_every_alert_of_a_group_reaches_the_channel_with_its_kind_and_the_render_context():
    clock = VirtualClock(T0)
    monitor = service_for([{"name": "cap", "type": "seeing", "group_by": ["alertname"]}], clock, SeeingPlugin(),
                          group_wait="30s", group_interval="60s")
    async with monitor:
        service = monitor.notify
        for i in range(3):
            await notify(service, alert(f"fp{i}", host=f"h{i}"))
            await clock.advance(0.001)
        await clock.advance(30)
        await flush(service)
        await notify(service, alert("fp1", state="resolved", host="h1"), "resolved")
        await clock.advance(0.001)
        await notify(service, alert("fp3", host="h3"))
        await clock.advance(60)
        await flush(service)
    first, second = sent(service)
    assert [a.fingerprint for a in first.alerts] == ["fp0", "fp1", "fp2"]
    assert first.alert_kinds == ["firing"] * 3 and first.alert == first.alerts[0]
    assert [(k, a.fingerprint) for k, a in second.alert_events()] == [("resolved", "fp1"), ("firing", "fp3")]
    contexts = service.channels["cap"].contexts
    assert [[a.fingerprint for _, a in c.alerts] for c in contexts] == [["fp0", "fp1", "fp2"], ["fp1", "fp3"]]
    assert contexts[1].group_labels == {"alertname": "disk-full"}
