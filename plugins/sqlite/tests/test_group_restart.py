"""Notification grouping across a restart: a monitor stopped mid-group and started again on the same SQLite file
continues the group's timer and each alert's repeat mark from storage (virtual clock, real alerting and dispatch)."""

from __future__ import annotations

import asyncio

import tocsin_sqlite

from tocsin import Monitor
from tocsin.clock import VirtualClock
from tocsin.models import MetricRollup
from tocsin.storage.protocol import DeliveryQuery
from tocsin.testing import make_monitor

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a whole minute
RULE = {"name": "hot", "metric": "temp", "aggregate": "last", "window": "1m", "by": ["room"], "threshold": 50,
        "cooldown": "10m"}
CHANNEL = {"name": "ops", "type": "captured", "group_wait": "30s", "group_interval": "5m", "repeat_interval": "1h"}


def monitor_on(path, clock: VirtualClock) -> Monitor:
    monitor = make_monitor(tocsin_sqlite, clock=clock, config={
        "storage": {"backend": "sqlite", "path": str(path), "leader_lease": "0s"},
        "alerting": {"rules": [RULE]},
        "channels": [CHANNEL],
        "notifications": {"poll_interval": "1h"},  # dispatch rounds are driven by hand too (`at`)
    })
    monitor.services.remove(monitor.alerting)  # evaluation is driven by hand, at the times below
    return monitor


async def heat(monitor: Monitor, room: str, from_s: int, to_s: int = 4000) -> None:
    """The room is at 90 degrees from just before `from_s` on (a point every 10 s)."""
    await monitor.storage.write_metrics([
        MetricRollup(name="temp", kind="gauge", labels={"room": room}, start_ns=T0 + t * S, interval_s=10.0,
                     count=1, sum=90.0, min=90.0, max=90.0, last=90.0)
        for t in range(from_s - 10, to_s, 10)
    ])


async def at(monitor: Monitor, clock: VirtualClock, seconds: int, *, evaluate: bool = True) -> None:
    """Move the clock to T0 + seconds, evaluate the rule there, and run a dispatch round."""
    await clock.advance((T0 + seconds * S - clock.now_ns()) / S)
    if evaluate:
        await monitor.alerting.evaluate(clock.now_ns())
    await monitor.notify.dispatch_due(clock.now_ns())
    await monitor.notify.settled()


def messages(monitor: Monitor) -> list[list[str]]:
    return [sorted(alert.labels["room"] for alert in n.alerts) for n in monitor.notify.channels["ops"].sent]


async def test_a_restart_mid_group_continues_the_group_and_the_repeat_schedule(tmp_path):
    path, clock = tmp_path / "tocsin.db", VirtualClock(T0)
    first = monitor_on(path, clock)
    async with first:
        await heat(first, "a", 0)
        await at(first, clock, 0)  # a fires: the group starts, its first flush is group_wait later
        await at(first, clock, 30, evaluate=False)
        assert messages(first) == [["a"]]
        await heat(first, "b", 60)
        await at(first, clock, 70)  # b joins the group: due at the next tick, 30 + 5 min = 330
        assert messages(first) == [["a"]]
        await at(first, clock, 100, evaluate=False)
    second = monitor_on(path, clock)  # a new process on the same file at 100 s
    async with second:
        await heat(second, "c", 120)
        await at(second, clock, 130)  # c joins the same group: due at 330 too, not group_wait after 130
        for t in range(140, 330, 10):
            await at(second, clock, t, evaluate=False)
        assert messages(second) == []  # no early message of a group started over
        await at(second, clock, 330, evaluate=False)
        assert messages(second) == [["b", "c"]]  # one message, at the stored tick
        page = await second.notify.deliveries(DeliveryQuery(channel="ops", limit=100))
        firsts = {row.payload["alert"]["labels"]["room"]: row for row in page.items if row.kind == "firing"}
        assert {room: (row.next_attempt_ns - T0) // S for room, row in firsts.items()} == {"a": 30, "b": 330, "c": 330}
        assert {room: (row.sent_ns - T0) // S for room, row in firsts.items()} == {"a": 30, "b": 330, "c": 330}

        # a's cooldown (10 min) asks for reminders, but the channel's repeat_interval (1 h) counts from the mark
        # stored at 0 s by the first process: no reminder to ops before 3600 s, one at 3600 s
        for t in range(600, 3600, 600):
            await at(second, clock, t)
        reminders = [row for row in (await second.notify.deliveries(DeliveryQuery(channel="ops", limit=100))).items
                     if row.payload["alert"]["labels"]["room"] == "a" and row.kind == "firing"]
        assert len(reminders) == 1  # only the first notification
        await at(second, clock, 3600)
        reminders = [row for row in (await second.notify.deliveries(DeliveryQuery(channel="ops", limit=100))).items
                     if row.payload["alert"]["labels"]["room"] == "a" and row.kind == "firing"]
        assert sorted((row.created_ns - T0) // S for row in reminders) == [0, 3600]


async def test_the_stored_state_is_what_the_router_holds(tmp_path):
    path, clock = tmp_path / "tocsin.db", VirtualClock(T0)
    async with monitor_on(path, clock) as monitor:
        await heat(monitor, "a", 0)
        await at(monitor, clock, 0)
        state = await monitor.storage.load_group_state()
        [(key, timer)] = monitor.notify.router.book.timers.items()
        assert [(g.channel, g.group_id, g.first_ns, g.last_ns) for g in state.groups] == [
            (*key, timer.first_ns, timer.last_ns)]
        assert sorted(m.fingerprint for m in state.members) == sorted(timer.firing)
        assert [(m.channel, m.episode, m.time_ns) for m in state.marks] == [("ops", 1, T0)]


CLI_CONFIG = """
[storage]
backend = "sqlite"
path = "{db}"

[notifications]
poll_interval = "1h"

[[channels]]
name = "ops"
type = "log"
group_wait = "10m"
group_interval = "1h"

[alerting]
evaluation_interval = "1h"

[[alerting.rules]]
name = "queue-deep"
metric = "depth"
aggregate = "last"
by = ["queue"]
threshold = 10
"""


async def test_an_acknowledgement_from_another_process_is_timed_by_the_stored_group(tmp_path):
    from click.testing import CliRunner

    from tocsin.cli import cli

    config = tmp_path / "tocsin.toml"
    config.write_text(CLI_CONFIG.format(db=tmp_path / "t.db"))
    async with Monitor.from_config(config) as leader:
        leader.metrics.gauge("depth").set(50, queue="mail")
        await leader.flush()
        [alert] = (await leader.alerting.evaluate()).alerts  # fires: the group's first flush is 10 min away
        [(key, timer)] = leader.notify.router.book.timers.items()
        leader.pm.hook.register_commands(cli=cli)
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["alerts", "ack", alert.fingerprint, "--config",
                                                                   str(config), "--by", "ann"], obj=leader.pm)
        assert result.exit_code == 0, result.output
        page = await leader.notify.deliveries(DeliveryQuery(channel="ops", limit=10))
    due = {row.kind: row.next_attempt_ns for row in page.items}
    # the command line's router read the leader's group from storage: the acknowledgement joins its first flush,
    # rather than starting the group over 10 minutes after the command ran
    assert due == {"firing": timer.first_ns, "acknowledged": timer.first_ns}
    [group] = (await _stored_groups(tmp_path / "t.db"))
    assert (group.channel, group.group_id, group.first_ns) == (*key, timer.first_ns)


async def _stored_groups(path):
    storage = tocsin_sqlite.SQLiteStorage(tocsin_sqlite.SQLiteStorage.Config(path=path))
    await storage.open()
    try:
        return (await storage.load_group_state()).groups
    finally:
        await storage.close()
