"""The examples in examples/ and the README run, from a clean working directory, and say what they should."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_and_reads_back_what_it_recorded(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TOCSIN_CONFIG"}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    ok = int(re.search(r"requests \{'outcome': 'ok'\}: (\d+)", out).group(1))
    errors = int(re.search(r"requests \{'outcome': 'error'\}: (\d+)", out).group(1))
    assert ok + errors == 500
    assert f"failed checkouts found by span search: {errors}" in out
    assert f"logs matching 'declined': {errors};" in out
    p99_ms = float(re.search(r"checkout p99 latency: ([\d.]+) ms", out).group(1))
    assert 50 < p99_ms < 500  # lognormal(-3, 0.6): the true p99 is about 200 ms
    assert re.search(r"carries its trace: [0-9a-f]{32}", out)
    assert result.stderr == ""


def test_the_example_config_the_readme_commands_use_passes_config_check():
    result = subprocess.run([sys.executable, "-m", "tocsin", "config", "check", str(ROOT / "examples" / "tocsin.toml")],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout.strip()) == (0, f"{ROOT / 'examples' / 'tocsin.toml'}: ok"), result.stderr
    readme = (ROOT / "README.md").read_text()
    assert "--config examples/tocsin.toml" in readme and "--config tocsin.toml" not in readme
