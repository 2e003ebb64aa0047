"""The webhook channel against a careful receiver: signatures, idempotency keys, headers, both body formats.

Sends go through the real dispatcher on a VirtualClock; the receiver checks bodies against the documented
tocsin v1 keys and against the shape of the bodies a real Alertmanager 0.25 sent.
"""

from __future__ import annotations

import json

import msgspec
import pytest
import tocsin_webhook
from webhook_receiver import CAPTURED, WebhookReceiver, alertmanager_problems

from tocsin.clock import VirtualClock
from tocsin.errors import ConfigError
from tocsin.models import Alert, Notification
from tocsin.testing import make_monitor
from tocsin.testing.channel_contract import ALERT, T0, deliver_all, route
from tocsin.testing.receiver import Reply

SECRET = "whsec-0123456789"
SECOND = 10**9
FIRED = 1_767_225_600 * SECOND  # 2026-01-01T00:00:00Z, when the captured Alertmanager alert started
DISK = Alert(fingerprint="0a74ac22130028d9", rule="DiskFull", labels={"service": "db", "severity": "critical"},
             annotations={"description": "host db-1", "summary": "Disk 93% full"}, severity="critical",
             state="firing", value=93.0, episode=1, active_at_ns=FIRED, fired_at_ns=FIRED, updated_ns=FIRED)
RESOLVED = msgspec.structs.replace(DISK, state="resolved", resolved_at_ns=FIRED + 600 * SECOND,
                                   updated_ns=FIRED + 600 * SECOND, annotations={"summary": "Disk 93% full"})


def monitor_for(receiver: WebhookReceiver, clock: VirtualClock, **channel):
    channel = {"name": "tocsin-webhook", "type": "webhook", "url": receiver.url + "hook", "hmac_secret": SECRET,
               **channel}
    settings = {"group_wait": "0s", "group_interval": "0s", "egress": {"allow": ["127.0.0.1"]}}
    return make_monitor(tocsin_webhook, config={"channels": [channel], "notifications": settings}, clock=clock)


async def firing_then_resolved(receiver: WebhookReceiver, clock: VirtualClock, **channel) -> None:
    async with monitor_for(receiver, clock, **channel) as monitor:
        await route(monitor.notify, DISK, "firing")
        await deliver_all(monitor.notify, clock)
        await clock.advance(600)
        await route(monitor.notify, RESOLVED, "resolved")
        await deliver_all(monitor.notify, clock)


def test_the_shape_check_accepts_what_alertmanager_sent_and_refuses_a_renamed_key():
    assert [alertmanager_problems(body) for body in CAPTURED] == [[], []]
    renamed = {**CAPTURED[0], "groupkey": CAPTURED[0]["groupKey"]}
    del renamed["groupKey"]
    assert alertmanager_problems(renamed)


def test_python_receivers_can_decode_both_formats_with_the_structs_and_new_fields_do_not_break_them():
    newer = [{**body, "routeLabels": {}, "notification_reason": "new"} for body in CAPTURED]  # Alertmanager 0.34
    decoded = [msgspec.json.decode(json.dumps(body), type=tocsin_webhook.AlertmanagerMessage) for body in newer]
    assert [(m.status, m.alerts[0].ends_at, m.group_key) for m in decoded] == [
        ("firing", "0001-01-01T00:00:00Z", '{}:{alertname="DiskFull", service="db"}'),
        ("resolved", "2026-01-01T00:10:00Z", '{}:{alertname="DiskFull", service="db"}')]
    event = tocsin_webhook.WebhookEvent(event_id="e", episode_key="k", kind="test", channel="c", severity="info",
                                        title="t", body="b", alert=None, links={})
    later = {**msgspec.to_builtins(event), "added_in_a_later_v1": True}
    assert msgspec.json.decode(json.dumps(later), type=tocsin_webhook.WebhookEvent) == event


async def test_alertmanager_format_is_what_alertmanager_0_25_sends():
    clock = VirtualClock(T0)
    async with WebhookReceiver(clock=clock, secret=SECRET, format="alertmanager") as receiver:
        await firing_then_resolved(receiver, clock, format="alertmanager", group_by=["alertname", "service"],
                                   external_url="http://vm:19093")
    assert receiver.refused == []
    firing, resolved = receiver.accepted
    # everything Alertmanager would have said about this alert, but for its generatorURL (tocsin has none)
    expected = [{**body, "alerts": [{**body["alerts"][0], "generatorURL": ""}]} for body in CAPTURED]
    assert [firing, resolved] == expected


def disk_on(host: str, fingerprint: str) -> Alert:
    return msgspec.structs.replace(DISK, fingerprint=fingerprint, labels={**DISK.labels, "host": host},
                                   annotations={"summary": f"Disk full on {host}", "description": "disk"})


async def test_alertmanager_format_sends_a_whole_group_in_one_body_cut_to_max_alerts():
    clock = VirtualClock(T0)
    options = {"format": "alertmanager", "group_by": ["alertname", "service"], "max_alerts": 3}
    async with (WebhookReceiver(clock=clock, secret=SECRET, format="alertmanager") as receiver,
                monitor_for(receiver, clock, **options) as monitor):
        await route(monitor.notify, disk_on("db-1", "fp1"), "firing")
        await deliver_all(monitor.notify, clock)
        await route(monitor.notify, msgspec.structs.replace(disk_on("db-1", "fp1"), state="resolved",
                                                             resolved_at_ns=FIRED + 60 * SECOND), "resolved")
        for i in (2, 3, 4):
            await clock.advance(0.001)
            await route(monitor.notify, disk_on(f"db-{i}", f"fp{i}"), "firing")
        await deliver_all(monitor.notify, clock)
    assert receiver.refused == []
    first, group = receiver.accepted
    assert len(first["alerts"]) == 1 and first["truncatedAlerts"] == 0
    assert group["status"] == "firing" and group["truncatedAlerts"] == 1
    assert [(a["status"], a["fingerprint"]) for a in group["alerts"]] == [
        ("resolved", "fp1"), ("firing", "fp2"), ("firing", "fp3")]
    assert group["groupLabels"] == {"alertname": "DiskFull", "service": "db"}
    assert group["commonLabels"] == {"alertname": "DiskFull", "service": "db", "severity": "critical"}
    assert group["commonAnnotations"] == {"description": "disk"}
    assert group["groupKey"] == CAPTURED[0]["groupKey"]


async def test_tocsin_format_lists_the_message_alerts_in_alerts():
    clock = VirtualClock(T0)
    async with WebhookReceiver(clock=clock, secret=SECRET) as receiver:
        await firing_then_resolved(receiver, clock)
    assert receiver.refused == []
    assert [[a["state"] for a in body["alerts"]] for body in receiver.accepted] == [["firing"], ["resolved"]]
    assert all(body["alerts"] == [body["alert"]] for body in receiver.accepted)


async def test_tocsin_format_keys_stay_the_same_per_episode_and_differ_per_event():
    clock = VirtualClock(T0)
    async with WebhookReceiver(clock=clock, secret=SECRET) as receiver:
        await firing_then_resolved(receiver, clock)
    firing, resolved = receiver.accepted
    assert firing["episode_key"] == resolved["episode_key"] == "tocsin/DiskFull/0a74ac22130028d9/1"
    assert firing["event_id"] != resolved["event_id"]
    assert [r.headers["idempotency-key"] for r in receiver.requests] == [firing["event_id"], resolved["event_id"]]
    assert (firing["kind"], firing["title"], firing["alert"]["fired_at_ns"]) == (
        "firing", "[FIRING] DiskFull (critical)", FIRED)
    assert (resolved["kind"], resolved["alert"]["state"], resolved["alert"]["resolved_at_ns"]) == (
        "resolved", "resolved", FIRED + 600 * SECOND)
    assert receiver.requests[0].headers["user-agent"].startswith("tocsin/")


async def test_a_retry_keeps_its_idempotency_key_and_is_signed_afresh():
    clock = VirtualClock(T0)
    async with WebhookReceiver(clock=clock, secret=SECRET) as receiver:
        receiver.script += [Reply(503, body=b"busy"), Reply(429, {"Retry-After": "7"}, b"slow down")]
        async with monitor_for(receiver, clock) as monitor:
            (row,) = await route(monitor.notify, DISK, "firing")
            await deliver_all(monitor.notify, clock)
            outcomes = [a.outcome for a in await monitor.notify.attempts(row.id)]
    assert outcomes == ["retryable", "rate_limited", "sent"] and receiver.refused == []
    assert len({r.headers["idempotency-key"] for r in receiver.requests}) == 1
    stamps = [int(r.headers["x-tocsin-timestamp"]) for r in receiver.requests]
    assert stamps[2] - stamps[1] == 7 and stamps[0] == T0 // SECOND


async def test_a_receiver_that_deduplicates_drops_a_resent_event():
    clock = VirtualClock(T0)
    async with WebhookReceiver(clock=clock, secret=SECRET) as receiver, monitor_for(receiver, clock) as monitor:
        channel = monitor.notify.channels["tocsin-webhook"]
        notification = Notification(title="t", body="b", kind="firing", alert=DISK,
                                    idempotency_key="tocsin/DiskFull/0a74ac22130028d9/1")
        await channel.send(notification)
        await channel.send(notification)  # as after a crash between sending and recording
    assert len(receiver.accepted) == 1 and len(receiver.duplicates) == 1


async def test_a_wrong_signature_is_refused_401_and_that_is_permanent():
    clock = VirtualClock(T0)
    async with (
        WebhookReceiver(clock=clock, secret="the-receivers-secret") as receiver,
        monitor_for(receiver, clock) as monitor,
    ):
        (row,) = await route(monitor.notify, DISK, "firing")
        await deliver_all(monitor.notify, clock)
        (attempt,) = await monitor.notify.attempts(row.id)
    assert (attempt.outcome, attempt.status_code) == ("permanent", 401)
    assert receiver.refused == [(401, "bad signature")] and SECRET not in attempt.error


async def test_without_an_hmac_secret_nothing_is_signed():
    clock = VirtualClock(T0)
    async with WebhookReceiver(clock=clock) as receiver, monitor_for(receiver, clock, hmac_secret=None) as monitor:
        await route(monitor.notify, DISK, "firing")
        await deliver_all(monitor.notify, clock)
    (request,) = receiver.requests
    assert "x-tocsin-signature" not in request.headers and len(receiver.accepted) == 1


@pytest.mark.parametrize(("options", "problem"), [
    ({"headers": {"Idempotency-Key": "x"}}, "headers: 'Idempotency-Key' is set by the webhook channel itself"),
    ({"secret_headers": {"Bad Name": "x"}}, "secret_headers: 'Bad Name' is not a valid HTTP header name"),
    ({"headers": {"X-A": "1"}, "secret_headers": {"x-a": "2"}}, "headers and secret_headers both set x-a"),
    ({"format": "slack"}, "format: expected one of tocsin|alertmanager"),
])
def test_bad_options_are_config_errors_naming_the_key(options, problem):
    channel = {"name": "hook", "type": "webhook", "url": "https://hooks.example.com/x", **options}
    with pytest.raises(ConfigError, match="channels\\[0\\]") as caught:
        make_monitor(tocsin_webhook, config={"channels": [channel]})
    assert problem in str(caught.value)


def test_the_preview_shows_the_body_and_header_names_but_no_secret_values():
    monitor = make_monitor(tocsin_webhook, config={"channels": [{
        "name": "hook", "type": "webhook", "url": "https://hooks.example.com/x", "hmac_secret": SECRET,
        "secret_headers": {"Authorization": "Bearer t0ken"}}]})
    preview = monitor.notify.preview(ALERT, "hook")
    assert preview.payload["headers"] == ["Authorization", "Content-Type", "Idempotency-Key", "User-Agent",
                                          "X-Tocsin-Signature", "X-Tocsin-Timestamp"]
    assert preview.payload["body"]["alert"]["rule"] == "disk-full"
    assert "t0ken" not in str(preview.payload) and SECRET not in str(preview.payload)
