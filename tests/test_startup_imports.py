"""`tocsin --version`, `--help` and `plugins --json` load every installed plugin, so none may import a heavy
framework at load time: SQLAlchemy, Litestar, uvicorn, protobuf and httpx are imported only by the commands,
servers and channels that use them (plugins import them inside hook implementations and backends, and add
heavy commands as `tocsin.ext.LazyCommand`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tocsin.plugins import iter_entry_points

HEAVY = ["sqlalchemy", "litestar", "httpx", "uvicorn", "google.protobuf"]

PROBE = f"""
import json, sys
from tocsin.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps({{"loaded": sorted(m for m in sys.modules if m.startswith("tocsin_") and "." not in m),
                  "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["plugins", "--json"]], ids=" ".join)
def test_starting_tocsin_imports_no_heavy_framework(args):
    env = {key: value for key, value in os.environ.items() if key != "TOCSIN_LOAD_PLUGINS"}
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env,
                            timeout=120)
    seen = json.loads(result.stderr.strip().splitlines()[-1])
    assert {f"tocsin_{ep.name}" for ep in iter_entry_points()} <= set(seen["loaded"])  # every plugin was loaded
    assert seen["heavy"] == []
