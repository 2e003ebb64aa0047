"""The README's main command works every time in one directory, not only the first: ./tocsin.db keeps earlier runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "uv run python examples/workflow_app.py"


def run_example(cwd: Path) -> str:
    """Run examples/workflow_app.py as the README does (this venv's python is what `uv run python` runs) in cwd."""
    env = {key: value for key, value in os.environ.items() if key != "TOCSIN_CONFIG"}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "workflow_app.py")], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_the_readme_main_command_runs_twice_in_one_directory_and_reports_each_run(tmp_path):
    assert f"$ {COMMAND} " in (ROOT / "README.md").read_text()
    first, second = run_example(tmp_path), run_example(tmp_path)
    assert "storage backend: sqlite" in first and (tmp_path / "tocsin.db").exists()  # the workspace has tocsin-sqlite
    for out in (first, second):  # each run reads back its own four executions, not the file's history
        assert "executions of nightly-etl: 4\n" in out
        assert re.findall(r"  2024-05-0\d: (\w+) in", out) == ["succeeded", "succeeded", "failed", "succeeded"]
        assert re.search(r"failed execution [0-9a-f]{32}: step 'transform.parse' failed: ValueError: empty row", out)
        assert "its logs: 4, by step:" in out
        assert "stats: 4 runs, success rate 75%" in out and "  step load: 3 runs, 0 failed" in out
        assert re.search(r"events: failed x1, missed x\d, started x4, step_failed x2, stuck x1, succeeded x3", out)
    assert len({re.search(r"failed execution (\w+)", out).group(1) for out in (first, second)}) == 2
    assert "alert nightly-etl-failing: firing (value 1) - nightly-etl failed 1 time(s) in the last hour" in first
    assert "notification via the log channel: [warning] [FIRING] nightly-etl-failing (error)" in first
    # the file remembers: the rule's last hour holds both failures, and the alert fired (and was sent) in run one
    assert "alert nightly-etl-failing: firing (value 2) - nightly-etl failed 2 time(s) in the last hour" in second
    assert re.search(r"  firing since an earlier run \(\d\d:\d\d:\d\d\), which notified it", second)
    assert "notification via the log channel" not in second
