"""The `pagerduty` channel: PagerDuty Events API v2, one event per alert event, deduplicated per firing episode.

The routing (integration) key is a `Secret`: it is in every request body but never in a repr, an error, the
delivery log or a preview, and the rate limit (PagerDuty allows about 120 events a minute per key) is keyed
by its digest. Answers: 202 is success; 400 (an invalid event) is permanent; 429 is retried, no sooner than
30 s later unless PagerDuty says otherwise (its advice is to retry 30 s apart); 5xx and network errors are
retried with backoff.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, ClassVar

import msgspec

from tocsin.ext import (
    DeliveryRefused,
    EgressDenied,
    EgressGuard,
    Notification,
    NotificationChannel,
    RateLimit,
    Secret,
    Verdict,
    raise_for_status,
)
from tocsin_pagerduty.events import EventSettings, events

ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
THROTTLED_RETRY_S = 30.0


class PagerDutyChannel(NotificationChannel):
    """Triggers, acknowledges and resolves PagerDuty alerts as tocsin alerts fire, are acknowledged and resolve."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        """The integration's routing key (secret), the endpoint, and how triggers describe an alert."""

        routing_key: Secret
        url: str = "https://events.pagerduty.com/v2/enqueue"
        source: str = ""
        """`payload.source`; empty: the alert's `instance` or `host` label, else "tocsin"."""
        component_label: str = "service"
        group_label: str = "team"
        client: str = "tocsin"
        client_url: str = ""

        def __post_init__(self) -> None:
            if not ROUTING_KEY.match(self.routing_key.reveal()):
                raise ValueError("routing_key: an Events API v2 integration key is 32 letters and digits")

    max_batch: ClassVar[int] = 1
    rate_limit: ClassVar[RateLimit] = RateLimit(120, 60.0)

    def __init__(self, config: msgspec.Struct, *, name: str = "") -> None:
        super().__init__(config, name=name)
        c = self.config
        self.settings = EventSettings(source=c.source, component_label=c.component_label,
                                      group_label=c.group_label, client=c.client, client_url=c.client_url)

    def validate_config(self) -> list[str]:
        """The endpoint must be one the egress guard allows."""
        try:
            (self.egress or EgressGuard()).check_url(self.config.url)
        except EgressDenied as error:
            return [f"url: {error}"]
        return []

    def destination(self) -> str:
        """Rate limits apply per routing key; keyed by a digest so the key is not kept in another place."""
        return "pagerduty:" + hashlib.sha256(self.config.routing_key.reveal().encode()).hexdigest()[:24]

    def classify_error(self, error: BaseException) -> Verdict:
        """The HTTP matrix, with a throttled (429) event retried no sooner than 30 s unless told otherwise."""
        if isinstance(error, DeliveryRefused) and error.status_code == 429 and error.retry_after_s is None:
            return Verdict.rate_limited(THROTTLED_RETRY_S)
        return super().classify_error(error)

    def render_preview(self, notification: Notification) -> dict[str, Any]:
        """The events `send` would post, with the routing key shown as `<secret>`."""
        return {"url": self.config.url, "events": events(notification, "<secret>", self.settings)}

    async def send(self, notification: Notification) -> None:
        """POST each event of the notification; PagerDuty's 202 is success, anything else raises."""
        if notification.kind in ("acknowledged", "resolved") and not notification.idempotency_key:
            raise DeliveryRefused("an acknowledge or resolve needs the dedup_key of its trigger, and this "
                                  "notification has no idempotency key", permanent=True)
        for event in events(notification, self.config.routing_key.reveal(), self.settings):
            response = await self.http.post(self.config.url, json=event)
            raise_for_status(response, f"PagerDuty ({event['event_action']}) for channel {self.name!r}")
