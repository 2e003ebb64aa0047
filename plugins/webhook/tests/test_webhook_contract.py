"""The webhook channel against the channel contract, in both formats, signed and with a secret header."""

from __future__ import annotations

import contextlib

import tocsin_webhook
from webhook_receiver import WebhookReceiver

from tocsin.testing.channel_contract import ALERT, ChannelContract, Destination, http_destination

SECRET = "hmac-s3cr3t-for-the-contract"
KINDS = {"firing": "firing", "resolved": "resolved", "test": "firing"}


def options(base: str, format: str) -> dict:
    return {"url": base + "hooks/in/T0KEN-IN-PATH?sig=QUERYT0KEN", "format": format, "hmac_secret": SECRET,
            "secret_headers": {"Authorization": "Bearer header-t0ken"}, "headers": {"X-Team": "db"}}


class TestWebhookContract(ChannelContract):
    plugin = tocsin_webhook
    channel_type = "webhook"
    format = "tocsin"

    @contextlib.asynccontextmanager
    async def destination(self, clock, failure=None):
        if failure is not None:
            async with http_destination(clock, failure, lambda base: options(base, self.format)) as destination:
                yield destination
            return
        async with WebhookReceiver(clock=clock, secret=SECRET, format=self.format) as receiver:
            yield Destination(options=options(receiver.url, self.format), messages=lambda: list(receiver.accepted))
            assert {r.headers["authorization"] for r in receiver.requests} <= {"Bearer header-t0ken"}
            assert {r.headers["x-team"] for r in receiver.requests} <= {"db"}

    def assert_delivered(self, messages, kind, alert):
        (body,) = messages
        assert body["kind"] == kind and body["channel"] == "contract"
        if alert is None:
            assert body["alert"] is None and body["title"] == "[TEST] tocsin test notification"
        else:
            assert body["alert"]["labels"] == ALERT.labels and body["alert"]["value"] == 93.0
            assert body["episode_key"] == "tocsin/disk-full/c0ffee00c0ffee01/1"


class TestWebhookAlertmanagerContract(TestWebhookContract):
    format = "alertmanager"

    def assert_delivered(self, messages, kind, alert):
        (body,) = messages
        (sent,) = body["alerts"]
        assert body["status"] == sent["status"] == KINDS[kind] and body["receiver"] == "contract"
        if alert is None:
            assert sent["labels"] == {"alertname": "TocsinTest", "severity": "info"}
        else:
            assert sent["labels"] == ALERT.labels and sent["fingerprint"] == ALERT.fingerprint
            assert body["groupLabels"] == {"alertname": "disk-full"}
