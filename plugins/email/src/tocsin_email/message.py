"""What an email says: the subject, the plain-text part and the HTML part, put together as one message.

The Notification carries every alert of its message (`alerts`), and while the dispatcher sends it the
message's render context is current (`current_render`, with the group's labels), so the HTML part lists every
alert the plain-text body lists. A channel driven by hand gets a context built from the notification's alerts.

The plain-text part is the rendered title and body as they are; every value in the HTML part is escaped.
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import importlib.resources
import logging
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from tocsin.ext import (
    HTML,
    Notification,
    RenderContext,
    RenderError,
    Template,
    compile_template,
    context_for,
    current_render,
)
from tocsin_email.config import EmailConfig, mailbox

MAX_SUBJECT_CHARS = 200
COLOURS = {"critical": "#c62828", "error": "#d84315", "warning": "#b26a00", "info": "#1565c0",
           "resolved": "#2e7d32", "acknowledged": "#6a1b9a", "test": "#455a64", "failed": "#c62828"}

internal_log = logging.getLogger("tocsin")


def context_of(channel: str, notification: Notification) -> RenderContext:
    """The render context of the message being sent to `channel`, or one built from the notification's alerts."""
    context = current_render.get()
    if context is not None and context.channel == channel and context.kind == notification.kind:
        return context
    return context_for(notification, channel=channel)


@dataclass(frozen=True)
class Parts:
    """A rendered email: its subject, plain-text body and HTML body (None when HTML is switched off)."""

    subject: str
    text: str
    html: str | None


@functools.cache
def html_template() -> Template:
    """The packaged HTML template, compiled once in tocsin's escaping sandbox."""
    source = importlib.resources.files("tocsin_email").joinpath("templates/message.html").read_text("utf-8")
    return Template(source, HTML.from_string(source), html=True)


def render(config: EmailConfig, channel: str, notification: Notification) -> Parts:
    """Subject, text and HTML for one notification sent by the channel named `channel`."""
    context = context_of(channel, notification)
    variables = context.variables()
    for alert in variables["listed"]:
        _decorate(alert)
    links = _web_links(notification.links.items())
    subject = _subject(config, notification, variables)
    text = _text(notification, variables["listed"], links)
    html = None
    if config.html:
        accent = COLOURS.get(context.kind if context.kind != "firing" else variables["severity"], COLOURS["info"])
        html = html_template().render({**variables, "title": notification.title, "body": notification.body,
                                       "links": links, "accent": accent})
    return Parts(subject=subject, text=text, html=html)


def build(config: EmailConfig, parts: Parts, notification: Notification) -> EmailMessage:
    """The MIME message: multipart/alternative with the plain text first and the HTML second."""
    message = EmailMessage()
    message["Subject"] = parts.subject
    message["From"] = config.sender
    message["To"] = ", ".join(config.to)
    if config.cc:
        message["Cc"] = ", ".join(config.cc)
    message["Date"] = email.utils.formatdate(usegmt=True)
    domain = mailbox(config.sender, "from").rpartition("@")[2]
    message["Message-ID"] = email.utils.make_msgid("tocsin", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    key = " ".join(notification.idempotency_key.split())
    if key:
        message["X-Tocsin-Key"] = key
        thread = hashlib.sha256(key.encode()).hexdigest()[:32]
        message["References"] = f"<{thread}@{domain}>"  # firing, reminders and resolve of an episode thread
    message.set_content(parts.text)
    if parts.html is not None:
        message.add_alternative(parts.html, subtype="html")
    return message


def _subject(config: EmailConfig, notification: Notification, variables: dict[str, Any]) -> str:
    subject = notification.title
    if config.subject is not None:
        try:
            subject = compile_template(config.subject, what="subject").render(
                {**variables, "title": notification.title})
        except RenderError as error:
            internal_log.warning("tocsin: the email subject template failed, the title was used: %s", error)
    subject = " ".join(subject.split()) or "tocsin notification"
    return subject if len(subject) <= MAX_SUBJECT_CHARS else subject[: MAX_SUBJECT_CHARS - 1] + "…"


def _text(notification: Notification, listed: list[dict[str, Any]], links: list[tuple[str, str]]) -> str:
    every = list(dict.fromkeys([*links, *(pair for alert in listed for pair in alert["urls"])]))
    text = f"{notification.title}\n\n{notification.body.rstrip()}\n"
    if every:
        text += "\nLinks:\n" + "".join(f"- {name}: {url}\n" for name, url in every)
    return text


def _decorate(alert: dict[str, Any]) -> None:
    """Add what the HTML template shows of one alert: colour, value, notes, web links and since when."""
    annotations: dict[str, str] = alert["annotations"]
    alert["colour"] = COLOURS["resolved"] if alert["status"] == "resolved" else COLOURS.get(alert["severity"])
    alert["value_text"] = f"{alert['value']:.6g}" if alert["value"] is not None else ""
    alert["urls"] = _web_links((key, value) for key, value in sorted(annotations.items()) if key.endswith("_url"))
    linked = {name for name, _ in alert["urls"]}
    alert["notes"] = [(key, value) for key, value in sorted(annotations.items())
                      if key != "summary" and key not in linked]
    if alert["status"] == "resolved" and alert["resolved_at_ns"]:
        alert["since"] = f"Resolved at {_utc(alert['resolved_at_ns'])}"
    elif alert["fired_at_ns"]:
        alert["since"] = f"Firing since {_utc(alert['fired_at_ns'])}"
    else:
        alert["since"] = ""


def _web_links(pairs: Any) -> list[tuple[str, str]]:
    """The (name, url) pairs whose URL is http or https; anything else (javascript:, data:) is no link."""
    return [(name, url) for name, url in pairs if url.lower().startswith(("https://", "http://"))]


def _utc(time_ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time_ns / 1e9))
