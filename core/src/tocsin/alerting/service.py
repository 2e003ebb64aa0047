"""The alerting service: evaluates rules every `evaluation_interval` on the monitor's clock and persists the result.

    alerting = AlertingService(monitor, router=router)   # the Monitor exposes it as `monitor.alerting`
    alerting.add_rule({"name": "queue-deep", "metric": "queue_depth", "aggregate": "max", "threshold": 100})
    report = await alerting.evaluate()                   # one cycle now (the loop runs them on its own)
    await alerting.receive_external("prometheus", [ExternalAlert(labels={"alertname": "Down"})])
    await alerting.acknowledge(fingerprint, by="ann", comment="on it", until_ns=...)
    await alerting.create_silence('route="/health"', created_by="ann", duration_s=3600)
    result = await alerting.backtest("queue-deep", start_ns, end_ns)

Storage is the source of truth: before each cycle the alerts in play are read back from it, so an
acknowledgement or a manual resolve made by another process (the CLI, another replica's API) is seen
at the next evaluation. An alert is saved when anything about it changed (state, value, annotations,
silences...), and every evaluation while pending (its `last_eval_ns` carries `for` across an outage);
a firing alert whose value holds still is not rewritten each cycle. Each alert is saved with its new
transitions *and* the outbox deliveries its notifying transitions produce, in one `save_alert` call
(a transactional outbox): a notification exists exactly when its transition does. Which channels a
notification reaches, and when, is the `Router`'s business (tocsin.notify.routing); without one nothing is
enqueued. Every transition is also published on the event bus as `Event(topic="alerts", type=<to_state>)`,
and each cycle ends with an `evaluated` event (its duration and counts). Alerts evaluated by another system
(a Prometheus server) come in through `receive_external` and follow the same path (tocsin.alerting.external).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from tocsin.alerting.backtest import BacktestResult, run_backtest
from tocsin.alerting.evaluator import Evaluator, RuleStatus, Settings, StorageArchive
from tocsin.alerting.external import ExternalAlert, ExternalAlerts, fingerprint_of
from tocsin.alerting.rules import CompiledRule, rule_from_spec
from tocsin.alerting.silences import SilenceIndex, SilenceState, as_matchers, new_silence, silence_state
from tocsin.alerting.state import (
    ACTIVE_STATES,
    QUIET_STATES,
    Update,
    acknowledge,
    is_open,
    notify_acknowledged,
    notify_resolved_by_hand,
    resolve_by_hand,
)
from tocsin.alerting.windows import MetricWindows
from tocsin.alerting.writers import SharedWriters
from tocsin.config.schema import RuleConfig
from tocsin.errors import ConfigError, ConfigProblem, QueryError, TocsinError
from tocsin.models import Alert, AlertState, AlertTransition, Delivery, Event, LabelMatcher, Severity, Silence
from tocsin.storage.protocol import AlertQuery, StorageBackend

if TYPE_CHECKING:
    from tocsin.runtime import Runtime

internal_log = logging.getLogger("tocsin")

PAGE = 1000


class Router(Protocol):
    """Turns one notifying transition into outbox deliveries (tocsin.notify.routing.Router is the real one)."""

    def deliveries_for(self, alert: Alert, transition: AlertTransition, now_ns: int) -> list[Delivery]:
        """The deliveries to store with this transition (none: nobody is told)."""

    async def refresh(self, storage: StorageBackend) -> None:
        """Read the stored routing state first when this router is not the leader's (whose state is current)."""

    async def persist(self, storage: StorageBackend) -> None:
        """Save the routing state the last `deliveries_for` calls changed (group timers, repeat marks)."""


class NoRouter:
    """The router used until notifications are configured: no deliveries."""

    def deliveries_for(self, alert: Alert, transition: AlertTransition, now_ns: int) -> list[Delivery]:
        """Nothing to deliver."""
        return []

    async def refresh(self, storage: StorageBackend) -> None:
        """No routing state to read."""

    async def persist(self, storage: StorageBackend) -> None:
        """No routing state to save."""


class CycleReport(msgspec.Struct, kw_only=True):
    """What one evaluation did: the alerts it saved, their transitions, and the transitions that notified."""

    time_ns: int
    duration_s: float
    rules: int
    alerts: list[Alert] = []
    transitions: list[AlertTransition] = []
    notifications: list[AlertTransition] = []
    failed_rules: list[str] = []


def event_data(alert: Alert, transition: AlertTransition, *, notified: bool) -> dict[str, Any]:
    """The `data` of an alerts event: the transition and the alert it happened to."""
    return {
        "fingerprint": alert.fingerprint, "rule": alert.rule, "labels": dict(alert.labels),
        "severity": alert.severity, "state": alert.state, "handling": alert.handling,
        "from_state": transition.from_state, "to_state": transition.to_state, "value": transition.value,
        "reason": transition.reason, "actor": transition.actor, "notified": notified, "episode": alert.episode,
        "silenced_by": list(alert.silenced_by), "inhibited_by": list(alert.inhibited_by),
        "flapping": alert.flapping,
    }


class AlertingService:
    """Rules, the evaluation loop, acknowledgement, manual resolve, silences and backtests for one monitor."""

    def __init__(self, monitor: Runtime, *, router: Router | None = None) -> None:
        self.monitor = monitor
        self.router: Router = router or NoRouter()
        cfg = monitor.config.alerting
        self.settings = Settings(interval_s=float(cfg.evaluation_interval), timeout_s=float(cfg.evaluation_timeout),
                                 outage_tolerance_s=float(cfg.for_outage_tolerance),
                                 grace_s=float(cfg.for_grace_period))
        self.evaluator = Evaluator(self.settings, on_timing=self._record_timing, inhibitor=self._health_inhibitor)
        self.windows = MetricWindows(monitor.metrics.declares, lambda: monitor.metrics.interval_start_ns)
        """Metric rules answered from the rollups this process flushes (`[alerting] streaming`)."""
        self.streaming = cfg.streaming
        self.writers = SharedWriters(ttl_s=max(60.0, 3 * float(monitor.config.metrics.flush_interval)))
        """Other processes writing metrics into the store turn streaming off while they do."""
        self.evaluator.windows = self.windows
        self._channels = {channel.name for channel in monitor.config.channels}
        self.external = ExternalAlerts()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last_report: CycleReport | None = None
        self._scanned = False
        for rule in cfg.rules:
            self._install(rule)

    # -- rules ---------------------------------------------------------------------------------------

    def _install(self, config: RuleConfig) -> CompiledRule:
        rule = CompiledRule(config, self.monitor.registries.operators.get(config.op))
        self.evaluator.rules[rule.name] = rule
        return rule

    def compile(self, spec: RuleConfig | Mapping[str, Any]) -> CompiledRule:
        """Check a rule given in Python (config keys) and compile it, without adding it."""
        config = rule_from_spec(spec, self.monitor.registries, self._channels)
        return CompiledRule(config, self.monitor.registries.operators.get(config.op))

    def add_rule(self, spec: RuleConfig | Mapping[str, Any] | None = None, /, **keys: Any) -> RuleConfig:
        """Add a rule given as a RuleConfig, a dict with config keys, or keyword arguments (`for_` for `for`)."""
        if spec is None:
            spec = {("for" if key == "for_" else key): value for key, value in keys.items()}
        rule = self.compile(spec)
        if rule.name in self.evaluator.rules:
            raise ConfigError([ConfigProblem(f"rule {rule.name!r}.name", "a rule with this name already exists")])
        self.evaluator.rules[rule.name] = rule
        return rule.config

    def remove_rule(self, name: str) -> bool:
        """Stop evaluating a rule (its alerts stay as they are); False when there was none."""
        return self.evaluator.rules.pop(name, None) is not None

    @property
    def rules(self) -> list[RuleConfig]:
        """Every rule, in evaluation order."""
        return [rule.config for rule in self.evaluator.rules.values()]

    def rule_status(self) -> list[RuleStatus]:
        """How each rule's evaluations are going (health, last error, last duration)."""
        return [self.evaluator.status.get(name, RuleStatus(name=name)) for name in self.evaluator.rules]

    def channels_for_rule(self, rule: str, severity: Severity) -> tuple[str, ...]:
        """The channels a rule names for a severity (empty: every channel that admits it); for the router."""
        compiled = self.evaluator.rules.get(rule)
        return () if compiled is None else compiled.step_for(severity).channels

    def _health_inhibitor(self, rule: CompiledRule, alert: Alert) -> str | None:
        """An alert about a component (a health rule's, or a `component` label) is inhibited while one of that
        component's dependencies is unhealthy (SEMANTICS.md §3 item 7); returns the unhealthy dependency."""
        component = rule.config.component or alert.labels.get("component")
        return self.monitor.health.inhibited(component) if component else None

    def _record_timing(self, rule: str, seconds: float, ok: bool) -> None:
        self.monitor.metrics.histogram("tocsin_rule_evaluation_seconds").observe(seconds, rule=rule)
        if not ok:
            self.monitor.metrics.counter("tocsin_rule_evaluation_failures_total").inc(rule=rule)

    # -- the loop ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Evaluate now and then every evaluation_interval on the monitor's clock, until `stop`."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="tocsin-alerting")

    async def stop(self) -> None:
        """Stop the loop (an evaluation in progress is cancelled; each alert is saved atomically)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.evaluate()
            except Exception as error:  # the loop never dies; the next cycle starts from storage again
                internal_log.warning("tocsin: alert evaluation failed: %r", error)
            await self.monitor.clock.sleep(self.settings.interval_s)

    def _storage(self) -> StorageBackend:
        storage = self.monitor.storage
        if storage is None:
            raise TocsinError("the monitor is not started; alerting needs its storage")
        return storage

    async def evaluate(self, now_ns: int | None = None) -> CycleReport:
        """Run one evaluation cycle at `now_ns` (default: the monitor's clock) and persist it."""
        async with self._lock:
            started = time.perf_counter()
            now = self.monitor.clock.now_ns() if now_ns is None else now_ns
            storage = self._storage()
            if not isinstance(self.evaluator.archive, StorageArchive) or self.evaluator.archive.storage is not storage:
                self.evaluator.archive = StorageArchive(storage)
            await self._reload(storage)
            index = SilenceIndex(await storage.list_silences(), now)
            others = await self.writers.others(storage, now)
            if others:
                self.windows.reset()
            self.windows.enabled = self.streaming and not others
            cycle = await self.evaluator.cycle(storage, now, index)
            await self._save_all(storage, [update for update in cycle.updates if update.changed], now)
            swept = self.external.sweep(list(self.evaluator.alerts.values()), now, index)
            await self._save_all(storage, swept, now)
            for update in swept:
                self._track(update.alert)
            for silence in index.ended_by_resolve(update.alert for update in [*cycle.updates, *swept]):
                await self._end_silence(storage, silence, now, "its alerts resolved")
            for status in cycle.health_changes:
                self.monitor.emit(Event(topic="alerts", type="rule_health", time_ns=now,
                                        data=msgspec.to_builtins(status)))
            self.last_report = CycleReport(
                time_ns=now, duration_s=time.perf_counter() - started, rules=len(self.evaluator.rules),
                alerts=[update.alert for update in cycle.updates],
                transitions=[t for update in cycle.updates for t in update.transitions],
                notifications=[t for update in cycle.updates for t in update.notify],
                failed_rules=[name for name in self.evaluator.rules
                              if self.evaluator.status[name].health == "error"],
            )
            report = self.last_report
            self.monitor.metrics.histogram("tocsin_alert_evaluation_seconds").observe(report.duration_s)
            self.monitor.emit(Event(topic="alerts", type="evaluated", time_ns=now, data={
                "duration_s": report.duration_s, "rules": report.rules, "failed_rules": report.failed_rules,
                "alerts": len(report.alerts), "transitions": len(report.transitions),
                "notifications": len(report.notifications)}))
            return report

    async def receive_external(self, source: str, alerts: Sequence[ExternalAlert]) -> list[Alert]:
        """Take alerts another system evaluated (rule `<source>:<alertname>`): each fires until its `ends_ns` and
        then resolves, through the same silences, notification decisions and outbox as a rule's alerts; a
        re-sent alert changes nothing and notifies nobody again. Returns the alerts as saved."""
        async with self._lock:
            storage = self._storage()
            now = self.monitor.clock.now_ns()
            index = SilenceIndex(await storage.list_silences(), now)
            saved = []
            for incoming in alerts:
                stored = await storage.get_alert(fingerprint_of(source, incoming.labels))
                update = self.external.receive(source, incoming, stored, now, index)
                if update is not None:
                    await self._save(storage, update, now)
                    self._track(update.alert)
                    saved.append(update.alert)
            for silence in index.ended_by_resolve(saved):
                await self._end_silence(storage, silence, now, "its alerts resolved")
            return saved

    def _track(self, alert: Alert) -> None:
        """Keep an alert another system sent in the working set while it is in play or receivers think it fires."""
        if alert.state in ACTIVE_STATES or is_open(alert):
            self.evaluator.alerts[alert.fingerprint] = alert
        else:
            self.evaluator.alerts.pop(alert.fingerprint, None)

    async def _alerts(self, storage: StorageBackend, states: Sequence[str]) -> list[Alert]:
        query = AlertQuery(states=list(states), limit=PAGE)  # type: ignore[arg-type]
        alerts: list[Alert] = []
        while True:
            page = await storage.list_alerts(query)
            alerts += page.items
            if page.next_cursor is None:
                return alerts
            query = msgspec.structs.replace(query, cursor=page.next_cursor)

    async def _reload(self, storage: StorageBackend) -> None:
        """Read the alerts in play back from storage (plus the open ones that resolved, still to be told).

        The first cycle of a process also scans the ended alerts once, for those whose receivers still think
        they fire (resolved while silenced) or that are held as flapping; later cycles track them in memory.
        """
        loaded = {alert.fingerprint: alert for alert in await self._alerts(storage, sorted(ACTIVE_STATES))}
        if not self._scanned:
            self._scanned = True
            loaded.update((alert.fingerprint, alert) for alert in await self._alerts(storage, sorted(QUIET_STATES))
                          if is_open(alert) or alert.flapping)
        for fingerprint, alert in self.evaluator.alerts.items():
            if fingerprint not in loaded and (is_open(alert) or alert.flapping):
                fresh = await storage.get_alert(fingerprint)
                if fresh is not None:
                    loaded[fingerprint] = fresh
        self.evaluator.alerts = loaded

    async def _save(self, storage: StorageBackend, update: Update, now_ns: int) -> None:
        """Save one alert with its transitions and their deliveries (see `_save_all`)."""
        await self._save_all(storage, [update], now_ns)

    async def _save_all(self, storage: StorageBackend, updates: Sequence[Update], now_ns: int) -> None:
        """Route every update, save the router's grouping state once, then save each alert with its transitions
        and their deliveries in one call and publish the transitions. Grouping state goes first, so a crash in
        between leaves it ahead of the outbox, never behind."""
        if any(update.notify for update in updates):
            await self.router.refresh(storage)
        routed = [(update, self._route(update, now_ns)) for update in updates]
        await self.router.persist(storage)
        for update, deliveries in routed:
            try:
                await storage.save_alert(update.alert, update.transitions, deliveries)
            except Exception as error:  # the next cycle re-reads storage and makes the change again
                internal_log.warning("tocsin: saving alert %s failed: %r", update.alert.fingerprint, error)
                self.evaluator.alerts.pop(update.alert.fingerprint, None)
                continue
            for transition in update.transitions:
                notified = any(transition is sent for sent in update.notify)
                self.monitor.emit(Event(topic="alerts", type=transition.to_state, time_ns=transition.time_ns,
                                        data=event_data(update.alert, transition, notified=notified)))

    def _route(self, update: Update, now_ns: int) -> list[Delivery]:
        """The outbox deliveries of an update's notifying transitions."""
        deliveries: list[Delivery] = []
        for transition in update.notify:
            try:
                deliveries += self.router.deliveries_for(update.alert, transition, now_ns)
            except Exception as error:  # a routing bug must not lose the state change
                internal_log.warning("tocsin: routing %s of alert %s failed: %r", transition.to_state,
                                     update.alert.fingerprint, error)
        return deliveries

    async def alerts(self, state: AlertState | Sequence[AlertState] | None = None, *, rule: str | None = None,
                     severity: Severity | None = None, limit: int | None = 100) -> list[Alert]:
        """Stored alerts, most recently changed first: those in play (pending, firing...) unless `state` names some.

        `state` is one state or several ("resolved", ["firing", "nodata"]); `limit=None` returns every match.
        Each alert's `fingerprint` is what `acknowledge` and `resolve` take.
        """
        states = sorted(ACTIVE_STATES) if state is None else [state] if isinstance(state, str) else list(state)
        wanted = PAGE if limit is None else min(limit, PAGE)
        query = AlertQuery(rule=rule, states=states, severity=severity, limit=wanted)  # type: ignore[arg-type]
        alerts: list[Alert] = []
        while limit is None or len(alerts) < limit:
            page = await self._storage().list_alerts(query)
            alerts += page.items
            if page.next_cursor is None:
                break
            query = msgspec.structs.replace(query, cursor=page.next_cursor)
        return alerts if limit is None else alerts[:limit]

    # -- the human axis ------------------------------------------------------------------------------

    async def _active_alert(self, storage: StorageBackend, fingerprint: str, what: str) -> Alert:
        alert = await storage.get_alert(fingerprint)
        if alert is None:
            raise QueryError(f"cannot {what}: no alert has fingerprint {fingerprint!r}")
        if alert.state in QUIET_STATES:
            raise QueryError(f"cannot {what} alert {fingerprint!r} of rule {alert.rule!r}: it is {alert.state}")
        return alert

    async def acknowledge(self, fingerprint: str, by: str, comment: str = "", until_ns: int | None = None) -> Alert:
        """Someone is on it: firing notifications stop until `until_ns` (if given) or until the alert resolves."""
        if not by.strip():
            raise QueryError("cannot acknowledge: say who acknowledges (by=...)")
        async with self._lock:
            storage = self._storage()
            now = self.monitor.clock.now_ns()
            alert = await self._active_alert(storage, fingerprint, "acknowledge")
            if until_ns is not None and until_ns <= now:
                raise QueryError(f"cannot acknowledge alert {fingerprint!r} until {until_ns}: that is not in the "
                                 f"future (now is {now})")
            update = Update.of(alert)
            transition = acknowledge(update, by, comment, until_ns, now)
            notify_acknowledged(update, transition, muted=bool(alert.silenced_by or alert.inhibited_by))
            await self._save(storage, update, now)
            return update.alert

    async def resolve(self, fingerprint: str, by: str, comment: str = "") -> Alert:
        """Resolve by hand: receivers hear `resolved`, and the alert stays quiet until its condition clears once."""
        if not by.strip():
            raise QueryError("cannot resolve: say who resolves (by=...)")
        async with self._lock:
            storage = self._storage()
            now = self.monitor.clock.now_ns()
            alert = await self._active_alert(storage, fingerprint, "resolve")
            if alert.handling == "resolved":
                return alert
            update = Update.of(alert)
            transition = resolve_by_hand(update, by, comment, now)
            notify_resolved_by_hand(update, transition, muted=bool(alert.silenced_by or alert.inhibited_by))
            await self._save(storage, update, now)
            return update.alert

    # -- silences ------------------------------------------------------------------------------------

    async def create_silence(
        self,
        matchers: str | Sequence[LabelMatcher | str],
        *,
        created_by: str,
        comment: str = "",
        starts_ns: int | None = None,
        ends_ns: int | None = None,
        duration_s: float | None = None,
        until_resolved: bool = False,
    ) -> Silence:
        """Mute notifications of matching alerts from `starts_ns` (default now) until `ends_ns` or for `duration_s`."""
        now = self.monitor.clock.now_ns()
        if duration_s is not None:
            ends_ns = (now if starts_ns is None else starts_ns) + round(duration_s * 1e9)
        silence = new_silence(matchers, created_by=created_by, now_ns=now, starts_ns=starts_ns, ends_ns=ends_ns,
                              comment=comment, until_resolved=until_resolved)
        await self._storage().save_silence(silence)
        self.monitor.emit(Event(topic="alerts", type="silence_created", time_ns=now,
                                data=msgspec.to_builtins(silence)))
        return silence

    async def expire_silence(self, silence_id: str) -> Silence:
        """End a silence now; it stays stored (expired) for history."""
        storage = self._storage()
        silence = next((s for s in await storage.list_silences() if s.id == silence_id), None)
        if silence is None:
            raise QueryError(f"no silence has id {silence_id!r}")
        now = self.monitor.clock.now_ns()
        if silence_state(silence, now) == "expired":
            return silence
        return await self._end_silence(storage, silence, now, "expired by hand")

    async def _end_silence(self, storage: StorageBackend, silence: Silence, now_ns: int, why: str) -> Silence:
        ended = msgspec.structs.replace(silence, starts_ns=min(silence.starts_ns, now_ns), ends_ns=now_ns)
        await storage.save_silence(ended)
        self.monitor.emit(Event(topic="alerts", type="silence_expired", time_ns=now_ns,
                                data={**msgspec.to_builtins(ended), "why": why}))
        return ended

    async def list_silences(self, state: SilenceState | None = None) -> list[Silence]:
        """Every silence (expired ones too), or those pending, active or expired now."""
        silences = await self._storage().list_silences()
        if state is None:
            return silences
        now = self.monitor.clock.now_ns()
        return [silence for silence in silences if silence_state(silence, now) == state]

    async def preview_silence(self, matchers: str | Sequence[LabelMatcher | str]) -> list[Alert]:
        """The alerts in play that a silence with these matchers would mute now."""
        query = AlertQuery(matchers=as_matchers(matchers), states=sorted(ACTIVE_STATES), limit=PAGE)  # type: ignore[arg-type]
        alerts: list[Alert] = []
        while True:
            page = await self._storage().list_alerts(query)
            alerts += page.items
            if page.next_cursor is None:
                return alerts
            query = msgspec.structs.replace(query, cursor=page.next_cursor)

    # -- backtests -----------------------------------------------------------------------------------

    async def backtest(self, rule: str | RuleConfig | Mapping[str, Any], start_ns: int, end_ns: int,
                       step_s: float | None = None) -> BacktestResult:
        """Replay stored history through the real state machine: the state timeline and what would have notified.

        `rule` is the name of a rule of this service, or a rule given like `add_rule` takes it (it is not
        added). Evaluations run every `step_s` (default: evaluation_interval) from `start_ns` to `end_ns`.
        """
        if isinstance(rule, str):
            compiled = self.evaluator.rules.get(rule)
            if compiled is None:
                raise QueryError(f"no rule named {rule!r}; rules: {', '.join(self.evaluator.rules) or 'none'}")
        else:
            compiled = self.compile(rule)
        step = self.settings.interval_s if step_s is None else step_s
        return await run_backtest(self._storage(), compiled, start_ns, end_ns, step_s=step, settings=self.settings)
