"""Backtesting: replay a rule over stored history with the real evaluator and state machine, on virtual time.

The rule is evaluated every `step_s` from `start_ns` to `end_ns` (inclusive of the start, exclusive of the
end) against what storage holds for each of those moments — the same queries a live evaluation runs, with
`now` set in the past. Alerts live in memory only: nothing is saved and nobody is notified; the result
lists every transition and each notification that would have gone out. Silences stored for that period
apply as they were recorded; acknowledgements are a human's and are not replayed.
"""

from __future__ import annotations

import math

import msgspec

from tocsin.alerting.evaluator import Evaluator, Settings
from tocsin.alerting.rules import CompiledRule
from tocsin.alerting.silences import SilenceIndex
from tocsin.alerting.state import notification_kind
from tocsin.errors import QueryError
from tocsin.models import Alert, AlertTransition, Severity
from tocsin.storage.protocol import StorageBackend

MAX_STEPS = 100_000
"""Most evaluations one backtest runs (a day at 1 s, ten weeks at 1 min)."""


class WouldNotify(msgspec.Struct, kw_only=True):
    """A notification a backtest would have sent: when, for which alert, and what kind."""

    time_ns: int
    fingerprint: str
    rule: str
    labels: dict[str, str]
    severity: Severity
    kind: str
    reason: str
    episode: int
    channels: list[str] = []


class BacktestResult(msgspec.Struct, kw_only=True):
    """A rule's replayed timeline: every transition, the notifications, the alerts at the end, and errors."""

    rule: str
    start_ns: int
    end_ns: int
    step_s: float
    evaluations: int
    transitions: list[AlertTransition] = []
    notifications: list[WouldNotify] = []
    alerts: list[Alert] = []
    errors: list[tuple[int, str]] = []


async def run_backtest(storage: StorageBackend, rule: CompiledRule, start_ns: int, end_ns: int, *, step_s: float,
                       settings: Settings) -> BacktestResult:
    """Evaluate `rule` at every step of [start_ns, end_ns) against stored history (see the module docstring)."""
    if not (math.isfinite(step_s) and step_s > 0):
        raise QueryError(f"backtest step must be a positive number of seconds, got {step_s!r}")
    step_ns = round(step_s * 1e9)
    steps = -(-(end_ns - start_ns) // step_ns)
    if steps < 1:
        raise QueryError(f"backtest end ({end_ns}) must be after its start ({start_ns})")
    if steps > MAX_STEPS:
        raise QueryError(f"backtest of {steps} evaluations is too long (at most {MAX_STEPS}); "
                         "use a larger step or a shorter range")
    evaluator = Evaluator(msgspec.structs.replace(settings, interval_s=step_s))
    evaluator.rules[rule.name] = rule
    silences = await storage.list_silences()
    result = BacktestResult(rule=rule.name, start_ns=start_ns, end_ns=end_ns, step_s=step_s, evaluations=steps)
    for now in range(start_ns, end_ns, step_ns):
        cycle = await evaluator.cycle(storage, now, SilenceIndex(silences, now))
        status = evaluator.status[rule.name]
        if status.health == "error":
            result.errors.append((now, status.last_error))
        for update in cycle.updates:
            alert = update.alert
            result.transitions += update.transitions
            result.notifications += [
                WouldNotify(time_ns=t.time_ns, fingerprint=alert.fingerprint, rule=alert.rule,
                            labels=dict(alert.labels), severity=alert.severity, kind=notification_kind(t.to_state),
                            reason=t.reason, episode=alert.episode,
                            channels=list(rule.step_for(alert.severity).channels))
                for t in update.notify
            ]
    result.alerts = sorted(evaluator.alerts.values(), key=lambda alert: alert.fingerprint)
    return result
