"""Routing: which channels an alert transition notifies, and when (Alertmanager's grouping timers).

The alerting engine calls `Router.deliveries_for(alert, transition, now_ns)` for each transition that should
notify and stores the returned outbox rows in the same `save_alert` call as the transition (the
transactional outbox), so a notification exists exactly when its transition does.

Grouping lives here, as timing: one row per (transition, channel), and every row of one (channel, group)
gets the group's next flush time as `next_attempt_ns`. The dispatcher claims rows that are due together and
sends each group as one message. So a new group waits `group_wait`; later changes wait for the next tick,
`group_interval` after the previous one; a still-firing alert is re-notified to a channel no more often than
`repeat_interval` (re-notifications come from the rule's cooldown, rounded up to a tick here); and an alert
that resolves before its group's first flush is never notified. `group_by` defaults to `["alertname"]` (one
group per rule, as Grafana does; Alertmanager's empty default puts every alert of a route in one group);
`["..."]` groups nothing. Timers and repeat marks are kept in storage too (`tocsin.notify.groups`): the
alerting engine saves the router's changes (`persist`) before the transitions that caused them, a process
that starts leading loads them (`restore`), and a router outside the leader reads them before it routes
(`refresh`), so a restart continues each group and repeat schedule.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from tocsin.config.schema import ChannelConfig, Config, NotificationsConfig, RuleConfig
from tocsin.errors import ConfigProblem
from tocsin.models import SEVERITIES, Alert, AlertTransition, Delivery, Severity
from tocsin.notify.groups import GroupBook
from tocsin.notify.ledger import Ledger
from tocsin.storage.protocol import StorageBackend

UNGROUPED = "..."
RESOLVED_STATES = frozenset({"resolved", "inactive", "normal"})
RuleChannels = Callable[[str, Severity], Sequence[str]]
OnDrop = Callable[[str, str, Alert], None]
internal_log = logging.getLogger("tocsin")


def transition_kind(transition: AlertTransition) -> str:
    """The notification kind of a transition: resolved, acknowledged, or firing (every other notifying state)."""
    if transition.to_state in RESOLVED_STATES:
        return "resolved"
    if transition.to_state == "acknowledged":
        return "acknowledged"
    return "firing"


def routing_labels(alert: Alert) -> dict[str, str]:
    """The labels matchers and group_by see: the alert's labels plus `alertname` (the rule) and `severity`."""
    return {"alertname": alert.rule, "severity": alert.severity, **alert.labels}


def episode_key(alert: Alert) -> str:
    """The idempotency key of one firing episode of one alert (rule + labels): the PagerDuty dedup_key."""
    key = f"tocsin/{alert.rule}/{alert.fingerprint}/{alert.episode}"
    return key if len(key) <= 255 else "tocsin/" + _digest(key)


def _digest(*parts: object, size: int = 32) -> str:
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:size]


def compact(struct: msgspec.Struct) -> dict[str, Any]:
    """A Struct as builtins without the fields left at their defaults (outbox payloads stay small)."""
    defaults = _defaults(type(struct))
    return {key: value for key, value in msgspec.to_builtins(struct).items()
            if key not in defaults or value != defaults[key]}


@functools.cache
def _defaults(struct: type[msgspec.Struct]) -> dict[str, Any]:
    defaults = {}
    for f in msgspec.structs.fields(struct):
        if f.default is not msgspec.NODEFAULT:
            defaults[f.encode_name] = f.default
        elif f.default_factory is not msgspec.NODEFAULT:
            defaults[f.encode_name] = msgspec.to_builtins(f.default_factory())
    return defaults


@dataclass(frozen=True)
class ChannelRoute:
    """One channel's routing settings, with the `[notifications]` defaults filled in."""

    name: str
    min_severity: Severity
    match: Mapping[str, str]
    send_resolved: bool
    group_by: tuple[str, ...]
    group_wait_ns: int
    group_interval_ns: int
    repeat_interval_ns: int

    @classmethod
    def build(cls, channel: ChannelConfig, defaults: NotificationsConfig) -> ChannelRoute:
        """Resolve a channel's settings against the defaults."""
        def pick(value: float | None, default: float) -> int:
            return round((default if value is None else value) * 1e9)

        return cls(
            name=channel.name,
            min_severity=channel.min_severity,
            match=dict(channel.match),
            send_resolved=channel.send_resolved,
            group_by=tuple(defaults.group_by if channel.group_by is None else channel.group_by),
            group_wait_ns=pick(channel.group_wait, defaults.group_wait),
            group_interval_ns=pick(channel.group_interval, defaults.group_interval),
            repeat_interval_ns=pick(channel.repeat_interval, defaults.repeat_interval),
        )

    def refusal(self, alert: Alert, kind: str) -> str | None:
        """Why this channel does not take this alert event, or None when it does."""
        if kind == "resolved" and not self.send_resolved:
            return "the channel does not send resolved notifications (send_resolved = false)"
        if SEVERITIES.index(alert.severity) < SEVERITIES.index(self.min_severity):
            return f"severity {alert.severity} is below the channel's min_severity {self.min_severity}"
        labels = routing_labels(alert)
        for label, value in self.match.items():
            if labels.get(label, "") != value:
                return f"label {label}={labels.get(label, '')!r} does not match {value!r}"
        return None

    def group(self, alert: Alert) -> tuple[str, dict[str, str]]:
        """The group an alert joins on this channel: (group id, group labels)."""
        labels = routing_labels(alert)
        if UNGROUPED in self.group_by:
            return _digest(self.name, alert.fingerprint), labels
        group_labels = {name: labels.get(name, "") for name in self.group_by}
        return _digest(self.name, *sorted(group_labels.items())), group_labels


def notification_problems(config: Config) -> list[ConfigProblem]:
    """Config checks across channels: fallbacks name other configured channels, `"..."` stands alone."""
    names = {channel.name for channel in config.channels}
    known = ", ".join(sorted(names)) or "none configured"
    problems = []
    fallback = config.notifications.fallback
    if fallback is not None and fallback not in names:
        problems.append(ConfigProblem("notifications.fallback", f"unknown channel {fallback!r}; {known}"))
    for i, channel in enumerate(config.channels):
        if channel.fallback == channel.name:
            problems.append(ConfigProblem(f"channels[{i}].fallback", "a channel cannot be its own fallback"))
        elif channel.fallback is not None and channel.fallback not in names:
            problems.append(ConfigProblem(f"channels[{i}].fallback", f"unknown channel {channel.fallback!r}; {known}"))
        if channel.group_by is not None and UNGROUPED in channel.group_by and len(channel.group_by) > 1:
            problems.append(ConfigProblem(f"channels[{i}].group_by",
                                          '"..." (no grouping) cannot be combined with label names'))
    return problems


def config_rule_channels(rules: Sequence[RuleConfig]) -> RuleChannels:
    """A lookup of the channels a configured rule names for a severity (its ladder level's, else its own)."""
    table = {rule.name: rule for rule in rules}

    def lookup(rule: str, severity: Severity) -> Sequence[str]:
        config = table.get(rule)
        if config is None:
            return ()
        for level in config.levels:
            if level.severity == severity and level.channels:
                return level.channels
        return config.channels

    return lookup


class Router:
    """Turns alert transitions into outbox rows: one per channel that takes the event, timed by its group.

    `rule_channels(rule, severity)` names the channels a rule is restricted to (empty: every channel);
    the alerting engine may replace it for rules defined in code. `pending` counts undelivered rows per
    channel; beyond `max_pending` new rows for that channel are dropped and reported through `on_drop`.
    """

    def __init__(
        self,
        channels: Sequence[ChannelConfig],
        settings: NotificationsConfig,
        *,
        ledger: Ledger,
        rule_channels: RuleChannels | None = None,
        on_drop: OnDrop | None = None,
    ) -> None:
        self.settings = settings
        self.routes = {channel.name: ChannelRoute.build(channel, settings) for channel in channels}
        self.fallbacks = {channel.name: channel.fallback or settings.fallback for channel in channels}
        self.ledger = ledger
        self.rule_channels: RuleChannels = rule_channels or (lambda rule, severity: ())
        self.on_drop = on_drop
        self.pending: dict[str, int] = dict.fromkeys(self.routes, 0)
        self.book = GroupBook()
        self.leading = False  # set while the notify service runs (this process leads): the book is current

    def channels_for(self, alert: Alert) -> list[str]:
        """The channels an alert may reach before per-channel filters: the rule's list, else every channel."""
        named = self.rule_channels(alert.rule, alert.severity)
        return [name for name in named if name in self.routes] if named else list(self.routes)

    def explain(self, alert: Alert, channel: str, kind: str = "firing") -> str | None:
        """Why `channel` would not be notified of this alert event, or None when it would."""
        if channel not in self.routes:
            return f"no channel named {channel!r}"
        if alert.silenced_by or alert.inhibited_by:
            return "the alert is silenced or inhibited"
        if channel not in self.channels_for(alert):
            return f"rule {alert.rule!r} notifies other channels"
        return self.routes[channel].refusal(alert, kind)

    def deliveries_for(self, alert: Alert, transition: AlertTransition, now_ns: int) -> list[Delivery]:
        """The outbox rows for one notifying transition; the caller stores them with the transition."""
        kind = transition_kind(transition)
        if alert.silenced_by or alert.inhibited_by:
            return []
        rows = []
        for name in self.channels_for(alert):
            route = self.routes[name]
            if route.refusal(alert, kind) is None and not self._repeat_too_soon(route, alert, kind, now_ns):
                if self.pending[name] < self.settings.max_pending:
                    rows.append(self._row(route, alert, transition, kind, now_ns))
                elif self.on_drop is not None:
                    self.on_drop(name, kind, alert)
            if kind == "resolved":
                self._leave_group(route, alert)
        return rows

    async def persist(self, storage: StorageBackend) -> None:
        """Save the grouping changes routed since the last call (a failure keeps them for the next call)."""
        state = self.book.drain()
        if not (state.groups or state.members or state.marks):
            return
        try:
            await storage.save_group_state(state)
        except Exception as error:
            self.book.unsaved(state)
            internal_log.warning("tocsin: saving notification group state failed: %r", error)

    async def restore(self, storage: StorageBackend) -> None:
        """Continue the stored groups and repeat marks (when this process starts leading)."""
        self.book.restore(await storage.load_group_state())

    async def refresh(self, storage: StorageBackend) -> None:
        """Before routing outside the leader (an acknowledgement from the command line, or through the API of a
        follower): read the grouping state the leader keeps in storage. The leader's own router (`leading`)
        holds it already."""
        if not self.leading:
            await self.restore(storage)

    def _leave_group(self, route: ChannelRoute, alert: Alert) -> None:
        self.book.leave((route.name, route.group(alert)[0]), alert.fingerprint)

    def _repeat_too_soon(self, route: ChannelRoute, alert: Alert, kind: str, now_ns: int) -> bool:
        if kind != "firing":
            return False
        return self.book.repeat_too_soon((route.name, alert.fingerprint), alert.episode, now_ns,
                                         route.repeat_interval_ns)

    def _row(self, route: ChannelRoute, alert: Alert, transition: AlertTransition, kind: str, now_ns: int) -> Delivery:
        group_id, group_labels = route.group(alert)
        due = self._flush_time(route, group_id, alert.fingerprint, kind, now_ns)
        if kind == "resolved":
            self.ledger.resolve_queued((route.name, alert.fingerprint), alert.episode, now_ns)
        self.pending[route.name] += 1
        return Delivery(
            id=_digest(route.name, alert.fingerprint, alert.episode, kind, transition.time_ns, transition.to_state),
            channel=route.name,
            fingerprint=alert.fingerprint,
            kind=kind,
            idempotency_key=episode_key(alert),
            payload={"alert": compact(alert), "group": {"id": group_id, "labels": group_labels}},
            created_ns=now_ns,
            next_attempt_ns=due,
        )

    def _flush_time(self, route: ChannelRoute, group_id: str, fingerprint: str, kind: str, now_ns: int) -> int:
        return self.book.book_flush((route.name, group_id), fingerprint, kind == "firing", now_ns,
                                    route.group_wait_ns, route.group_interval_ns)

    def failure_notice(self, failed: Delivery, error: str, now_ns: int) -> Delivery | None:
        """The "notification failed" row for a delivery that finally failed, for its channel's fallback."""
        fallback = self.fallbacks.get(failed.channel)
        if failed.kind == "failed" or fallback is None or fallback == failed.channel or fallback not in self.routes:
            return None
        alert = failed.payload.get("alert", {})
        failure = {"delivery_id": failed.id, "channel": failed.channel, "kind": failed.kind,
                   "rule": alert.get("rule", ""), "fingerprint": failed.fingerprint,
                   "attempts": failed.attempts + 1, "error": error}
        self.pending[fallback] += 1
        return Delivery(
            id=_digest("failed", failed.id),
            channel=fallback,
            fingerprint=failed.fingerprint,
            kind="failed",
            idempotency_key=f"tocsin/failed/{failed.id}",
            payload={"failure": failure, "alert": alert, "group": {"id": _digest(fallback, "failed"), "labels": {}}},
            created_ns=now_ns,
            next_attempt_ns=now_ns,
        )

    def settled(self, channel: str, count: int = 1) -> None:
        """`count` rows of `channel` reached a final state (sent, failed, dropped)."""
        if channel in self.pending:
            self.pending[channel] = max(0, self.pending[channel] - count)

    def prune(self, now_ns: int) -> None:
        """Forget group timers of groups that are over and repeat marks older than any repeat interval."""
        self.book.prune(now_ns, max((route.repeat_interval_ns for route in self.routes.values()), default=0))
