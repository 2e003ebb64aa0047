"""The notify service: channels built from config, the router the alerting engine calls, and the dispatcher loop.

`NotifyService(monitor)` builds every `[[channels]]` entry (checking each channel's config and the fallback
names), and exposes:

- `router`: `deliveries_for(alert, transition, now_ns)` for the alerting engine (see `tocsin.notify.routing`);
- `start()` / `stop()`: the dispatcher loop on `monitor.clock`, polling the outbox every `poll_interval`;
- `dispatch_due(now_ns)` and `settled()`: one deterministic dispatch round, for tests and tools;
- `preview(alert, channel)`: exactly what a channel would send for an alert event, and whether it would;
- `test(channel)`: send a test message now, through the same guard, timeout and classification;
- `deliveries(...)`, `delivery(id)`, `attempts(id)`: the delivery log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from tocsin.errors import ConfigError, ConfigProblem, TocsinError, UnknownName
from tocsin.models import Alert, Delivery, DeliveryAttempt, Event, Notification
from tocsin.notify.channel import NotificationChannel
from tocsin.notify.dispatch import AttemptResult, Dispatcher, decode_alert
from tocsin.notify.egress import EgressGuard
from tocsin.notify.ledger import Ledger
from tocsin.notify.redact import secrets_in
from tocsin.notify.retry import RetryPolicy
from tocsin.notify.routing import Router, config_rule_channels, episode_key
from tocsin.notify.templates import RenderContext, current_render, overrides, rendered
from tocsin.storage.protocol import DeliveryQuery, Page, StorageBackend

if TYPE_CHECKING:
    from tocsin.config.schema import Config
    from tocsin.runtime import Runtime

internal_log = logging.getLogger("tocsin")

PRUNE_EVERY_S = 60.0
STOP_GRACE_S = 5.0


class Preview(msgspec.Struct, kw_only=True):
    """What a channel would send for an alert event, and whether routing would send it at all (and why not)."""

    channel: str
    would_send: bool
    reason: str = ""
    notification: Notification
    payload: dict[str, Any]


class TestResult(msgspec.Struct, kw_only=True):
    """How a test send went: ok, the attempt's outcome, latency, status and scrubbed error."""

    __test__ = False  # not a pytest class

    channel: str
    ok: bool
    outcome: str
    latency_s: float
    status_code: int | None = None
    error: str = ""


def egress_guard(config: Config) -> EgressGuard:
    """The egress guard `[notifications.egress]` describes."""
    egress = config.notifications.egress
    return EgressGuard(egress.allow, allow_private=egress.allow_private, max_response_bytes=egress.max_response_bytes)


def build_channels(
    config: Config, registries: Any, egress: EgressGuard, monitor: Runtime | None = None
) -> tuple[dict[str, NotificationChannel], list[ConfigProblem]]:
    """Build every configured channel behind `egress` and run its own config check; (channels, problems)."""
    problems: list[ConfigProblem] = []
    channels: dict[str, NotificationChannel] = {}
    for i, entry in enumerate(config.channels):
        path = f"channels[{i}]"
        cls = registries.channels.get(entry.type)
        try:
            channel = cls(entry.options if entry.options is not None else cls.Config(), name=entry.name)
        except Exception as error:
            problems.append(ConfigProblem(path, f"channel type {entry.type!r} could not be built: {error}"))
            continue
        channel.monitor = monitor
        channel.egress = egress
        problems.extend(ConfigProblem(path, problem) for problem in channel.validate_config())
        channels[entry.name] = channel
    return channels, problems


def channel_problems(config: Config, registries: Any) -> list[ConfigProblem]:
    """What building the channels at startup would report, found without starting anything (`config check`)."""
    return build_channels(config, registries, egress_guard(config))[1]


class NotifyService:
    """Notifications for one monitor: routing, the outbox dispatcher, previews, test sends and the delivery log."""

    def __init__(self, monitor: Runtime, *, egress: EgressGuard | None = None) -> None:
        self.monitor = monitor
        config = monitor.config
        settings = config.notifications
        self.settings = settings
        self.egress = egress or egress_guard(config)
        self.channels = self._build_channels()
        self.ledger = Ledger(started_ns=monitor.clock.now_ns())
        self.overflow = 0
        self.router = Router(config.channels, settings, ledger=self.ledger,
                             rule_channels=config_rule_channels(config.alerting.rules), on_drop=self._outbox_full)
        self.dispatcher = Dispatcher(
            storage=self._storage,
            channels=self.channels,
            router=self.router,
            ledger=self.ledger,
            policy=RetryPolicy.from_config(settings),
            clock=monitor.clock,
            render=self.render,
            context_for=self.context_for,
            emit=monitor.emit,
            metrics=monitor.metrics,
            secrets={name: secrets_in(channel.config) for name, channel in self.channels.items()},
            timeout_s=float(settings.timeout),
            lease_s=float(settings.lease),
            claim_limit=settings.max_pending * max(1, len(self.channels)),
        )
        self._loop_task: asyncio.Task[None] | None = None

    # -- assembly ----------------------------------------------------------------------------------------

    def _build_channels(self) -> dict[str, NotificationChannel]:
        """Build every configured channel and run its own config check (cross-channel checks ran at load)."""
        channels, problems = build_channels(self.monitor.config, self.monitor.registries, self.egress, self.monitor)
        if problems:
            raise ConfigError(problems)
        return channels

    def _storage(self) -> StorageBackend:
        storage = self.monitor.storage
        if storage is None:
            raise TocsinError("the monitor is not started; notifications need its storage")
        return storage

    def _channel(self, name: str) -> NotificationChannel:
        channel = self.channels.get(name)
        if channel is None:
            raise UnknownName(f"no channel named {name!r}; configured: {', '.join(sorted(self.channels)) or 'none'}")
        return channel

    def _outbox_full(self, channel: str, kind: str, alert: Alert) -> None:
        self.overflow += 1
        self.monitor.metrics.counter("tocsin_notifications_dropped_total").inc(channel=channel, reason="outbox_full")
        self.monitor.emit(Event(topic="notifications", type="dropped", time_ns=self.monitor.clock.now_ns(), data={
            "channel": channel, "kind": kind, "fingerprint": alert.fingerprint, "rule": alert.rule,
            "reason": f"the channel already has {self.settings.max_pending} undelivered notifications",
        }))

    # -- rendering ---------------------------------------------------------------------------------------

    def context_for(self, channel: NotificationChannel, kind: str, rows: Sequence[Delivery]) -> RenderContext:
        """The render context of one message made of outbox rows."""
        alerts = [(row.kind, decode_alert(row)) for row in rows if row.payload.get("alert")]
        group = rows[0].payload.get("group") if rows else None
        title, body = overrides(self.monitor.config, channel.name, {alert.rule for _, alert in alerts if alert.rule})
        return RenderContext(
            channel=channel.name,
            kind=kind,
            alerts=alerts,
            group_labels=group.get("labels", {}) if isinstance(group, dict) else {},
            failures=[row.payload["failure"] for row in rows if isinstance(row.payload.get("failure"), dict)],
            title_template=title,
            body_template=body,
        )

    def render(self, channel: NotificationChannel, context: RenderContext, draft: Notification) -> Notification:
        """Ask the render_notification hook (plugins first, the built-in templates last) for the final text."""
        token = current_render.set(context)
        try:
            result = self.monitor.pm.hook.render_notification(monitor=self.monitor, notification=draft,
                                                              channel=channel.name)
        finally:
            current_render.reset(token)
        return result if isinstance(result, Notification) else rendered(draft, context)

    def preview(self, alert: Alert, channel: str, kind: str = "firing") -> Preview:
        """What `channel` would send for this alert event (rendered as the dispatcher would), and whether it would."""
        target = self._channel(channel)
        reason = self.router.explain(alert, channel, kind)
        title, body = overrides(self.monitor.config, channel, {alert.rule})
        context = RenderContext(channel=channel, kind=kind, alerts=[(kind, alert)],
                                group_labels=self.router.routes[channel].group(alert)[1],
                                title_template=title, body_template=body)
        draft = Notification(title="", body="", severity=alert.severity, kind=kind,
                             alert=alert, idempotency_key=episode_key(alert))
        notification = self.render(target, context, draft)
        return Preview(channel=channel, would_send=reason is None, reason=reason or "",
                       notification=notification, payload=target.render_preview(notification))

    # -- sending now -------------------------------------------------------------------------------------

    async def test(self, channel: str) -> TestResult:
        """Send a test message to `channel` now (not through the outbox), with the channel's guard and timeout."""
        target = self._channel(channel)
        title, body = overrides(self.monitor.config, channel, set())
        context = RenderContext(channel=channel, kind="test", title_template=title, body_template=body)
        draft = Notification(title="", body="", severity="info", kind="test",
                             idempotency_key=f"tocsin/test/{channel}/{self.monitor.clock.now_ns()}")
        try:
            notification = self.render(target, context, draft)
        except Exception as error:
            result = AttemptResult("permanent", error=f"rendering failed: {error}")
        else:
            result = await self.dispatcher.send(target, notification)
        return TestResult(channel=channel, ok=result.outcome == "sent", outcome=result.outcome,
                          latency_s=result.latency_s, status_code=result.status_code, error=result.error)

    # -- the dispatcher loop -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Continue the stored notification groups, count what is already waiting in the outbox and start the
        dispatcher loop on the monitor's clock."""
        storage = self._storage()
        await self.router.restore(storage)
        self.router.leading = True
        for name in self.channels:
            waiting = 0
            for state in ("pending", "sending"):
                page = await storage.list_deliveries(DeliveryQuery(channel=name, state=state, limit=1))
                waiting += page.total or 0
            self.router.pending[name] = waiting  # the outbox is the truth, whatever was routed before start
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="tocsin-notify")

    async def stop(self) -> None:
        """Stop the loop, give sends in flight a few seconds, and close the channels."""
        self.router.leading = False
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.dispatcher.stop(STOP_GRACE_S)
        for channel in self.channels.values():
            try:
                await channel.aclose()
            except Exception as error:
                internal_log.warning("tocsin: closing channel %r failed: %r", channel.name, error)

    async def _run(self) -> None:
        clock = self.monitor.clock
        next_prune = clock.now_ns()
        while True:
            now = clock.now_ns()
            try:
                await self.dispatch_due(now)
            except Exception as error:  # storage trouble: try again next round
                internal_log.warning("tocsin: dispatching notifications failed: %r", error)
            if now >= next_prune:
                self.prune(now)
                next_prune = now + round(PRUNE_EVERY_S * 1e9)
            await clock.sleep(float(self.settings.poll_interval))

    async def dispatch_due(self, now_ns: int | None = None) -> int:
        """Claim and start sending every due delivery (at `now_ns`, default the clock's now)."""
        return await self.dispatcher.dispatch_due(self.monitor.clock.now_ns() if now_ns is None else now_ns)

    async def settled(self) -> None:
        """Wait until every send in flight has finished or is waiting on the clock."""
        await self.dispatcher.settled()

    def prune(self, now_ns: int) -> None:
        """Forget in-memory routing and ordering state no outbox row can still need."""
        s = self.settings
        horizon = 2 * (s.retry_for + s.lease + s.group_wait + s.group_interval)
        self.router.prune(now_ns)
        self.dispatcher.limiter.prune(now_ns)
        self.ledger.prune(now_ns - round(max(horizon, 3600.0) * 1e9))

    # -- the delivery log --------------------------------------------------------------------------------

    async def deliveries(self, query: DeliveryQuery | None = None) -> Page[Delivery]:
        """Outbox rows, newest first (by channel, alert fingerprint or state)."""
        return await self._storage().list_deliveries(query or DeliveryQuery())

    async def delivery(self, delivery_id: str) -> Delivery | None:
        """One outbox row."""
        return await self._storage().get_delivery(delivery_id)

    async def attempts(self, delivery_id: str) -> list[DeliveryAttempt]:
        """Every attempt of one delivery, oldest first: outcome, latency, status and scrubbed error."""
        return await self._storage().list_attempts(delivery_id)
