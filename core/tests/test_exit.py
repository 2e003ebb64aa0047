"""A sync app that never closes its monitor still stores what it recorded: at interpreter exit and on SIGTERM."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("tocsin_sqlite")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

APP = """
    import os, signal, sys, time
    import tocsin

    monitor = tocsin.Monitor.from_config({{"storage": {{"backend": "sqlite", "path": "app.db"}},
                                          "logging": {{"flush_interval": "1h"}}}})
    {before_start}
    monitor.start()          # and never monitor.close()
    monitor.log.info("recorded before exit")
    {then}
"""


def run_app(tmp_path: Path, then: str, before_start: str = "") -> subprocess.CompletedProcess[str]:
    """Run the app in tmp_path (its SQLite file is tmp_path/app.db) until it exits by itself."""
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP.format(then=then, before_start=before_start)))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)


def stored_messages(tmp_path: Path) -> list[str]:
    """The log messages in the app's SQLite file, read with the stdlib's sqlite3."""
    with sqlite3.connect(tmp_path / "app.db") as db:
        return [row[0] for row in db.execute("SELECT message FROM logs")]


def test_exit_without_close_stores_the_record_and_reports_no_failure(tmp_path):
    result = run_app(tmp_path, then="print('done')")
    assert result.returncode == 0, result.stderr
    assert "failed" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert stored_messages(tmp_path) == ["recorded before exit"]


def test_sigterm_to_itself_stores_the_record_and_still_ends_by_sigterm(tmp_path):
    result = run_app(tmp_path, then="os.kill(os.getpid(), signal.SIGTERM); time.sleep(30); print('survived')")
    assert result.returncode == -signal.SIGTERM, (result.returncode, result.stderr)
    assert "survived" not in result.stdout and "failed" not in result.stderr, result.stderr
    assert stored_messages(tmp_path) == ["recorded before exit"]


def test_sigterm_from_outside_while_the_app_sleeps_stores_the_record(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(APP.format(before_start="", then="print('ready', flush=True); time.sleep(60)")))
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == -signal.SIGTERM
        assert time.monotonic() - started < 10  # flushed and gone, not waiting out its sleep
    finally:
        process.kill()
        process.communicate()
    assert stored_messages(tmp_path) == ["recorded before exit"]


def test_an_app_with_its_own_sigterm_handler_keeps_it(tmp_path):
    result = run_app(tmp_path, before_start="signal.signal(signal.SIGTERM, lambda *a: print('app handler'))",
                     then="print(signal.getsignal(signal.SIGTERM).__name__); os.kill(os.getpid(), signal.SIGTERM)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["<lambda>", "app handler"]
    assert stored_messages(tmp_path) == ["recorded before exit"]  # the exit hook still flushed
    assert "failed" not in result.stderr, result.stderr
