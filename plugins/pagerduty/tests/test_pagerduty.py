"""The pagerduty channel against a fake PagerDuty that validates Events v2 and keeps incidents by dedup_key.

The lifecycle tests run the real alerting engine, router, outbox and dispatcher on a VirtualClock.
"""

from __future__ import annotations

import msgspec
import pytest
import tocsin_pagerduty
from pagerduty_fake import ROUTING_KEY, FakePagerDuty
from tocsin_pagerduty.events import EventSettings, events

from tocsin.clock import VirtualClock
from tocsin.errors import ConfigError
from tocsin.models import Alert, MetricRollup, Notification
from tocsin.storage.protocol import AlertQuery
from tocsin.testing import make_monitor
from tocsin.testing.channel_contract import ALERT, T0, deliver_all, route
from tocsin.testing.receiver import Reply

SECOND = 10**9
SETTINGS = EventSettings(source="", component_label="service", group_label="team", client="tocsin", client_url="")


def monitor_for(pagerduty: FakePagerDuty, clock: VirtualClock, channel: dict | None = None, **notifications):
    channel = {"name": "pager", "type": "pagerduty", "routing_key": ROUTING_KEY, "url": pagerduty.events_url,
               **(channel or {})}
    settings = {"group_wait": "0s", "group_interval": "0s", "egress": {"allow": ["127.0.0.1"]}, **notifications}
    monitor = make_monitor(tocsin_pagerduty, config={"channels": [channel], "notifications": settings}, clock=clock)
    monitor.services.remove(monitor.alerting)  # the tests evaluate rules themselves, at the times they choose
    return monitor


def disk(at_s: float, value: float, host: str = "db-1") -> MetricRollup:
    return MetricRollup(name="disk_used", kind="gauge", labels={"host": host, "service": "db"},
                        start_ns=T0 + round(at_s * SECOND), interval_s=60, count=1, sum=value, min=value, max=value,
                        last=value)


async def at(monitor, clock: VirtualClock, seconds: float, value: float | None = None) -> None:
    """Move to T0 + seconds, write the disk gauge there (if given) and evaluate the rules."""
    await clock.advance((T0 + round(seconds * SECOND) - clock.now_ns()) / 1e9)
    if value is not None:
        await monitor.storage.write_metrics([disk(seconds, value)])
    await monitor.alerting.evaluate()


def add_disk_rule(monitor, **rule) -> None:
    monitor.alerting.add_rule(name="disk-full", metric="disk_used", aggregate="last", window="1m", threshold=90,
                              by=["host"], severity="critical", annotations={"summary": "disk {{ value }} %"}, **rule)


def notification(kind: str = "firing", **changes) -> Notification:
    fields = {"title": "[FIRING] disk-full (critical)", "body": "- db-1 93 %\n", "severity": "critical",
              "idempotency_key": "tocsin/disk-full/c0ffee00c0ffee01/1", **changes}
    return Notification(kind=kind, alert=ALERT, **fields)


# -- the events ------------------------------------------------------------------------------------------------


def test_a_trigger_carries_summary_source_severity_component_class_details_links_and_time():
    (event,) = events(notification(), "KEY", SETTINGS)
    assert event == {
        "routing_key": "KEY", "event_action": "trigger", "dedup_key": "tocsin/disk-full/c0ffee00c0ffee01/1",
        "client": "tocsin", "links": [{"href": "https://runbooks.example.com/disk", "text": "runbook_url"}],
        "payload": {
            "summary": "[FIRING] disk-full (critical)", "source": "db-1", "severity": "critical",
            "timestamp": "2023-11-14T22:13:20.000Z", "component": "db", "class": "disk-full",
            "custom_details": {"body": "- db-1 93 %\n", "rule": "disk-full", "fingerprint": "c0ffee00c0ffee01",
                               "episode": 1, "state": "firing", "value": 93.0, "labels": ALERT.labels,
                               "annotations": ALERT.annotations}}}


@pytest.mark.parametrize(("kind", "action"), [("acknowledged", "acknowledge"), ("resolved", "resolve")])
def test_acknowledge_and_resolve_carry_only_the_key_action_and_dedup_key(kind, action):
    assert events(notification(kind), "KEY", SETTINGS) == [
        {"routing_key": "KEY", "event_action": action, "dedup_key": "tocsin/disk-full/c0ffee00c0ffee01/1"}]


@pytest.mark.parametrize("severity", ["info", "warning", "error", "critical"])
def test_severity_maps_onto_pagerdutys_four_and_summary_and_dedup_key_fit(severity):
    long = notification(title="x" * 5000, severity=severity, idempotency_key="k" * 300)
    (event,) = events(long, "KEY", SETTINGS)
    assert event["payload"]["severity"] == severity
    assert len(event["payload"]["summary"]) == 1024 and event["payload"]["summary"].endswith("…")
    assert len(event["dedup_key"]) <= 255 and event["dedup_key"] == events(long, "KEY", SETTINGS)[0]["dedup_key"]


def test_a_malformed_routing_key_is_a_config_error_that_does_not_print_it():
    with pytest.raises(ConfigError) as caught:
        make_monitor(tocsin_pagerduty, config={"channels": [{"name": "pager", "type": "pagerduty",
                                                            "routing_key": "not-a-key-0123"}]})
    assert "channels[0]: routing_key: an Events API v2 integration key is 32 letters and digits" in str(caught.value)
    assert "not-a-key-0123" not in str(caught.value)


# -- the lifecycle, through the real alerting engine -------------------------------------------------------------


async def test_trigger_acknowledge_resolve_is_one_incident_and_the_next_episode_a_new_one():
    clock = VirtualClock(T0)
    async with FakePagerDuty(clock=clock) as pagerduty, monitor_for(pagerduty, clock) as monitor:
        add_disk_rule(monitor)
        await at(monitor, clock, 0, 95)
        await deliver_all(monitor.notify, clock)
        (alert,) = (await monitor.storage.list_alerts(AlertQuery(rule="disk-full"))).items
        await at(monitor, clock, 60)
        await monitor.alerting.acknowledge(alert.fingerprint, by="ann", comment="on it")
        await deliver_all(monitor.notify, clock)
        await at(monitor, clock, 180, 50)
        await deliver_all(monitor.notify, clock)
        first = [(i.dedup_key, i.status, i.actions) for i in pagerduty.incidents]
        await at(monitor, clock, 600, 97)
        await deliver_all(monitor.notify, clock)
    key = f"tocsin/disk-full/{alert.fingerprint}/1"
    assert first == [(key, "resolved", ["trigger", "acknowledge", "resolve"])]
    assert [(i.dedup_key, i.status) for i in pagerduty.incidents] == [(key, "resolved"), (key[:-1] + "2", "triggered")]
    assert pagerduty.reopened == [] and pagerduty.orphans == [] and pagerduty.refused == []
    trigger = pagerduty.incidents[0].triggers[0]
    assert trigger["payload"]["summary"] == "[FIRING] disk-full (critical)"
    assert trigger["payload"]["custom_details"]["annotations"] == {"summary": "disk 95.0 %"}


async def test_a_reminder_still_failing_when_the_alert_resolves_is_dropped_not_sent_after_the_resolve():
    clock = VirtualClock(T0)
    async with (
        FakePagerDuty(clock=clock) as pagerduty,
        monitor_for(pagerduty, clock, {"repeat_interval": "0s"}, retry_initial="2m", retry_max="2m") as monitor,
    ):
        add_disk_rule(monitor, cooldown="1m")
        await at(monitor, clock, 0, 95)
        await deliver_all(monitor.notify, clock)
        pagerduty.script.append(Reply(503, body=b"upstream trouble"))
        await at(monitor, clock, 60, 95)  # the reminder: a trigger with the same dedup_key, answered 503
        await monitor.notify.dispatch_due()
        await monitor.notify.settled()
        await at(monitor, clock, 120, 40)  # resolved while the reminder waits for its retry (90-150 s away)
        await deliver_all(monitor.notify, clock)
        rows = {(row.kind, row.state) for row in (await monitor.notify.deliveries()).items}
    assert [event["event_action"] for event in pagerduty.events] == ["trigger", "resolve"]
    assert [(i.status, i.actions) for i in pagerduty.incidents] == [("resolved", ["trigger", "resolve"])]
    assert pagerduty.reopened == [] and len(pagerduty.requests) == 3
    assert rows == {("firing", "sent"), ("firing", "dropped"), ("resolved", "sent")}


# -- answers ----------------------------------------------------------------------------------------------------


async def test_a_storm_of_125_alerts_stays_within_120_events_a_minute():
    clock = VirtualClock(T0)
    storm = [msgspec.structs.replace(ALERT, fingerprint=f"fp{n:04d}", labels={**ALERT.labels, "host": f"h{n}"})
             for n in range(125)]
    async with FakePagerDuty(clock=clock) as pagerduty, monitor_for(pagerduty, clock) as monitor:
        for alert in storm:
            await route(monitor.notify, alert, "firing")
        await deliver_all(monitor.notify, clock, step_s=5)
    assert len(pagerduty.incidents) == 125 and pagerduty.refused == []
    times = sorted(request.time_ns for request in pagerduty.requests)
    assert max(sum(1 for t in times if start <= t < start + 60 * SECOND) for start in times) <= 120


async def test_an_invalid_event_400_is_permanent_and_its_errors_reach_the_delivery_log():
    clock = VirtualClock(T0)
    async with (
        FakePagerDuty(clock=clock) as pagerduty,
        monitor_for(pagerduty, clock, {"routing_key": "Z" * 32}) as monitor,
    ):
        (row,) = await route(monitor.notify, ALERT, "firing")
        await deliver_all(monitor.notify, clock)
        (attempt,) = await monitor.notify.attempts(row.id)
    assert (attempt.outcome, attempt.status_code) == ("permanent", 400)
    assert "Invalid routing key" in attempt.error and "Z" * 32 not in attempt.error


async def test_429_waits_30_seconds_and_5xx_is_retried_with_backoff_until_accepted():
    clock = VirtualClock(T0)
    throttled = Reply(429, {"Content-Type": "application/json"}, b'{"status": "throttle event"}')
    async with FakePagerDuty(clock=clock) as pagerduty:
        pagerduty.script += [throttled, Reply(502, body=b"bad gateway")]
        async with monitor_for(pagerduty, clock) as monitor:
            (row,) = await route(monitor.notify, ALERT, "firing")
            await deliver_all(monitor.notify, clock)
            attempts = await monitor.notify.attempts(row.id)
    assert [a.outcome for a in attempts] == ["rate_limited", "retryable", "sent"]
    assert pagerduty.requests[1].time_ns - pagerduty.requests[0].time_ns == 30 * SECOND
    assert len(pagerduty.incidents) == 1


async def test_a_long_title_and_rule_still_make_an_event_pagerduty_accepts():
    clock = VirtualClock(T0)
    long_rule = Alert(fingerprint="fp-long", rule="r" * 300, labels={"host": "db-1"}, severity="warning",
                      state="firing", episode=1)
    async with (
        FakePagerDuty(clock=clock) as pagerduty,
        monitor_for(pagerduty, clock, {"title_template": "{% for i in range(3000) %}x{% endfor %}"}) as monitor,
    ):
        await route(monitor.notify, long_rule, "firing")
        await deliver_all(monitor.notify, clock)
    (event,) = pagerduty.events
    assert len(event["payload"]["summary"]) == 1024 and len(event["dedup_key"]) <= 255
    assert event["payload"]["severity"] == "warning"
