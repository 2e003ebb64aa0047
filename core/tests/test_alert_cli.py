"""`tocsin alerts ack|resolve` tell the channels, as an in-process acknowledge or resolve does.

An alert fires in a running monitor on a SQLite file and its webhook (a loopback receiver) hears `firing`;
then the command line, in its own monitor on the same file, acknowledges or resolves it; the running
monitor's dispatcher then delivers what the command put in the outbox.
"""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest
from click.testing import CliRunner, Result

from tocsin.monitor import Monitor
from tocsin.testing.receiver import HttpReceiver

pytest.importorskip("tocsin_sqlite")
pytest.importorskip("tocsin_webhook")

CONFIG = """
    [storage]
    backend = "sqlite"
    path = "{db}"
    [notifications]
    group_wait = "0s"
    group_interval = "0s"  # news of a group is due at once (an ack waits for the next tick, as in process)
    poll_interval = "1h"
    [notifications.egress]
    allow = ["127.0.0.1"]
    [[channels]]
    name = "pager"
    type = "webhook"
    url = "{url}"
    [alerting]
    evaluation_interval = "1h"
    [[alerting.rules]]
    name = "queue-deep"
    metric = "depth"
    aggregate = "last"
    by = ["queue"]
    threshold = 10
"""


@pytest.fixture(autouse=True)
def _no_config_from_env(monkeypatch):
    monkeypatch.delenv("TOCSIN_CONFIG", raising=False)


def tocsin(pm, *args: str) -> Result:
    """`tocsin ARGS` through click's runner with the running monitor's plugin manager."""
    from tocsin.cli import cli

    pm.hook.register_commands(cli=cli)
    return CliRunner().invoke(cli, list(args), obj=pm)


async def deliver(monitor: Monitor) -> None:
    """One dispatch round of the running monitor, waited out."""
    await monitor.notify.dispatch_due()
    await monitor.notify.settled()


async def firing(tmp_path, receiver: HttpReceiver) -> tuple[Monitor, str, str]:
    """A started monitor whose alert fired and was delivered; returns it, the config path and the fingerprint."""
    config = tmp_path / "tocsin.toml"
    config.write_text(textwrap.dedent(CONFIG.format(db=tmp_path / "alerts.db", url=receiver.url)))
    monitor = Monitor.from_config(config)
    await monitor.astart()
    monitor.metrics.gauge("depth").set(50, queue="mail")
    await monitor.flush()
    [alert] = (await monitor.alerting.evaluate()).alerts
    await deliver(monitor)
    assert [r.json()["kind"] for r in await receiver.wait_for(1)] == ["firing"]
    return monitor, str(config), alert.fingerprint


@pytest.mark.parametrize(("command", "kind"), [("ack", "acknowledged"), ("resolve", "resolved")])
async def test_an_ack_or_resolve_from_the_command_line_reaches_the_channel(tmp_path, command, kind):
    async with HttpReceiver() as receiver:
        monitor, config, fingerprint = await firing(tmp_path, receiver)
        try:
            result = await asyncio.to_thread(tocsin, monitor.pm, "alerts", command, fingerprint, "--config", config,
                                             "--by", "ann", "--comment", "on it")
            await deliver(monitor)  # the running application's dispatcher
            requests = list(receiver.requests)
        finally:
            await monitor.aclose()
    assert result.exit_code == 0, result.output
    assert [r.json()["kind"] for r in requests] == ["firing", kind]
    assert "notification queued for pager" in result.stderr
    event = requests[1].json()
    assert event["alert"]["fingerprint"] == fingerprint
    if command == "ack":
        assert event["alert"]["acknowledged_by"] == "ann"


async def test_after_a_manual_resolve_the_list_shows_the_alert_resolved(tmp_path):
    async with HttpReceiver() as receiver:
        monitor, config, fingerprint = await firing(tmp_path, receiver)
        try:
            resolved = await asyncio.to_thread(tocsin, monitor.pm, "alerts", "resolve", fingerprint,
                                               "--config", config, "--by", "bob")
            listed = await asyncio.to_thread(tocsin, monitor.pm, "alerts", "list", "--config", config)
            as_json = await asyncio.to_thread(tocsin, monitor.pm, "alerts", "list", "--json", "--config", config)
        finally:
            await monitor.aclose()
    assert resolved.exit_code == listed.exit_code == 0, resolved.output + listed.output
    line = f"{fingerprint}  resolved   warning  queue-deep  {{queue=mail}} (by hand; its condition has not cleared yet)"
    assert resolved.stdout == listed.stdout == line + "\n"
    [stored] = json.loads(as_json.stdout)
    assert (stored["state"], stored["handling"]) == ("firing", "resolved")  # the data keeps both axes
