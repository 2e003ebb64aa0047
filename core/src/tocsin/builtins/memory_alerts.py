"""The alerting half of the memory backend (alerts, transitions, silences, the notification outbox), kept apart
from the signal tables so each stays one readable file.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from tocsin.builtins.memory_records import check_limit, detached, drop_old, in_range, keyset_page
from tocsin.errors import StorageError
from tocsin.models import (
    Alert,
    AlertTransition,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    GroupMember,
    GroupState,
    NotifyGroup,
    RepeatMark,
    Silence,
)
from tocsin.storage.matchers import compile_matchers
from tocsin.storage.protocol import AlertQuery, DeliveryQuery, Page, check_query_values

FINAL_DELIVERY_STATES: frozenset[str] = frozenset({"sent", "failed", "dropped"})
SWEPT_ALERT_STATES: frozenset[str] = frozenset({"resolved", "inactive"})
"""Alert states a retention sweep may delete; every other state is something still going on."""


class MemoryAlerts:
    """Alerts with their transitions, silences, and the outbox of deliveries with their attempts, in memory."""

    def __init__(self) -> None:
        self._alerts: dict[str, Alert] = {}
        self._transitions: list[AlertTransition] = []
        self._silences: dict[str, Silence] = {}
        self._deliveries: dict[str, Delivery] = {}
        self._attempts: dict[str, list[DeliveryAttempt]] = {}
        self._groups: dict[tuple[str, str], tuple[int, int]] = {}  # (channel, group) -> (first_ns, last_ns)
        self._members: set[tuple[str, str, str]] = set()  # (channel, group, fingerprint) of firing members
        self._marks: dict[tuple[str, str], tuple[int, int]] = {}  # (channel, fingerprint) -> (episode, time_ns)

    # -- alerts and silences -----------------------------------------------------------------------
    async def save_alert(
        self,
        alert: Alert,
        transitions: Sequence[AlertTransition] = (),
        deliveries: Sequence[Delivery] = (),
    ) -> None:
        """Upsert an alert with its new transitions and outbox deliveries, all or nothing."""
        stored = detached(alert)
        new_transitions = [detached(transition) for transition in transitions]
        new_deliveries = [detached(delivery) for delivery in deliveries]
        self._alerts[stored.fingerprint] = stored
        self._transitions.extend(new_transitions)
        self._add_deliveries(new_deliveries)

    async def get_alert(self, fingerprint: str) -> Alert | None:
        """One alert by fingerprint."""
        alert = self._alerts.get(fingerprint)
        return None if alert is None else detached(alert)

    async def list_alerts(self, query: AlertQuery) -> Page[Alert]:
        """Alerts passing every filter (`states`: any of them), most recently updated first."""
        check_query_values(query)
        matches = compile_matchers(query.matchers)
        matched = [
            alert
            for alert in self._alerts.values()
            if (query.rule is None or alert.rule == query.rule)
            and (not query.states or alert.state in query.states)
            and (query.severity is None or alert.severity == query.severity)
            and matches(alert.labels)
        ]
        return keyset_page(
            matched,
            lambda alert: (alert.updated_ns, alert.fingerprint),
            query.limit,
            query.cursor,
            tuple[int, str],
        )

    async def alert_history(self, fingerprint: str, limit: int = 100) -> list[AlertTransition]:
        """An alert's transitions, oldest first (the last `limit`)."""
        check_limit(limit)
        history = [transition for transition in self._transitions if transition.fingerprint == fingerprint]
        history.sort(key=lambda transition: transition.time_ns)
        return [detached(transition) for transition in history[-limit:]]

    async def transitions_between(self, start_ns: int, end_ns: int) -> list[AlertTransition]:
        """Every transition of every alert in [start_ns, end_ns), oldest first."""
        found = [
            transition for transition in self._transitions if in_range(transition.time_ns, start_ns, end_ns)
        ]
        found.sort(key=lambda transition: transition.time_ns)
        return [detached(transition) for transition in found]

    async def save_silence(self, silence: Silence) -> None:
        """Create or replace a silence by id."""
        self._silences[silence.id] = detached(silence)

    async def list_silences(self, active_at_ns: int | None = None) -> list[Silence]:
        """Every silence, or those with starts_ns <= active_at_ns < ends_ns; ordered by start, then id."""
        silences = [
            silence
            for silence in self._silences.values()
            if active_at_ns is None or silence.starts_ns <= active_at_ns < silence.ends_ns
        ]
        silences.sort(key=lambda silence: (silence.starts_ns, silence.id))
        return [detached(silence) for silence in silences]

    async def delete_silence(self, silence_id: str) -> bool:
        """Remove a silence; False when there was none."""
        return self._silences.pop(silence_id, None) is not None

    # -- notification outbox -----------------------------------------------------------------------
    def _add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            self._deliveries.setdefault(delivery.id, delivery)

    async def enqueue_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Add deliveries to the outbox; an id already there is left as it is (enqueueing is idempotent)."""
        self._add_deliveries([detached(delivery) for delivery in deliveries])

    async def claim_deliveries(self, now_ns: int, limit: int, lease_s: float) -> list[Delivery]:
        """Take up to `limit` due deliveries, oldest (created) first, and lease them for `lease_s`."""
        due = [
            delivery
            for delivery in self._deliveries.values()
            if delivery.state in ("pending", "sending")
            and delivery.next_attempt_ns <= now_ns
            and (delivery.lease_until_ns is None or delivery.lease_until_ns <= now_ns)
        ]
        due.sort(key=lambda delivery: (delivery.created_ns, delivery.id))
        claimed = []
        for delivery in due[: max(limit, 0)]:
            leased = msgspec.structs.replace(
                delivery, state="sending", lease_until_ns=now_ns + round(lease_s * 1e9)
            )
            self._deliveries[delivery.id] = leased
            claimed.append(detached(leased))
        return claimed

    async def record_attempt(
        self, attempt: DeliveryAttempt, state: DeliveryState, next_attempt_ns: int | None = None
    ) -> None:
        """Log an attempt and move its delivery to `state`, releasing the lease."""
        delivery = self._deliveries.get(attempt.delivery_id)
        if delivery is None:
            raise StorageError(f"cannot record an attempt for unknown delivery {attempt.delivery_id!r}")
        self._attempts.setdefault(delivery.id, []).append(detached(attempt))
        self._deliveries[delivery.id] = msgspec.structs.replace(
            delivery,
            state=state,
            attempts=delivery.attempts + 1,
            lease_until_ns=None,
            last_error=attempt.error,
            sent_ns=attempt.time_ns if state == "sent" else delivery.sent_ns,
            next_attempt_ns=delivery.next_attempt_ns if next_attempt_ns is None else next_attempt_ns,
        )

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery by id."""
        delivery = self._deliveries.get(delivery_id)
        return None if delivery is None else detached(delivery)

    async def list_deliveries(self, query: DeliveryQuery) -> Page[Delivery]:
        """Outbox entries passing every filter, newest (created) first."""
        check_query_values(query)
        matched = [
            delivery
            for delivery in self._deliveries.values()
            if (query.channel is None or delivery.channel == query.channel)
            and (query.fingerprint is None or delivery.fingerprint == query.fingerprint)
            and (query.state is None or delivery.state == query.state)
        ]
        return keyset_page(
            matched,
            lambda delivery: (delivery.created_ns, delivery.id),
            query.limit,
            query.cursor,
            tuple[int, str],
        )

    async def list_attempts(self, delivery_id: str) -> list[DeliveryAttempt]:
        """Every attempt of one delivery, oldest first."""
        attempts = sorted(self._attempts.get(delivery_id, []), key=lambda attempt: attempt.time_ns)
        return [detached(attempt) for attempt in attempts]

    # -- retention -------------------------------------------------------------------------------
    def _sweep_alerts(self, cutoff_ns: int) -> int:
        """Ended alerts, old transitions and long-expired silences; live alerts stay whatever their age."""
        old_alerts = [
            fingerprint
            for fingerprint, alert in self._alerts.items()
            if alert.state in SWEPT_ALERT_STATES and alert.updated_ns < cutoff_ns
        ]
        for fingerprint in old_alerts:
            del self._alerts[fingerprint]
        self._transitions, old_transitions = drop_old(self._transitions, lambda t: t.time_ns < cutoff_ns)
        old_silences = [
            silence_id for silence_id, silence in self._silences.items() if silence.ends_ns < cutoff_ns
        ]
        for silence_id in old_silences:
            del self._silences[silence_id]
        return len(old_alerts) + old_transitions + len(old_silences)

    # -- notification grouping state --------------------------------------------------------------------

    async def save_group_state(self, state: GroupState) -> None:
        """Upsert group timers and repeat marks; add firing members, remove the others."""
        for group in state.groups:
            self._groups[(group.channel, group.group_id)] = (group.first_ns, group.last_ns)
        for member in state.members:
            key = (member.channel, member.group_id, member.fingerprint)
            if member.firing:
                self._members.add(key)
            else:
                self._members.discard(key)
        for mark in state.marks:
            self._marks[(mark.channel, mark.fingerprint)] = (mark.episode, mark.time_ns)

    async def load_group_state(self) -> GroupState:
        """Every group timer, firing member and repeat mark."""
        return GroupState(
            groups=[NotifyGroup(channel=c, group_id=g, first_ns=first, last_ns=last)
                    for (c, g), (first, last) in self._groups.items()],
            members=[GroupMember(channel=c, group_id=g, fingerprint=f) for c, g, f in sorted(self._members)],
            marks=[RepeatMark(channel=c, fingerprint=f, episode=episode, time_ns=at)
                   for (c, f), (episode, at) in self._marks.items()],
        )

    def _sweep_group_state(self, cutoff_ns: int) -> None:
        """Group timers last flushed before the cutoff (with their members) and older repeat marks."""
        old = {key for key, (_, last_ns) in self._groups.items() if last_ns < cutoff_ns}
        for key in old:
            del self._groups[key]
        self._members = {member for member in self._members if member[:2] not in old}
        self._marks = {key: mark for key, mark in self._marks.items() if mark[1] >= cutoff_ns}

    def _sweep_notifications(self, cutoff_ns: int) -> int:
        """Finished deliveries with their attempts (pending and in-flight ones stay), and old grouping state."""
        self._sweep_group_state(cutoff_ns)
        old = [
            delivery_id
            for delivery_id, delivery in self._deliveries.items()
            if delivery.state in FINAL_DELIVERY_STATES and delivery.created_ns < cutoff_ns
        ]
        deleted = len(old)
        for delivery_id in old:
            del self._deliveries[delivery_id]
            deleted += len(self._attempts.pop(delivery_id, []))
        return deleted
