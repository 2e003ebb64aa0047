"""An alert about a component is inhibited while a dependency of that component is unhealthy (SEMANTICS §3.7)."""

from __future__ import annotations

from tocsin.clock import VirtualClock
from tocsin.testing import make_monitor

T0 = 1_700_000_000 * 10**9


async def test_alerts_of_a_component_are_inhibited_while_its_dependency_is_unhealthy():
    clock = VirtualClock(T0)
    monitor = make_monitor(clock=clock, config={
        "channels": [{"name": "cap", "type": "captured", "group_wait": "0s"}],
        "alerting": {"rules": [{"name": "api-errors", "metric": "api_errors", "aggregate": "last", "window": "5m",
                                "by": ["component"], "op": "gt", "threshold": 0, "channels": ["cap"]}]},
    })
    db_up = {"value": False}
    monitor.health.check("db")(lambda: db_up["value"])
    monitor.health.check("api", depends_on=["db"])(lambda: True)
    async with monitor:
        await monitor.health.run_due()
        assert monitor.health.inhibited("api") == "db"
        monitor.metrics.gauge("api_errors").set(5, component="api")
        await monitor.flush()
        await clock.advance(1)
        [alert] = (await monitor.alerting.evaluate()).alerts
        assert alert.state == "firing"
        assert alert.inhibited_by == ["health:db"]
        await monitor.notify.dispatch_due()
        await monitor.notify.settled()
        assert monitor.notify.channels["cap"].sent == []  # the root cause pages, not every dependent

        db_up["value"] = True
        await clock.advance(60)
        await monitor.health.run_due()
        assert monitor.health.inhibited("api") is None
        monitor.metrics.gauge("api_errors").set(5, component="api")
        await monitor.flush()
        [alert] = (await monitor.alerting.evaluate()).alerts
        assert alert.inhibited_by == []
        await monitor.notify.dispatch_due()
        await monitor.notify.settled()
        [notification] = monitor.notify.channels["cap"].sent
        assert notification.kind == "firing" and notification.alert.labels["component"] == "api"
