"""Shared fixtures for the core tests; puts this directory on sys.path for helper modules (`streaming_cases`)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def make_dist(root: Path, dist: str, version: str, module: str, source: str, entry: str | None = None) -> Path:
    """Write `<module>.py` and a `<dist>-<version>.dist-info` whose entry point names it; returns root."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[tocsin]\n{entry or module.removeprefix('tocsin_')} = {module}\n")
    return root


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """Install fake distributions for one test: `fake_dist(dist, version, module, source)` puts them on sys.path."""
    import importlib

    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def make(dist: str, version: str, module: str, source: str, entry: str | None = None) -> Path:
        make_dist(root, dist, version, module, source, entry)
        importlib.invalidate_caches()
        return root

    return make
