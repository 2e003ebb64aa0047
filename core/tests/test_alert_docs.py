"""docs/alerting.md stays true: its Python blocks run, its TOML rules load, and its examples work together."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tocsin.alerting.service import AlertingService
from tocsin.assembly import load_config
from tocsin.clock import VirtualClock
from tocsin.config.walker import Walker
from tocsin.plugins import build_registries, make_plugin_manager
from tocsin.testing import make_monitor
from tocsin.testing.rulefile import RuleTestFile

PAGE = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"
TEXT = PAGE.read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, flags=re.S)


def test_python_blocks_run_and_define_what_the_page_uses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for block in blocks("toml"):  # the files the page writes (tests/test_docs.py runs the page as a whole)
        if named := re.match(r"# ([\w.-]+\.toml)\n", block):
            (tmp_path / named.group(1)).write_text(block)
    namespace: dict[str, object] = {"__name__": "docs_alerting"}
    for number, block in enumerate(blocks("python"), start=1):
        exec(compile(block, f"alerting.md block {number}", "exec"), namespace)
    assert {"handle", "maintenance", "replay", "NearPlugin"} <= set(namespace)


def test_rule_blocks_load_and_the_test_file_block_parses():
    registries = build_registries(make_plugin_manager(entrypoints=False))
    rules = [tomllib.loads(block) for block in blocks("toml")
             if "[[alerting.rules]]" in block and not block.startswith("# alerts.toml")]
    assert len(rules) == 2
    channels = [{"name": "ops", "type": "log"}, {"name": "pager", "type": "log"}]
    config = load_config({"alerting": {"rules": [r["alerting"]["rules"][0] for r in rules]}, "channels": channels},
                         registries=registries, environ={})
    assert [rule.name for rule in config.alerting.rules] == ["queue-deep", "disk-full"]
    [test_file] = [block for block in blocks("toml") if "[[tests]]" in block]
    walker = Walker(registries)
    assert walker.convert(tomllib.loads(test_file), RuleTestFile, "") is not None and walker.problems == []


async def test_the_helper_snippets_do_what_the_page_says():
    namespace: dict[str, object] = {"__name__": "docs_alerting"}
    for block in blocks("python")[2:]:
        if not re.search(r"^asyncio\.run\(|^\w.* = asyncio\.run\(", block, flags=re.M):  # definitions only
            exec(compile(block, "alerting.md", "exec"), namespace)
    monitor = make_monitor(clock=VirtualClock(0))
    async with monitor:
        alerting = AlertingService(monitor)
        alerting.add_rule({"name": "db", "metric": "up", "aggregate": "last", "op": "lt", "threshold": 1,
                           "labels": {"service": "db", "env": "prod"}})
        monitor.metrics.gauge("up").set(0)
        await monitor.flush()
        [alert] = (await alerting.evaluate()).alerts
        assert [a.fingerprint for a in await namespace["maintenance"](alerting)] == [alert.fingerprint]
        assert await namespace["replay"](alerting, 0, 60 * 10**9) == []
        await namespace["handle"](alerting, alert.fingerprint, 0)
        stored = await monitor.storage.get_alert(alert.fingerprint)
        assert stored.handling == "resolved"
        history = await monitor.storage.alert_history(alert.fingerprint)
        assert [(t.to_state, t.actor) for t in history] == [("firing", None), ("acknowledged", "ann"),
                                                           ("resolved", "ann")]


@pytest.mark.parametrize("key", ["nodata_state", "error_state", "flap_threshold", "flap_window", "matchers",
                                 "measure", "for_outage_tolerance", "for_grace_period", "evaluation_timeout"])
def test_every_alerting_key_is_explained(key):
    assert f"`{key}`" in TEXT
