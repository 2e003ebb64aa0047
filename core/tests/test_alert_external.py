"""Alerts evaluated elsewhere (`AlertingService.receive_external`): firing, re-sends, resolve by end, silences."""

from __future__ import annotations

import pytest

from tocsin.alerting.external import RESOLVE_TIMEOUT_S, ExternalAlert, fingerprint_of
from tocsin.alerting.service import AlertingService
from tocsin.alerting.state import notification_kind
from tocsin.clock import VirtualClock
from tocsin.models import Alert, AlertTransition, Delivery
from tocsin.testing import make_monitor

S = 1_000_000_000
LABELS = {"alertname": "Down", "job": "api", "severity": "critical"}


class RecordingRouter:
    """Records the kind of each notifying transition and returns no deliveries."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def deliveries_for(self, alert: Alert, transition: AlertTransition, now_ns: int) -> list[Delivery]:
        self.kinds.append(notification_kind(transition.to_state))
        return []

    async def refresh(self, storage) -> None:
        """Nothing to read."""

    async def persist(self, storage) -> None:
        """Nothing to save."""


@pytest.fixture
async def monitor():
    instance = make_monitor(clock=VirtualClock(1000 * S))
    instance.services.remove(instance.alerting)  # the tests drive their own service and its clock
    async with instance:
        yield instance


@pytest.fixture
def router():
    return RecordingRouter()


@pytest.fixture
def alerting(monitor, router):
    return AlertingService(monitor, router=router)


def firing(ends_in_s: float | None = 240, **annotations: str) -> ExternalAlert:
    ends = None if ends_in_s is None else round((1000 + ends_in_s) * S)
    return ExternalAlert(labels=LABELS, annotations=annotations, starts_ns=990 * S, ends_ns=ends)


async def test_a_firing_alert_notifies_once_however_often_it_is_resent(monitor, alerting, router):
    [alert] = await alerting.receive_external("prometheus", [firing(summary="api is down")])
    assert (alert.rule, alert.state, alert.severity, alert.episode) == ("prometheus:Down", "firing", "critical", 1)
    assert alert.fired_at_ns == 990 * S and alert.annotations == {"summary": "api is down"}
    for _ in range(3):
        await monitor.clock.advance(60)
        await alerting.receive_external("prometheus", [firing(ends_in_s=300, summary="still down")])
    stored = await monitor.storage.get_alert(fingerprint_of("prometheus", LABELS))
    assert router.kinds == ["firing"]
    assert (stored.state, stored.episode, stored.annotations) == ("firing", 1, {"summary": "still down"})


async def test_an_end_in_the_past_resolves_and_a_resent_resolve_changes_nothing(monitor, alerting, router):
    await alerting.receive_external("prometheus", [firing()])
    await monitor.clock.advance(30)
    [resolved] = await alerting.receive_external("prometheus", [firing(ends_in_s=10)])
    assert resolved.state == "resolved"
    assert await alerting.receive_external("prometheus", [firing(ends_in_s=10)]) == []  # nothing to save
    assert router.kinds == ["firing", "resolved"]


async def test_an_alert_whose_end_passes_without_a_resend_resolves_at_the_next_evaluation(monitor, alerting, router):
    await alerting.receive_external("prometheus", [firing(ends_in_s=120)])
    await alerting.evaluate(1100 * S)
    assert router.kinds == ["firing"]
    await alerting.evaluate(1121 * S)
    stored = await monitor.storage.get_alert(fingerprint_of("prometheus", LABELS))
    assert (stored.state, router.kinds) == ("resolved", ["firing", "resolved"])


async def test_after_a_restart_an_alert_ends_resolve_timeout_after_its_last_receipt(monitor, alerting, router):
    await alerting.receive_external("prometheus", [firing(ends_in_s=None)])
    restarted_router = RecordingRouter()
    restarted = AlertingService(monitor, router=restarted_router)  # no memory of the end
    await restarted.evaluate(round((1000 + RESOLVE_TIMEOUT_S - 1) * S))
    assert restarted_router.kinds == []
    await restarted.evaluate(round((1000 + RESOLVE_TIMEOUT_S) * S))
    assert restarted_router.kinds == ["resolved"]


async def test_a_silence_mutes_an_external_alert_and_a_resolve_nobody_heard_of_is_not_stored(monitor, alerting,
                                                                                             router):
    silence = await alerting.create_silence('alertname="Down", job="api"', created_by="ann", duration_s=600)
    [alert] = await alerting.receive_external("prometheus", [firing()])
    assert (alert.state, alert.silenced_by, router.kinds) == ("firing", [silence.id], [])
    other = ExternalAlert(labels={"alertname": "Gone"}, ends_ns=999 * S)
    assert await alerting.receive_external("prometheus", [other]) == []
    assert await monitor.storage.get_alert(fingerprint_of("prometheus", {"alertname": "Gone"})) is None


async def test_a_native_rule_of_the_same_name_leaves_external_alerts_alone(monitor, alerting, router):
    alerting.add_rule(name="Down", metric="up", aggregate="last", op="lt", threshold=1)
    await alerting.receive_external("prometheus", [firing(ends_in_s=3600)])
    for minute in range(1, 4):
        await alerting.evaluate((1000 + 60 * minute) * S)
    stored = await monitor.storage.get_alert(fingerprint_of("prometheus", LABELS))
    assert (stored.state, router.kinds) == ("firing", ["firing"])
