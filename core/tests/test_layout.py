"""The shape of the core (docs/layout.md): no import cycles counting every import, a short top level, small
modules, and plugins that import only the plugin surface."""

from __future__ import annotations

import ast
import importlib.util
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core" / "src" / "tocsin"


def _cycle_finder():
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "scripts" / "import_cycles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_core_has_no_import_cycle_counting_every_import():
    finder = _cycle_finder()
    assert finder.cycles(finder.graph(CORE)) == []


def test_the_cycle_finder_sees_function_level_type_checking_and_relative_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "wing").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "wing" / "__init__.py").write_text("")
    (package / "top.py").write_text("def f():\n    from pkg.wing import low\n")
    (package / "wing" / "low.py").write_text(textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from .other import X
    """))
    (package / "wing" / "other.py").write_text("from .. import top\n")
    finder = _cycle_finder()
    assert finder.cycles(finder.graph(package)) == [["pkg.top", "pkg.wing.low", "pkg.wing.other"]]
    assert finder.main(["import_cycles", str(package)]) == 1


def test_the_top_level_holds_at_most_fifteen_modules_and_every_wing_is_a_package():
    top = sorted(path.name for path in CORE.glob("*.py"))
    assert len(top) <= 15, top
    for wing in ("signals", "storage", "config", "alerting", "notify", "health", "workflows", "builtins", "testing"):
        assert (CORE / wing / "__init__.py").is_file(), wing


def test_no_core_module_is_over_500_lines():
    long = {str(path.relative_to(CORE)): n for path in CORE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}


def _tocsin_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "tocsin" or name.startswith("tocsin.")}


@pytest.mark.parametrize("plugin", sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "src").is_dir()))
def test_plugin_sources_import_only_the_plugin_surface(plugin):
    used = set().union(*(_tocsin_imports(path) for path in (ROOT / "plugins" / plugin / "src").rglob("*.py")))
    assert used <= {"tocsin", "tocsin.ext"}, plugin


def test_the_plugin_surface_exports_what_it_lists():
    import tocsin.ext

    missing = [name for name in tocsin.ext.__all__ if not hasattr(tocsin.ext, name)]
    assert missing == [] and len(set(tocsin.ext.__all__)) == len(tocsin.ext.__all__)


def test_every_name_of_the_plugin_surface_is_documented():
    import tocsin.ext

    doc = (ROOT / "docs" / "plugin-hooks.md").read_text()
    assert [name for name in tocsin.ext.__all__ if f"`{name}`" not in doc] == []
