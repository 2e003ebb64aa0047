"""Commands that read a config's storage (`alerts list|ack|resolve`) never create a database or a memory store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("tocsin_sqlite")


def run(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    """`python -m tocsin ARGS` in `cwd` with no TOCSIN_CONFIG: the finished process."""
    environ = {key: value for key, value in os.environ.items() if key != "TOCSIN_CONFIG"}
    return subprocess.run([sys.executable, "-m", "tocsin", *args], capture_output=True, text=True, env=environ,
                          cwd=cwd, timeout=60)


def test_alerts_list_in_an_empty_directory_creates_no_database_and_says_why(tmp_path):
    result = run("alerts", "list", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == (f"tocsin: error: no database at {tmp_path.resolve() / 'tocsin.db'}: nothing has been "
                             "recorded there yet; pass --config FILE (or set TOCSIN_CONFIG) naming the application's "
                             "config\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["alerts", "ack", "abc123", "--by", "ann"],
                                     ["alerts", "resolve", "abc123", "--by", "ann"]])
def test_ack_and_resolve_against_a_missing_file_create_nothing(tmp_path, command):
    config = tmp_path / "app.json"
    config.write_text(json.dumps({"storage": {"backend": "sqlite", "path": str(tmp_path / "data" / "app.db")}}))
    (tmp_path / "data").mkdir()
    result = run(*command, "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"tocsin: error: no database at {tmp_path / 'data' / 'app.db'}: nothing has "
                                    "been recorded there yet")
    assert "Traceback" not in result.stderr
    assert list((tmp_path / "data").iterdir()) == []


def test_memory_storage_is_refused_as_per_process(tmp_path):
    config = tmp_path / "memory.json"
    config.write_text('{"storage": {"backend": "memory"}}')
    result = run("alerts", "list", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("tocsin: error: the configured storage is 'memory', which is per-process")
    assert "no alerts" not in result.stdout


def test_an_existing_database_is_still_read(tmp_path, monkeypatch):
    from tocsin.monitor import Monitor

    config = tmp_path / "app.json"
    config.write_text(json.dumps({"storage": {"backend": "sqlite", "path": "app.db"}}))

    async def create() -> None:
        async with Monitor.from_config(config):
            pass

    monkeypatch.chdir(tmp_path)
    asyncio.run(create())
    result = run("alerts", "list", "--config", str(config), cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "no alerts\n", "")
