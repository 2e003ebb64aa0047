"""The slack channel against a fake Slack that enforces the webhook contract, driven by the real dispatcher.

Everything runs on a VirtualClock: the 1 message/s limit and Retry-After are checked in virtual time.
"""

from __future__ import annotations

import itertools
import re

import httpx
import msgspec
import pytest
import tocsin_slack
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_fake import MENTION, TOKEN_PATH, FakeSlack, check_message
from tocsin_slack.blocks import MAX_BLOCKS, MAX_SECTION_TEXT, message

from tocsin.clock import VirtualClock
from tocsin.errors import ConfigError
from tocsin.models import Alert, Notification
from tocsin.testing import make_monitor
from tocsin.testing.channel_contract import ALERT, T0, deliver_all, dispatch, route
from tocsin.testing.receiver import Reply

SECOND = 10**9
ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def monitor_for(slack: FakeSlack, clock: VirtualClock, *channels: dict, **notifications):
    channels = channels or ({"name": "ops", "type": "slack", "webhook_url": slack.webhook_url},)
    settings = {"group_wait": "0s", "group_interval": "0s", "egress": {"allow": ["127.0.0.1"]}, **notifications}
    return make_monitor(tocsin_slack, config={"channels": list(channels), "notifications": settings}, clock=clock)


def alert(n: int, **changes) -> Alert:
    labels = {**ALERT.labels, "host": f"db-{n}"}
    return msgspec.structs.replace(ALERT, fingerprint=f"fp{n:04d}", labels=labels, **changes)


def section_texts(body: dict) -> list[str]:
    return [block["text"]["text"] for block in body["attachments"][0]["blocks"]
            if block["type"] == "section" and "text" in block]


# -- the message -------------------------------------------------------------------------------------------


def test_one_alert_has_a_header_severity_colour_fields_escaped_body_and_context():
    notification = Notification(title="[FIRING] disk-full (critical)", body="- db-1: Disk <93%> & rising\n",
                                severity="critical", kind="firing", alert=ALERT,
                                idempotency_key="tocsin/disk-full/c0ffee00c0ffee01/1")
    body = message(notification, "ops")
    assert body["text"] == "[FIRING] disk-full (critical)"
    assert body["blocks"] == [{"type": "header", "text": {"type": "plain_text", "emoji": True,
                                                          "text": "[FIRING] disk-full (critical)"}}]
    (attachment,) = body["attachments"]
    assert attachment["color"] == "#E01E5A"
    fields, text, footer = attachment["blocks"]
    assert [f["text"] for f in fields["fields"]] == ["*Severity*\ncritical", "*Status*\nFiring", "*Rule*\ndisk-full",
                                                     "*Value*\n93", "*host*\ndb-1", "*service*\ndb"]
    assert text["text"]["text"] == "- db-1: Disk &lt;93%&gt; &amp; rising"
    assert [e["text"] for e in footer["elements"]] == [
        "tocsin • ops", "Since <!date^1700000000^{date_short_pretty} {time}|2023-11-14 22:13:20 UTC>",
        "<https://runbooks.example.com/disk|runbook_url>"]


def test_a_group_message_shows_only_severity_and_status_and_resolved_is_green():
    notification = Notification(title="[RESOLVED:3] disk-full", body="- a\n- b\n- c\n", severity="critical",
                                kind="resolved", alert=ALERT, idempotency_key="tocsin/group/0123")
    (attachment,) = message(notification, "ops")["attachments"]
    assert attachment["color"] == "#2EB67D"
    assert [f["text"] for f in attachment["blocks"][0]["fields"]] == ["*Severity*\ncritical", "*Status*\nResolved"]


def test_long_text_is_cut_to_slacks_limits_without_breaking_an_entity():
    body = message(Notification(title="x" * 500, body="<&>" * 100_000, kind="failed", severity="error"), "ops")
    blocks = body["blocks"] + body["attachments"][0]["blocks"]
    texts = section_texts(body)
    assert len(blocks) == MAX_BLOCKS and len(body["blocks"][0]["text"]["text"]) == 150
    assert all(len(text) <= MAX_SECTION_TEXT for text in texts) and texts[-1].endswith("…")
    assert not any(ENTITY.search(text) for text in texts)


@settings(max_examples=150, deadline=None)
@given(title=st.text(max_size=400), body=st.text(alphabet=st.sampled_from("ab <>&|*\n\t!@é"), max_size=20_000),
       host=st.text(max_size=3000), kind=st.sampled_from(["firing", "resolved", "acknowledged", "test", "failed"]))
def test_any_text_makes_a_message_slack_accepts_with_no_mention_or_broken_entity(title, body, host, kind):
    alert = msgspec.structs.replace(ALERT, labels={**ALERT.labels, "host": host})
    body = message(Notification(title=title, body=body, kind=kind, alert=alert,
                                idempotency_key="tocsin/disk-full/c0ffee00c0ffee01/1"), "ops")
    texts = check_message(body)  # raises with Slack's error string for anything Slack would refuse
    mrkdwn = [texts[0], *texts[2:]]  # texts[1] is the header, plain text
    assert not any(MENTION.search(text) or ENTITY.search(text) for text in mrkdwn)


# -- against the fake Slack, through the dispatcher ------------------------------------------------------------


async def test_a_huge_escaped_body_goes_out_as_50_blocks_that_slack_accepts():
    clock = VirtualClock(T0)
    async with FakeSlack(clock=clock) as slack:
        channel = {"name": "ops", "type": "slack", "webhook_url": slack.webhook_url,
                   "body_template": "{% for i in range(30000) %}<b>&{% endfor %}"}
        async with monitor_for(slack, clock, channel) as monitor:
            (row,) = await route(monitor.notify, ALERT, "firing")
            await dispatch(monitor.notify)
            state = (await monitor.notify.delivery(row.id)).state
    assert state == "sent" and slack.refused == []
    (body,) = slack.accepted
    assert len(body["blocks"]) + len(body["attachments"][0]["blocks"]) == 50
    assert section_texts(body)[-1].endswith("\n…")


async def test_the_fake_refuses_what_slack_refuses():
    clock = VirtualClock(T0)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    cases = [
        ({"text": "t", "blocks": [section] * 51}, "invalid_blocks"),
        ({"text": "t", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]},
         "invalid_blocks"),
        ({"text": "t", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]},
         "invalid_blocks"),
        ({"blocks": [section]}, "no_text"),
        ({"text": "t", "attachments": [{"color": "red", "blocks": [section]}]}, "invalid_attachments"),
    ]
    async with FakeSlack(clock=clock) as slack, httpx.AsyncClient() as client:
        answers = []
        for body, _ in cases:
            await clock.advance(1)
            response = await client.post(slack.webhook_url, json=body)
            answers.append((response.status_code, response.text))
        await clock.advance(1)
        malformed = await client.post(slack.webhook_url, content=b"{", headers={"content-type": "application/json"})
        await clock.advance(1)
        ok = await client.post(slack.webhook_url, json={"text": "t", "blocks": [section]})
        too_soon = await client.post(slack.webhook_url, json={"text": "t"})
        wrong_path = await client.post(slack.url + "services/T/B/other", json={"text": "t"})
    assert answers == [(400, error) for _, error in cases]
    assert (malformed.status_code, malformed.text) == (400, "invalid_payload")
    assert (ok.status_code, ok.text) == (200, "ok")
    assert (too_soon.status_code, too_soon.text, too_soon.headers["retry-after"]) == (429, "rate_limited", "1")
    assert (wrong_path.status_code, wrong_path.text) == (404, "no_service")


async def test_two_channels_on_one_webhook_share_its_one_message_per_second():
    clock = VirtualClock(T0)
    async with FakeSlack(clock=clock) as slack:
        channels = [{"name": name, "type": "slack", "webhook_url": slack.webhook_url, "group_by": ["..."]}
                    for name in ("ops", "db-team")]
        async with monitor_for(slack, clock, *channels) as monitor:
            for n in range(3):
                await route(monitor.notify, alert(n), "firing")
            await deliver_all(monitor.notify, clock)
            sent = monitor.notify.dispatcher.stats.sent
    assert sent == 6 and len(slack.accepted) == 6 and slack.refused == []
    times = sorted(request.time_ns for request in slack.requests)
    assert [b - a for a, b in itertools.pairwise(times)] == [SECOND] * 5


async def test_429_retry_after_holds_the_webhook_for_every_message_waiting_on_it():
    clock = VirtualClock(T0)
    async with FakeSlack(clock=clock) as slack:
        slack.script.append(Reply(429, {"Retry-After": "5"}, b"rate_limited"))
        async with monitor_for(slack, clock, group_by=["..."]) as monitor:
            first, second = [(await route(monitor.notify, alert(n), "firing"))[0] for n in range(2)]
            await deliver_all(monitor.notify, clock)
            attempts = [[a.outcome for a in await monitor.notify.attempts(row.id)] for row in (first, second)]
    assert sorted(attempts) == [["rate_limited", "sent"], ["sent"]]
    assert [request.time_ns - T0 for request in slack.requests] == [0, 5 * SECOND, 6 * SECOND]
    assert slack.refused == []


@pytest.mark.parametrize(("status", "error"), [(400, "invalid_payload"), (403, "action_prohibited"),
                                                (404, "channel_not_found"), (410, "channel_is_archived")])
async def test_slacks_4xx_errors_are_permanent_after_one_attempt(status, error):
    clock = VirtualClock(T0)
    async with FakeSlack(clock=clock) as slack:
        slack.script.append(Reply(status, body=error.encode()))
        async with monitor_for(slack, clock) as monitor:
            (row,) = await route(monitor.notify, ALERT, "firing")
            await deliver_all(monitor.notify, clock)
            (attempt,) = await monitor.notify.attempts(row.id)
            final = await monitor.notify.delivery(row.id)
    assert (final.state, attempt.outcome, attempt.status_code) == ("failed", "permanent", status)
    assert attempt.error == f"DeliveryRefused: Slack webhook of channel 'ops' answered {status}: {error}"


async def test_rollup_error_500_is_retried_and_then_delivered():
    clock = VirtualClock(T0)
    async with FakeSlack(clock=clock) as slack:
        slack.script.append(Reply(500, body=b"rollup_error"))
        async with monitor_for(slack, clock) as monitor:
            (row,) = await route(monitor.notify, ALERT, "firing")
            await deliver_all(monitor.notify, clock)
            outcomes = [a.outcome for a in await monitor.notify.attempts(row.id)]
    assert outcomes == ["retryable", "sent"] and len(slack.accepted) == 1


async def test_label_values_cannot_mention_the_channel_or_add_links():
    clock = VirtualClock(T0)
    sneaky = msgspec.structs.replace(ALERT, labels={**ALERT.labels, "host": "<!channel> <http://evil.example|x>"},
                                     annotations={"summary": "<@U024BE7LH> look"})
    async with FakeSlack(clock=clock) as slack, monitor_for(slack, clock) as monitor:
        await route(monitor.notify, sneaky, "firing")
        await dispatch(monitor.notify)
    (body,) = slack.accepted
    assert slack.mentions == []
    fields = [field["text"] for field in body["attachments"][0]["blocks"][0]["fields"]]
    assert "*host*\n&lt;!channel&gt; &lt;http://evil.example|x&gt;" in fields
    assert section_texts(body)[0].endswith("&lt;@U024BE7LH&gt; look")


async def test_a_webhook_url_the_egress_guard_refuses_is_a_config_error_that_hides_the_token():
    url = "https://10.1.2.3" + TOKEN_PATH
    with pytest.raises(ConfigError) as caught:
        make_monitor(tocsin_slack, config={"channels": [{"name": "ops", "type": "slack", "webhook_url": url}]})
    assert "channels[0]: webhook_url: refusing to connect to 10.1.2.3" in str(caught.value)
    assert TOKEN_PATH not in str(caught.value)


# -- a storm against a strict 1 msg/s webhook, with time flowing while requests travel ------------------


class DistantSlack(FakeSlack):
    """The fake Slack, far away: request n reaches it `latencies[n]` s (virtual) after it was sent; `busy`
    maps a request number to Slack's own 429 for it (a Retry-After the sender must honour)."""

    def __init__(self, *, clock: VirtualClock, latencies: list[float], busy: dict[int, Reply] | None = None) -> None:
        super().__init__(clock=clock)
        self.latencies = latencies
        self.busy = busy or {}
        self.arrived = 0

    async def _read(self, reader):
        number, self.arrived = self.arrived, self.arrived + 1
        await self.clock.sleep(self.latencies[number % len(self.latencies)])
        return await super()._read(reader)

    def reply(self, request):
        """Slack's answer, or the scripted 429 for this request number."""
        return self.busy.pop(len(self.requests), None) or super().reply(request)


async def storm(slack: DistantSlack, clock: VirtualClock, alerts: int = 20, limit_s: float = 60.0):
    """Route `alerts` alerts at once (one message each), then let virtual time flow in 10 ms steps,
    polling the outbox every second, until all are sent; returns the monitor's notify service."""
    async with monitor_for(slack, clock, group_by=["..."]) as monitor:
        service = monitor.notify
        rows = [(await route(service, alert(n), "firing"))[0] for n in range(alerts)]
        for step in range(round(limit_s * 100)):
            if step % 100 == 0:
                await service.dispatch_due()
            if service.dispatcher.stats.sent == alerts:
                break
            await clock.advance(0.01)
        attempts = [[a.outcome for a in await service.attempts(row.id)] for row in rows]
        await service.stop()
    return service, attempts


LATENCIES = [0.35, 0.02, 0.12, 0.01, 0.2, 0.05]  # the first request opens the connection: slower


async def test_a_storm_of_20_alerts_to_a_strict_webhook_gets_no_429_and_is_delivered_within_22_s():
    clock = VirtualClock(T0)
    async with DistantSlack(clock=clock, latencies=LATENCIES) as slack:
        service, attempts = await storm(slack, clock)
    assert service.dispatcher.stats.sent == 20 and len(slack.accepted) == 20
    assert slack.refused == [] and all(outcome == ["sent"] for outcome in attempts)  # zero 429s
    times = [request.time_ns for request in slack.requests]
    assert min(b - a for a, b in itertools.pairwise(times)) >= SECOND
    assert times[-1] - T0 <= 22 * SECOND, f"the last message arrived after {(times[-1] - T0) / SECOND:.2f} s"


async def test_slacks_429_with_retry_after_pushes_back_every_later_message_of_the_storm():
    clock = VirtualClock(T0)
    busy = {4: Reply(429, {"Retry-After": "3"}, b"rate_limited")}
    async with DistantSlack(clock=clock, latencies=LATENCIES, busy=busy) as slack:
        service, attempts = await storm(slack, clock)
    assert service.dispatcher.stats.sent == 20 and len(slack.accepted) == 20
    assert slack.refused == []  # the strict limit was never hit, before or after Slack's own 429
    assert [outcomes for outcomes in attempts if outcomes != ["sent"]] == [["rate_limited", "sent"]]
    times = [request.time_ns for request in slack.requests]
    assert all(later >= times[4] + 3 * SECOND for later in times[5:])  # nothing went out during Retry-After
    assert times[-1] - T0 <= 25 * SECOND
