"""The fixtures tocsin's `pytest11` entry point loads into every project: prefixed, so a project's own
`monitor` fixture wins, and working as documented."""

from __future__ import annotations

import pytest

from tocsin.models import Alert, Notification
from tocsin.storage.protocol import LogQuery


@pytest.fixture
def monitor():
    """A project's own fixture of the common name: tocsin's plugin must not shadow or clash with it."""
    return "the project's monitor"


def test_a_projects_own_monitor_fixture_is_not_shadowed(monitor):
    assert monitor == "the project's monitor"


def test_every_fixture_tocsin_loads_into_a_project_is_prefixed():
    import ast
    import inspect

    import tocsin.testing.pytest_plugin as plugin

    tree = ast.parse(inspect.getsource(plugin))
    fixtures = [node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)]
    assert fixtures and all(name.startswith("tocsin_") for name in fixtures), fixtures


async def test_tocsin_monitor_is_started_on_memory_storage(tocsin_monitor):
    assert tocsin_monitor.started and tocsin_monitor.config.storage.backend == "memory"
    tocsin_monitor.log.info("from the fixture", n=1)
    await tocsin_monitor.flush()
    page = await tocsin_monitor.storage.search_logs(LogQuery(text="fixture"))
    assert [hit.record.message for hit in page.items] == ["from the fixture"]


async def test_tocsin_monitor_factory_builds_unstarted_monitors_with_config(tocsin_monitor_factory):
    monitor = tocsin_monitor_factory(config={"service": "checkout"})
    assert not monitor.started and monitor.config.service == "checkout"


async def test_tocsin_captured_records_what_it_is_sent(tocsin_captured):
    await tocsin_captured.send(Notification(title="t", body="b", alert=Alert(fingerprint="f", rule="r")))
    assert [n.title for n in tocsin_captured.sent] == ["t"]
