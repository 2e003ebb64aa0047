"""One evaluation cycle: read every rule, turn what it saw into per-instance signals, run the state machine.

Shared by the alerting service (live, alerts reloaded from storage before each cycle), backtests and rule
tests (alerts kept in memory): the same code decides in all three. Per rule, in order:

1. read the rule's window (tocsin.alerting.sources), under `evaluation_timeout`; any exception — from the
   query, the operator or the reading — makes this rule's evaluation an *error*, and the others carry on;
2. signals per instance: each (series, severity step) breaches or clears; instances whose series is gone
   hold for one evaluation and clear on the second (STALE_AFTER, Grafana's MissingSeries); a rule with no
   data, or an error, follows its `nodata_state` / `error_state`:
       normal     its instances are treated as missing (they resolve after STALE_AFTER evaluations)
       alerting   its instances breach (with no value); with none yet, the base instance breaches
       keep_last  nothing changes
       nodata / error   a separate instance (label tocsin_condition=nodata|error) goes pending -> nodata/error
                        by the rule's `for`; the series instances keep their state
3. the state machine (tocsin.alerting.state), after restoring `for` progress across an outage;
4. the handling axis: inhibition between severity steps, silences, acknowledgement expiry, flap control,
   and the notification decision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

from tocsin.alerting.flapping import FlapDetector
from tocsin.alerting.rules import CONDITION_LABEL, SEVERITY_RANK, CompiledRule, fingerprint
from tocsin.alerting.silences import SilenceIndex
from tocsin.alerting.sources import Reading, Source, read
from tocsin.alerting.state import (
    ACTIVE_STATES,
    PROBLEM_STATES,
    Condition,
    Policy,
    Update,
    apply_condition,
    decide_notifications,
    expire_acknowledgement,
    is_open,
    new_alert,
    restore_after_outage,
    seconds,
)
from tocsin.alerting.templates import render_annotations
from tocsin.alerting.windows import MetricWindows
from tocsin.models import Alert, AlertTransition, Severity
from tocsin.storage.protocol import StorageBackend

STALE_AFTER = 2
"""Evaluations a series may be missing from a rule's result before its alert clears."""
OUTAGE_INTERVALS = 2
"""A pending alert last evaluated more than this many intervals ago has lived through an outage."""

RuleHealth = Literal["unknown", "ok", "nodata", "error"]


class RuleStatus(msgspec.Struct, kw_only=True):
    """How a rule's evaluations are going: health, last error, when and how long it last ran."""

    name: str
    health: RuleHealth = "unknown"
    last_error: str = ""
    last_eval_ns: int | None = None
    last_duration_s: float = 0.0
    evaluations: int = 0
    failures: int = 0


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Evaluation settings: the interval, the per-rule timeout, and the restart tolerances."""

    interval_s: float = 60.0
    timeout_s: float = 30.0
    outage_tolerance_s: float = 3600.0
    grace_s: float = 600.0


class Archive(Protocol):
    """Where alerts that are over go, so a later breach continues their episode count and flap history."""

    persistent: bool

    async def previous(self, fingerprint: str) -> Alert | None:
        """The last known alert with this fingerprint, if any."""

    async def history(self, fingerprint: str, limit: int) -> list[AlertTransition]:
        """Its latest transitions, oldest first."""

    def keep(self, alert: Alert) -> None:
        """Remember an alert that leaves the evaluator's working set."""


class MemoryArchive:
    """Keeps ended alerts in memory: for backtests and rule tests, where nothing is stored."""

    persistent = False

    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}

    async def previous(self, fingerprint: str) -> Alert | None:
        """The alert as it was when it left the working set."""
        return self.alerts.get(fingerprint)

    async def history(self, fingerprint: str, limit: int) -> list[AlertTransition]:
        """Nothing: flap history stays in the evaluator's memory in this mode."""
        return []

    def keep(self, alert: Alert) -> None:
        """Remember it."""
        self.alerts[alert.fingerprint] = alert


class StorageArchive:
    """Reads ended alerts and their history back from storage (where the service saved them)."""

    persistent = True

    def __init__(self, storage: StorageBackend) -> None:
        self.storage = storage

    async def previous(self, fingerprint: str) -> Alert | None:
        """The stored alert."""
        return await self.storage.get_alert(fingerprint)

    async def history(self, fingerprint: str, limit: int) -> list[AlertTransition]:
        """Its stored transitions."""
        return await self.storage.alert_history(fingerprint, limit)

    def keep(self, alert: Alert) -> None:
        """Nothing to do: the service has saved it."""


@dataclass
class Signal:
    """What one instance should do this evaluation."""

    fingerprint: str
    labels: dict[str, str]
    severity: Severity
    policy: Policy
    condition: Condition
    value: float | None
    threshold: float | list[float]
    reason: str = ""


@dataclass
class Cycle:
    """The result of one evaluation: every alert touched, and the rules whose health changed (not first-time ok)."""

    time_ns: int
    updates: list[Update]
    health_changes: list[RuleStatus]


Timing = Callable[[str, float, bool], None]


Inhibitor = Callable[[CompiledRule, Alert], "str | None"]
"""Names what inhibits an alert from outside its rule (an unhealthy dependency of its component), or None."""


class Evaluator:
    """Rules, the alerts in play, and the memory one cycle needs of the last (missing series, flapping)."""

    def __init__(self, settings: Settings, *, archive: Archive | None = None, on_timing: Timing | None = None,
                 inhibitor: Inhibitor | None = None):
        self.settings = settings
        self.archive: Archive = archive or MemoryArchive()
        self.on_timing = on_timing
        self.inhibitor = inhibitor
        self.rules: dict[str, CompiledRule] = {}
        self.alerts: dict[str, Alert] = {}
        self.status: dict[str, RuleStatus] = {}
        self._missing: dict[str, int] = {}
        self._flaps = FlapDetector()
        self.windows: MetricWindows | None = None
        """Streaming state answering metric rules from flushed rollups (None: every rule reads storage)."""

    async def cycle(self, storage: StorageBackend, now_ns: int, silences: SilenceIndex) -> Cycle:
        """Evaluate every rule once at `now_ns`; `self.alerts` becomes what is still in play."""
        existing: dict[str, list[Alert]] = {}
        for alert in self.alerts.values():
            existing.setdefault(alert.rule, []).append(alert)
        updates: list[Update] = []
        changes: list[RuleStatus] = []
        if self.windows is not None:
            await self.windows.warm(self.rules.values(), storage)
        source = Source(storage, self.windows.cycle() if self.windows is not None else None)
        for rule in list(self.rules.values()):
            before = self.status.get(rule.name, RuleStatus(name=rule.name)).health
            updates += await self._rule(rule, source, now_ns, existing.get(rule.name, []), silences)
            after = self.status[rule.name].health
            if after != before and (before, after) != ("unknown", "ok"):  # a rule starting fine is no news
                changes.append(self.status[rule.name])
        for update in updates:
            alert = update.alert
            if alert.state in ACTIVE_STATES or is_open(alert) or alert.flapping:
                self.alerts[alert.fingerprint] = alert
            else:
                self.alerts.pop(alert.fingerprint, None)
                self._missing.pop(alert.fingerprint, None)
                self.archive.keep(alert)
                if self.archive.persistent:
                    self._flaps.forget(alert.fingerprint)
        return Cycle(time_ns=now_ns, updates=updates, health_changes=changes)

    # -- one rule ------------------------------------------------------------------------------------

    async def _rule(self, rule: CompiledRule, source: Source, now_ns: int, existing: list[Alert],
                    silences: SilenceIndex) -> list[Update]:
        status = self.status.setdefault(rule.name, RuleStatus(name=rule.name))
        started = time.perf_counter()
        error = ""
        reading = Reading()
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                reading = await read(rule, source, now_ns)
            signals = self._signals(rule, reading, existing)
        except TimeoutError:
            error = f"evaluation took longer than evaluation_timeout {seconds(self.settings.timeout_s)}"
        except Exception as caught:  # a rule that raises goes to its error state; the others carry on
            error = f"{type(caught).__name__}: {' '.join(str(caught).split())[:500]}"
        duration = time.perf_counter() - started
        if error:
            signals = self._mapped(rule, rule.config.error_state, "error", existing, error)
            signals += self._conditions(rule, existing, nodata="hold", error="breach" if
                                        rule.config.error_state == "error" else "clear", reason=error)
        status.health = "error" if error else "nodata" if reading.nodata else "ok"
        status.last_error, status.last_eval_ns, status.last_duration_s = error, now_ns, duration
        status.evaluations += 1
        status.failures += bool(error)
        if self.on_timing is not None:
            self.on_timing(rule.name, duration, not error)
        updates = [update for signal in signals if (update := await self._advance(rule, signal, now_ns))]
        self._handle(rule, updates, {signal.fingerprint: signal.policy for signal in signals}, now_ns, silences)
        return updates

    def _signals(self, rule: CompiledRule, reading: Reading, existing: list[Alert]) -> list[Signal]:
        if reading.nodata:
            mapping = rule.config.nodata_state
            signals = self._mapped(rule, mapping, "nodata", existing, "no data in the window")
            return signals + self._conditions(rule, existing, nodata="breach" if mapping == "nodata" else "clear",
                                              error="clear", reason="no data in the window")
        signals: dict[str, Signal] = {}
        for series, value in reading.values:
            for step in rule.steps:
                labels, fp = rule.instance(series, step)
                condition: Condition = "breach" if rule.breaches(step, value) else "clear"
                signals[fp] = Signal(fp, labels, step.severity, step.policy, condition, value, step.threshold)
                self._missing.pop(fp, None)
        for alert in existing:
            if alert.fingerprint not in signals and CONDITION_LABEL not in alert.labels:
                signals[alert.fingerprint] = self._missing_signal(rule, alert)
        return [*signals.values(), *self._conditions(rule, existing, nodata="clear", error="clear")]

    def _missing_signal(self, rule: CompiledRule, alert: Alert, reason: str = "series missing") -> Signal:
        """A series instance absent from the result: hold, then clear after STALE_AFTER evaluations."""
        count = self._missing[alert.fingerprint] = self._missing.get(alert.fingerprint, 0) + 1
        step = rule.step_for(alert.severity)
        condition: Condition = "clear" if count >= STALE_AFTER else "hold"
        return Signal(alert.fingerprint, alert.labels, alert.severity, step.policy, condition, None, step.threshold,
                      f"{reason} for {count} evaluations")

    def _mapped(self, rule: CompiledRule, mapping: str, condition: str, existing: list[Alert], reason: str
                ) -> list[Signal]:
        """Series instances under a nodata / error mapping (the condition instance is `_conditions`)."""
        series = [alert for alert in existing if CONDITION_LABEL not in alert.labels]
        if mapping == "normal":
            return [self._missing_signal(rule, alert, reason) for alert in series]
        if mapping == "alerting":
            targets = [(alert.labels, rule.step_for(alert.severity)) for alert in series]
            if not targets:
                targets = [(rule.labels_for({}, rule.base), rule.base)]
            return [Signal(fingerprint(rule.name, labels), labels, step.severity, step.policy, "breach", None,
                           step.threshold, f"{condition}: {reason}") for labels, step in targets]
        return [Signal(alert.fingerprint, alert.labels, alert.severity, rule.step_for(alert.severity).policy,
                       "hold", alert.value, rule.step_for(alert.severity).threshold) for alert in series]

    def _conditions(self, rule: CompiledRule, existing: list[Alert], *, nodata: Condition, error: Condition,
                    reason: str = "") -> list[Signal]:
        """Signals for the rule's nodata and error instances (only a breach creates one)."""
        present = {alert.labels.get(CONDITION_LABEL) for alert in existing}
        signals = []
        for name, condition in (("nodata", nodata), ("error", error)):
            if condition == "breach" or name in present:
                labels = rule.condition_labels(name)
                signals.append(Signal(fingerprint(rule.name, labels), labels, rule.base.severity,
                                      rule.condition_policy(name), condition, None, rule.base.threshold,  # type: ignore[arg-type]
                                      reason if condition == "breach" else ""))
        return signals

    # -- one instance --------------------------------------------------------------------------------

    async def _advance(self, rule: CompiledRule, signal: Signal, now_ns: int) -> Update | None:
        alert = self.alerts.get(signal.fingerprint)
        if alert is None:
            if signal.condition != "breach":
                return None
            alert = await self.archive.previous(signal.fingerprint)
            if alert is None:  # brand new: no history to read
                alert = new_alert(signal.fingerprint, rule.name, signal.labels, signal.severity, now_ns)
                self._flaps.seed(alert.fingerprint, (), rule.config.flap_threshold)
        if not self._flaps.knows(alert.fingerprint):
            limit = max(4 * rule.config.flap_threshold, 1)
            self._flaps.seed(alert.fingerprint, await self.archive.history(alert.fingerprint, limit),
                             rule.config.flap_threshold)
        update = Update.of(alert)
        before = (alert.value, alert.state)
        interval_ns = round(self.settings.interval_s * 1e9)
        if alert.last_eval_ns is not None and now_ns - alert.last_eval_ns > OUTAGE_INTERVALS * interval_ns:
            restore_after_outage(update, now_ns, signal.policy, tolerance_s=self.settings.outage_tolerance_s,
                                 grace_s=self.settings.grace_s)
        apply_condition(update, signal.condition, signal.value, now_ns, signal.policy, signal.reason)
        current = update.alert
        rerender = (current.value, current.state) != before or not current.annotations
        if current.state in ACTIVE_STATES and rule.config.annotations and signal.condition != "hold" and rerender:
            current.annotations = render_annotations(rule.config.annotations, {
                "value": current.value, "labels": current.labels, "rule": rule.name,
                "severity": current.severity, "threshold": signal.threshold, "state": current.state})
        return update

    def _handle(self, rule: CompiledRule, updates: list[Update], policies: dict[str, Policy], now_ns: int,
                silences: SilenceIndex) -> None:
        """The handling axis for a rule's instances: inhibition, silences, acks, flapping, notifications."""
        firing: dict[tuple[tuple[str, str], ...], list[Alert]] = {}
        for update in updates:
            alert = update.alert
            if alert.state in PROBLEM_STATES:
                firing.setdefault(_series_key(alert), []).append(alert)
        for update in updates:
            alert = update.alert
            rank = SEVERITY_RANK[alert.severity]
            alert.inhibited_by = [other.fingerprint for other in firing.get(_series_key(alert), [])
                                  if SEVERITY_RANK[other.severity] > rank]
            cause = self.inhibitor(rule, alert) if self.inhibitor is not None else None
            if cause:
                alert.inhibited_by.append(f"health:{cause}")
            alert.silenced_by = silences.matching(alert.labels)
            expire_acknowledgement(update, now_ns)
            self._flaps.observe(update, now_ns, rule.config.flap_threshold, rule.config.flap_window)
            muted = bool(alert.silenced_by or alert.inhibited_by) or alert.handling == "resolved"
            policy = policies.get(alert.fingerprint) or rule.step_for(alert.severity).policy
            decide_notifications(update, now_ns, policy, muted=muted)


def _series_key(alert: Alert) -> tuple[tuple[str, str], ...]:
    """An alert's labels without its severity: the instances of one series across the ladder share it."""
    return tuple(sorted((key, value) for key, value in alert.labels.items() if key != "severity"))
