"""Notifications over a real socket: the delivery log with filters and paging, one delivery with its attempts,
the configured channels (never a secret), test sends and previews, and the scopes they need."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
import pytest

from tocsin import NotificationChannel, hookimpl
from tocsin.ext import Notification, Secret

TOKEN = "tok-0123456789abcdef-very-secret"


class LeakyChannel(NotificationChannel):
    """A channel whose preview shows its token, to prove the API scrubs it anyway."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        token: Secret

    async def send(self, notification: Notification) -> None:
        """Sends nothing."""

    def render_preview(self, notification: Notification) -> dict[str, Any]:
        return {"url": f"https://hooks.example.com/{self.config.token.reveal()}", "text": notification.title}


class LeakyPlugin:
    __name__ = "tests.leaky"

    @hookimpl
    def register_notification_channels(self, register):
        register("leaky", LeakyChannel)


CONFIG = {
    "alerting": {"rules": [
        {"name": "queue-deep", "metric": "queue_depth", "aggregate": "last", "by": ["queue"], "threshold": 100,
         "annotations": {"summary": "{{ labels.queue }} holds {{ value }} jobs"}},
    ]},
    "channels": [
        {"name": "ops", "type": "log"},
        {"name": "broken", "type": "captured", "fail_times": 1000, "fail_permanently": True},
        {"name": "pager", "type": "captured", "min_severity": "critical", "send_resolved": False},
        {"name": "hook", "type": "leaky", "token": TOKEN, "match": {"queue": "nothing"}, "fallback": "ops"},
    ],
    "notifications": {"group_wait": 0},
}


def fire_and_deliver(server, **queues: float) -> dict[str, str]:
    """Set queue_depth per queue, evaluate, and send whatever is due; fingerprints by queue."""

    async def run():
        monitor = server.monitor
        for queue, value in queues.items():
            monitor.metrics.gauge("queue_depth").set(value, queue=queue)
        await monitor.flush()
        alerts = (await monitor.alerting.evaluate()).alerts
        await monitor.notify.dispatch_due()
        await monitor.notify.settled()
        return alerts

    return {alert.labels["queue"]: alert.fingerprint for alert in server.call(run())}


@pytest.fixture
def notifications(serve):
    server = serve(CONFIG, plugins=(LeakyPlugin(),))
    fingerprints = fire_and_deliver(server, mail=250, jobs=300)
    with httpx.Client(base_url=server.base, timeout=10) as http:
        yield server, http, fingerprints


def rows(http, **query) -> list[dict[str, Any]]:
    response = http.get("/api/v1/notifications", params=query)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_the_delivery_log_is_listed_and_filtered(notifications):
    _, http, fp = notifications
    everything = http.get("/api/v1/notifications").json()
    assert everything["total"] == 4 and everything["next_cursor"] is None
    assert sorted((row["channel"], row["fingerprint"]) for row in everything["items"]) == sorted(
        (channel, fp[queue]) for channel in ("ops", "broken") for queue in ("mail", "jobs"))
    assert {(row["channel"], row["state"]) for row in everything["items"]} == {("ops", "sent"), ("broken", "failed")}
    assert {row["kind"] for row in everything["items"]} == {"firing"}
    assert {row["channel"] for row in rows(http, state="failed")} == {"broken"}
    assert {row["state"] for row in rows(http, channel="ops")} == {"sent"}
    assert {(row["channel"], row["fingerprint"]) for row in rows(http, fingerprint=fp["mail"])} == {
        ("ops", fp["mail"]), ("broken", fp["mail"])}
    assert rows(http, channel="ops", state="failed") == [] and rows(http, channel="nobody") == []


def test_the_delivery_log_pages_with_a_cursor(notifications):
    _, http, _ = notifications
    first = http.get("/api/v1/notifications", params={"limit": 3}).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    second = http.get("/api/v1/notifications", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    ids = [row["id"] for row in first["items"] + second["items"]]
    assert len(set(ids)) == 4


@pytest.mark.parametrize(("query", "field"), [({"state": "lost"}, "state"), ({"limit": 0}, "limit"),
                                              ({"limit": 10_001}, "limit")])
def test_bad_delivery_filters_are_400_naming_the_field(notifications, query, field):
    _, http, _ = notifications
    response = http.get("/api/v1/notifications", params=query)
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_one_delivery_comes_with_its_attempts(notifications):
    _, http, fp = notifications
    [failed] = rows(http, channel="broken", fingerprint=fp["jobs"])
    detail = http.get(f"/api/v1/notifications/{failed['id']}").json()
    assert detail["delivery"]["id"] == failed["id"] and detail["delivery"]["state"] == "failed"
    [attempt] = detail["attempts"]
    assert attempt["outcome"] == "permanent" and attempt["attempt"] == 1
    assert "told to fail" in attempt["error"]
    [sent] = rows(http, channel="ops", fingerprint=fp["jobs"])
    assert [a["outcome"] for a in http.get(f"/api/v1/notifications/{sent['id']}").json()["attempts"]] == ["sent"]
    missing = http.get("/api/v1/notifications/0123456789abcdef")
    assert missing.status_code == 404 and missing.json()["type"] == "urn:tocsin:problem:not-found"


def test_channels_are_listed_without_their_options(notifications):
    _, http, _ = notifications
    response = http.get("/api/v1/channels")
    channels = {channel["name"]: channel for channel in response.json()}
    assert list(channels) == ["ops", "broken", "pager", "hook"]
    assert channels["ops"] == {"name": "ops", "type": "log", "min_severity": "info", "match": {},
                               "send_resolved": True, "fallback": None}
    assert channels["pager"]["min_severity"] == "critical" and channels["pager"]["send_resolved"] is False
    assert channels["hook"]["match"] == {"queue": "nothing"} and channels["hook"]["fallback"] == "ops"
    assert TOKEN not in response.text and "fail_times" not in response.text


def test_a_test_send_goes_out_now_and_reports_how_it_went(notifications):
    server, http, _ = notifications
    ok = http.post("/api/v1/channels/pager/test")
    assert ok.status_code == 200
    assert ok.json()["channel"] == "pager" and ok.json()["ok"] is True and ok.json()["outcome"] == "sent"
    [sent] = server.monitor.notify.channels["pager"].sent
    assert sent.kind == "test" and "test notification" in sent.title
    failed = http.post("/api/v1/channels/broken/test").json()
    assert failed["ok"] is False and failed["outcome"] == "permanent" and "told to fail" in failed["error"]
    assert http.post("/api/v1/channels/ops/test").json()["ok"] is True  # the built-in log channel
    assert len(rows(http)) == 4  # test sends skip the outbox
    missing = http.post("/api/v1/channels/nope/test")
    assert missing.status_code == 404 and "ops" in missing.json()["detail"]


def test_a_preview_renders_what_a_channel_would_send(notifications):
    _, http, fp = notifications
    preview = http.post("/api/v1/channels/ops/preview", json={"fingerprint": fp["mail"]})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["would_send"] is True and body["reason"] == ""
    assert body["notification"]["title"] == "[FIRING] queue-deep (warning)"
    assert "mail holds 250" in body["notification"]["body"]
    assert body["notification"]["alert"]["fingerprint"] == fp["mail"]
    assert body["payload"]["logger"] == "tocsin.notifications" and "mail holds 250" in body["payload"]["message"]
    resolved = http.post("/api/v1/channels/ops/preview", json={"fingerprint": fp["mail"], "kind": "resolved"}).json()
    assert resolved["notification"]["title"].startswith("[RESOLVED]")
    refused = http.post("/api/v1/channels/pager/preview", json={"fingerprint": fp["mail"]}).json()
    assert refused["would_send"] is False and "min_severity critical" in refused["reason"]
    assert len(rows(http)) == 4  # nothing was sent or queued


def test_a_preview_of_an_alert_given_whole(notifications):
    _, http, _ = notifications
    alert = {"fingerprint": "feedfacefeedface", "rule": "queue-deep", "severity": "critical", "state": "firing",
             "labels": {"alertname": "queue-deep", "queue": "what-if", "severity": "critical"}, "value": 999}
    preview = http.post("/api/v1/channels/pager/preview", json={"alert": alert}).json()
    assert preview["would_send"] is True and preview["notification"]["title"] == "[FIRING] queue-deep (critical)"


def test_a_preview_never_shows_a_secret_of_the_channel(notifications):
    _, http, fp = notifications
    response = http.post("/api/v1/channels/hook/preview", json={"fingerprint": fp["mail"]})
    assert response.status_code == 200
    assert TOKEN not in response.text
    assert response.json()["payload"]["url"] == "https://hooks.example.com/<secret>"
    assert response.json()["would_send"] is False  # its match holds no queue of this alert


@pytest.mark.parametrize(("body", "field"), [
    ({}, "fingerprint"),
    ({"fingerprint": "0123456789abcdef"}, "fingerprint"),
    ({"fingerprint": "x", "alert": {"fingerprint": "x", "rule": "r"}}, "fingerprint"),
    ({"fingerprint": "x", "kind": "exploded"}, "kind"),
    ({"alert": {"rule": "r"}}, "alert"),
])
def test_bad_preview_bodies_are_400_naming_the_field(notifications, body, field):
    _, http, _ = notifications
    response = http.post("/api/v1/channels/ops/preview", json=body)
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["field"] == field or f"`{field}`" in error["reason"]


def test_an_unknown_channel_preview_is_404(notifications):
    _, http, fp = notifications
    response = http.post("/api/v1/channels/nope/preview", json={"fingerprint": fp["mail"]})
    assert response.status_code == 404 and response.json()["type"] == "urn:tocsin:problem:not-found"


def test_a_test_send_needs_the_write_scope(serve):
    server = serve({**CONFIG, "server": {"api_keys": [
        {"name": "reader", "key": "r-secret-0123456789abcdef", "scopes": ["read"]},
        {"name": "ann", "key": "w-secret-0123456789abcdef", "scopes": ["read", "write"]}]}},
        plugins=(LeakyPlugin(),))
    reader = {"Authorization": "Bearer r-secret-0123456789abcdef"}
    writer = {"Authorization": "Bearer w-secret-0123456789abcdef"}
    with httpx.Client(base_url=server.base, timeout=10) as http:
        refused = http.post("/api/v1/channels/pager/test", headers=reader)
        assert refused.status_code == 403 and refused.json()["type"] == "urn:tocsin:problem:forbidden"
        assert server.monitor.notify.channels["pager"].sent == []
        assert http.post("/api/v1/channels/pager/test", headers=writer).json()["ok"] is True
        assert http.get("/api/v1/channels", headers=reader).status_code == 200
        assert http.get("/api/v1/notifications", headers=reader).status_code == 200
        assert http.get("/api/v1/notifications").status_code == 401
