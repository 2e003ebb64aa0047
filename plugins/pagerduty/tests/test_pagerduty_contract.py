"""The pagerduty channel against the channel contract, with a fake PagerDuty that validates every event."""

from __future__ import annotations

import contextlib

import tocsin_pagerduty
from pagerduty_fake import ROUTING_KEY, FakePagerDuty

from tocsin.testing.channel_contract import ChannelContract, Destination, http_destination

EPISODE_KEY = "tocsin/disk-full/c0ffee00c0ffee01/1"


class TestPagerDutyContract(ChannelContract):
    plugin = tocsin_pagerduty
    channel_type = "pagerduty"

    @contextlib.asynccontextmanager
    async def destination(self, clock, failure=None):
        if failure is not None:  # failures echo the request (routing key included) back, unlike PagerDuty
            options = lambda base: {"routing_key": ROUTING_KEY, "url": base + "v2/enqueue"}  # noqa: E731
            async with http_destination(clock, failure, options) as destination:
                yield destination
            return
        async with FakePagerDuty(clock=clock) as pagerduty:
            yield Destination(options={"routing_key": ROUTING_KEY, "url": pagerduty.events_url},
                              messages=lambda: list(pagerduty.events))

    def assert_delivered(self, messages, kind, alert):
        if kind == "test":
            trigger, resolve = messages
            assert trigger["payload"]["summary"] == "[TEST] tocsin test notification"
            assert trigger["dedup_key"].startswith("tocsin/test/contract/")
            assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", trigger["dedup_key"])
            return
        (event,) = messages
        if kind == "resolved":
            assert event == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": EPISODE_KEY}
            return
        payload = event["payload"]
        assert (event["event_action"], event["dedup_key"]) == ("trigger", EPISODE_KEY)
        assert payload["summary"] == "[FIRING] disk-full (critical)" and payload["severity"] == "critical"
        assert (payload["source"], payload["component"], payload["class"]) == ("db-1", "db", "disk-full")
        assert payload["custom_details"]["labels"]["host"] == "db-1"
        assert event["links"] == [{"href": "https://runbooks.example.com/disk", "text": "runbook_url"}]
