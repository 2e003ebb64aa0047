"""Contract tests for alerts, their transition history and silences: the alerting state a backend keeps."""

from __future__ import annotations

import pytest

from tocsin.models import LabelMatcher, Silence
from tocsin.storage.protocol import AlertQuery
from tocsin.testing.contracts.base import ContractBase
from tocsin.testing.contracts.records import every_page, make_alert, make_delivery, make_transition, ns_at


class AlertsContract(ContractBase):
    """Alert saves and listing, transition history, deliveries enqueued with an alert, and silences."""

    async def test_save_and_get_alert(self, backend):
        assert await backend.get_alert("fp1") is None
        alert = make_alert("fp1", labels={"service": "api"}, state="pending")
        await backend.save_alert(alert)
        assert await backend.get_alert("fp1") == alert
        fired = make_alert("fp1", labels={"service": "api"}, state="firing", updated_s=10)
        await backend.save_alert(fired)
        assert await backend.get_alert("fp1") == fired

    async def test_saved_alert_does_not_follow_later_mutation(self, backend):
        alert = make_alert("fp1", labels={"service": "api"})
        await backend.save_alert(alert)
        alert.state = "resolved"
        alert.labels["service"] = "changed"
        alert.silenced_by.append("s1")
        stored = await backend.get_alert("fp1")
        assert (stored.state, stored.labels, stored.silenced_by) == ("firing", {"service": "api"}, [])

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            (AlertQuery(), ["d", "c", "b", "a"]),
            (AlertQuery(rule="high_latency"), ["b", "a"]),
            (AlertQuery(states=["firing"]), ["c", "a"]),
            (AlertQuery(states=["pending", "resolved"]), ["d", "b"]),
            (AlertQuery(severity="critical"), ["d", "c"]),
            (AlertQuery(matchers=[LabelMatcher(label="service", value="api")]), ["c", "a"]),
            (AlertQuery(matchers=[LabelMatcher(label="service", op="=~", value="w.*|d.*")]), ["d", "b"]),
            (AlertQuery(rule="errors", states=["firing"], severity="critical"), ["c"]),
        ],
        ids=["all", "rule", "state", "states", "severity", "matcher", "regex", "combined"],
    )
    async def test_list_alerts_filters_most_recently_updated_first(self, backend, query, expected):
        await self._write_alert_set(backend)
        page = await backend.list_alerts(query)
        assert [alert.fingerprint for alert in page.items] == expected

    async def test_list_alerts_paginates(self, backend):
        for n in range(7):
            await backend.save_alert(make_alert(f"fp{n}", updated_s=n // 2))
        pages = await every_page(lambda cursor: backend.list_alerts(AlertQuery(limit=3, cursor=cursor)))
        assert [len(page) for page in pages] == [3, 3, 1]
        alerts = [alert for page in pages for alert in page]
        assert sorted(a.fingerprint for a in alerts) == [f"fp{n}" for n in range(7)]
        assert [a.updated_ns for a in alerts] == sorted((a.updated_ns for a in alerts), reverse=True)

    async def test_alert_history_oldest_first_keeping_the_last(self, backend):
        steps = [
            ("inactive", "pending"),
            ("pending", "firing"),
            ("firing", "resolved"),
            ("resolved", "pending"),
        ]
        for n, (old, new) in enumerate(steps):
            await backend.save_alert(make_alert("fp1", state=new, updated_s=n), [make_transition("fp1", n, old, new)])
        await backend.save_alert(make_alert("fp2"), [make_transition("fp2", 1.5, "inactive", "firing")])
        history = await backend.alert_history("fp1")
        assert [(t.from_state, t.to_state) for t in history] == steps
        assert [t.time_ns for t in await backend.alert_history("fp1", limit=2)] == [ns_at(2), ns_at(3)]
        assert await backend.alert_history("unknown") == []

    async def test_transitions_between_is_half_open_and_oldest_first(self, backend):
        await backend.save_alert(
            make_alert("fp1"),
            [make_transition("fp1", 0, "inactive", "pending"), make_transition("fp1", 2, "pending", "firing")],
        )
        await backend.save_alert(
            make_alert("fp2"),
            [make_transition("fp2", 1, "inactive", "firing"), make_transition("fp2", 3, "firing", "resolved")],
        )
        found = await backend.transitions_between(ns_at(0), ns_at(3))
        assert [(t.fingerprint, t.time_ns) for t in found] == [
            ("fp1", ns_at(0)),
            ("fp2", ns_at(1)),
            ("fp1", ns_at(2)),
        ]
        assert await backend.transitions_between(ns_at(10), ns_at(20)) == []

    async def test_save_alert_with_deliveries_enqueues_them(self, backend):
        deliveries = [make_delivery("d1", 0, channel="log"), make_delivery("d2", 0, channel="slack")]
        await backend.save_alert(make_alert("fp1"), [make_transition("fp1", 0, "pending", "firing")], deliveries)
        assert await backend.get_delivery("d1") == deliveries[0]
        claimed = await backend.claim_deliveries(ns_at(1), limit=10, lease_s=30)
        assert sorted(d.id for d in claimed) == ["d1", "d2"]

    # -- silences ----------------------------------------------------------------------------------
    async def test_silences_save_list_and_delete(self, backend):
        matcher = [LabelMatcher(label="service", value="api")]
        late = Silence(id="s2", matchers=matcher, starts_ns=ns_at(10), ends_ns=ns_at(20), created_by="bob")
        early = Silence(
            id="s1", matchers=matcher, starts_ns=ns_at(0), ends_ns=ns_at(10), created_by="ann", comment="deploy"
        )
        await backend.save_silence(late)
        await backend.save_silence(early)
        assert await backend.list_silences() == [early, late]
        assert [s.id for s in await backend.list_silences(active_at_ns=ns_at(5))] == ["s1"]
        assert [s.id for s in await backend.list_silences(active_at_ns=ns_at(10))] == ["s2"]  # end is exclusive
        assert await backend.list_silences(active_at_ns=ns_at(20)) == []
        extended = Silence(id="s1", matchers=matcher, starts_ns=ns_at(0), ends_ns=ns_at(30), created_by="ann")
        await backend.save_silence(extended)
        assert [s.id for s in await backend.list_silences(active_at_ns=ns_at(25))] == ["s1"]
        assert await backend.delete_silence("s1") is True
        assert await backend.delete_silence("s1") is False
        assert [s.id for s in await backend.list_silences()] == ["s2"]
