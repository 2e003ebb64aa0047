"""The `slack` channel: one Block Kit message per notification to a Slack incoming webhook.

The webhook URL is the credential (its path is the token), so it is a `Secret`: it never appears in reprs,
errors or the delivery log, and the rate limit is keyed by its digest. Slack takes about one message per
second per webhook and answers 429 with `Retry-After` beyond that: the dispatcher spaces messages 1 s apart
and holds the webhook for the time Slack asks. 400, 403, 404 and 410 (`invalid_payload`, `invalid_token`,
`channel_not_found`, `channel_is_archived`, ...) are permanent; 429 and 5xx are retried.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import msgspec

from tocsin.ext import (
    EgressDenied,
    EgressGuard,
    Notification,
    NotificationChannel,
    RateLimit,
    Secret,
    raise_for_status,
    scrub,
)
from tocsin_slack.blocks import message


class SlackChannel(NotificationChannel):
    """Posts notifications to a Slack incoming webhook as Block Kit messages with a severity colour."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        """`webhook_url`: the incoming webhook (https://hooks.slack.com/services/T…/B…/…), kept secret."""

        webhook_url: Secret

    rate_limit: ClassVar[RateLimit] = RateLimit(1, 1.0)

    def validate_config(self) -> list[str]:
        """The webhook URL must be one the egress guard allows (without ever printing it)."""
        url = self.config.webhook_url.reveal()
        try:
            (self.egress or EgressGuard()).check_url(url)
        except EgressDenied as error:
            return [f"webhook_url: {scrub(str(error), [url])}"]
        return []

    def destination(self) -> str:
        """Rate limits apply per webhook; keyed by a digest so the URL is not kept in another place."""
        return "slack:" + hashlib.sha256(self.config.webhook_url.reveal().encode()).hexdigest()[:24]

    def render_preview(self, notification: Notification) -> dict[str, Any]:
        """The JSON body `send` would post."""
        return message(notification, self.name)

    async def send(self, notification: Notification) -> None:
        """POST the message; a non-2xx answer raises DeliveryRefused with Slack's error string."""
        response = await self.http.post(self.config.webhook_url.reveal(), json=message(notification, self.name))
        raise_for_status(response, f"Slack webhook of channel {self.name!r}")

