"""The slack channel against the channel contract: a fake Slack that enforces Block Kit limits when it accepts."""

from __future__ import annotations

import contextlib

import tocsin_slack
from slack_fake import FakeSlack

from tocsin.testing.channel_contract import ChannelContract, Destination, http_destination

HEADERS = {"firing": "[FIRING] disk-full (critical)", "resolved": "[RESOLVED] disk-full",
           "test": "[TEST] tocsin test notification"}
COLOURS = {"firing": "#E01E5A", "resolved": "#2EB67D", "test": "#439FE0"}


class TestSlackContract(ChannelContract):
    plugin = tocsin_slack
    channel_type = "slack"

    @contextlib.asynccontextmanager
    async def destination(self, clock, failure=None):
        if failure is not None:  # failures echo the request (token path included) back, unlike Slack
            async with http_destination(clock, failure, lambda base: {"webhook_url": base + "services/T/B/tok"}) as d:
                yield d
            return
        async with FakeSlack(clock=clock) as slack:
            yield Destination(options={"webhook_url": slack.webhook_url}, messages=lambda: list(slack.accepted))

    def assert_delivered(self, messages, kind, alert):
        (body,) = messages
        assert body["blocks"][0]["text"]["text"] == HEADERS[kind] == body["text"]
        (attachment,) = body["attachments"]
        assert attachment["color"] == COLOURS[kind]
        texts = [element["text"] for block in attachment["blocks"] for element in
                 block.get("fields", []) + block.get("elements", []) + ([block["text"]] if "text" in block else [])]
        if alert is not None:
            assert "*host*\ndb-1" in texts and "*Value*\n93" in texts
            assert any("Disk 93% full on db-1 &lt;&amp;&gt;" in text for text in texts)
