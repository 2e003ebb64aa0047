"""The alerting service on a started monitor (memory storage, virtual clock): kinds, persistence, seams, restart."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from tocsin import hookimpl
from tocsin.alerting.service import AlertingService
from tocsin.alerting.state import notification_kind
from tocsin.builtins.memory_storage import MemoryStorage
from tocsin.clock import VirtualClock
from tocsin.errors import ConfigError, QueryError
from tocsin.models import (
    Alert,
    AlertTransition,
    Delivery,
    HealthResult,
    LogRecord,
    MetricRollup,
    WorkflowExecution,
)
from tocsin.storage.protocol import AlertQuery, DeliveryQuery
from tocsin.testing import make_monitor

S = 1_000_000_000
M = 60 * S


def gauge(name: str, t_s: float, value: float, **labels: str) -> MetricRollup:
    return MetricRollup(name=name, kind="gauge", labels=labels, start_ns=round(t_s * S), interval_s=60, count=1,
                        sum=value, min=value, max=value, last=value)


class RecordingRouter:
    """A router that records what it is asked and returns one delivery per notifying transition."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def deliveries_for(self, alert: Alert, transition: AlertTransition, now_ns: int) -> list[Delivery]:
        kind = notification_kind(transition.to_state)
        self.calls.append((kind, transition.to_state, {k: v for k, v in alert.labels.items() if k != "alertname"}))
        return [Delivery(id=f"{alert.fingerprint}-{len(self.calls)}", channel="ops", fingerprint=alert.fingerprint,
                         kind=kind, idempotency_key=f"{alert.fingerprint}-{alert.episode}", created_ns=now_ns,
                         next_attempt_ns=now_ns)]

    async def refresh(self, storage) -> None:
        """Nothing to read."""

    async def persist(self, storage) -> None:
        """Nothing to save."""

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.calls]


@pytest.fixture
async def monitor():
    instance = make_monitor(clock=VirtualClock(0), config={"channels": [{"name": "ops", "type": "captured"}]})
    instance.services.remove(instance.alerting)  # each test drives its own AlertingService
    async with instance:
        yield instance


@pytest.fixture
def router():
    return RecordingRouter()


@pytest.fixture
def alerting(monitor, router):
    return AlertingService(monitor, router=router)


async def evaluate_minutes(alerting: AlertingService, minutes: range) -> list:
    return [await alerting.evaluate(minute * M) for minute in minutes]


async def write_gauges(monitor, name: str, values: list[float], **labels: str) -> None:
    await monitor.storage.write_metrics([gauge(name, i * 60, v, **labels) for i, v in enumerate(values)])


async def only_alert(monitor, rule: str) -> Alert:
    [alert] = (await monitor.storage.list_alerts(AlertQuery(rule=rule))).items
    return alert


# -- metric rules, persistence and the router seam ---------------------------------------------------------


async def test_by_labels_give_one_alert_each_with_state_history_events_and_deliveries(monitor, alerting, router):
    alerting.add_rule({"name": "hot", "metric": "temp", "aggregate": "last", "window": "1m", "by": ["room"],
                       "threshold": 50, "for": "2m", "annotations": {"summary": "{{ labels.room }}: {{ value }}"}})
    await write_gauges(monitor, "temp", [60, 60, 60, 60, 40], room="a")
    await write_gauges(monitor, "temp", [60, 40, 40, 40, 40], room="b")
    events = monitor.events.subscribe(["alerts"])
    await evaluate_minutes(alerting, range(5))
    alerts = {a.labels["room"]: a for a in (await monitor.storage.list_alerts(AlertQuery(rule="hot"))).items}
    assert (alerts["a"].state, alerts["b"].state) == ("resolved", "inactive")
    assert alerts["a"].labels == {"room": "a", "alertname": "hot", "severity": "warning"}
    assert alerts["a"].annotations == {"summary": "a: 60.0"}
    history = await monitor.storage.alert_history(alerts["a"].fingerprint)
    assert [(t.from_state, t.to_state, t.time_ns // M) for t in history] == [
        ("inactive", "pending", 0), ("pending", "firing", 2), ("firing", "resolved", 4)]
    assert [t.value for t in history] == [60, 60, 40]
    # room b was pending and cleared: stored, published, but never routed
    assert [(k, labels["room"]) for k, _, labels in router.calls] == [("firing", "a"), ("resolved", "a")]
    deliveries = (await monitor.storage.list_deliveries(DeliveryQuery(fingerprint=alerts["a"].fingerprint))).items
    assert sorted(d.kind for d in deliveries) == ["firing", "resolved"]
    published = [(e.type, e.data["labels"]["room"], e.data["notified"]) for e in events.drain()
                 if e.type not in ("rule_health", "evaluated")]
    assert published == [("pending", "a", False), ("pending", "b", False), ("inactive", "b", False),
                         ("firing", "a", True), ("resolved", "a", True)]


async def test_for_zero_fires_on_the_first_evaluation_and_cooldown_renotifies(monitor, alerting, router):
    alerting.add_rule(name="q", metric="depth", aggregate="max", window="10m", threshold=10, cooldown="3m")
    await write_gauges(monitor, "depth", [50] * 10)
    reports = await evaluate_minutes(alerting, range(7))
    assert [t.to_state for t in reports[0].transitions] == ["firing"]
    assert [r.time_ns // M for r in reports if r.notifications] == [0, 3, 6]
    alert = await only_alert(monitor, "q")
    assert alert.episode == 1 and alert.last_notified_ns == 6 * M


async def test_matchers_and_match_select_series(monitor, alerting):
    alerting.add_rule(name="api", metric="lat", aggregate="max", window="5m", threshold=1,
                      match={"env": "prod"}, matchers=['route=~"/api/.*"'], by=["route"])
    await monitor.storage.write_metrics([gauge("lat", 0, 5, env="prod", route="/api/a"),
                                         gauge("lat", 0, 5, env="dev", route="/api/b"),
                                         gauge("lat", 0, 5, env="prod", route="/web")])
    report = await alerting.evaluate(0)
    assert [a.labels["route"] for a in report.alerts] == ["/api/a"]


async def test_rules_from_config_and_a_plugin_operator():
    class Divisible:
        __name__ = "test-divisible-operator"

        @hookimpl
        def register_alert_operators(self, register):
            register("divisible", lambda value, threshold: value % threshold == 0)

    monitor = make_monitor(Divisible(), clock=VirtualClock(0), config={"alerting": {"rules": [
        {"name": "even", "metric": "n", "aggregate": "last", "op": "divisible", "threshold": 2}]}})
    async with monitor:
        alerting = AlertingService(monitor)
        assert [rule.name for rule in alerting.rules] == ["even"]
        await monitor.storage.write_metrics([gauge("n", 0, 4), gauge("n", 300, 5)])
        assert [a.state for a in (await alerting.evaluate(0)).alerts] == ["firing"]
        assert [a.state for a in (await alerting.evaluate(300 * S)).alerts] == ["resolved"]


# -- other kinds -------------------------------------------------------------------------------------------


async def test_log_rule_counts_matching_logs_in_the_window(monitor, alerting):
    alerting.add_rule(name="timeouts", kind="log", query="timeout", level="error", window="5m", threshold=2)
    await monitor.storage.write_logs(
        [LogRecord(time_ns=i * M, level="error", message="db timeout") for i in range(3)]
        + [LogRecord(time_ns=i * M, level="info", message="timeout retry") for i in range(10)])
    assert [(a.state, a.value) for a in (await alerting.evaluate(2 * M)).alerts] == [("firing", 3.0)]
    # the window is (now - 5m, now]: at 6m only the error at 2m is left in it
    assert [(a.state, a.value) for a in (await alerting.evaluate(6 * M)).alerts] == [("resolved", 1.0)]


async def test_health_rule_watches_a_components_latest_status(monitor, alerting):
    alerting.add_rule(name="db-down", kind="health", component="db", window="2m", threshold=1, for_="1m",
                      nodata_state="nodata")
    statuses = ["healthy", "degraded", "unhealthy", "unhealthy", "unhealthy", "healthy"]
    await monitor.storage.write_health([HealthResult(component="db", status=s, time_ns=i * M)
                                        for i, s in enumerate(statuses)])
    states = [[(a.state, a.labels.get("component")) for a in r.alerts] for r in await evaluate_minutes(alerting,
                                                                                                         range(6))]
    assert states == [[], [], [("pending", "db")], [("firing", "db")], [("firing", "db")], [("resolved", "db")]]
    # no result in the window: the nodata instance, apart from the series alert
    [nodata] = (await alerting.evaluate(20 * M)).alerts
    assert nodata.labels["tocsin_condition"] == "nodata" and nodata.state == "pending"


async def test_workflow_rules_measure_failure_rate_failures_and_durations(monitor, alerting):
    runs = [("failed", 10), ("succeeded", 20), ("failed", 30), ("succeeded", 200)]
    for i, (status, seconds) in enumerate(runs):
        await monitor.storage.save_execution(WorkflowExecution(
            id=f"r{i}", name="etl", status=status, started_ns=i * M, ended_ns=i * M + seconds * S))
    await monitor.storage.save_execution(WorkflowExecution(id="live", name="etl", started_ns=4 * M))
    alerting.add_rule(name="etl-failing", kind="workflow", workflow="etl", window="10m", threshold=0.4)
    alerting.add_rule(name="etl-failures", kind="workflow", workflow="etl", measure="failures", window="10m",
                      op="gte", threshold=3)
    alerting.add_rule(name="etl-slow", kind="workflow", workflow="etl", measure="duration", aggregate="p95",
                      window="10m", threshold=100)
    alerts = {a.rule: a for a in (await alerting.evaluate(5 * M)).alerts}
    assert alerts["etl-failing"].value == 0.5 and alerts["etl-failing"].labels["workflow"] == "etl"
    assert alerts["etl-slow"].value == 200.0
    assert "etl-failures" not in alerts


async def test_absent_rule_fires_when_the_metric_stops(monitor, alerting):
    alerting.add_rule(name="gone", kind="absent", metric="heartbeat", window="2m", for_="1m")
    await write_gauges(monitor, "heartbeat", [1, 1, 1])
    states = [[a.state for a in r.alerts] for r in await evaluate_minutes(alerting, range(7))]
    assert states == [[], [], [], [], ["pending"], ["firing"], ["firing"]]


async def test_a_series_that_disappears_resolves_on_the_second_missing_evaluation(monitor, alerting, router):
    alerting.add_rule(name="q", metric="depth", aggregate="last", window="1m", threshold=10, by=["queue"])
    await write_gauges(monitor, "depth", [50, 50, 50, 50, 50], queue="jobs")
    await write_gauges(monitor, "depth", [50, 50], queue="mail")  # mail stops reporting after 1m
    reports = await evaluate_minutes(alerting, range(5))
    mail = [[a.state for a in r.alerts if a.labels["queue"] == "mail"] for r in reports]
    assert mail == [["firing"], ["firing"], ["firing"], ["resolved"], []]
    fingerprint = next(a.fingerprint for a in reports[0].alerts if a.labels["queue"] == "mail")
    [*_, resolved] = await monitor.storage.alert_history(fingerprint)
    assert resolved.reason == "series missing for 2 evaluations"


class CountingStorage(MemoryStorage):
    """Memory storage that counts metric queries and can be told to be slow."""

    queries = 0
    delay = 0.0

    async def query_metrics(self, query):
        CountingStorage.queries += 1
        if CountingStorage.delay:
            await asyncio.sleep(CountingStorage.delay)
        return await super().query_metrics(query)


class CountingPlugin:
    __name__ = "test-counting-storage"

    @hookimpl
    def register_storage_backends(self, register):
        register("counting", CountingStorage)


async def test_rules_sharing_a_query_run_it_once_per_cycle_and_a_slow_rule_times_out():
    monitor = make_monitor(CountingPlugin(), clock=VirtualClock(0), config={"storage": {"backend": "counting"}})
    async with monitor:
        alerting = AlertingService(monitor)
        alerting.add_rule(name="warn", metric="depth", aggregate="max", threshold=10)
        alerting.add_rule(name="page", metric="depth", aggregate="max", threshold=100)
        alerting.add_rule(name="other", metric="depth", aggregate="avg", threshold=100)
        await write_gauges(monitor, "depth", [50])
        CountingStorage.queries = 0
        report = await alerting.evaluate(0)
        assert CountingStorage.queries == 2 and [a.rule for a in report.alerts] == ["warn"]
        alerting.evaluator.settings = msgspec.structs.replace(alerting.settings, timeout_s=0.01)
        CountingStorage.delay = 1.0
        try:
            report = await alerting.evaluate(M)
        finally:
            CountingStorage.delay = 0.0
        assert report.failed_rules == ["warn", "page", "other"]
        assert {s.last_error for s in alerting.rule_status()} == {"evaluation took longer than evaluation_timeout "
                                                                   "0.01s"}


# -- nodata and errors -------------------------------------------------------------------------------------


async def fire_then_stop(monitor, alerting, **rule) -> list[list[tuple[str, str]]]:
    """A rule that fires on minute 0-1 data, then the metric stops: states per minute, with condition labels."""
    alerting.add_rule(name="r", metric="m", aggregate="last", window="1m", threshold=0, **rule)
    await write_gauges(monitor, "m", [1, 1])
    return [sorted((a.labels.get("tocsin_condition", "series"), a.state) for a in r.alerts)
            for r in await evaluate_minutes(alerting, range(5))]


async def test_nodata_normal_resolves_after_two_missing_evaluations(monitor, alerting):
    assert await fire_then_stop(monitor, alerting) == [
        [("series", "firing")], [("series", "firing")], [("series", "firing")], [("series", "resolved")], []]


async def test_nodata_alerting_keeps_it_firing(monitor, alerting):
    states = await fire_then_stop(monitor, alerting, nodata_state="alerting")
    assert states[-1] == [("series", "firing")]


async def test_nodata_keep_last_changes_nothing(monitor, alerting):
    states = await fire_then_stop(monitor, alerting, nodata_state="keep_last")
    assert states[2:] == [[("series", "firing")]] * 3


async def test_nodata_state_nodata_raises_a_separate_instance(monitor, alerting, router):
    states = await fire_then_stop(monitor, alerting, nodata_state="nodata")
    assert states[2:] == [[("nodata", "nodata"), ("series", "firing")]] * 3
    assert [(kind, state) for kind, state, _ in router.calls] == [("firing", "firing"), ("firing", "nodata")]


class Exploding:
    __name__ = "test-exploding-operator"

    @hookimpl
    def register_alert_operators(self, register):
        def explode(value, threshold):
            raise RuntimeError("operator exploded")

        register("explode", explode)


async def test_a_rule_that_raises_goes_to_its_error_state_and_the_others_carry_on(router):
    monitor = make_monitor(Exploding(), clock=VirtualClock(0))
    async with monitor:
        alerting = AlertingService(monitor, router=router)
        alerting.add_rule(name="broken", metric="m", aggregate="last", op="explode")
        alerting.add_rule(name="fine", metric="m", aggregate="last", threshold=0)
        await monitor.storage.write_metrics([gauge("m", 0, 1)])
        events = monitor.events.subscribe(["alerts"])
        report = await alerting.evaluate(0)
        assert report.failed_rules == ["broken"]
        states = sorted((a.rule, a.state, a.labels.get("tocsin_condition", "")) for a in report.alerts)
        assert states == [("broken", "error", "error"), ("fine", "firing", "")]
        [broken] = [a for a in report.alerts if a.rule == "broken"]
        assert "RuntimeError: operator exploded" in broken.state_reason
        status = {s.name: s for s in alerting.rule_status()}
        assert status["broken"].health == "error" and status["broken"].failures == 1
        assert status["fine"].health == "ok" and status["fine"].last_duration_s > 0
        health_events = [e.data["name"] for e in events.drain() if e.type == "rule_health"]
        assert health_events == ["broken"]  # a rule that starts fine is no news
        await monitor.flush()
        rollups = await monitor.storage.list_metrics()
        assert {"tocsin_rule_evaluation_seconds", "tocsin_rule_evaluation_failures_total"} <= {m.name for m in rollups}


async def test_error_state_alerting_fires_the_rule_itself(router):
    monitor = make_monitor(Exploding(), clock=VirtualClock(0))
    async with monitor:
        alerting = AlertingService(monitor, router=router)
        alerting.add_rule(name="broken", metric="m", aggregate="last", op="explode", error_state="alerting")
        await monitor.storage.write_metrics([gauge("m", 0, 1)])
        [alert] = (await alerting.evaluate(0)).alerts
        assert alert.state == "firing" and "tocsin_condition" not in alert.labels


# -- restart: state lives in storage -----------------------------------------------------------------------


async def test_a_firing_alert_survives_a_restart_without_renotifying_before_cooldown(monitor, router):
    rule = {"name": "q", "metric": "depth", "aggregate": "last", "window": "1m", "threshold": 10, "cooldown": "1h"}
    await write_gauges(monitor, "depth", [50] * 60)
    first = AlertingService(monitor, router=router)
    first.add_rule(rule)
    await evaluate_minutes(first, range(3))
    restarted = AlertingService(monitor, router=router)  # a new process: nothing in memory
    restarted.add_rule(rule)
    await restarted.evaluate(3 * M + 30 * S)
    assert router.kinds() == ["firing"]
    await evaluate_minutes(restarted, range(4, 61))
    assert router.kinds() == ["firing", "firing"]  # the cooldown, counted across the restart
    assert (await only_alert(monitor, "q")).episode == 1


async def test_receivers_who_heard_firing_hear_resolved_even_across_a_restart(monitor, router):
    rule = {"name": "q", "metric": "depth", "aggregate": "last", "window": "1m", "threshold": 10}
    await write_gauges(monitor, "depth", [50, 50, 0, 0, 0, 0])
    first = AlertingService(monitor, router=router)
    first.add_rule(rule)
    await first.evaluate(0)
    silence = await first.create_silence("alertname=q", created_by="ann", duration_s=3 * 60)
    await evaluate_minutes(first, range(1, 3))  # resolves at 2m while silenced: nobody is told
    assert router.kinds() == ["firing"] and silence.ends_ns == 3 * M
    restarted = AlertingService(monitor, router=router)
    restarted.add_rule(rule)
    await evaluate_minutes(restarted, range(3, 5))  # the silence has ended
    assert router.kinds() == ["firing", "resolved"]
    assert (await only_alert(monitor, "q")).last_notified_ns is None


@pytest.mark.parametrize(("outage_minutes", "fires_at"), [(5, 65), (120, 190)])
async def test_pending_for_progress_after_an_outage(monitor, router, outage_minutes, fires_at):
    rule = {"name": "slow", "metric": "m", "aggregate": "last", "window": "1m", "threshold": 0, "for": "1h"}
    await write_gauges(monitor, "m", [1] * 300)
    first = AlertingService(monitor, router=router)
    first.add_rule(rule)
    await evaluate_minutes(first, range(11))  # pending since 0, 10 minutes of the hour done
    restarted = AlertingService(monitor, router=router)
    restarted.add_rule(rule)
    back = 10 + outage_minutes
    states = [(r.time_ns // M, r.alerts[0].state) for r in await evaluate_minutes(restarted, range(back, 200))]
    fired = next(minute for minute, state in states if state == "firing")
    # 5 minutes down: the outage does not count as pending time, so it fires 60 + 5 minutes after it began;
    # 2 hours down (> for_outage_tolerance 1h): the `for` starts over when evaluation comes back at 130
    assert fired == fires_at


async def test_an_acknowledgement_made_elsewhere_is_seen_at_the_next_evaluation(monitor, router):
    rule = {"name": "q", "metric": "depth", "aggregate": "last", "window": "1m", "threshold": 10, "cooldown": "2m"}
    await write_gauges(monitor, "depth", [50] * 10)
    running = AlertingService(monitor, router=router)
    running.add_rule(rule)
    await running.evaluate(0)
    alert = await only_alert(monitor, "q")
    monitor.clock.set(30 * S)
    await AlertingService(monitor).acknowledge(alert.fingerprint, "cli-user", "looking")  # like `tocsin alerts ack`
    await evaluate_minutes(running, range(1, 6))
    stored = await only_alert(monitor, "q")
    assert (stored.handling, stored.acknowledged_by) == ("acknowledged", "cli-user")
    assert router.kinds() == ["firing"]  # no repeats while acknowledged


# -- the human axis through the service ----------------------------------------------------------------------


async def firing(monitor, alerting, **rule) -> Alert:
    alerting.add_rule(name="q", metric="depth", aggregate="last", window="1m", threshold=10, **rule)
    await write_gauges(monitor, "depth", [50] * 30)
    await alerting.evaluate(0)
    return await only_alert(monitor, "q")


async def test_acknowledge_with_expiry_then_notify_again(monitor, alerting, router):
    alert = await firing(monitor, alerting, cooldown="4h")
    monitor.clock.set(10 * S)
    acked = await alerting.acknowledge(alert.fingerprint, "ann", "restarting the worker", until_ns=5 * M)
    assert (acked.handling, acked.ack_comment, acked.ack_until_ns) == ("acknowledged", "restarting the worker", 5 * M)
    history = await monitor.storage.alert_history(alert.fingerprint)
    assert (history[-1].to_state, history[-1].actor) == ("acknowledged", "ann")
    await evaluate_minutes(alerting, range(1, 7))
    assert router.kinds() == ["firing", "acknowledged", "firing"]
    assert (await only_alert(monitor, "q")).handling == "active"


async def test_resolve_by_hand_tells_receivers_and_stays_quiet_until_the_condition_clears(monitor, alerting, router):
    alert = await firing(monitor, alerting, cooldown="1m")
    resolved = await alerting.resolve(alert.fingerprint, "bob", "fixed")
    assert resolved.handling == "resolved" and resolved.state == "firing"
    await evaluate_minutes(alerting, range(1, 5))
    assert router.kinds() == ["firing", "resolved"]


async def test_bad_human_actions_are_refused_clearly(monitor, alerting):
    with pytest.raises(QueryError, match="no alert has fingerprint 'nope'"):
        await alerting.acknowledge("nope", "ann")
    alert = await firing(monitor, alerting)
    with pytest.raises(QueryError, match="say who"):
        await alerting.acknowledge(alert.fingerprint, " ")
    with pytest.raises(QueryError, match="not in the future"):
        await alerting.acknowledge(alert.fingerprint, "ann", until_ns=0)
    await write_gauges(monitor, "depth", [0] * 30)  # overwrite: merged rollups, last value 0
    await alerting.evaluate(1 * M)
    with pytest.raises(QueryError, match="it is resolved"):
        await alerting.resolve(alert.fingerprint, "ann")


# -- silences ----------------------------------------------------------------------------------------------


async def test_a_silenced_alert_changes_state_but_notifies_nobody(monitor, alerting, router):
    alerting.add_rule(name="q", metric="depth", aggregate="last", window="1m", threshold=10, by=["queue"])
    await write_gauges(monitor, "depth", [50, 50, 50, 0], queue="mail")
    await write_gauges(monitor, "depth", [50, 50, 50, 50], queue="jobs")
    silence = await alerting.create_silence('queue="mail"', created_by="ann", duration_s=3600, comment="migration")
    assert [a.labels["queue"] for a in await alerting.preview_silence('queue="mail"')] == []
    reports = await evaluate_minutes(alerting, range(4))
    mail = next(a for a in reports[0].alerts if a.labels["queue"] == "mail")
    assert mail.state == "firing" and mail.silenced_by == [silence.id]
    assert [(kind, labels["queue"]) for kind, _, labels in router.calls] == [("firing", "jobs")]
    assert [t.to_state for t in await monitor.storage.alert_history(mail.fingerprint)] == ["firing", "resolved"]
    assert [s.id for s in await alerting.list_silences("active")] == [silence.id]


async def test_silence_lifecycle_preview_and_expiry(monitor, alerting):
    await firing(monitor, alerting)
    pending = await alerting.create_silence(["alertname=q"], created_by="ann", starts_ns=10 * M, ends_ns=20 * M)
    assert [a.rule for a in await alerting.preview_silence("alertname=q")] == ["q"]
    assert [s.id for s in await alerting.list_silences("pending")] == [pending.id]
    expired = await alerting.expire_silence(pending.id)
    assert expired.ends_ns == 0 and [s.id for s in await alerting.list_silences("expired")] == [pending.id]
    assert len(await alerting.list_silences()) == 1  # kept for history
    with pytest.raises(QueryError, match="no silence has id"):
        await alerting.expire_silence("missing")


async def test_an_until_resolved_silence_ends_when_its_alert_resolves(monitor, alerting, router):
    alerting.add_rule(name="q", metric="depth", aggregate="last", window="1m", threshold=10)
    await write_gauges(monitor, "depth", [50, 50, 50, 0, 0, 0])
    await alerting.evaluate(0)  # fires and notifies
    silence = await alerting.create_silence("alertname=q", created_by="ann", until_resolved=True)
    events = monitor.events.subscribe(["alerts"])
    await evaluate_minutes(alerting, range(1, 6))
    [ended] = await alerting.list_silences()
    assert ended.id == silence.id and ended.ends_ns == 3 * M
    assert [e.data["why"] for e in events.drain() if e.type == "silence_expired"] == ["its alerts resolved"]
    # receivers heard `firing` before the silence: they hear `resolved` once it has ended
    assert [(kind, state) for kind, state, _ in router.calls] == [("firing", "firing"), ("resolved", "resolved")]


@pytest.mark.parametrize(("matchers", "extra", "error", "message"), [
    ('env=~".*"', {"duration_s": 60}, ConfigError, "matches every alert"),
    ("env=prod", {"starts_ns": 10 * S, "ends_ns": 5 * S}, ConfigError, "must be after starts"),
    ("env=prod", {}, ConfigError, "needs an end"),
    ('env=~"("', {"duration_s": 60}, QueryError, "invalid regex"),
    ("env prod", {"duration_s": 60}, QueryError, "cannot read a label matcher"),
])
async def test_bad_silences_are_refused(alerting, matchers, extra, error, message):
    with pytest.raises(error, match=message):
        await alerting.create_silence(matchers, created_by="ann", **extra)


# -- severity ladder, flapping, the loop, backtest -----------------------------------------------------------


async def test_a_severity_ladder_escalates_and_inhibits_the_lower_level(monitor, alerting, router):
    alerting.add_rule(name="cpu", metric="cpu", aggregate="last", window="1m", threshold=80, severity="warning",
                      levels=[{"severity": "critical", "threshold": 95, "for": "1m", "channels": ["ops"]}])
    await write_gauges(monitor, "cpu", [85, 97, 97, 97, 85, 50])
    reports = await evaluate_minutes(alerting, range(6))
    states = [sorted((a.severity, a.state, bool(a.inhibited_by)) for a in r.alerts) for r in reports]
    assert states[0] == [("warning", "firing", False)]
    assert states[1] == [("critical", "pending", False), ("warning", "firing", False)]
    assert states[2] == [("critical", "firing", False), ("warning", "firing", True)]
    assert states[4] == [("critical", "resolved", False), ("warning", "firing", False)]
    assert states[5] == [("warning", "resolved", False)]
    assert [(kind, labels["severity"]) for kind, _, labels in router.calls] == [
        ("firing", "warning"), ("firing", "critical"), ("resolved", "critical"), ("resolved", "warning")]
    assert alerting.channels_for_rule("cpu", "critical") == ("ops",)
    assert alerting.channels_for_rule("cpu", "warning") == ()


async def test_flapping_is_held_and_stored(monitor, alerting, router):
    alerting.add_rule(name="flappy", metric="m", aggregate="last", window="1m", threshold=0, flap_threshold=2)
    await write_gauges(monitor, "m", [1, 0, 1, 0, 1, 0, 1, 0])
    await evaluate_minutes(alerting, range(8))
    alert = await only_alert(monitor, "flappy")
    assert alert.flapping
    assert router.kinds() == ["firing", "resolved", "firing"]  # the third is the flapping notice
    assert any(t.to_state == "flapping" for t in await monitor.storage.alert_history(alert.fingerprint))


async def test_the_loop_evaluates_every_interval_on_the_monitors_clock(monitor, alerting):
    alerting.add_rule(name="q", metric="depth", aggregate="last", window="1m", threshold=10)

    cycles = monitor.events.subscribe(["alerts"])

    async def evaluated_at(minute: int) -> None:
        async with asyncio.timeout(10):  # storage may do real I/O: wait for the cycle's event, not a fixed time
            event = await cycles.get()
            while event.type != "evaluated":
                event = await cycles.get()
        assert event.time_ns == minute * M and alerting.last_report.time_ns == minute * M

    await alerting.start()
    await evaluated_at(0)
    for minute in (1, 2, 3):
        await monitor.clock.advance(60)
        await evaluated_at(minute)
    await alerting.stop()
    [status] = alerting.rule_status()
    assert status.evaluations == 4 and status.last_eval_ns == 3 * M
    await alerting.stop()  # twice is fine


async def test_backtest_replays_history_through_the_real_state_machine(monitor, alerting, router):
    rule = {"name": "hot", "metric": "temp", "aggregate": "last", "window": "1m", "threshold": 50, "for": "2m",
            "keep_firing_for": "1m"}
    await write_gauges(monitor, "temp", [0, 60, 60, 60, 60, 40, 40, 40, 60, 40])
    result = await alerting.backtest(rule, 0, 10 * M)
    assert result.evaluations == 10
    assert [(t.time_ns // M, t.to_state) for t in result.transitions] == [
        (1, "pending"), (3, "firing"), (5, "recovering"), (6, "resolved"), (8, "pending"), (9, "inactive")]
    assert [(n.time_ns // M, n.kind) for n in result.notifications] == [(3, "firing"), (6, "resolved")]
    assert router.calls == [] and (await monitor.storage.list_alerts(AlertQuery())).items == []
    alerting.add_rule(rule)
    live = [t for r in await evaluate_minutes(alerting, range(10)) for t in r.transitions]
    assert [(t.time_ns, t.to_state) for t in live] == [(t.time_ns, t.to_state) for t in result.transitions]
    with pytest.raises(QueryError, match="too long"):
        await alerting.backtest("hot", 0, 10**9 * M, step_s=1)
    with pytest.raises(QueryError, match="no rule named"):
        await alerting.backtest("nope", 0, M)


async def test_add_rule_refuses_bad_rules_naming_them(alerting):
    alerting.add_rule(name="q", metric="depth")
    with pytest.raises(ConfigError, match="already exists"):
        alerting.add_rule(name="q", metric="depth")
    with pytest.raises(ConfigError) as caught:
        alerting.add_rule(name="bad", metric="depth", op="bigger", channels=["pager"], aggregate="p42")
    text = str(caught.value)
    assert "rule 'bad'.aggregate: expected one of avg|" in text
    with pytest.raises(ConfigError) as caught:
        alerting.add_rule(name="bad", metric="depth", op="bigger", channels=["pager"])
    text = str(caught.value)
    assert "rule 'bad'.op: unknown alert operator 'bigger'" in text and "unknown channel 'pager'; ops" in text
    assert alerting.remove_rule("q") and not alerting.remove_rule("q")


async def test_alerts_lists_stored_alerts_by_state_rule_and_severity(monitor, alerting):
    alerting.add_rule(name="q", metric="depth", aggregate="last", window="1m", threshold=10, by=["queue"])
    alerting.add_rule(name="hot", metric="temp", aggregate="last", window="1m", threshold=30, severity="critical")
    await write_gauges(monitor, "depth", [50, 50], queue="mail")
    await write_gauges(monitor, "depth", [50, 0], queue="sms")
    await write_gauges(monitor, "temp", [0, 40])
    await evaluate_minutes(alerting, range(2))
    in_play = await alerting.alerts()
    assert [(a.rule, a.labels.get("queue"), a.state) for a in in_play] == [
        ("hot", None, "firing"), ("q", "mail", "firing")]
    assert [a.labels["queue"] for a in await alerting.alerts(state="resolved")] == ["sms"]
    assert len(await alerting.alerts(state=["firing", "resolved"])) == 3
    assert [a.rule for a in await alerting.alerts(severity="critical")] == ["hot"]
    assert [a.labels["queue"] for a in await alerting.alerts(rule="q", state=["firing", "resolved"], limit=None)] \
        == ["sms", "mail"]
    assert len(await alerting.alerts(state=["firing", "resolved"], limit=2)) == 2
    mail = (await alerting.alerts(rule="q"))[0]
    acknowledged = await alerting.acknowledge(mail.fingerprint, by="ann")
    assert acknowledged.handling == "acknowledged"


def test_the_listing_example_in_docs_alerting_runs(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "alerting.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "list_and_acknowledge" in b]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "alerting.md (listing alerts)", "exec"), {"__name__": "__main__"})
    [line] = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"[0-9a-f]{16} mail 250\.0", line)
    assert list(tmp_path.iterdir()) == []
