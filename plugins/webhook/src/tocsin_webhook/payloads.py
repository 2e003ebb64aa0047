"""The two bodies the webhook channel can POST: tocsin's own versioned event, or Alertmanager's webhook (v4).

tocsin's event (`format = "tocsin"`, `"version": "1"`) is one alert event: what happened (`kind`), the rendered
`title` and `body`, the alert as tocsin sees it (`alert`, and `alerts`: every alert of the message, added
within version "1"), and two keys: `event_id` (the `Idempotency-Key` header; the
same on every retry of this event, different for the next event) and `episode_key` (the same for the firing,
reminders, acknowledgement and resolve of one firing episode, to correlate them). Within version "1" fields
are only ever added, never renamed or removed, so receivers should ignore keys they do not know.

Alertmanager's body (`format = "alertmanager"`) is what Alertmanager 0.25 POSTs to a `webhook_config`
receiver (see shared/fixtures/captured_alertmanager_webhook.txt), so an existing receiver works unchanged:
`version` "4", `status` (firing when any alert fires), every alert of the group with its `status`, `labels`
(with `alertname` = the rule), `annotations`, `startsAt`, `endsAt` (Go's zero time while firing),
`generatorURL` and `fingerprint`; the group's labels and key, the labels and annotations all its alerts share,
and `truncatedAlerts` (alerts left out past `max_alerts`). Alertmanager has no acknowledgement: an
acknowledged alert is sent as still `firing`.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from typing import Literal

import msgspec

from tocsin.ext import Alert, Notification, Severity, routing_labels

VERSION = "1"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
SYNTHETIC = {"test": "TocsinTest", "failed": "TocsinNotificationFailed"}

# These Structs describe bodies on the wire, which gain fields over time (Alertmanager 0.34 added two), so
# unlike config Structs they accept unknown fields: a receiver decoding with them must not break on new ones.


class WebhookAlert(msgspec.Struct, kw_only=True):
    """The alert in a tocsin webhook event; times are integer nanoseconds since the Unix epoch."""

    fingerprint: str
    rule: str
    labels: dict[str, str]
    annotations: dict[str, str]
    severity: Severity
    state: str
    handling: str
    value: float | None
    episode: int
    active_at_ns: int | None
    fired_at_ns: int | None
    resolved_at_ns: int | None
    acknowledged_by: str | None
    ack_comment: str | None


class WebhookEvent(msgspec.Struct, kw_only=True):
    """tocsin's webhook body, version "1": one alert event (or a test, or a "notification failed" notice)."""

    version: str = VERSION
    event_id: str
    episode_key: str
    kind: Literal["firing", "resolved", "acknowledged", "test", "failed"]
    channel: str
    severity: Severity
    title: str
    body: str
    alert: WebhookAlert | None
    links: dict[str, str]
    alerts: list[WebhookAlert] = []
    """Every alert of the message (`alert` is the first); added in version "1", so older bodies lack it."""


class AlertmanagerAlert(msgspec.Struct, kw_only=True, rename="camel"):
    """One alert of an Alertmanager webhook message."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str
    generator_url: str = msgspec.field(name="generatorURL")
    fingerprint: str


class AlertmanagerMessage(msgspec.Struct, kw_only=True, rename="camel"):
    """Alertmanager's webhook body, version "4"."""

    receiver: str
    status: Literal["firing", "resolved"]
    alerts: list[AlertmanagerAlert]
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str = msgspec.field(name="externalURL")
    version: str = "4"
    group_key: str
    truncated_alerts: int = 0


def event_id(notification: Notification) -> str:
    """The Idempotency-Key of one event: its episode key, kind and the alert's last change, hashed."""
    changed = notification.alert.updated_ns if notification.alert is not None else 0
    seed = f"{notification.idempotency_key}\x1f{notification.kind}\x1f{changed}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def _webhook_alert(alert: Alert) -> WebhookAlert:
    return WebhookAlert(
        fingerprint=alert.fingerprint, rule=alert.rule, labels=dict(alert.labels), annotations=dict(alert.annotations),
        severity=alert.severity, state=alert.state, handling=alert.handling, value=alert.value, episode=alert.episode,
        active_at_ns=alert.active_at_ns, fired_at_ns=alert.fired_at_ns, resolved_at_ns=alert.resolved_at_ns,
        acknowledged_by=alert.acknowledged_by, ack_comment=alert.ack_comment)


def tocsin_event(notification: Notification, channel: str) -> WebhookEvent:
    """tocsin's own event for a notification."""
    alert = notification.alert
    return WebhookEvent(
        event_id=event_id(notification), episode_key=notification.idempotency_key, kind=notification.kind,
        channel=channel, severity=notification.severity, title=notification.title, body=notification.body,
        links=dict(notification.links), alert=None if alert is None else _webhook_alert(alert),
        alerts=[_webhook_alert(item) for _, item in notification.alert_events()],
    )


def go_time(ns: int) -> str:
    """RFC 3339 in UTC as Go's time.Time marshals it: whole seconds plain, else up to 9 fraction digits."""
    seconds, fraction = divmod(ns, 10**9)
    text = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{fraction:09d}".rstrip("0") if fraction else "") + "Z"


def group_key(group_labels: dict[str, str]) -> str:
    """Alertmanager's groupKey for the root route: `{}:{alertname="DiskFull", service="db"}`."""
    pairs = ", ".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in sorted(group_labels.items()))
    return "{}:{" + pairs + "}"


def _synthetic(notification: Notification) -> bool:
    return notification.alert is None or notification.kind in SYNTHETIC


def _synthetic_alert(notification: Notification, now_ns: int) -> AlertmanagerAlert:
    """A test or "notification failed" notice as one synthetic alert."""
    alert = notification.alert
    generator = next(iter(notification.links.values()), "")
    labels = {"alertname": SYNTHETIC.get(notification.kind, "TocsinNotification"),
              "severity": notification.severity}
    if alert is not None and alert.rule:
        labels["rule"] = alert.rule
    fingerprint = hashlib.sha256(notification.idempotency_key.encode()).hexdigest()[:16]
    return AlertmanagerAlert(status="firing", labels=labels, fingerprint=fingerprint, generator_url=generator,
                             annotations={"summary": notification.title, "description": notification.body},
                             starts_at=go_time(now_ns), ends_at=GO_ZERO_TIME)


def _alert_of(kind: str, alert: Alert, generator: str, now_ns: int) -> AlertmanagerAlert:
    """One alert of the message as Alertmanager shows it (`resolved` only for a resolve event)."""
    resolved = kind == "resolved"
    started = alert.fired_at_ns or alert.active_at_ns or alert.updated_ns or now_ns
    ended = go_time(alert.resolved_at_ns or alert.updated_ns or now_ns) if resolved else GO_ZERO_TIME
    return AlertmanagerAlert(status="resolved" if resolved else "firing", labels=routing_labels(alert),
                             annotations=dict(alert.annotations), starts_at=go_time(started), ends_at=ended,
                             generator_url=generator, fingerprint=alert.fingerprint)


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    """The pairs every map has (Alertmanager's commonLabels and commonAnnotations)."""
    common = dict(maps[0]) if maps else {}
    for other in maps[1:]:
        common = {key: value for key, value in common.items() if other.get(key) == value}
    return common


def alertmanager_message(notification: Notification, *, receiver: str, group_labels: dict[str, str],
                         external_url: str, now_ns: int, max_alerts: int = 0) -> AlertmanagerMessage:
    """Alertmanager's webhook body for a message: every alert of the group with `group_labels`.

    With `max_alerts` above 0, alerts past it are left out and counted in `truncatedAlerts`, as Alertmanager does.
    """
    if _synthetic(notification):
        every = [_synthetic_alert(notification, now_ns)]
        groups = {"alertname": every[0].labels["alertname"]}
    else:
        generator = next(iter(notification.links.values()), "")
        every = [_alert_of(kind, alert, generator, now_ns) for kind, alert in notification.alert_events()]
        groups = dict(group_labels)
    alerts = every[:max_alerts] if max_alerts > 0 else every
    status: Literal["firing", "resolved"] = "firing" if any(a.status == "firing" for a in every) else "resolved"
    return AlertmanagerMessage(receiver=receiver, status=status, alerts=alerts, group_labels=groups,
                               common_labels=_common([a.labels for a in every]),
                               common_annotations=_common([a.annotations for a in every]),
                               external_url=external_url, group_key=group_key(groups),
                               truncated_alerts=len(every) - len(alerts))
