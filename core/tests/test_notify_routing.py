"""The router: which channels an alert event reaches, and when (Alertmanager's grouping timers)."""

from __future__ import annotations

import msgspec
import pytest

from tocsin.assembly import load_config
from tocsin.models import Alert, AlertTransition
from tocsin.notify.ledger import Ledger
from tocsin.notify.routing import Router, config_rule_channels, episode_key, transition_kind
from tocsin.plugins import build_registries, make_plugin_manager

S = 10**9
T0 = 1_700_000_000 * S


def router_for(channels: list[dict], rules: list[dict] = (), **notifications) -> Router:
    config = load_config({"channels": channels, "alerting": {"rules": list(rules)}, "notifications": notifications},
                         registries=build_registries(make_plugin_manager(entrypoints=False)), environ={})
    return Router(config.channels, config.notifications, ledger=Ledger(started_ns=T0),
                  rule_channels=config_rule_channels(config.alerting.rules))


def alert(fingerprint="fp1", rule="disk-full", severity="warning", episode=1, **labels) -> Alert:
    return Alert(fingerprint=fingerprint, rule=rule, labels=labels, severity=severity, state="firing", episode=episode)


def moved(a: Alert, to_state: str, at_ns: int) -> AlertTransition:
    return AlertTransition(fingerprint=a.fingerprint, rule=a.rule, time_ns=at_ns, from_state="x", to_state=to_state)


def routed(router: Router, a: Alert, to_state: str = "firing", at_s: float = 0) -> dict[str, int]:
    """{channel: seconds after T0 the row is due} for one transition at T0 + at_s."""
    now = T0 + round(at_s * S)
    rows = router.deliveries_for(a, moved(a, to_state, now), now)
    return {row.channel: (row.next_attempt_ns - T0) / S for row in rows}


def test_min_severity_match_and_send_resolved_filter_channels():
    router = router_for([
        {"name": "all", "type": "log"},
        {"name": "errors", "type": "log", "min_severity": "error"},
        {"name": "prod", "type": "log", "match": {"env": "prod"}},
        {"name": "no-resolved", "type": "log", "send_resolved": False},
        {"name": "disk-only", "type": "log", "match": {"alertname": "disk-full"}},
    ], group_wait="0s")
    assert set(routed(router, alert(env="dev"))) == {"all", "no-resolved", "disk-only"}
    assert set(routed(router, alert("fp2", severity="critical", env="prod"))) == {"all", "errors", "prod",
                                                                                "no-resolved", "disk-only"}
    assert set(routed(router, alert(env="dev"), "resolved", at_s=60)) == {"all", "disk-only"}
    assert router.explain(alert(), "errors") == "severity warning is below the channel's min_severity error"
    assert router.explain(alert(env="dev"), "prod") == "label env='dev' does not match 'prod'"
    assert router.explain(alert(), "all") is None


def test_a_rule_naming_channels_and_its_severity_ladder_restrict_them():
    rules = [{"name": "disk-full", "metric": "disk_used_ratio", "channels": ["ops"],
              "levels": [{"severity": "critical", "threshold": 95, "channels": ["pager"]}]}]
    router = router_for([{"name": "ops", "type": "log"}, {"name": "pager", "type": "log"},
                         {"name": "other", "type": "log"}], rules, group_wait="0s")
    assert set(routed(router, alert(severity="warning"))) == {"ops"}
    assert set(routed(router, alert("fp2", severity="critical"))) == {"pager"}
    assert set(routed(router, alert("fp3", rule="unlisted"))) == {"ops", "pager", "other"}
    assert router.explain(alert(), "other") == "rule 'disk-full' notifies other channels"


def test_silenced_and_inhibited_alerts_notify_nobody():
    router = router_for([{"name": "all", "type": "log"}])
    assert routed(router, msgspec.structs.replace(alert(), silenced_by=["s1"])) == {}
    assert routed(router, msgspec.structs.replace(alert(), inhibited_by=["fp0"])) == {}


def test_group_wait_then_ticks_every_group_interval():
    router = router_for([{"name": "ops", "type": "log"}], group_wait="30s", group_interval="5m")
    assert routed(router, alert("a")) == {"ops": 30}  # a new group waits group_wait
    assert routed(router, alert("b"), at_s=10) == {"ops": 30}  # joins the first flush
    assert routed(router, alert("c"), at_s=31) == {"ops": 330}  # after the flush: the next tick
    assert routed(router, alert("a"), "resolved", at_s=400) == {"ops": 630}
    assert routed(router, alert("d", rule="other-rule"), at_s=400) == {"ops": 430}  # another group


def test_group_by_labels_and_no_grouping():
    router = router_for([{"name": "by-host", "type": "log", "group_by": ["host"]},
                         {"name": "single", "type": "log", "group_by": ["..."]}], group_wait="30s")
    first = {r.channel: r for r in router.deliveries_for(alert("a", host="h1"), moved(alert(), "firing", T0), T0)}
    second = {r.channel: r for r in router.deliveries_for(alert("b", host="h1"), moved(alert(), "firing", T0), T0)}
    third = {r.channel: r for r in router.deliveries_for(alert("c", host="h2"), moved(alert(), "firing", T0), T0)}
    assert first["by-host"].payload["group"] == second["by-host"].payload["group"] == {
        "id": first["by-host"].payload["group"]["id"], "labels": {"host": "h1"}}
    assert third["by-host"].payload["group"]["id"] != first["by-host"].payload["group"]["id"]
    assert len({rows["single"].payload["group"]["id"] for rows in (first, second, third)}) == 3


def test_a_group_that_is_over_starts_again_with_group_wait():
    router = router_for([{"name": "ops", "type": "log"}], group_wait="30s", group_interval="5m")
    routed(router, alert("a"))
    assert routed(router, alert("a"), "resolved", at_s=100) == {"ops": 330}
    assert routed(router, alert("a", episode=2), at_s=1000) == {"ops": 1030}


def test_repeats_within_repeat_interval_are_suppressed_per_channel():
    router = router_for([{"name": "ops", "type": "log"}, {"name": "chatty", "type": "log", "repeat_interval": "1h"}],
                        group_wait="0s", group_interval="5m", repeat_interval="4h")
    assert set(routed(router, alert())) == {"ops", "chatty"}
    assert routed(router, alert(), at_s=1800) == {}
    assert set(routed(router, alert(), at_s=3600)) == {"chatty"}
    assert set(routed(router, alert(), at_s=4 * 3600)) == {"ops", "chatty"}
    assert set(routed(router, alert(episode=2), at_s=4 * 3600 + 1)) == {"ops", "chatty"}  # a new episode


def test_rows_carry_the_episode_key_and_ids_are_stable_for_the_same_transition():
    router = router_for([{"name": "ops", "type": "log"}], group_wait="0s")
    a = alert()
    transition = moved(a, "firing", T0)
    (row,) = router.deliveries_for(a, transition, T0)
    assert row.idempotency_key == episode_key(a) == "tocsin/disk-full/fp1/1"
    assert row.kind == "firing" and row.state == "pending" and row.created_ns == T0
    assert row.payload["alert"] == {"fingerprint": "fp1", "rule": "disk-full", "state": "firing", "episode": 1}
    again = router_for([{"name": "ops", "type": "log"}], group_wait="0s").deliveries_for(a, transition, T0)
    assert [r.id for r in again] == [row.id]  # enqueueing the same transition twice is a no-op
    assert len(episode_key(alert(rule="r" * 60, fingerprint="f" * 300))) <= 255


@pytest.mark.parametrize(("to_state", "kind"), [("firing", "firing"), ("nodata", "firing"), ("flapping", "firing"),
                                                ("resolved", "resolved"), ("inactive", "resolved"),
                                                ("acknowledged", "acknowledged")])
def test_transition_kinds(to_state, kind):
    assert transition_kind(moved(alert(), to_state, T0)) == kind


def test_a_full_outbox_drops_new_rows_for_that_channel_and_reports_them():
    router = router_for([{"name": "small", "type": "log"}, {"name": "other", "type": "log"}], max_pending=2)
    dropped = []
    router.on_drop = lambda channel, kind, a: dropped.append((channel, a.fingerprint))
    for name in ("a", "b", "c"):
        routed(router, alert(name))
    assert dropped == [("small", "c"), ("other", "c")]
    router.settled("small")  # one row of "small" was delivered
    assert set(routed(router, alert("d"))) == {"small"}


def test_a_failed_delivery_becomes_a_notice_for_the_fallback_channel():
    router = router_for([{"name": "slack", "type": "log", "fallback": "mail"}, {"name": "mail", "type": "log"},
                         {"name": "quiet", "type": "log"}], group_wait="0s")
    rows = {row.channel: row for row in router.deliveries_for(alert(), moved(alert(), "firing", T0), T0)}
    notice = router.failure_notice(rows["slack"], "HTTP 500", T0 + S)
    assert notice.channel == "mail" and notice.kind == "failed" and notice.next_attempt_ns == T0 + S
    assert notice.payload["failure"]["channel"] == "slack" and notice.payload["failure"]["error"] == "HTTP 500"
    assert router.failure_notice(rows["quiet"], "boom", T0) is None  # no fallback configured
    assert router.failure_notice(notice, "boom", T0) is None  # a failed notice does not cascade


def test_the_notifications_fallback_is_the_default_for_every_channel():
    router = router_for([{"name": "slack", "type": "log"}, {"name": "mail", "type": "log"}], fallback="mail")
    rows = {row.channel: row for row in router.deliveries_for(alert(), moved(alert(), "firing", T0), T0)}
    assert router.failure_notice(rows["slack"], "x", T0).channel == "mail"
    assert router.failure_notice(rows["mail"], "x", T0) is None  # not to itself


def test_prune_forgets_finished_groups_and_old_repeat_marks():
    router = router_for([{"name": "ops", "type": "log"}], group_wait="0s", repeat_interval="1h")
    routed(router, alert("a"))
    routed(router, alert("a"), "resolved", at_s=10)
    routed(router, alert("b"))
    router.prune(T0 + 2 * 3600 * S)
    assert len(router.book.timers) == 1 and next(iter(router.book.timers.values())).firing == {"b"}
    assert router.book.marks == {}
