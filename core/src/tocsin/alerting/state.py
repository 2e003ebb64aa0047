"""The alert state machine: pure functions from (alert, what was observed, time) to the next alert.

No I/O and no clock: the evaluator, the backtest and the rule tests all drive these same functions, so
what a backtest shows is what production does. Two axes, as ../shared/design/SEMANTICS.md §1.1-1.2 lays out.

Evaluation axis (`apply_condition`), one call per evaluation, Prometheus' rules/alerting.go semantics:

    from \\ observed      breach                                   clear
    inactive, resolved    pending; or firing at once when for = 0  -
    pending               firing once now - active_at >= for       inactive (dropped: never notified)
    firing                -                                        recovering if keep_firing_for > 0, else resolved
    recovering            firing (same episode, no notification)   resolved once now - keep_firing_since >= kff
    nodata, error         -                                        resolved

`hold` (series missing for fewer than the stale limit, or the rule mapped nodata/error to keep_last)
changes nothing but the evaluation time. Condition instances (a rule's nodata/error) use the same table
with `nodata`/`error` in place of `firing` and no keep_firing_for.

Handling axis (human): `acknowledge` (who, comment, optional expiry), `expire_acknowledgement`, and
`resolve_by_hand` (suppresses notifications until the condition clears once). Both are cleared when the
alert resolves.

Notifications (`decide_notifications`) are decided from what receivers were last told: an alert is *open*
while `last_notified_ns` is set — receivers were told it fires and not yet that it resolved. So:

* a problem (firing, recovering, nodata, error, or flapping) that is not open notifies `firing` and opens
  a new episode (`episode` + 1: the idempotency key of every notification until it closes); an open one
  re-notifies after `cooldown`, or at once when an acknowledgement expires;
* an inactive or resolved alert that is open notifies `resolved` and closes (a pending one waits);
* muted alerts (silenced, inhibited, resolved by hand) notify nobody, but still change state; once the mute
  ends the next evaluation tells receivers what they missed (firing, or resolved if they heard firing);
* acknowledged alerts send no firing notifications; a flapping alert sends exactly one (see flapping.py).

Entering a problem state while open continues the episode (same `fired_at_ns`, same `episode`), so a
resolve that nobody was told about followed by a re-fire does not page twice. A muted alert that fires
opens no episode until a notification actually goes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import msgspec

from tocsin.models import Alert, AlertTransition, Severity

Condition = Literal["breach", "clear", "hold"]
ProblemState = Literal["firing", "nodata", "error"]

PROBLEM_STATES: frozenset[str] = frozenset({"firing", "recovering", "nodata", "error"})
"""States in which receivers should consider the alert firing."""
ACTIVE_STATES: frozenset[str] = PROBLEM_STATES | {"pending"}
"""States worth evaluating again: the alert is on its way to firing, or firing."""
QUIET_STATES: frozenset[str] = frozenset({"inactive", "resolved"})
"""States of an alert that is over."""
EVALUATION_STATES: frozenset[str] = frozenset({"inactive", "pending", "firing", "recovering", "resolved", "nodata",
                                               "error"})
"""Every state of the evaluation axis (the `AlertState` names)."""
FLAPPING, SETTLED = "flapping", "settled"
"""`to_state` of the transitions that start a flapping hold and end it."""


class Policy(msgspec.Struct, kw_only=True, frozen=True):
    """The timing one alert instance follows: its rule's (or severity level's) `for`, keep_firing_for, cooldown."""

    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    cooldown_s: float = 4 * 3600.0
    problem_state: ProblemState = "firing"


@dataclass
class Update:
    """One alert's evaluation: a private copy of the alert, the transitions made, and those that notify."""

    alert: Alert
    original: Alert | None = None
    transitions: list[AlertTransition] = field(default_factory=list)
    notify: list[AlertTransition] = field(default_factory=list)
    renotify: AlertTransition | None = None

    @classmethod
    def of(cls, alert: Alert) -> Update:
        """Start an update on a copy of `alert`, so the caller's object never changes."""
        copy = msgspec.structs.replace(alert, labels=dict(alert.labels), annotations=dict(alert.annotations),
                                       silenced_by=list(alert.silenced_by), inhibited_by=list(alert.inhibited_by))
        return cls(copy, alert)

    @property
    def changed(self) -> bool:
        """Whether anything but the evaluation time changed (a pending alert's evaluation time counts)."""
        if self.transitions or self.notify or self.original is None or self.alert.state == "pending":
            return True
        return msgspec.structs.replace(self.alert, last_eval_ns=self.original.last_eval_ns) != self.original

    def record(self, from_state: str, to_state: str, now_ns: int, reason: str, actor: str | None = None
               ) -> AlertTransition:
        """Store a transition (with the alert's current value) and return it."""
        transition = AlertTransition(fingerprint=self.alert.fingerprint, rule=self.alert.rule, time_ns=now_ns,
                                     from_state=from_state, to_state=to_state, value=self.alert.value,
                                     reason=reason, actor=actor)
        self.transitions.append(transition)
        self.alert.updated_ns = now_ns
        return transition

    def move(self, to_state: str, now_ns: int, reason: str) -> AlertTransition:
        """Change the evaluation state and record it."""
        transition = self.record(self.alert.state, to_state, now_ns, reason)
        self.alert.state = to_state  # type: ignore[assignment]  # callers pass AlertState names
        self.alert.state_reason = reason
        return transition


def new_alert(fingerprint: str, rule: str, labels: dict[str, str], severity: Severity, now_ns: int) -> Alert:
    """A fresh, inactive alert instance (it becomes pending or firing on its first breach)."""
    return Alert(fingerprint=fingerprint, rule=rule, labels=labels, severity=severity, updated_ns=now_ns)


def is_open(alert: Alert) -> bool:
    """True while receivers were told the alert fires and not yet that it resolved."""
    return alert.last_notified_ns is not None


def seconds(value: float) -> str:
    """A duration for a reason text: 300 -> '5m', 90 -> '1m30s', 0.5 -> '0.5s'."""
    if value >= 60 and value == int(value):
        minutes, rest = divmod(int(value), 60)
        hours, minutes = divmod(minutes, 60)
        text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{rest}s" if rest else "")
        return text
    return f"{value:g}s"


def _ns(value_s: float) -> int:
    return round(value_s * 1e9)


def apply_condition(update: Update, condition: Condition, value: float | None, now_ns: int, policy: Policy,
                    reason: str = "") -> None:
    """Advance the evaluation axis by one observation (see the module table)."""
    alert = update.alert
    alert.last_eval_ns = now_ns
    if condition == "hold":
        return
    alert.value = value
    state = alert.state
    if condition == "breach":
        if state in QUIET_STATES:
            alert.active_at_ns = now_ns
            alert.keep_firing_since_ns = None
            if policy.for_s <= 0:
                _fire(update, now_ns, policy, reason or "condition met (for: 0s)")
            else:
                update.move("pending", now_ns, reason or f"condition met; fires after for: {seconds(policy.for_s)}")
        elif state == "pending":
            if alert.active_at_ns is None:  # defensive: a pending alert always has one
                alert.active_at_ns = now_ns
            if now_ns - alert.active_at_ns >= _ns(policy.for_s):
                _fire(update, now_ns, policy, reason or f"condition held for {seconds(policy.for_s)}")
        elif state == "recovering":
            alert.keep_firing_since_ns = None
            update.move(policy.problem_state, now_ns, "condition met again within keep_firing_for")
        else:
            alert.keep_firing_since_ns = None
        return
    if state == "pending":
        alert.active_at_ns = None
        update.move("inactive", now_ns, "condition cleared before for elapsed")
        _clear_handling(update, now_ns)
    elif state == "recovering":
        since = alert.keep_firing_since_ns if alert.keep_firing_since_ns is not None else now_ns
        if now_ns - since >= _ns(policy.keep_firing_for_s):
            _resolve(update, now_ns, f"condition clear for keep_firing_for: {seconds(policy.keep_firing_for_s)}")
    elif state in PROBLEM_STATES:
        if state == "firing" and policy.keep_firing_for_s > 0:
            alert.keep_firing_since_ns = now_ns
            update.move("recovering", now_ns,
                        f"condition cleared; keeps firing for {seconds(policy.keep_firing_for_s)}")
        else:
            _resolve(update, now_ns, reason or "condition cleared")


def _fire(update: Update, now_ns: int, policy: Policy, reason: str) -> None:
    alert = update.alert
    if not is_open(alert):
        alert.fired_at_ns = now_ns
    alert.resolved_at_ns = None
    update.move(policy.problem_state, now_ns, reason)


def _resolve(update: Update, now_ns: int, reason: str) -> None:
    alert = update.alert
    alert.resolved_at_ns = now_ns
    alert.active_at_ns = None
    alert.keep_firing_since_ns = None
    update.move("resolved", now_ns, reason)
    _clear_handling(update, now_ns)


def _clear_handling(update: Update, now_ns: int) -> None:
    """An alert that is over forgets its acknowledgement or manual resolve."""
    alert = update.alert
    if alert.handling == "active":
        return
    what = "acknowledgement" if alert.handling == "acknowledged" else "manual resolve"
    update.record(alert.handling, "active", now_ns, f"{what} cleared: the alert is {alert.state}")
    alert.handling = "active"
    alert.acknowledged_by = alert.ack_comment = alert.ack_until_ns = None


def restore_after_outage(update: Update, now_ns: int, policy: Policy, *, tolerance_s: float, grace_s: float
                         ) -> None:
    """Carry a pending alert's `for` progress across an evaluation outage, as Prometheus' RestoreForState does.

    The outage is the time since the alert was last evaluated. Longer than `tolerance_s`: the progress is
    lost (pending -> inactive; a breach starts it again). A `for` shorter than `grace_s`: it restarts now.
    Otherwise the outage does not count as pending time, and at least `grace_s` remains before firing.
    """
    alert = update.alert
    if alert.state != "pending" or alert.last_eval_ns is None or alert.active_at_ns is None:
        return
    down_ns = now_ns - alert.last_eval_ns
    if down_ns > _ns(tolerance_s):
        alert.active_at_ns = None
        update.move("inactive", now_ns, f"evaluation outage of {seconds(down_ns / 1e9)} exceeds "
                                        f"for_outage_tolerance {seconds(tolerance_s)}: for progress reset")
        return
    if policy.for_s < grace_s:
        alert.active_at_ns = now_ns
        return
    remaining_ns = _ns(policy.for_s) - (alert.last_eval_ns - alert.active_at_ns)
    if remaining_ns <= 0:
        return
    if remaining_ns < _ns(grace_s):
        alert.active_at_ns = now_ns + _ns(grace_s) - _ns(policy.for_s)
    else:
        alert.active_at_ns += down_ns


def acknowledge(update: Update, by: str, comment: str, until_ns: int | None, now_ns: int) -> AlertTransition:
    """Mark the alert as being handled by `by`; firing notifications stop until `until_ns` (or resolve)."""
    alert = update.alert
    previous = alert.handling
    alert.handling = "acknowledged"
    alert.acknowledged_by, alert.ack_comment, alert.ack_until_ns = by, comment, until_ns
    until = "" if until_ns is None else f" until {until_ns}"
    return update.record(previous, "acknowledged", now_ns, f"acknowledged by {by}{until}: {comment}".rstrip(": "),
                         actor=by)


def expire_acknowledgement(update: Update, now_ns: int) -> None:
    """End an acknowledgement whose expiry has passed; an open, firing alert then notifies again at once."""
    alert = update.alert
    if alert.handling != "acknowledged" or alert.ack_until_ns is None or now_ns < alert.ack_until_ns:
        return
    who = alert.acknowledged_by
    alert.handling = "active"
    alert.acknowledged_by = alert.ack_comment = alert.ack_until_ns = None
    update.renotify = update.record("acknowledged", "active", now_ns, f"acknowledgement by {who} expired")


def resolve_by_hand(update: Update, by: str, comment: str, now_ns: int) -> AlertTransition:
    """A person resolves the alert: receivers hear `resolved`, and nothing notifies until the condition clears."""
    alert = update.alert
    previous = alert.handling
    alert.handling = "resolved"
    alert.acknowledged_by = alert.ack_comment = alert.ack_until_ns = None
    reason = f"resolved by hand by {by}: {comment}".rstrip(": ")
    return update.record(previous, "resolved", now_ns, reason, actor=by)


def notify_resolved_by_hand(update: Update, transition: AlertTransition, *, muted: bool) -> None:
    """After `resolve_by_hand`: tell receivers who heard `firing` (unless the alert is muted)."""
    if is_open(update.alert) and not muted:
        update.notify.append(transition)
        update.alert.last_notified_ns = None


def notify_acknowledged(update: Update, transition: AlertTransition, *, muted: bool) -> None:
    """After `acknowledge`: tell receivers who heard `firing` (so a pager can stop escalating)."""
    if is_open(update.alert) and not muted and update.alert.state in PROBLEM_STATES:
        update.notify.append(transition)


def decide_notifications(update: Update, now_ns: int, policy: Policy, *, muted: bool) -> None:
    """Decide whether this evaluation notifies, and which transition carries it (see the module docstring)."""
    alert = update.alert
    if muted:
        return
    if alert.state in QUIET_STATES and not alert.flapping:
        if is_open(alert):
            _notify(update, alert.state, now_ns, f"{alert.state}; receivers had been told it was firing")
            alert.last_notified_ns = None
        return
    if alert.handling != "active" or not (alert.state in PROBLEM_STATES or alert.flapping):
        return  # acknowledged or pending (a pending alert that was open waits: it either fires or clears)
    if not is_open(alert):
        alert.episode += 1
        if alert.flapping:
            _notify(update, FLAPPING, now_ns, "flapping: notified once until it settles")
        else:
            _notify(update, alert.state, now_ns, f"{alert.state}; receivers had not been told yet")
        alert.last_notified_ns = now_ns
    elif alert.flapping:
        return
    elif update.renotify is not None:
        update.notify.append(update.renotify)
        alert.last_notified_ns = now_ns
    elif now_ns - (alert.last_notified_ns or 0) >= _ns(policy.cooldown_s):
        _notify(update, alert.state, now_ns, f"still {alert.state} after cooldown {seconds(policy.cooldown_s)}",
                reuse=False)
        alert.last_notified_ns = now_ns


def _notify(update: Update, to_state: str, now_ns: int, reason: str, *, reuse: bool = True) -> None:
    """Notify on this evaluation's transition into `to_state`, else on a new same-state transition (`reason`)."""
    if reuse:
        for transition in reversed(update.transitions):
            if transition.to_state == to_state and transition.time_ns == now_ns:
                update.notify.append(transition)
                return
    update.notify.append(update.record(update.alert.state, to_state, now_ns, reason))


def notification_kind(to_state: str) -> Literal["firing", "resolved", "acknowledged"]:
    """What a notifying transition into `to_state` tells receivers: firing, resolved or acknowledged."""
    if to_state in QUIET_STATES:
        return "resolved"
    if to_state == "acknowledged":
        return "acknowledged"
    return "firing"

