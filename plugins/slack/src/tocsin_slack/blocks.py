"""The Slack message for a notification: Block Kit inside a coloured attachment, escaped and cut to Slack's limits.

    {"text": "<title>",                                     # the notification / fallback text
     "blocks": [{"type": "header", ...}],                    # the title, plain text, ≤ 150 characters
     "attachments": [{"color": "#E01E5A", "blocks": [        # the severity colour (the left border)
         {"type": "section", "fields": [...]},               # severity, status, rule, value, labels (≤ 10)
         {"type": "section", "text": {"type": "mrkdwn", ...}},   # the body, split into ≤ 3000-character sections
         {"type": "context", "elements": [...]}]}]}          # tocsin, the channel, when, and links (≤ 10)

Slack answers 200 `ok` to a webhook message whatever its length, and drops or rejects what is over its
limits, so they are enforced here: at most 50 blocks in all, section text ≤ 3000, fields ≤ 10 of ≤ 2000,
header ≤ 150, context ≤ 10 elements; whatever is cut ends with "…". Every piece of text that Slack reads as
mrkdwn has `&`, `<` and `>` escaped, so a label value cannot turn into a link or an `@channel` mention.
"""

from __future__ import annotations

import datetime
from typing import Any

from tocsin.ext import Alert, Notification, episode_key

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_TEXT = 4000
ELLIPSIS = "…"

COLOURS = {"critical": "#E01E5A", "error": "#E8912D", "warning": "#ECB22E", "info": "#439FE0"}
KIND_COLOURS = {"resolved": "#2EB67D", "acknowledged": "#9E9EA6", "test": "#439FE0"}
STATUS = {"firing": "Firing", "resolved": "Resolved", "acknowledged": "Acknowledged", "test": "Test",
          "failed": "Notification failed"}
HIDDEN_LABELS = frozenset({"alertname", "severity"})


def escape(text: str) -> str:
    """Text made safe for mrkdwn: `&`, `<` and `>` as entities (no links, mentions or broken markup)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _prefix(text: str, limit: int) -> str:
    """The longest start of `text` within `limit` characters that does not end inside an `&amp;` entity."""
    kept = text[:limit]
    amp = kept.rfind("&", max(0, len(kept) - 4))
    if amp != -1 and ";" not in kept[amp:] and len(text) > limit:
        kept = kept[:amp]
    return kept


def cut(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else cut to fit with "…" (never inside an entity)."""
    if len(text) <= limit:
        return text
    return _prefix(text, limit - len(ELLIPSIS)) + ELLIPSIS


def split_sections(text: str, limit: int = MAX_SECTION_TEXT) -> list[str]:
    """Escaped text in pieces of at most `limit` characters, broken at line ends where possible."""
    pieces: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > limit:  # a line longer than a section: break it
            head = _prefix(line, limit)
            pieces += [current, head]
            current, line = "", line[len(head):]
        if len(current) + len(line) > limit:
            pieces.append(current)
            current = ""
        current += line
    pieces.append(current)
    return [piece.rstrip() for piece in pieces if piece.strip()]


def colour(notification: Notification) -> str:
    """The attachment colour: green resolved, grey acknowledged, blue test, else by severity."""
    return KIND_COLOURS.get(notification.kind) or COLOURS[notification.severity]


def about_one_alert(notification: Notification) -> bool:
    """Whether the message is about its one alert (its key is the alert's episode key) rather than a group."""
    alert = notification.alert
    return alert is not None and notification.idempotency_key == episode_key(alert)


def _field(name: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": cut(f"*{escape(name)}*\n{escape(value)}", MAX_FIELD_TEXT)}


def fields(notification: Notification) -> list[dict[str, str]]:
    """Severity and status; for a one-alert message also its rule, value and labels (at most 10 in all)."""
    if notification.kind == "test":
        return []
    out = [_field("Severity", notification.severity), _field("Status", STATUS[notification.kind])]
    alert = notification.alert
    if alert is not None and about_one_alert(notification):
        out.append(_field("Rule", alert.rule))
        if alert.value is not None:
            out.append(_field("Value", f"{alert.value:g}"))
        out += [_field(name, value) for name, value in sorted(alert.labels.items()) if name not in HIDDEN_LABELS]
    return out[:MAX_FIELDS]


def links(notification: Notification) -> list[tuple[str, str]]:
    """(text, url) pairs: the notification's links, then the alert's annotations that are http(s) URLs."""
    found = dict(notification.links)
    if notification.alert is not None:
        for name, value in sorted(notification.alert.annotations.items()):
            if value.startswith(("https://", "http://")):
                found.setdefault(name, value)
    return [(text, url) for text, url in found.items() if url.startswith(("https://", "http://"))]


def _when(alert: Alert, kind: str) -> str | None:
    at_ns = alert.resolved_at_ns if kind == "resolved" else alert.fired_at_ns or alert.active_at_ns
    if not at_ns:
        return None
    seconds = at_ns // 10**9
    iso = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    verb = "Resolved" if kind == "resolved" else "Since"
    return f"{verb} <!date^{seconds}^{{date_short_pretty}} {{time}}|{iso}>"


def context(notification: Notification, channel: str) -> dict[str, Any]:
    """The footer: tocsin and the channel, when it fired or resolved, and up to 8 links."""
    elements = [f"tocsin • {escape(channel)}"]
    if notification.alert is not None and notification.kind in ("firing", "resolved", "acknowledged"):
        when = _when(notification.alert, notification.kind)
        if when:
            elements.append(when)
    for text, url in links(notification):
        safe_url = escape(url.replace("|", "%7C"))
        elements.append(f"<{safe_url}|{escape(text.replace('|', '/'))}>")
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(element, MAX_SECTION_TEXT)}
                                            for element in elements[:MAX_CONTEXT_ELEMENTS]]}


def message(notification: Notification, channel: str) -> dict[str, Any]:
    """The JSON body for Slack's incoming webhook (see the module docstring); always within Slack's limits."""
    title = notification.title.strip() or STATUS[notification.kind]
    header = {"type": "header", "text": {"type": "plain_text", "text": cut(title, MAX_HEADER), "emoji": True}}
    inner: list[dict[str, Any]] = []
    field_list = fields(notification)
    if field_list:
        inner.append({"type": "section", "fields": field_list})
    footer = context(notification, channel)
    budget = MAX_BLOCKS - 1 - len(inner) - 1  # the header and the context block take one each
    sections = split_sections(escape(notification.body))
    if len(sections) > budget:
        sections = sections[:budget]
        last = sections[-1] + "\n" + ELLIPSIS
        sections[-1] = last if len(last) <= MAX_SECTION_TEXT else cut(sections[-1], MAX_SECTION_TEXT)
    inner += [{"type": "section", "text": {"type": "mrkdwn", "text": text}} for text in sections]
    inner.append(footer)
    return {
        "text": cut(escape(title), MAX_TEXT),
        "blocks": [header],
        "attachments": [{"color": colour(notification), "blocks": inner}],
    }
