"""The `webhook` channel: one JSON POST per message, to any URL, optionally signed with HMAC-SHA256.

In tocsin's format a message is one alert event; in Alertmanager's it is a whole group (every alert the group
flushes, as Alertmanager sends it), cut to `max_alerts` with the rest counted in `truncatedAlerts`.

Every request carries `Content-Type: application/json`, `User-Agent: tocsin/<version>`, the event's
`Idempotency-Key` (the same on each retry of one event), the configured `headers` and `secret_headers`, and
with an `hmac_secret` two more: `X-Tocsin-Timestamp` (Unix seconds) and `X-Tocsin-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`. The URL, the HMAC secret and the secret headers are
`Secret`s, never shown in reprs, errors or the delivery log. 2xx is success; 429 and 5xx are retried (429
after its Retry-After); redirects and every other 4xx are permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any, ClassVar, Literal

import msgspec

import tocsin
from tocsin.ext import (
    ChannelRoute,
    EgressDenied,
    EgressGuard,
    Notification,
    NotificationChannel,
    Secret,
    current_render,
    raise_for_status,
    scrub,
)
from tocsin_webhook.payloads import alertmanager_message, event_id, tocsin_event

TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
RESERVED = frozenset({"content-type", "content-length", "host", "idempotency-key", "x-tocsin-signature",
                      "x-tocsin-timestamp", "transfer-encoding", "connection"})


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value: `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookChannel(NotificationChannel):
    """POSTs each alert event as JSON (tocsin's versioned event or Alertmanager's v4 body) to a URL."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        """Where to POST, in which format, how to sign, and which extra headers to send."""

        url: Secret
        format: Literal["tocsin", "alertmanager"] = "tocsin"
        hmac_secret: Secret | None = None
        headers: dict[str, str] = {}
        secret_headers: dict[str, Secret] = {}
        receiver: str = ""
        """Alertmanager format: the `receiver` field (default: the channel's name)."""
        external_url: str = ""
        """Alertmanager format: the `externalURL` field."""
        max_alerts: int = 0
        """Alertmanager format: at most this many alerts per body, the rest counted in `truncatedAlerts` (0: all)."""

        def __post_init__(self) -> None:
            for key, names in (("headers", list(self.headers)), ("secret_headers", list(self.secret_headers))):
                for name in names:
                    if not TOKEN.match(name):
                        raise ValueError(f"{key}: {name!r} is not a valid HTTP header name")
                    if name.lower() in RESERVED:
                        raise ValueError(f"{key}: {name!r} is set by the webhook channel itself")
            both = {n.lower() for n in self.headers} & {n.lower() for n in self.secret_headers}
            if both:
                raise ValueError(f"headers and secret_headers both set {', '.join(sorted(both))}")
            if self.max_alerts < 0:
                raise ValueError(f"max_alerts: expected 0 (every alert) or more, got {self.max_alerts}")
            if self.hmac_secret is not None and not self.hmac_secret:
                raise ValueError("hmac_secret: an empty secret signs nothing; remove the key or set a value")

    max_batch: ClassVar[int | None] = 1
    config: Config

    def __init__(self, config: Config, *, name: str = "") -> None:
        super().__init__(config, name=name)
        if config.format == "alertmanager":
            self.max_batch = None  # type: ignore[misc]  # a whole group per body, as Alertmanager sends it

    def validate_config(self) -> list[str]:
        """The URL must be one the egress guard allows (without ever printing its path)."""
        url = self.config.url.reveal()
        try:
            (self.egress or EgressGuard()).check_url(url)
        except EgressDenied as error:
            return [f"url: {scrub(str(error), [url])}"]
        return []

    def destination(self) -> str:
        """Keyed by a digest of the URL, so the URL is not kept in another place."""
        return "webhook:" + hashlib.sha256(self.config.url.reveal().encode()).hexdigest()[:24]

    def _now_ns(self) -> int:
        return self.monitor.clock.now_ns() if self.monitor is not None else time.time_ns()

    def _group_labels(self, notification: Notification) -> dict[str, str]:
        """The labels of the alert's group on this channel (its `group_by`), as Alertmanager's groupLabels."""
        context = current_render.get()
        if context is not None and context.channel == self.name and context.group_labels:
            return dict(context.group_labels)  # the group the dispatcher is sending
        alert = notification.alert
        if alert is None:
            return {}
        if self.monitor is not None:
            for channel in self.monitor.config.channels:
                if channel.name == self.name:
                    return ChannelRoute.build(channel, self.monitor.config.notifications).group(alert)[1]
        return {"alertname": alert.rule}

    def payload(self, notification: Notification) -> msgspec.Struct:
        """The body as a Struct, in the configured format."""
        if self.config.format == "alertmanager":
            return alertmanager_message(notification, receiver=self.config.receiver or self.name,
                                        group_labels=self._group_labels(notification),
                                        external_url=self.config.external_url, now_ns=self._now_ns(),
                                        max_alerts=self.config.max_alerts)
        return tocsin_event(notification, self.name)

    def request(self, notification: Notification) -> tuple[dict[str, str], bytes]:
        """The headers and body `send` posts (secret header values and the signature included)."""
        body = msgspec.json.encode(self.payload(notification))
        secret_headers = {name: value.reveal() for name, value in self.config.secret_headers.items()}
        headers = {**self.config.headers, **secret_headers, "Content-Type": "application/json",
                   "User-Agent": f"tocsin/{tocsin.__version__}", "Idempotency-Key": event_id(notification)}
        if self.config.hmac_secret is not None:
            timestamp = self._now_ns() // 10**9
            headers["X-Tocsin-Timestamp"] = str(timestamp)
            headers["X-Tocsin-Signature"] = sign(self.config.hmac_secret.reveal(), timestamp, body)
        return headers, body

    def render_preview(self, notification: Notification) -> dict[str, Any]:
        """The body `send` would post, and the names of the headers it would set (no values)."""
        headers, _ = self.request(notification)
        return {"headers": sorted(headers), "body": msgspec.to_builtins(self.payload(notification))}

    async def send(self, notification: Notification) -> None:
        """POST the event; a non-2xx answer raises DeliveryRefused (429 and 5xx are retried)."""
        headers, body = self.request(notification)
        response = await self.http.post(self.config.url.reveal(), content=body, headers=headers)
        raise_for_status(response, f"webhook of channel {self.name!r}")
