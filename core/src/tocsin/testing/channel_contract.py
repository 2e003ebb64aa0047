"""The channel contract: the tests every notification channel plugin passes, against a real receiver on loopback.

A channel plugin's test module subclasses `ChannelContract`, names its plugin and channel type, and says how
to start a receiver and what a delivered message must look like:

    class TestSlackContract(ChannelContract):
        plugin = tocsin_slack
        channel_type = "slack"

        def destination(self, clock, failure=None):
            return http_destination(clock, failure, lambda base: {"webhook_url": base + "services/T0/B0/XYZ"})

        def assert_delivered(self, messages, kind, alert):
            (request,) = messages
            assert request.json()["text"].startswith("[FIRING]" if kind == "firing" else ...)

The contract drives the channel as a user's config would, through the real notify service (router, outbox,
dispatcher) on a virtual clock: it builds from a `[[channels]]` entry; delivers a firing, then a resolved,
then a test notification; a retryable failure (5xx, SMTP 4xx) is retried later and a permanent one (4xx,
SMTP 5xx) fails after one attempt; and no secret of the channel's config reaches the delivery log, the
events, the logs (httpx's included), previews, reprs or `tocsin plugins`, even when the receiver echoes the
request in its error answer. The destination must configure at least one secret, so that check means something.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import msgspec
import pytest

from tocsin.clock import VirtualClock
from tocsin.errors import ConfigError
from tocsin.models import Alert, AlertTransition, Delivery
from tocsin.monitor import Monitor
from tocsin.notify.redact import secrets_in
from tocsin.notify.service import NotifyService
from tocsin.plugins import describe_plugins
from tocsin.testing import make_monitor
from tocsin.testing.receiver import HttpReceiver, ReceivedRequest, Reply
from tocsin.values import Secret

Failure = Literal["retryable", "permanent"]
T0 = 1_700_000_000 * 10**9
"""The virtual time every contract test starts at."""
NAME = "contract"
"""The name of the channel under test in the contract's config."""

ALERT = Alert(
    fingerprint="c0ffee00c0ffee01",
    rule="disk-full",
    labels={"alertname": "disk-full", "severity": "critical", "host": "db-1", "service": "db"},
    annotations={"summary": "Disk 93% full on db-1 <&>", "runbook_url": "https://runbooks.example.com/disk"},
    severity="critical",
    state="firing",
    value=93.0,
    episode=1,
    active_at_ns=T0,
    fired_at_ns=T0,
    updated_ns=T0,
)
"""The alert the contract notifies about (a firing, critical alert with labels, annotations and a value)."""


@dataclass
class Destination:
    """A running receiver: the channel's `[[channels]]` keys pointing at it, and what it has received so far."""

    options: dict[str, Any]
    messages: Callable[[], Sequence[Any]]
    allow: list[str] = field(default_factory=lambda: ["127.0.0.1"])


class EchoingReceiver(HttpReceiver):
    """An HttpReceiver that answers every request with `status` (200 `ok` when None), echoing the request back.

    The echo (request line, headers, body) is what careless servers do with errors; it puts a webhook token or
    a routing key into the error text, which the dispatcher must scrub before the delivery log sees it.
    """

    def __init__(self, status: int | None, *, clock: VirtualClock) -> None:
        super().__init__(clock=clock)
        self.status = status

    def reply(self, request: ReceivedRequest) -> Reply:
        """200 `ok`, or the failure status with the request echoed."""
        if self.status is None:
            return super().reply(request)
        headers = "".join(f"{name}: {value}\n" for name, value in request.headers.items())
        echo = f"{request.method} {request.path}\n{headers}\n".encode() + request.body
        return Reply(self.status, body=echo)


FAILURE_STATUS: dict[Failure, int] = {"retryable": 503, "permanent": 400}


@contextlib.asynccontextmanager
async def http_destination(clock: VirtualClock, failure: Failure | None,
                           options: Callable[[str], dict[str, Any]]) -> AsyncIterator[Destination]:
    """A Destination on an EchoingReceiver (503 for retryable, 400 for permanent); `options(base_url)` are the keys."""
    async with EchoingReceiver(FAILURE_STATUS[failure] if failure else None, clock=clock) as receiver:
        yield Destination(options=options(receiver.url), messages=lambda: list(receiver.requests))


def encoded(value: Any) -> str:
    """JSON for anything the contract inspects: a Secret shows as `<secret>`, other odd values as str()."""
    return msgspec.json.encode(value, enc_hook=lambda v: "<secret>" if isinstance(v, Secret) else str(v)).decode()


def transition(alert: Alert, kind: str, now_ns: int) -> AlertTransition:
    """The alert transition that makes a `kind` notification (firing, resolved or acknowledged)."""
    before = {"firing": "pending", "resolved": "firing", "acknowledged": "active"}[kind]
    return AlertTransition(fingerprint=alert.fingerprint, rule=alert.rule, time_ns=now_ns, from_state=before,
                           to_state=kind)


async def route(service: NotifyService, alert: Alert, kind: str) -> list[Delivery]:
    """Route one alert event and store its outbox rows with the transition, as the alerting engine does."""
    now = service.monitor.clock.now_ns()
    change = transition(alert, kind, now)
    rows = service.router.deliveries_for(alert, change, now)
    await service.monitor.storage.save_alert(alert, [change], rows)
    return rows


async def dispatch(service: NotifyService) -> None:
    """One dispatch round, waited out."""
    await service.dispatch_due()
    await service.settled()


async def deliver_all(service: NotifyService, clock: VirtualClock, *, step_s: float = 1.0, limit_s: float = 600.0
                      ) -> None:
    """Dispatch, then move the clock on by `step_s`, until no delivery is pending or sending (retries included)."""
    for _ in range(round(limit_s / step_s)):
        await dispatch(service)
        rows = (await service.deliveries()).items
        if not any(row.state in ("pending", "sending") for row in rows):
            return
        await clock.advance(step_s)
    raise AssertionError(f"deliveries still pending after {limit_s:g} s of virtual time")


class ChannelContract:
    """Subclass it in a channel plugin's tests; set `plugin` and `channel_type`, implement the two methods below."""

    plugin: ClassVar[object]
    """What registers the channel type (usually the plugin's module)."""
    channel_type: ClassVar[str]
    """The name the plugin registers the channel under."""

    def destination(self, clock: VirtualClock, failure: Failure | None = None
                    ) -> AbstractAsyncContextManager[Destination]:
        """Start a receiver that accepts every message, or fails each with a `failure` of that class."""
        raise NotImplementedError(f"{type(self).__name__} must say how to start its receiver (destination)")

    def assert_delivered(self, messages: Sequence[Any], kind: str, alert: Alert | None) -> None:
        """Assert that `messages` (what one send delivered, in order) tell receivers about this `kind` of event."""
        raise NotImplementedError(f"{type(self).__name__} must say what a delivered message is (assert_delivered)")

    # -- helpers -----------------------------------------------------------------------------------------

    def monitor(self, destination: Destination, clock: VirtualClock, **options: Any) -> Monitor:
        """A monitor whose one channel, named "contract", is the channel under test pointed at `destination`."""
        channel = {"name": NAME, "type": self.channel_type, **destination.options, **options}
        notifications = {"group_wait": "0s", "group_interval": "0s", "egress": {"allow": destination.allow}}
        return make_monitor(self.plugin, config={"channels": [channel], "notifications": notifications}, clock=clock)

    # -- the contract ------------------------------------------------------------------------------------

    async def test_builds_from_its_config_section_with_its_secrets_hidden(self):
        clock = VirtualClock(T0)
        async with self.destination(clock) as destination:
            monitor = self.monitor(destination, clock)
        channel = monitor.notify.channels[NAME]
        assert type(channel) is monitor.registries.channels.get(self.channel_type)
        secrets = secrets_in(channel.config)
        assert secrets, "the contract's destination must configure the channel's secrets"
        plugins = describe_plugins(monitor.pm, monitor.registries)
        shown = [repr(monitor.config), encoded(monitor.config), encoded(plugins)]
        for secret in secrets:
            assert not any(secret in text for text in shown)

    async def test_an_unknown_option_is_a_config_error_naming_its_path(self):
        clock = VirtualClock(T0)
        async with self.destination(clock) as destination:
            with pytest.raises(ConfigError, match=r"channels\[0\]\.no_such_option"):
                self.monitor(destination, clock, no_such_option=1)

    async def test_firing_then_resolved_are_delivered_in_order(self):
        clock = VirtualClock(T0)
        resolved = msgspec.structs.replace(ALERT, state="resolved", resolved_at_ns=T0 + 60 * 10**9,
                                           updated_ns=T0 + 60 * 10**9)
        async with self.destination(clock) as destination, self.monitor(destination, clock) as monitor:
            service = monitor.notify
            (fired,) = await route(service, ALERT, "firing")
            await dispatch(service)
            after_firing = len(destination.messages())
            self.assert_delivered(destination.messages(), "firing", ALERT)
            await clock.advance(60)
            (ended,) = await route(service, resolved, "resolved")
            await dispatch(service)
            self.assert_delivered(destination.messages()[after_firing:], "resolved", resolved)
            states = [(await service.delivery(row.id)).state for row in (fired, ended)]
        assert states == ["sent", "sent"]

    async def test_a_test_send_is_delivered(self):
        clock = VirtualClock(T0)
        async with self.destination(clock) as destination, self.monitor(destination, clock) as monitor:
            result = await monitor.notify.test(NAME)
        assert result.ok, result.error
        self.assert_delivered(destination.messages(), "test", None)

    async def test_a_retryable_failure_is_retried_later(self):
        clock = VirtualClock(T0)
        async with self.destination(clock, "retryable") as destination, self.monitor(destination, clock) as monitor:
            service = monitor.notify
            (row,) = await route(service, ALERT, "firing")
            await dispatch(service)
            (attempt,) = await service.attempts(row.id)
            after = await service.delivery(row.id)
        assert attempt.outcome == "retryable", attempt.error
        assert after.state == "pending" and after.next_attempt_ns > T0

    async def test_a_permanent_failure_fails_after_one_attempt(self):
        clock = VirtualClock(T0)
        async with self.destination(clock, "permanent") as destination, self.monitor(destination, clock) as monitor:
            service = monitor.notify
            (row,) = await route(service, ALERT, "firing")
            await dispatch(service)
            attempts = await service.attempts(row.id)
            after = await service.delivery(row.id)
        assert [a.outcome for a in attempts] == ["permanent"] and after.state == "failed"

    async def test_secrets_stay_out_of_errors_events_logs_and_previews(self, caplog):
        caplog.set_level(logging.DEBUG)
        clock = VirtualClock(T0)
        async with self.destination(clock, "permanent") as destination, self.monitor(destination, clock) as monitor:
            service = monitor.notify
            events = monitor.events.subscribe(["notifications"])
            (row,) = await route(service, ALERT, "firing")
            await dispatch(service)
            (attempt,) = await service.attempts(row.id)
            stored = await service.delivery(row.id)
            tested = await service.test(NAME)
            preview = service.preview(ALERT, NAME)
            secrets = secrets_in(service.channels[NAME].config)
        assert attempt.error and not tested.ok
        seen = [attempt.error, stored.last_error, tested.error,
                encoded([e.data for e in events.drain()]), encoded(preview), caplog.text]
        assert secrets
        for secret in secrets:
            assert not any(secret in text for text in seen)
