"""Alerts evaluated elsewhere (a Prometheus server, through an Alertmanager-compatible API) on tocsin's axes.

Another system decided the condition; tocsin does the rest as for its own alerts: the state machine (with
`for: 0`, since the sender already waited), silences, acknowledgement, notification decisions, the outbox.

- Identity: the rule is `<source>:<alertname>` (a ':' no tocsin rule name has, so a native rule never
  mistakes these alerts for its own series) and the fingerprint is the rule's plus all the labels, so a
  re-sent alert is the same alert and notifies nobody again (cooldown re-notifications aside).
- Firing while `ends_ns` is in the future (None: `RESOLVE_TIMEOUT_S` from now, Alertmanager's default);
  resolved when a re-send carries an `ends_ns` that has passed, or when the end passes with no re-send
  (the evaluation loop sweeps). Ends are kept in memory; after a restart an alert ends `RESOLVE_TIMEOUT_S`
  after its last receipt (`last_eval_ns`) unless re-sent.
- Severity is the `severity` label when it names one of tocsin's, else `warning`; annotations are the
  sender's. No inhibition between severities and no flap control: the sender owns the condition.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from tocsin.alerting.rules import fingerprint
from tocsin.alerting.silences import SilenceIndex
from tocsin.alerting.state import (
    ACTIVE_STATES,
    PROBLEM_STATES,
    Policy,
    Update,
    apply_condition,
    decide_notifications,
    expire_acknowledgement,
    is_open,
    new_alert,
)
from tocsin.models import SEVERITIES, Alert, Severity

SEPARATOR = ":"
RESOLVE_TIMEOUT_S = 300.0
"""How long an alert sent without an end keeps firing without a re-send (Alertmanager's `resolve_timeout`)."""
_RESOLVE_TIMEOUT_NS = round(RESOLVE_TIMEOUT_S * 1e9)


class ExternalAlert(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One alert as another system reports it: labels (with `alertname`), annotations, and when it ends."""

    labels: dict[str, str]
    annotations: dict[str, str] = {}
    starts_ns: int | None = None
    ends_ns: int | None = None
    generator_url: str = ""


def rule_of(source: str, labels: dict[str, str]) -> str:
    """The rule name an external alert is kept under: `<source>:<alertname>`."""
    return f"{source}{SEPARATOR}{labels.get('alertname', '')}"


def fingerprint_of(source: str, labels: dict[str, str]) -> str:
    """The fingerprint of the external alert with these labels."""
    return fingerprint(rule_of(source, labels), labels)


def is_external(alert: Alert) -> bool:
    """Whether an alert came from another system (its rule name holds the separator)."""
    return SEPARATOR in alert.rule


def severity_of(labels: dict[str, str]) -> Severity:
    """The `severity` label when it is one of tocsin's severities, else warning."""
    value = labels.get("severity", "")
    return value if value in SEVERITIES else "warning"  # type: ignore[return-value]  # checked membership


class ExternalAlerts:
    """Applies reports and end sweeps to external alerts; remembers each one's end."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy = policy or Policy()
        self.ends: dict[str, int] = {}

    def receive(self, source: str, incoming: ExternalAlert, stored: Alert | None, now_ns: int,
                silences: SilenceIndex) -> Update | None:
        """The update one report makes; None when there is nothing to save (a resolved report of an alert that
        is already over, or that tocsin never saw firing: Prometheus re-sends resolved alerts for 15 minutes)."""
        key = fingerprint_of(source, incoming.labels)
        ends_ns = incoming.ends_ns if incoming.ends_ns is not None else now_ns + _RESOLVE_TIMEOUT_NS
        firing = ends_ns > now_ns
        if stored is None and not firing:
            return None
        labels = dict(incoming.labels)
        alert = stored or new_alert(key, rule_of(source, labels), labels, severity_of(labels), now_ns)
        update = Update.of(alert)
        if firing:
            self.ends[key] = ends_ns
            update.alert.annotations = dict(incoming.annotations)
            apply_condition(update, "breach", None, now_ns, self.policy, f"firing in {source}")
            started = incoming.starts_ns
            if update.alert.fired_at_ns == now_ns and started is not None and started < now_ns:
                update.alert.fired_at_ns = started
        else:
            self.ends.pop(key, None)
            apply_condition(update, "clear", None, now_ns, self.policy, f"resolved in {source}")
        self._handle(update, now_ns, silences)
        return update if firing or update.changed else None

    def sweep(self, alerts: Iterable[Alert], now_ns: int, silences: SilenceIndex) -> list[Update]:
        """External alerts whose end passed resolve; the others get their handling re-decided (a silence that
        ended, an acknowledgement that expired, a cooldown re-notification). Only changed ones are returned."""
        updates = []
        for alert in alerts:
            if not is_external(alert) or not (alert.state in ACTIVE_STATES or is_open(alert)):
                continue
            update = Update.of(alert)
            ends_ns = self.ends.get(alert.fingerprint, (alert.last_eval_ns or alert.updated_ns) + _RESOLVE_TIMEOUT_NS)
            if alert.state in PROBLEM_STATES and ends_ns <= now_ns:
                self.ends.pop(alert.fingerprint, None)
                apply_condition(update, "clear", None, now_ns, self.policy, "ended without a re-send")
            self._handle(update, now_ns, silences)
            if update.changed:
                updates.append(update)
        return updates

    def _handle(self, update: Update, now_ns: int, silences: SilenceIndex) -> None:
        """Silences, acknowledgement expiry and the notification decision, as for a rule's alert."""
        alert = update.alert
        alert.silenced_by = silences.matching(alert.labels)
        expire_acknowledgement(update, now_ns)
        muted = bool(alert.silenced_by or alert.inhibited_by) or alert.handling == "resolved"
        decide_notifications(update, now_ns, self.policy, muted=muted)
