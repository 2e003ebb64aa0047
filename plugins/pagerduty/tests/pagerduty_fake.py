"""A fake PagerDuty Events API v2 on loopback that enforces what CONTRACTS.md §6 documents.

`POST /v2/enqueue` with a JSON event: 202 `{"status": "success", "message": "Event processed", "dedup_key"}`
for a valid one; 400 `{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}` for
an invalid one (schema: required keys, enums, the 32-character routing key of this integration, dedup_key
≤ 255, summary ≤ 1024, no unknown keys, acknowledge and resolve with a dedup_key and nothing else, body
≤ 512 KB); 429 beyond 120 events in any 60 s for the routing key (on the test's clock); 404 elsewhere.
Scripted replies (`script`) are answered first, like trouble on PagerDuty's side.

It keeps incidents by dedup_key like PagerDuty: a trigger opens one (or joins the open one with its key),
acknowledge and resolve change it, and a trigger after a resolve opens a *new* incident with the same key,
which is recorded in `reopened` (tocsin must never send a stale trigger after its resolve).
"""

from __future__ import annotations

import datetime
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tocsin.clock import Clock
from tocsin.testing.receiver import HttpReceiver, ReceivedRequest, Reply

ROUTING_KEY = "R0CS1NPDINTEGRATI0NKEY0000000001"
PATH = "/v2/enqueue"
TOP_KEYS = {"routing_key", "event_action", "dedup_key", "payload", "client", "client_url", "links", "images"}
PAYLOAD_KEYS = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
SEVERITIES = {"critical", "error", "warning", "info"}
WINDOW_NS = 60 * 10**9
LIMIT = 120


@dataclass
class Incident:
    """One PagerDuty alert: its dedup_key, status and the actions it saw, in order."""

    dedup_key: str
    status: str = "triggered"
    actions: list[str] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)


def problems(event: Any) -> list[str]:
    """What PagerDuty would say is wrong with an event (nothing for a valid one)."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors = [f"'{key}' is not a valid field" for key in sorted(set(event) - TOP_KEYS)]
    if event.get("routing_key") != ROUTING_KEY:
        errors.append("Invalid routing key")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        return [*errors, "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"]
    key = event.get("dedup_key")
    if key is not None and (not isinstance(key, str) or not key or len(key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action != "trigger":
        if key is None:
            errors.append("'dedup_key' is required for acknowledge and resolve events")
        extra = set(event) - {"routing_key", "event_action", "dedup_key"}
        errors += [f"'{name}' is not valid for {action} events" for name in sorted(extra)]
        return errors
    return errors + _payload_problems(event.get("payload")) + _link_problems(event.get("links", []))


def _payload_problems(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    errors = [f"'payload.{key}' is not a valid field" for key in sorted(set(payload) - PAYLOAD_KEYS)]
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > 1024:
        errors.append("'payload.summary' must be at most 1024 characters")
    if not isinstance(payload.get("source"), str) or not payload["source"].strip():
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' is invalid (must be one of: critical, error, warning, info)")
    if "timestamp" in payload:
        try:
            datetime.datetime.fromisoformat(payload["timestamp"])
        except (TypeError, ValueError):
            errors.append("'payload.timestamp' is not a valid ISO 8601 date")
    errors += [f"'payload.{key}' must be a string" for key in ("component", "group", "class")
               if key in payload and not isinstance(payload[key], str)]
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    return errors


def _link_problems(links: Any) -> list[str]:
    if not isinstance(links, list) or not all(isinstance(link, dict) and isinstance(link.get("href"), str)
                                              and set(link) <= {"href", "text"} for link in links):
        return ["'links' must be a list of {href, text}"]
    return []


class FakePagerDuty(HttpReceiver):
    """PagerDuty's Events API v2, enforced: see the module docstring."""

    def __init__(self, *, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.incidents: list[Incident] = []
        self.open: dict[str, Incident] = {}  # dedup_key -> its latest incident
        self.reopened: list[str] = []
        self.orphans: list[tuple[str, str]] = []  # acknowledge/resolve for a key PagerDuty never saw
        self.events: list[dict[str, Any]] = []
        self.refused: list[tuple[int, list[str]]] = []
        self._recent: deque[int] = deque()

    @property
    def events_url(self) -> str:
        """The enqueue endpoint."""
        return self.url.rstrip("/") + PATH

    def _answer(self, status: int, body: dict[str, Any]) -> Reply:
        return Reply(status, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def _invalid(self, errors: list[str]) -> Reply:
        self.refused.append((400, errors))
        return self._answer(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})

    def reply(self, request: ReceivedRequest) -> Reply:
        """PagerDuty's answer to one request."""
        if self.script:
            return self.script.pop(0)
        if request.method != "POST" or request.path != PATH:
            return Reply(404, body=b"Not Found")
        now = self.clock.now_ns()
        while self._recent and now - self._recent[0] >= WINDOW_NS:
            self._recent.popleft()
        if len(self._recent) >= LIMIT:
            self.refused.append((429, ["throttled"]))
            return self._answer(429, {"status": "throttle event",
                                      "message": "Requests for this service are arriving too quickly."})
        self._recent.append(now)
        if len(request.body) > 512 * 1024:
            return self._invalid(["Event is larger than 512 KB"])
        try:
            event = json.loads(request.body)
        except json.JSONDecodeError:
            return self._invalid(["Event is not valid JSON"])
        errors = problems(event)
        if errors:
            return self._invalid(errors)
        self.events.append(event)
        return self._answer(202, {"status": "success", "message": "Event processed",
                                  "dedup_key": self._apply(event)})

    def _apply(self, event: dict[str, Any]) -> str:
        action = event["event_action"]
        key = event.get("dedup_key") or f"pd-generated-{len(self.events)}"
        incident = self.open.get(key)
        if action == "trigger":
            if incident is None or incident.status == "resolved":
                if incident is not None:
                    self.reopened.append(key)
                incident = self.open[key] = Incident(key)
                self.incidents.append(incident)
            incident.actions.append("trigger")
            incident.triggers.append(event)
        elif incident is None or incident.status == "resolved":
            self.orphans.append((action, key))  # PagerDuty accepts it and does nothing
        else:
            incident.actions.append(action)
            incident.status = "acknowledged" if action == "acknowledge" else "resolved"
        return key
