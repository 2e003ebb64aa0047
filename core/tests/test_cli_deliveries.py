"""`tocsin notify deliveries`: the delivery log of a real SQLite store, filled by a real monitor via loopback."""

from __future__ import annotations

import asyncio
import json

import pytest

from tocsin.cli import main
from tocsin.testing.receiver import HttpReceiver, Reply

pytest.importorskip("tocsin_sqlite")
pytest.importorskip("tocsin_webhook")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`tocsin ARGS` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out, err = capsys.readouterr()
    return caught.value.code or 0, out, err


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A config whose SQLite store holds one alert's two deliveries: sent to `ops-log`, failed (HTTP 400) to `hook`."""
    from tocsin.monitor import Monitor

    root = tmp_path_factory.mktemp("deliveries")
    config = root / "tocsin.json"

    async def fill() -> str:
        async with HttpReceiver([Reply(400, body=b"no such route")] * 3, default=400) as receiver:
            config.write_text(json.dumps({
                "storage": {"backend": "sqlite", "path": str(root / "app.db")},
                "channels": [{"name": "hook", "type": "webhook", "url": receiver.url},
                             {"name": "ops-log", "type": "log"}],
                "notifications": {"group_wait": "0s", "egress": {"allow": ["127.0.0.1"]}},
                "alerting": {"rules": [{"name": "queue-deep", "metric": "depth", "aggregate": "last",
                                        "threshold": 10, "channels": ["hook", "ops-log"]}]},
            }))
            async with Monitor.from_config(config) as monitor:
                monitor.metrics.gauge("depth").set(50)
                await monitor.flush()
                [alert] = (await monitor.alerting.evaluate()).alerts
                for _ in range(500):
                    await monitor.notify.dispatch_due()
                    await monitor.notify.settled()
                    states = sorted(row.state for row in (await monitor.notify.deliveries()).items)
                    if states == ["failed", "sent"]:
                        return alert.fingerprint
                    await asyncio.sleep(0.01)
                raise AssertionError(f"deliveries did not settle: {states}")

    return {"config": str(config), "fingerprint": asyncio.run(fill()), "root": root}


@pytest.fixture(autouse=True)
def _no_config_from_env(monkeypatch):
    monkeypatch.delenv("TOCSIN_CONFIG", raising=False)


def columns(out: str) -> list[list[str]]:
    return [line.split("  ") for line in out.splitlines()]


def test_lists_every_delivery_with_the_failed_ones_last_error(store, capsys):
    code, out, err = run_cli(capsys, "notify", "deliveries", "--config", store["config"])
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 2
    fingerprint = store["fingerprint"]
    failed = next(line for line in lines if " hook " in line)
    assert failed.split("  ", 1)[1] == (f"failed   hook  firing  {fingerprint}  1 attempt  "
                                        "last: permanent (status 400): DeliveryRefused: webhook of channel 'hook' "
                                        "answered 400: no such route")
    sent = next(line for line in lines if " ops-log " in line)
    assert sent.split("  ", 1)[1] == f"sent     ops-log  firing  {fingerprint}  1 attempt"


def test_failed_and_channel_filters(store, capsys):
    code, out, _ = run_cli(capsys, "notify", "deliveries", "--failed", "--config", store["config"])
    assert code == 0
    [line] = out.splitlines()
    assert "  failed   hook  " in line and "last: permanent (status 400)" in line
    code, out, _ = run_cli(capsys, "notify", "deliveries", "--channel", "ops-log", "--config", store["config"])
    [line] = out.splitlines()
    assert code == 0 and "  sent     ops-log  " in line
    code, out, err = run_cli(capsys, "notify", "deliveries", "--failed", "--channel", "ops-log",
                             "--config", store["config"])
    assert (code, out, err) == (0, "", "no failed deliveries\n")
    code, out, err = run_cli(capsys, "notify", "deliveries", "--limit", "1", "--config", store["config"])
    assert code == 0 and len(out.splitlines()) == 1 and err == "… more; use --limit, --failed or --channel\n"


def test_json_carries_the_last_attempt(store, capsys):
    code, out, _ = run_cli(capsys, "notify", "deliveries", "--failed", "--json", "--config", store["config"])
    assert code == 0
    [row] = json.loads(out)
    assert (row["channel"], row["state"], row["fingerprint"]) == ("hook", "failed", store["fingerprint"])
    assert row["last_attempt"]["outcome"] == "permanent" and row["last_attempt"]["status_code"] == 400


def test_a_missing_store_is_an_error_and_stays_missing(tmp_path, capsys):
    config = tmp_path / "other.json"
    config.write_text(json.dumps({"storage": {"backend": "sqlite", "path": str(tmp_path / "none.db")}}))
    code, out, err = run_cli(capsys, "notify", "deliveries", "--config", str(config))
    assert (code, out) == (1, "")
    assert err.startswith(f"tocsin: error: no database at {tmp_path / 'none.db'}: nothing has been recorded")
    assert not (tmp_path / "none.db").exists()
