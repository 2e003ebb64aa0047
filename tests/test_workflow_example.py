"""examples/workflow_app.py runs from a clean directory on the embedded default and reports what it recorded."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_workflow_app_runs_and_reads_back_its_executions(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TOCSIN_CONFIG"}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "workflow_app.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert result.stderr == ""
    assert "executions of nightly-etl: 4" in out
    assert re.findall(r"  2024-05-0\d: (\w+) in", out) == ["succeeded", "succeeded", "failed", "succeeded"]
    assert re.search(r"failed execution [0-9a-f]{32}: step 'transform.parse' failed: ValueError: empty row", out)
    assert "  step transform: failed (ValueError: empty row)" in out
    assert "traceback ends with: ValueError: empty row" in out
    assert "      transform.parse [error]" in out  # nested under transform, under the execution's root span
    assert "('transform.parse', 'workflow step failed')" in out and "('extract', 'extracted')" in out
    assert "stats: 4 runs, success rate 75%" in out
    assert "  step load: 3 runs, 0 failed" in out
    assert re.search(r"events: failed x1, missed x\d, started x4, step_failed x2, stuck x1, succeeded x3", out)
    assert re.search(r"stuck: execution [0-9a-f]{32} of 'nightly-etl' has run 0\.\d\ds, over its 0\.20s limit", out)
    assert "missed: 'hourly-sync' missed" in out
    assert ("alert nightly-etl-failing: firing (value 1) - nightly-etl failed 1 time(s) in the last hour") in out
    assert "notification via the log channel: [warning] [FIRING] nightly-etl-failing (error)" in out
