"""The Discord channel against loopback HTTP receivers, with no network.

`ChannelContract` is the suite every tocsin channel passes, through tocsin's real dispatcher (config,
delivery in order, retries, secrets kept out of logs and errors); the test below it checks what is
particular to Discord.
"""

import tocsin_discord
from tocsin_discord import DiscordChannel

from tocsin.ext import EgressGuard, Notification, Secret
from tocsin.testing.channel_contract import ChannelContract, http_destination
from tocsin.testing.receiver import HttpReceiver


class TestDiscordContract(ChannelContract):
    plugin = tocsin_discord
    channel_type = "discord"

    def destination(self, clock, failure=None):
        return http_destination(clock, failure, lambda base: {"webhook_url": base + "api/webhooks/1/t0ken"})

    def assert_delivered(self, messages, kind, alert):
        (request,) = messages
        assert request.path == "/api/webhooks/1/t0ken"
        prefix = {"firing": "**[FIRING]", "resolved": "**[RESOLVED]", "test": "**[TEST]"}[kind]
        assert request.json()["content"].startswith(prefix)


async def test_long_messages_are_cut_and_mentions_never_ping():
    async with HttpReceiver(default=204) as discord:
        channel = DiscordChannel(DiscordChannel.Config(webhook_url=Secret(discord.url)), name="chat")
        channel.egress = EgressGuard(["127.0.0.1"])  # the notify service sets this from [notifications.egress]
        await channel.send(Notification(title="@everyone disk full", body="x" * 5000))
        await channel.aclose()
    body = discord.requests[0].json()
    assert len(body["content"]) == 2000 and body["content"].endswith("…")
    assert body["allowed_mentions"] == {"parse": []}
