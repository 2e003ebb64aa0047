"""The release rules of every distribution, read from the pyproject files so a regression shows without a build.

`scripts/check-dist` builds and installs the real artifacts; this holds what can be checked cheaply: each
distribution ships the Apache-2.0 LICENSE, classifiers, the project URLs and `py.typed`; there is one version
(the core's, which each plugin reads through `[tool.hatch.version]`); and every requirement on a tocsin
distribution, in a plugin or in one of the core's extras, is the compatible range of that version.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"
FOLDERS = [CORE, *sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))]
URL_KEYS = {"Homepage", "Documentation", "Repository", "Issues"}
EXTRAS = {
    "sqlite": {"tocsin-sqlite"},
    "server": {"tocsin-api", "tocsin-dashboard"},
    "channels": {"tocsin-email", "tocsin-slack", "tocsin-pagerduty", "tocsin-webhook"},
}


def project(folder: Path) -> dict:
    """The whole parsed pyproject.toml of a distribution folder."""
    return tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))


def core_version() -> Version:
    return Version(project(CORE)["project"]["version"])


def compatible_range() -> str:
    """`>=X.Y,<X.(Y+1)`: what a plugin or an extra requires of another tocsin distribution."""
    v = core_version()
    return f">={v.major}.{v.minor},<{v.major}.{v.minor + 1}"


def tocsin_requirements(meta: dict) -> list[Requirement]:
    """Every requirement on a tocsin distribution, in dependencies and optional dependencies."""
    texts = list(meta.get("dependencies", []))
    for group in meta.get("optional-dependencies", {}).values():
        texts.extend(group)
    reqs = [Requirement(t) for t in texts]
    return [r for r in reqs if r.name == "tocsin" or r.name.startswith("tocsin-")]


def test_the_workspace_has_every_distribution() -> None:
    names = {project(f)["project"]["name"] for f in FOLDERS}
    assert len(names) == len(FOLDERS) == 12
    assert set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]) == names


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_license_classifiers_urls_and_typed(folder: Path) -> None:
    meta = project(folder)["project"]
    assert meta["license"] == "Apache-2.0"
    assert meta["license-files"] == ["LICENSE"]
    assert (folder / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    assert meta["readme"] == "README.md" and (folder / "README.md").is_file()
    assert {"Typing :: Typed", "Programming Language :: Python :: 3.11"} <= set(meta["classifiers"])
    assert not [c for c in meta["classifiers"] if c.startswith("License ::")], "the license is an SPDX expression"
    assert set(meta["urls"]) == URL_KEYS
    assert meta["urls"] == project(CORE)["project"]["urls"]
    packages = project(folder)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert packages and all((folder / p / "py.typed").is_file() for p in packages)


@pytest.mark.parametrize("folder", FOLDERS[1:], ids=lambda f: f.name)
def test_plugins_take_the_core_version(folder: Path) -> None:
    data = project(folder)
    assert "version" not in data["project"] and data["project"]["dynamic"] == ["version"]
    source = data["tool"]["hatch"]["version"]
    assert (folder / source["path"]).resolve() == CORE / "pyproject.toml"
    found = re.search(source["pattern"], (CORE / "pyproject.toml").read_text(encoding="utf-8"))
    assert found is not None and Version(found["version"]) == core_version()
    assert {"file": "../../core/pyproject.toml"} in data["tool"]["uv"]["cache-keys"]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_installed_versions_are_the_core_version(folder: Path) -> None:
    name = project(folder)["project"]["name"]
    assert Version(importlib.metadata.version(name)) == core_version()


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda f: f.name)
def test_tocsin_requirements_use_the_compatible_range(folder: Path) -> None:
    meta = project(folder)["project"]
    reqs = tocsin_requirements(meta)
    if folder != CORE:
        assert "tocsin" in {r.name for r in reqs}
    for req in reqs:
        if req.name == meta["name"]:
            continue  # tocsin[all] names its own extras
        assert set(str(req.specifier).split(",")) == set(compatible_range().split(",")), f"{meta['name']}: {req}"
        assert core_version() in req.specifier


def test_core_extras_are_the_common_sets() -> None:
    extras = project(CORE)["project"]["optional-dependencies"]
    for extra, names in EXTRAS.items():
        assert {Requirement(r).name for r in extras[extra]} == names
    plugins = {project(f)["project"]["name"] for f in FOLDERS[1:] if "entry-points" in project(f)["project"]}
    in_all = {Requirement(r).name for r in extras["all"]} | set().union(*EXTRAS.values())
    assert Requirement(extras["all"][0]).extras == set(EXTRAS)
    assert in_all - {"tocsin"} == plugins
