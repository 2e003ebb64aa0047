"""Where data goes, said out loud: the startup line on the `tocsin` logger, and `tocsin doctor` (creating nothing)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import subprocess
import sys

import pytest

from tocsin import __version__
from tocsin.monitor import Monitor

pytest.importorskip("tocsin_sqlite")


def run(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m tocsin ARGS` in `cwd`, without the caller's TOCSIN_CONFIG unless `env` sets one."""
    environ = {key: value for key, value in os.environ.items() if key != "TOCSIN_CONFIG"}
    return subprocess.run([sys.executable, "-m", "tocsin", *args], capture_output=True, text=True,
                          env={**environ, **(env or {})}, cwd=cwd, timeout=60)


def storage_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "tocsin" and record.levelno == logging.INFO and "storing in" in record.getMessage()]


def test_startup_names_the_sqlite_file_by_its_absolute_path(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="tocsin")

    async def start() -> None:
        async with Monitor.from_config({"storage": {"backend": "sqlite", "path": "./data.db"}}):
            pass

    asyncio.run(start())
    assert storage_lines(caplog) == [f"tocsin: storing in sqlite at {tmp_path / 'data.db'}"]


def test_startup_says_memory_keeps_nothing(caplog):
    caplog.set_level(logging.INFO, logger="tocsin")

    async def start() -> None:
        async with Monitor.from_config({"storage": {"backend": "memory"}}, entrypoints=False):
            pass

    asyncio.run(start())
    assert storage_lines(caplog) == ["tocsin: storing in memory — nothing is kept after the process ends"]


def test_doctor_in_an_empty_directory_reports_defaults_and_creates_nothing(tmp_path):
    result = run("doctor", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        f"tocsin:  {__version__}",
        f"python:  {platform.python_version()} ({sys.executable})",
        "config:  defaults (no --config and TOCSIN_CONFIG is not set)",
        f"storage: sqlite at {tmp_path / 'tocsin.db'} (not created yet)",
    ]
    assert lines[4] == "plugins:"
    assert lines[5].startswith(f"  tocsin {__version__}: ") and lines[5].endswith(" built-in plugins")
    assert any(line.startswith("  tocsin-sqlite ") and line.endswith("storage backend: sqlite") for line in lines)
    assert list(tmp_path.iterdir()) == []


def test_doctor_names_the_config_file_and_the_existing_store(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tocsin")
    config = tmp_path / "app.json"
    config.write_text(json.dumps({"storage": {"backend": "sqlite", "path": str(tmp_path / "app.db")}}))

    async def record() -> None:
        async with Monitor.from_config(config):
            pass

    asyncio.run(record())
    [startup] = storage_lines(caplog)
    result = run("doctor", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2] == f"config:  {config} (--config)"
    size = os.path.getsize(tmp_path / "app.db") / 1024
    assert lines[3] == f"storage: {startup.removeprefix('tocsin: storing in ')} ({size:,.0f} KB)"
    from_env = run("doctor", cwd=tmp_path, env={"TOCSIN_CONFIG": str(config)})
    assert from_env.stdout.splitlines()[2] == f"config:  {config} (from TOCSIN_CONFIG)"


def test_doctor_json(tmp_path):
    (tmp_path / "memory.toml").write_text('[storage]\nbackend = "memory"\n')
    result = run("doctor", "--json", "--config", "memory.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tocsin"] == __version__
    assert report["python"] == {"version": platform.python_version(), "executable": sys.executable}
    assert report["config"]["source"] == "file" and report["config"]["path"] == str(tmp_path / "memory.toml")
    assert report["storage"] == {"backend": "memory", "location": "memory — nothing is kept after the process ends",
                                 "path": None, "exists": None}
    sqlite = next(plugin for plugin in report["plugins"] if plugin["name"] == "sqlite")
    assert sqlite["distribution"] == "tocsin-sqlite" and sqlite["registers"] == {"storage backend": ["sqlite"]}
    assert (report["failed"], report["problems"]) == ([], [])


def test_doctor_reports_config_problems_and_load_failures_with_exit_1(tmp_path, fake_dist):
    root = fake_dist("tocsin-broken", "0.9.0", "tocsin_broken", "raise RuntimeError('boom')\n")
    (tmp_path / "bad.toml").write_text('[storage]\nbackend = "sqlite"\npath = "x.db"\nbogus = 1\n')
    result = run("doctor", "--config", "bad.toml", cwd=tmp_path, env={"PYTHONPATH": str(root)})
    assert result.returncode == 1
    assert "storage: unknown: the config has problems (below)" in result.stdout.splitlines()
    assert "FAILED plugin 'broken' from tocsin-broken 0.9.0 failed to load: RuntimeError: boom" in result.stderr
    assert "bogus" in result.stderr and "Traceback" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.toml", "site"]


def test_doctor_shows_records_dropped_by_a_full_buffer_and_what_to_change(tmp_path):
    config = tmp_path / "app.json"
    config.write_text(json.dumps({"storage": {"backend": "sqlite", "path": str(tmp_path / "app.db")},
                                  "logging": {"buffer_size": 100, "batch_size": 100, "flush_interval": "1h"}}))
    with Monitor.from_config(config) as monitor:
        for i in range(1000):
            monitor.log.info("burst", i=i)
        dropped = monitor.log_buffer.dropped
    assert dropped > 0
    lines = run("doctor", "--config", str(config), cwd=tmp_path).stdout.splitlines()
    assert lines[4:6] == ["drops:", f'  logs: {dropped:,} (buffer_full) - raise buffer_size or set overflow = "block" '
                                    "in [logging], [tracing] or [workflows]"]
    report = json.loads(run("doctor", "--json", "--config", str(config), cwd=tmp_path).stdout)
    assert report["dropped"] == {"logs/buffer_full": dropped}
