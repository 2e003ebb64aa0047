"""The alert state machine, table-driven against ../shared/design/SEMANTICS.md §1.1-1.2 (pure: no storage, no clock)."""

from __future__ import annotations

import pytest

from tocsin.alerting.flapping import FlapDetector, is_change
from tocsin.alerting.state import (
    Policy,
    Update,
    acknowledge,
    apply_condition,
    decide_notifications,
    expire_acknowledgement,
    new_alert,
    notification_kind,
    resolve_by_hand,
    restore_after_outage,
)
from tocsin.models import Alert, AlertTransition

S = 1_000_000_000
B, C, H = "breach", "clear", "hold"


def run(policy: Policy, steps: list[tuple], alert: Alert | None = None) -> list[tuple[int, str, str]]:
    """Evaluate (seconds, condition[, muted]) steps; returns (seconds, state, notifications) for each."""
    alert = alert or new_alert("fp", "r", {"alertname": "r"}, "warning", 0)
    seen = []
    for t, condition, *muted in steps:
        update = Update.of(alert)
        apply_condition(update, condition, 1.0, t * S, policy)
        decide_notifications(update, t * S, policy, muted=bool(muted and muted[0]))
        alert = update.alert
        seen.append((t, alert.state, ",".join(notification_kind(n.to_state) for n in update.notify)))
    return seen


TABLE = [
    # name, policy, steps, expected (seconds, state, notifications)
    ("for=0 fires on the first evaluation", Policy(), [(0, B)], [(0, "firing", "firing")]),
    ("for=2m: pending until two minutes have passed", Policy(for_s=120), [(0, B), (60, B), (120, B)],
     [(0, "pending", ""), (60, "pending", ""), (120, "firing", "firing")]),
    ("a pending alert that clears is dropped and never notified", Policy(for_s=120),
     [(0, B), (60, B), (90, C), (150, C)],
     [(0, "pending", ""), (60, "pending", ""), (90, "inactive", ""), (150, "inactive", "")]),
    ("clear without keep_firing_for resolves at once and notifies", Policy(),
     [(0, B), (60, C)], [(0, "firing", "firing"), (60, "resolved", "resolved")]),
    ("keep_firing_for holds a firing alert as recovering until it has passed", Policy(keep_firing_for_s=120),
     [(0, B), (60, C), (120, C), (180, C)],
     [(0, "firing", "firing"), (60, "recovering", ""), (120, "recovering", ""), (180, "resolved", "resolved")]),
    ("breaching again while recovering goes back to firing without a word", Policy(keep_firing_for_s=120),
     [(0, B), (60, C), (120, B), (180, C), (300, C)],
     [(0, "firing", "firing"), (60, "recovering", ""), (120, "firing", ""), (180, "recovering", ""),
      (300, "resolved", "resolved")]),
    ("a resolved alert that breaches again starts over", Policy(for_s=60),
     [(0, B), (60, B), (120, C), (180, B), (240, B)],
     [(0, "pending", ""), (60, "firing", "firing"), (120, "resolved", "resolved"), (180, "pending", ""),
      (240, "firing", "firing")]),
    ("cooldown re-notifies a still-firing alert", Policy(cooldown_s=300),
     [(0, B), (60, B), (240, B), (300, B), (540, B), (600, B)],
     [(0, "firing", "firing"), (60, "firing", ""), (240, "firing", ""), (300, "firing", "firing"),
      (540, "firing", ""), (600, "firing", "firing")]),
    ("hold changes nothing", Policy(for_s=60), [(0, B), (60, H), (120, B)],
     [(0, "pending", ""), (60, "pending", ""), (120, "firing", "firing")]),
    ("muted while it fires: nobody hears; unmuted: receivers hear it fires", Policy(),
     [(0, B, True), (60, B, True), (120, B)],
     [(0, "firing", ""), (60, "firing", ""), (120, "firing", "firing")]),
    ("muted from the start to the end: nobody hears anything, not even resolved", Policy(),
     [(0, B, True), (60, C, True), (120, C)],
     [(0, "firing", ""), (60, "resolved", ""), (120, "resolved", "")]),
    ("heard firing, resolved while muted: receivers hear resolved once unmuted", Policy(),
     [(0, B), (60, C, True), (120, C), (180, C)],
     [(0, "firing", "firing"), (60, "resolved", ""), (120, "resolved", "resolved"), (180, "resolved", "")]),
    ("heard firing, resolved and re-fired while muted: the same episode, no second page", Policy(),
     [(0, B), (60, C, True), (120, B, True), (180, B)],
     [(0, "firing", "firing"), (60, "resolved", ""), (120, "firing", ""), (180, "firing", "")]),
    ("an open alert that goes pending waits: it either fires (same episode) or clears", Policy(for_s=60),
     [(0, B), (60, B), (120, C, True), (180, B), (240, C)],
     [(0, "pending", ""), (60, "firing", "firing"), (120, "resolved", ""), (180, "pending", ""),
      (240, "inactive", "resolved")]),
    ("a nodata instance uses the same table with its own state", Policy(for_s=60, problem_state="nodata"),
     [(0, B), (60, B), (120, C)], [(0, "pending", ""), (60, "nodata", "firing"), (120, "resolved", "resolved")]),
]


@pytest.mark.parametrize(("policy", "steps", "expected"), [case[1:] for case in TABLE],
                         ids=[case[0] for case in TABLE])
def test_state_machine_table(policy, steps, expected):
    assert run(policy, steps) == expected


def test_episodes_count_notification_episodes_and_fired_at_marks_their_start():
    alert = new_alert("fp", "r", {}, "warning", 0)
    update = Update.of(alert)
    for t, condition in [(0, B), (60, C), (120, B)]:
        apply_condition(update, condition, 1.0, t * S, Policy())
        decide_notifications(update, t * S, Policy(), muted=False)
    assert (update.alert.episode, update.alert.fired_at_ns, update.alert.last_notified_ns) == (2, 120 * S, 120 * S)
    assert alert.state == "inactive" and alert.episode == 0  # Update.of works on a copy


def test_every_transition_is_recorded_with_time_value_and_reason():
    update = Update.of(new_alert("fp", "r", {}, "warning", 0))
    apply_condition(update, B, 7.5, 0, Policy(for_s=60))
    apply_condition(update, B, 8.5, 60 * S, Policy(for_s=60))
    [pending, firing] = update.transitions
    assert (pending.from_state, pending.to_state, pending.value, pending.time_ns) == ("inactive", "pending", 7.5, 0)
    assert (firing.from_state, firing.to_state, firing.value, firing.time_ns) == ("pending", "firing", 8.5, 60 * S)
    assert "for: 1m" in pending.reason and "held for 1m" in firing.reason


# -- restart: for progress across an outage (Prometheus RestoreForState) --------------------------------


def pending_since(active_s: int, last_eval_s: int) -> Update:
    alert = new_alert("fp", "r", {}, "warning", 0)
    alert.state, alert.active_at_ns, alert.last_eval_ns = "pending", active_s * S, last_eval_s * S
    return Update.of(alert)


@pytest.mark.parametrize(("for_s", "active_s", "down_at_s", "now_s", "expected_active_s", "expected_state"), [
    # short outage, much `for` left: the outage does not count as pending time
    (3600, 0, 600, 900, 300, "pending"),
    # short outage, less than the grace period left: fire no sooner than grace (10 m) after the restart
    (1800, 0, 1500, 1560, 1560 + 600 - 1800, "pending"),
    # `for` shorter than the grace period: it starts over at the restart
    (300, 0, 120, 240, 240, "pending"),
    # no `for` left before the outage: it fires at the next evaluation
    (1200, 0, 1300, 1400, 0, "pending"),
    # outage longer than the tolerance (1 h): progress is reset
    (3600, 0, 600, 600 + 7200, None, "inactive"),
])
def test_restore_after_outage(for_s, active_s, down_at_s, now_s, expected_active_s, expected_state):
    update = pending_since(active_s, down_at_s)
    restore_after_outage(update, now_s * S, Policy(for_s=for_s), tolerance_s=3600, grace_s=600)
    alert = update.alert
    assert alert.state == expected_state
    assert alert.active_at_ns == (None if expected_active_s is None else expected_active_s * S)
    if expected_state == "inactive":
        assert "for_outage_tolerance" in update.transitions[0].reason


def test_restored_pending_alert_fires_after_the_shifted_for():
    update = pending_since(0, 600)  # 10 m of a 1 h `for` done, then down for 5 m
    policy = Policy(for_s=3600)
    restore_after_outage(update, 900 * S, policy, tolerance_s=3600, grace_s=600)
    apply_condition(update, B, 1.0, 3800 * S, policy)
    assert update.alert.state == "pending"
    apply_condition(update, B, 1.0, 3900 * S, policy)
    assert update.alert.state == "firing"


# -- the human axis ----------------------------------------------------------------------------------------


def firing_alert() -> Alert:
    update = Update.of(new_alert("fp", "r", {}, "warning", 0))
    apply_condition(update, B, 1.0, 0, Policy())
    decide_notifications(update, 0, Policy(), muted=False)
    return update.alert


def test_acknowledged_alert_sends_no_repeats_and_notifies_again_when_the_ack_expires():
    policy = Policy(cooldown_s=300)
    update = Update.of(firing_alert())
    acknowledge(update, "ann", "on it", 1000 * S, 10 * S)
    alert = update.alert
    assert (alert.handling, alert.acknowledged_by, alert.ack_comment) == ("acknowledged", "ann", "on it")
    kinds = []
    for t in (300, 600, 900, 1000, 1060):
        update = Update.of(alert)
        apply_condition(update, B, 1.0, t * S, policy)
        expire_acknowledgement(update, t * S)
        decide_notifications(update, t * S, policy, muted=False)
        alert = update.alert
        kinds.append((t, alert.handling, [n.to_state for n in update.notify]))
    assert kinds == [(300, "acknowledged", []), (600, "acknowledged", []), (900, "acknowledged", []),
                     (1000, "active", ["active"]), (1060, "active", [])]
    assert alert.last_notified_ns == 1000 * S


def test_acknowledgement_is_cleared_when_the_alert_resolves():
    update = Update.of(firing_alert())
    acknowledge(update, "ann", "", None, 10 * S)
    apply_condition(update, C, 0.0, 60 * S, Policy())
    decide_notifications(update, 60 * S, Policy(), muted=False)
    assert update.alert.handling == "active" and update.alert.acknowledged_by is None
    assert [(t.from_state, t.to_state) for t in update.transitions] == [
        ("active", "acknowledged"), ("firing", "resolved"), ("acknowledged", "active")]
    assert [notification_kind(n.to_state) for n in update.notify] == ["resolved"]


def test_resolve_by_hand_suppresses_until_the_condition_clears_once():
    policy = Policy(cooldown_s=60)
    update = Update.of(firing_alert())
    resolve_by_hand(update, "bob", "deployed a fix", 30 * S)
    alert = update.alert
    history = []
    for t, condition in [(60, B), (120, B), (180, C), (240, B)]:
        update = Update.of(alert)
        apply_condition(update, condition, 1.0, t * S, policy)
        decide_notifications(update, t * S, policy, muted=alert.handling == "resolved")
        alert = update.alert
        history.append((t, alert.state, alert.handling, [notification_kind(n.to_state) for n in update.notify]))
    assert history == [(60, "firing", "resolved", []), (120, "firing", "resolved", []),
                       (180, "resolved", "active", []), (240, "firing", "active", ["firing"])]


# -- flap control --------------------------------------------------------------------------------------------


def test_a_flapping_alert_is_notified_once_and_resolved_once_it_settles():
    detector = FlapDetector()
    policy = Policy()
    alert = new_alert("fp", "r", {}, "warning", 0)
    notified = []
    # flips every minute for 20 minutes, then stays clear
    steps = [(t, B if (t // 60) % 2 == 0 else C) for t in range(0, 1200, 60)]
    steps += [(t, C) for t in range(1200, 6000, 60)]
    for t, condition in steps:
        update = Update.of(alert)
        apply_condition(update, condition, 1.0, t * S, policy)
        detector.observe(update, t * S, threshold=6, window_s=3600)
        decide_notifications(update, t * S, policy, muted=False)
        alert = update.alert
        notified += [(t, n.to_state) for n in update.notify]
        if any(tr.to_state == "flapping" for tr in update.transitions):
            assert alert.flapping and t == 360  # the 7th change
    assert notified == [(0, "firing"), (60, "resolved"), (120, "firing"), (180, "resolved"), (240, "firing"),
                        (300, "resolved"), (360, "flapping"), (4560, "resolved")]
    # the last changes were at 1020, 1080 and 1140 s: at 4560 s only those three are within the hour (<= 6 // 2)
    assert not alert.flapping


def test_only_firing_quiet_crossings_count_as_changes():
    def t(a: str, b: str) -> AlertTransition:
        return AlertTransition(fingerprint="f", rule="r", time_ns=0, from_state=a, to_state=b)

    assert is_change(t("pending", "firing")) and is_change(t("recovering", "resolved"))
    assert not is_change(t("firing", "recovering")) and not is_change(t("pending", "inactive"))
    assert not is_change(t("firing", "flapping")) and not is_change(t("active", "acknowledged"))
