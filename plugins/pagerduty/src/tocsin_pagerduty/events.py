"""PagerDuty Events API v2 bodies for tocsin notifications (CONTRACTS.md §6).

A notification kind becomes an `event_action`: firing → `trigger`, acknowledged → `acknowledge`, resolved →
`resolve` (a "notification failed" notice is a `trigger` of its own). The `dedup_key` is the notification's
idempotency key, which for an alert is its firing episode's (`tocsin/<rule>/<fingerprint>/<episode>`): the
trigger, any reminder, the acknowledge and the resolve of one episode all name the same PagerDuty alert, and
the next episode opens a new one. Acknowledge and resolve carry only `routing_key`, `event_action` and
`dedup_key`, as the API asks.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Any

from tocsin.ext import Alert, Notification

MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
MAX_DETAILS_BODY = 16 * 1024
ACTIONS = {"firing": "trigger", "failed": "trigger", "test": "trigger", "acknowledged": "acknowledge",
           "resolved": "resolve"}


@dataclass(frozen=True)
class EventSettings:
    """What a trigger says besides the notification: where from (`source`), which labels name the component
    and group, and the client name and URL PagerDuty shows."""

    source: str
    component_label: str
    group_label: str
    client: str
    client_url: str


def dedup_key(notification: Notification) -> str:
    """The notification's idempotency key, hashed when it is longer than PagerDuty's 255 characters."""
    key = notification.idempotency_key
    if len(key) <= MAX_DEDUP_KEY:
        return key
    return "tocsin/" + hashlib.sha256(key.encode()).hexdigest()


def cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, ending in "…" when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def timestamp(ns: int) -> str:
    """ISO 8601 in UTC with milliseconds, as PagerDuty shows it."""
    when = datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def links(notification: Notification) -> list[dict[str, str]]:
    """The notification's links and the alert's http(s) annotations (a runbook, a dashboard) as PD links."""
    found = dict(notification.links)
    if notification.alert is not None:
        for name, value in sorted(notification.alert.annotations.items()):
            found.setdefault(name, value)
    return [{"href": url, "text": text} for text, url in found.items() if url.startswith(("https://", "http://"))]


def details(notification: Notification) -> dict[str, Any]:
    """custom_details: the rendered body, and the alert's rule, labels, annotations, value, state and episode."""
    out: dict[str, Any] = {"body": cut(notification.body, MAX_DETAILS_BODY)}
    alert = notification.alert
    if alert is not None:
        out.update(rule=alert.rule, fingerprint=alert.fingerprint, episode=alert.episode, state=alert.state,
                   labels=dict(alert.labels), annotations=dict(alert.annotations))
        if alert.value is not None:
            out["value"] = alert.value
    return out


def _source(alert: Alert | None, settings: EventSettings) -> str:
    labels = alert.labels if alert is not None else {}
    return settings.source or labels.get("instance") or labels.get("host") or "tocsin"


def trigger(notification: Notification, routing_key: str, settings: EventSettings) -> dict[str, Any]:
    """A trigger event: summary, source, severity, timestamp, component, group, class, details and links."""
    alert = notification.alert
    payload: dict[str, Any] = {
        "summary": cut(notification.title.strip() or "tocsin notification", MAX_SUMMARY),
        "source": _source(alert, settings),
        "severity": notification.severity,  # tocsin's four severities are PagerDuty's four
    }
    if alert is not None:
        fired = alert.fired_at_ns or alert.active_at_ns
        if fired:
            payload["timestamp"] = timestamp(fired)
        for key, label in (("component", settings.component_label), ("group", settings.group_label)):
            if alert.labels.get(label):
                payload[key] = alert.labels[label]
        payload["class"] = alert.rule
    payload["custom_details"] = details(notification)
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": "trigger", "payload": payload,
                             "client": settings.client}
    if notification.idempotency_key:
        event["dedup_key"] = dedup_key(notification)
    if settings.client_url:
        event["client_url"] = settings.client_url
    found = links(notification)
    if found:
        event["links"] = found
    return event


def follow_up(notification: Notification, routing_key: str, action: str) -> dict[str, Any]:
    """An acknowledge or resolve event: only the routing key, the action and the dedup_key."""
    return {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key(notification)}


def events(notification: Notification, routing_key: str, settings: EventSettings) -> list[dict[str, Any]]:
    """The events one notification sends, in order; a test is a trigger and its resolve (no incident is left)."""
    action = ACTIONS[notification.kind]
    if action != "trigger":
        return [follow_up(notification, routing_key, action)]
    first = trigger(notification, routing_key, settings)
    if notification.kind == "test":
        return [first, follow_up(notification, routing_key, "resolve")]
    return [first]
