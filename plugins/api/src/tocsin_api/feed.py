"""The change feed: what other processes write to the store, published on this process's event bus.

tocsin publishes its events in the process where something happens. When the app that records and the API
server are different processes on one database, the server would never hear of the app's logs and spans,
and a server that is not its store's leader (`monitor.is_leader`) would never hear of alerts and health
changes, which only the leader evaluates. `ChangeFeed` closes that gap by reading storage.

Every FEED_INTERVAL_S it asks storage for `change_marker()`, a number that moves whenever any process
commits a write. When it moved, the feed publishes `Event(topic="logs", type="written", data={"source":
"storage"})` and the same for `traces`: the WebSocket hub's log and trace feeds then read what is new by their
own positions (a write of this process already announced costs at most one more read).

A follower also reads, on each change, the alert transitions stored since the newest it has seen (from
SLACK_NS before it, skipping those seen, so a transition committed a little after a later one still comes)
and the new health results of the components it knows, and publishes them as the leader publishes them in
its own process: `alerts` events typed by the transition's new state, with the alert and the transition as
data (`notified` when the outbox holds a delivery for the alert made at the transition's time), `health`
`changed` when a component's stored status differs from the last one seen, and `system` when the overall
status changes. Transitions this process made itself (an acknowledgement through this server) are published
by it already and are not published twice. The leader's cycle reports (`evaluated`, `rule_health`) and
silence events are not relayed. Relayed events go to the bus only, not to `on_event` hooks: plugins act once,
in the process where the thing happened.

Cost: one `change_marker()` call per interval (for SQLite a `PRAGMA data_version`); per change, for a
follower, one read of recent transitions, one health read per component, and for new transitions the alerts
and outbox entries they name (one by one up to FEW alerts, else one page of each). Storage errors are logged
(once until storage works again), never raised.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from tocsin import Monitor
from tocsin.ext import (
    Alert,
    AlertQuery,
    AlertTransition,
    DeliveryQuery,
    Event,
    StorageBackend,
    Subscription,
    alert_event_data,
    worst_status,
)

log = logging.getLogger("tocsin.api")

FEED_INTERVAL_S = 0.25
"""How often the store's change marker is read."""
SLACK_NS = 10 * 10**9
"""Alert transitions are read from 10 s before the newest one seen (transitions seen are skipped)."""
SEEN = 10_000
"""How many transitions are remembered as published."""
FEW = 16
"""Up to this many alerts with new transitions are read one by one; more are read as one page."""
PAGE = 1000
"""The page of recent alerts (and of outbox entries) read when many alerts changed at once."""
DELIVERIES_PER_ALERT = 50
"""The newest outbox entries read per alert to tell whether a transition notified."""
HEALTH_LIMIT = 100
"""The most new results read per component and change."""
MIN_NS, MAX_NS = -(2**63), 2**63 - 1


def _key(transition: AlertTransition) -> tuple[str, str, int]:
    return transition.fingerprint, transition.to_state, transition.time_ns


class _Follower:
    """What a follower has published: the transitions seen, and per component its newest result and status."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.local: Subscription = monitor.events.subscribe(("alerts",), maxsize=SEEN)
        """This process's own alert events: the transitions it publishes itself."""
        self.seen: collections.OrderedDict[tuple[str, str, int], None] = collections.OrderedDict()
        self.newest_ns = 0
        self.health: dict[str, tuple[int, str]] = {}
        """Component → (time of the newest result read, the status it gave)."""
        self.system = "unknown"

    def close(self) -> None:
        self.local.close()

    def _see(self, key: tuple[str, str, int]) -> None:
        self.seen[key] = None
        self.seen.move_to_end(key)
        while len(self.seen) > SEEN:
            self.seen.popitem(last=False)

    def _note_local(self) -> None:
        for event in self.local.drain():
            data = event.data
            if "fingerprint" in data and "to_state" in data:
                self._see((data["fingerprint"], data["to_state"], event.time_ns))

    def _components(self) -> dict[str, bool]:
        """The health components this monitor knows, with whether each is critical."""
        return {component.name: component.critical for component in self.monitor.health.status().components}

    async def begin(self, storage: StorageBackend) -> None:
        """Take what is stored now as already published."""
        now = self.monitor.clock.now_ns()
        self.newest_ns = now
        for transition in await storage.transitions_between(max(MIN_NS, now - SLACK_NS), MAX_NS):
            self._see(_key(transition))
        await self.discover(storage)
        self.system = worst_status((self.health[name][1], critical)
                                    for name, critical in self._components().items() if name in self.health)

    async def discover(self, storage: StorageBackend) -> None:
        """Start following the components that are new since the last call (their stored status so far is where
        they stand) and forget those that are gone."""
        components = self._components()
        for name in [name for name in self.health if name not in components]:
            del self.health[name]
        for name in components:
            if name not in self.health:
                now = self.monitor.clock.now_ns()
                last = await storage.health_history(name, end_ns=now, limit=1)
                self.health[name] = (now - 1, last[0].status if last else "unknown")

    async def relay(self, storage: StorageBackend) -> None:
        """Read what changed since the last call and publish the events the leader published for it (each
        part as soon as it is read, so a read that fails loses nothing already marked as published)."""
        for event in await self._alerts(storage):
            self.monitor.events.publish(event)
        await self._health(storage)

    async def _alerts(self, storage: StorageBackend) -> list[Event]:
        transitions = await storage.transitions_between(max(MIN_NS, self.newest_ns - SLACK_NS), MAX_NS)
        self._note_local()
        fresh = [transition for transition in transitions if _key(transition) not in self.seen]
        if not fresh:
            return []
        alerts, notified = await self._context(storage, fresh)
        self._note_local()  # an acknowledgement made here while the alerts were read
        events = []
        for transition in fresh:
            key = _key(transition)
            if key in self.seen:
                continue
            self._see(key)
            self.newest_ns = max(self.newest_ns, transition.time_ns)
            alert = alerts.get(transition.fingerprint) or Alert(fingerprint=transition.fingerprint,
                                                                rule=transition.rule)
            events.append(Event(topic="alerts", type=transition.to_state, time_ns=transition.time_ns,
                                data=alert_event_data(alert, transition,
                                                notified=(transition.fingerprint, transition.time_ns) in notified)))
        return events

    async def _context(self, storage: StorageBackend, fresh: list[AlertTransition]
                       ) -> tuple[dict[str, Alert], set[tuple[str, int]]]:
        """The alerts the transitions belong to, and the (fingerprint, created_ns) of their outbox entries."""
        fingerprints = list(dict.fromkeys(transition.fingerprint for transition in fresh))
        alerts: dict[str, Alert] = {}
        notified: set[tuple[str, int]] = set()
        if len(fingerprints) <= FEW:
            for fingerprint in fingerprints:
                alert = await storage.get_alert(fingerprint)
                if alert is not None:
                    alerts[fingerprint] = alert
                page = await storage.list_deliveries(DeliveryQuery(fingerprint=fingerprint,
                                                                   limit=DELIVERIES_PER_ALERT))
                notified.update((delivery.fingerprint, delivery.created_ns) for delivery in page.items)
            return alerts, notified
        wanted = set(fingerprints)
        recent = await storage.list_alerts(AlertQuery(limit=PAGE))
        alerts = {alert.fingerprint: alert for alert in recent.items if alert.fingerprint in wanted}
        for fingerprint in fingerprints:
            if fingerprint not in alerts:
                alert = await storage.get_alert(fingerprint)
                if alert is not None:
                    alerts[fingerprint] = alert
        deliveries = await storage.list_deliveries(DeliveryQuery(limit=PAGE))
        notified.update((delivery.fingerprint, delivery.created_ns) for delivery in deliveries.items)
        return alerts, notified

    async def _health(self, storage: StorageBackend) -> None:
        components = self._components()
        changed_ns: int | None = None
        for name, critical in components.items():
            if name not in self.health:
                continue
            newest, status = self.health[name]
            results = await storage.health_history(name, start_ns=min(MAX_NS, newest + 1), limit=HEALTH_LIMIT)
            for result in reversed(results):  # oldest first
                if result.status != status:
                    self.monitor.events.publish(Event(topic="health", type="changed", time_ns=result.time_ns, data={
                        "component": name, "from": status, "to": result.status,
                        "cause": result.details.get("cause"), "critical": critical, "message": result.message,
                    }))  # fmt: skip
                    status = result.status
                    changed_ns = result.time_ns if changed_ns is None else max(changed_ns, result.time_ns)
                newest = max(newest, result.time_ns)
            self.health[name] = (newest, status)
        system = worst_status((self.health[name][1], critical)
                               for name, critical in components.items() if name in self.health)
        if system != self.system:
            at = changed_ns if changed_ns is not None else self.monitor.clock.now_ns()
            self.monitor.events.publish(Event(topic="health", type="system", time_ns=at,
                                              data={"from": self.system, "to": system}))
            self.system = system


class ChangeFeed:
    """Polls the store's change marker and publishes what other processes wrote (see the module's docstring)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.marker: int | None = None
        self.changes = 0
        """How many times the marker moved."""
        self._relay = False  # a change a follower has not read yet (a failed read is tried again)
        self._follower: _Follower | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._unsupported = False

    async def start(self) -> None:
        """Take the first reading now (so what is stored already is not published), then poll in a task."""
        if self._task is None:
            await self._round()
            self._task = asyncio.create_task(self._run(), name="tocsin-api-feed")

    async def stop(self) -> None:
        """Stop polling. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._leave()

    def _leave(self) -> None:
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FEED_INTERVAL_S)
            await self._round()

    async def _round(self) -> None:
        try:
            await self.tick()
        except Exception as error:  # the next round tries again
            if not self._failing:
                log.warning("tocsin-api: the change feed could not read storage: %r", error)
            self._failing = True
        else:
            if self._failing:
                log.warning("tocsin-api: the change feed reads storage again")
            self._failing = False

    async def tick(self) -> bool:
        """One round: read the marker, announce a change, and relay a follower's events; True on a change."""
        storage = self.monitor.storage
        if storage is None:
            return False
        if not hasattr(storage, "change_marker"):
            if not self._unsupported:
                log.warning("tocsin-api: storage %r has no change_marker; the server sees only what this process "
                            "writes", type(storage).__name__)
            self._unsupported = True
            return False
        marker = await storage.change_marker()
        changed = self.marker is not None and marker != self.marker
        self.marker = marker
        if changed:
            self.changes += 1
            self._relay = True
            now = self.monitor.clock.now_ns()
            for topic in ("logs", "traces"):
                self.monitor.events.publish(Event(topic=topic, type="written", time_ns=now,
                                                  data={"source": "storage"}))
        if self.monitor.is_leader:
            self._leave()
            return changed
        if self._follower is None:
            follower = _Follower(self.monitor)
            try:
                await follower.begin(storage)
            except BaseException:
                follower.close()
                raise
            self._follower, self._relay = follower, False
            return changed
        await self._follower.discover(storage)
        if self._relay:
            await self._follower.relay(storage)
            self._relay = False
        return changed
