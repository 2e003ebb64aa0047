"""`tocsin logs search`: records written through a real Monitor into SQLite, then searched from the command line."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import msgspec
import pytest
from click.testing import CliRunner

from tocsin.models import LogRecord

pytest.importorskip("tocsin_sqlite")

MINUTE = 60 * 10**9
TRACE = "ab" * 16
# (minutes ago, service, level, message, attributes, trace id): the newest is the monitor's own log call.
RECORDS = [
    (180, "api", "info", "request served", {"path": "/orders", "ms": 12}, None),
    (120, "api", "error", "connection refused by db-1", {"host": "db-1"}, TRACE),
    (60, "worker", "warning", "connection slow", {}, None),
    (30, "worker", "error", "timeout talking to db-1", {}, None),
    (5, "api", "critical", "connection refused again", {}, None),
]


def iso(ns: int, zone: str = "Z") -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).replace(tzinfo=None).isoformat(timespec="seconds") + zone


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A config whose storage is a SQLite file holding RECORDS plus one record logged through `monitor.log`."""
    from tocsin.monitor import Monitor

    root = tmp_path_factory.mktemp("logs")
    config = root / "tocsin.json"
    config.write_text(json.dumps({"service": "shop", "storage": {"backend": "sqlite", "path": str(root / "t.db")}}))
    now = time.time_ns()

    async def write() -> None:
        async with Monitor.from_config(config) as monitor:
            await monitor.storage.write_logs([
                LogRecord(time_ns=now - ago * MINUTE, service=service, level=level, message=message,
                          attributes=attributes, trace_id=trace)
                for ago, service, level, message, attributes, trace in RECORDS
            ])
            monitor.log.warning("cache miss for user 42", user=42)
            await monitor.flush()

    asyncio.run(write())
    return {"config": str(config), "now": now}


@pytest.fixture(autouse=True)
def _no_config_from_env(monkeypatch):
    monkeypatch.delenv("TOCSIN_CONFIG", raising=False)


def search(store, *args: str):
    """`tocsin logs search ARGS --config <store>` through click's runner: the result."""
    from tocsin.cli import cli
    from tocsin.plugins import make_plugin_manager

    pm = make_plugin_manager()
    pm.hook.register_commands(cli=cli)
    return CliRunner().invoke(cli, ["logs", "search", "--config", store["config"], *args], obj=pm)


def messages(result) -> list[str]:
    """The message column of each printed line."""
    assert result.exit_code == 0, result.output
    return [re.split(" {2,}", line)[3] for line in result.stdout.splitlines()]


def run(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key != "TOCSIN_CONFIG"}
    return subprocess.run([sys.executable, "-m", "tocsin", "logs", "search", *args], capture_output=True, text=True,
                          env=environ, cwd=cwd, timeout=60)


def test_a_term_search_finds_the_matching_records_newest_first(store):
    assert messages(search(store, "connection")) == [
        "connection refused again", "connection slow", "connection refused by db-1"]
    assert messages(search(store, '"refused by" db-1')) == ["connection refused by db-1"]


def test_an_empty_query_lists_everything_newest_first(store):
    result = search(store, "")
    assert messages(result) == ["cache miss for user 42", *[record[3] for record in reversed(RECORDS)]]
    assert result.stderr == ""


def test_a_line_holds_time_level_service_message_attributes_and_trace(store):
    lines = search(store, "db-1", "--level", "error").stdout.splitlines()
    assert [line[24:] for line in lines] == [
        "  ERROR     worker  timeout talking to db-1",
        f"  ERROR     api  connection refused by db-1  host=db-1  trace={TRACE}",
    ]
    stamp = datetime.fromisoformat(lines[1][:24])
    assert stamp.tzinfo == UTC and abs(stamp.timestamp() * 1e9 - (store["now"] - 120 * MINUTE)) < 1e6
    [line] = search(store, "cache").stdout.splitlines()
    assert line.endswith("  WARNING   shop  cache miss for user 42  user=42")


def test_the_line_format_is_stable():
    from tocsin.builtins.logs_commands import line

    record = LogRecord(time_ns=1_796_292_000_123_456_789, level="critical", service="", message="a\nb\tc",
                       attributes={"q": "two words", "n": 1.5, "ok": True, "tags": ["x"], "eq": "a=b"})
    assert line(record) == ('2026-12-03T10:00:00.123Z  CRITICAL  -  a\\nb\\tc  q="two words"  n=1.5  ok=true  '
                            'tags=["x"]  eq="a=b"')


def test_level_is_a_minimum(store):
    assert messages(search(store, "", "--level", "error")) == [
        "connection refused again", "timeout talking to db-1", "connection refused by db-1"]
    assert messages(search(store, "--level", "critical")) == ["connection refused again"]  # QUERY may be left out
    assert messages(search(store, "", "--level", "WARN", "--service", "worker")) == [
        "timeout talking to db-1", "connection slow"]


def test_service_filters(store):
    assert messages(search(store, "", "--service", "worker")) == ["timeout talking to db-1", "connection slow"]
    assert messages(search(store, "", "--service", "shop")) == ["cache miss for user 42"]


def test_since_and_until_take_durations_ago_and_iso_times(store):
    now = store["now"]
    assert messages(search(store, "", "--since", "90m")) == [
        "cache miss for user 42", "connection refused again", "timeout talking to db-1", "connection slow"]
    assert messages(search(store, "", "--since", "90m", "--until", "20m")) == [
        "timeout talking to db-1", "connection slow"]
    expected = ["connection slow", "connection refused by db-1"]
    since, until = iso(now - 150 * MINUTE), iso(now - 45 * MINUTE)
    assert messages(search(store, "", "--since", since, "--until", until)) == expected
    naive = search(store, "", "--since", iso(now - 150 * MINUTE, ""), "--until", iso(now - 45 * MINUTE, "+00:00"))
    assert messages(naive) == expected
    assert messages(search(store, "connection", "--until", "1d")) == []


def test_json_prints_one_record_per_line(store):
    result = search(store, "", "--json", "--level", "error")
    assert result.exit_code == 0, result.output
    records = [msgspec.json.decode(line, type=LogRecord) for line in result.stdout.splitlines()]
    assert [record.message for record in records] == [
        "connection refused again", "timeout talking to db-1", "connection refused by db-1"]
    assert records[2].trace_id == TRACE and records[2].attributes == {"host": "db-1"}
    assert json.loads(result.stdout.splitlines()[0])["level"] == "critical"


def test_limit_caps_and_says_there_is_more(store):
    result = search(store, "", "--limit", "2")
    assert messages(result) == ["cache miss for user 42", "connection refused again"]
    assert result.stderr == "… 4 more; use --limit or narrow the query\n"
    assert search(store, "", "--limit", "6").stderr == ""
    assert search(store, "", "--limit", "0").exit_code == 2
    assert search(store, "", "--limit", "10001").exit_code == 2


def test_nothing_found_is_not_an_error(store):
    result = search(store, "zebra")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "no matching log records\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a)"], "Invalid value for 'QUERY': unmatched `)`"),
        (["--", "-debug"], "Invalid value for 'QUERY': nothing to look for"),
        (["x", "--level", "loud"], "Invalid value for '--level': 'loud' is not a log level"),
        (["x", "--since", "yesterday"], "Invalid value for '--since': expected a duration ago"),
        (["x", "--until", "9999-01-01"], "9999-01-01 is outside the times tocsin stores"),
        (["x", "--since", "1h", "--until", "2h"], "--since must be before --until"),
    ],
)
def test_bad_queries_and_options_are_usage_errors(store, args, message):
    result = search(store, *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.splitlines()[-1].startswith("Error: ")
    assert result.stdout == ""


def test_the_installed_command_reports_errors_without_a_traceback(store, tmp_path):
    result = run("connection", "--limit", "1", "--config", store["config"])
    assert result.returncode == 0, result.stderr
    assert re.split(" {2,}", result.stdout)[3] == "connection refused again\n"
    assert result.stderr == "… 2 more; use --limit or narrow the query\n"
    result = run("--config", store["config"], "--", "-debug")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith("Error: Invalid value for 'QUERY': nothing to look for")
    assert "Traceback" not in result.stderr
    (tmp_path / "memory.json").write_text('{"storage": {"backend": "memory"}}')
    result = run("x", "--config", str(tmp_path / "memory.json"))
    assert result.returncode == 1
    assert result.stderr.startswith("tocsin: error: the configured storage is 'memory'")
    result = run("x", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"tocsin: error: no database at {tmp_path / 'tocsin.db'}: nothing has")
    assert not (tmp_path / "tocsin.db").exists()
    (tmp_path / "bad.toml").write_text('[storage]\nbackend = "nope"\n')
    result = run("x", "--config", str(tmp_path / "bad.toml"))
    assert result.returncode == 1 and "storage.backend: unknown storage backend 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
