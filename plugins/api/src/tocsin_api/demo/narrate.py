"""One terminal line per thing worth noticing while the demo runs: alerts firing and resolving, nightly runs that
fail or get stuck, so the story can be followed without the dashboard open."""

from __future__ import annotations

import datetime

from tocsin.ext import Event

ALERT_STATES = {"firing", "resolved"}
RUN_PROBLEMS = {"failed", "stuck", "cancelled"}


def line(event: Event) -> str | None:
    """The line for `event`, or None when it is not worth a line."""
    at = datetime.datetime.fromtimestamp(event.time_ns / 1e9).strftime("%H:%M:%S")
    data = event.data
    if event.topic == "alerts" and event.type in ALERT_STATES:
        flapping = " (flapping)" if data.get("flapping") else ""
        notified = ", notified through the log channel" if data.get("notified") else ""
        state = "still firing" if data.get("from_state") == event.type else event.type
        return f"  {at}  alert {data['rule']} {state}{flapping} [{data['severity']}]{notified}"
    if event.topic == "workflows" and event.type in RUN_PROBLEMS:
        detail = data.get("error") or data.get("message") or ""
        return f"  {at}  {data.get('workflow', 'workflow')} run {event.type}: {detail}".rstrip(": ")
    return None
