"""A webhook receiver on loopback that checks what a careful receiver checks, written without the plugin's code.

It verifies the HMAC-SHA256 signature (`X-Tocsin-Signature: sha256=<hex of "<timestamp>.<body>">`, with the
timestamp at most 5 minutes from its clock) and answers 401 when it is wrong or missing; requires JSON and an
`Idempotency-Key`, and counts a key it has seen before as a duplicate; and checks the body: an Alertmanager
body must have exactly the shape (keys and value types, at every level) of the bodies Alertmanager 0.25 sent
(fixtures/alertmanager_0.25_webhook.jsonl), with `version` "4" and Go's zero `endsAt` while firing; a tocsin
body must have the documented version "1" keys. A body that fails is answered 400 with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

from tocsin.clock import Clock
from tocsin.testing.receiver import HttpReceiver, ReceivedRequest, Reply

FIXTURE = Path(__file__).parent / "fixtures" / "alertmanager_0.25_webhook.jsonl"
CAPTURED = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
TOCSIN_V1 = {"version", "event_id", "episode_key", "kind", "channel", "severity", "title", "body", "alert", "links",
             "alerts"}
TOCSIN_V1_ALERT = {"fingerprint", "rule", "labels", "annotations", "severity", "state", "handling", "value",
                   "episode", "active_at_ns", "fired_at_ns", "resolved_at_ns", "acknowledged_by", "ack_comment"}


def shape(value: Any) -> Any:
    """The structure of a JSON value: objects keep their keys (but for label and annotation maps), leaves their type."""
    if isinstance(value, dict):
        if all(isinstance(item, str) for item in value.values()) and "status" not in value:
            return "map of strings"
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


ALERTMANAGER_SHAPE = shape(CAPTURED[0])


def alertmanager_problems(body: Any) -> list[str]:
    """How a body differs from what Alertmanager 0.25 sends (nothing when a receiver cannot tell them apart)."""
    if shape(body) != ALERTMANAGER_SHAPE:
        return [f"shape {shape(body)} is not Alertmanager's {ALERTMANAGER_SHAPE}"]
    problems = [] if body["version"] == "4" else ["version is not 4"]
    for alert in body["alerts"]:
        if alert["status"] not in ("firing", "resolved") or not RFC3339.match(alert["startsAt"]):
            problems.append(f"bad status or startsAt in {alert}")
        if (alert["status"] == "firing") != (alert["endsAt"] == "0001-01-01T00:00:00Z"):
            problems.append(f"endsAt {alert['endsAt']} does not fit status {alert['status']}")
        if "alertname" not in alert["labels"]:
            problems.append("an alert without alertname")
    return problems


def tocsin_problems(body: Any) -> list[str]:
    """How a body differs from tocsin's documented version "1" event."""
    if not isinstance(body, dict) or set(body) != TOCSIN_V1 or body["version"] != "1":
        return [f"not a tocsin v1 event: {sorted(body) if isinstance(body, dict) else body}"]
    if body["alert"] is not None and set(body["alert"]) != TOCSIN_V1_ALERT:
        return [f"alert keys {sorted(body['alert'])}"]
    if any(set(alert) != TOCSIN_V1_ALERT for alert in body["alerts"]) or (body["alert"] is not None) != bool(
            body["alerts"]) or (body["alerts"] and body["alerts"][0] != body["alert"]):
        return ["alerts is not a list of alerts starting with `alert`"]
    return []


class WebhookReceiver(HttpReceiver):
    """A careful webhook receiver: see the module docstring. `accepted` holds the bodies it took, in order."""

    def __init__(self, *, clock: Clock, secret: str | None = None, format: str = "tocsin") -> None:
        super().__init__(clock=clock)
        self.secret = secret
        self.format = format
        self.accepted: list[dict[str, Any]] = []
        self.duplicates: list[str] = []
        self.refused: list[tuple[int, str]] = []
        self._seen: set[str] = set()

    def _refuse(self, status: int, reason: str) -> Reply:
        self.refused.append((status, reason))
        return Reply(status, body=reason.encode())

    def _signature_problem(self, request: ReceivedRequest) -> str | None:
        if self.secret is None:
            return None
        timestamp = request.headers.get("x-tocsin-timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - self.clock.now_ns() // 10**9) > 300:
            return "missing or stale X-Tocsin-Timestamp"
        expected = hmac.new(self.secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256)
        if not hmac.compare_digest(request.headers.get("x-tocsin-signature", ""), "sha256=" + expected.hexdigest()):
            return "bad signature"
        return None

    def reply(self, request: ReceivedRequest) -> Reply:
        """Scripted answers first; then 401 for a bad signature, 400 for a bad body, else 200."""
        if self.script:
            return self.script.pop(0)
        problem = self._signature_problem(request)
        if problem:
            return self._refuse(401, problem)
        key = request.headers.get("idempotency-key")
        if request.headers.get("content-type") != "application/json" or not key:
            return self._refuse(400, "want application/json with an Idempotency-Key")
        body = json.loads(request.body)
        problems = alertmanager_problems(body) if self.format == "alertmanager" else tocsin_problems(body)
        if problems:
            return self._refuse(400, "; ".join(problems))
        if key in self._seen:
            self.duplicates.append(key)
        else:
            self._seen.add(key)
            self.accepted.append(body)
        return Reply(200, body=b"ok")
