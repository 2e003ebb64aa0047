"""Flap control: an alert that fires and resolves too often is held as flapping and notified once.

A *change* is a transition across the firing/quiet line (into or out of firing, recovering, nodata or
error); firing <-> recovering and pending <-> inactive are not changes, because they never notify.
When a rule's alert makes more than `flap_threshold` changes within `flap_window`, it becomes flapping
(a `flapping` transition): it keeps changing state and every transition is stored, but receivers hear
one `firing` notification and nothing more until it settles. It settles (a `settled` transition) once
the changes within the window drop to half the threshold; then receivers hear `resolved` if it is quiet,
and nothing if it is firing (they already think so). A threshold of 0 turns flap control off.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from tocsin.alerting.state import EVALUATION_STATES, FLAPPING, PROBLEM_STATES, SETTLED, Update
from tocsin.models import AlertTransition


def is_change(transition: AlertTransition) -> bool:
    """True when the transition crosses the firing/quiet line (what flap control counts)."""
    return (
        transition.from_state in EVALUATION_STATES
        and transition.to_state in EVALUATION_STATES
        and (transition.from_state in PROBLEM_STATES) != (transition.to_state in PROBLEM_STATES)
    )


class FlapDetector:
    """Recent change times per alert fingerprint, and the flapping decision made from them."""

    def __init__(self) -> None:
        self._changes: dict[str, deque[int]] = {}

    def knows(self, fingerprint: str) -> bool:
        """True once the detector has seen (or been seeded with) this alert."""
        return fingerprint in self._changes

    def seed(self, fingerprint: str, history: Iterable[AlertTransition], threshold: int) -> None:
        """Start from stored history (after a restart), so flapping survives it."""
        changes = self._changes[fingerprint] = deque(maxlen=threshold + 1)
        changes.extend(transition.time_ns for transition in history if is_change(transition))

    def forget(self, fingerprint: str) -> None:
        """Drop an alert that is over and settled."""
        self._changes.pop(fingerprint, None)

    def observe(self, update: Update, now_ns: int, threshold: int, window_s: float) -> None:
        """Count this evaluation's changes and start or end the flapping hold on the alert."""
        alert = update.alert
        changes = self._changes.get(alert.fingerprint)
        if changes is None or changes.maxlen != threshold + 1:
            changes = self._changes[alert.fingerprint] = deque(changes or (), maxlen=threshold + 1)
        changes.extend(transition.time_ns for transition in update.transitions if is_change(transition))
        cutoff = now_ns - round(window_s * 1e9)
        while changes and changes[0] <= cutoff:
            changes.popleft()
        count = len(changes)
        if not alert.flapping and threshold > 0 and count > threshold:
            alert.flapping = True
            update.record(alert.state, FLAPPING, now_ns,
                          f"changed state more than {threshold} times within {window_s:g}s")
        elif alert.flapping and (threshold <= 0 or count <= threshold // 2):
            alert.flapping = False
            update.record(FLAPPING, SETTLED, now_ns, f"{count} state changes within {window_s:g}s; settled")
