"""tocsin-webhook: the `webhook` notification channel, a signed JSON POST per alert event.

    [[channels]]
    name = "incidents-api"
    type = "webhook"
    url = "${INCIDENTS_WEBHOOK_URL}"
    hmac_secret = "${INCIDENTS_WEBHOOK_SECRET}"
    format = "tocsin"            # or "alertmanager" (the Alertmanager webhook body, version "4")
"""

from __future__ import annotations

from tocsin import hookimpl
from tocsin_webhook.channel import WebhookChannel, sign
from tocsin_webhook.payloads import AlertmanagerAlert, AlertmanagerMessage, WebhookAlert, WebhookEvent

__all__ = ["AlertmanagerAlert", "AlertmanagerMessage", "WebhookAlert", "WebhookChannel", "WebhookEvent",
           "register_notification_channels", "sign"]


@hookimpl
def register_notification_channels(register):
    """The `webhook` channel type."""
    register("webhook", WebhookChannel)
