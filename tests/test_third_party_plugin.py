"""A third party can extend tocsin: examples/tocsin-discord, installed like any package, is listed and delivers.

The example is built and installed with `uv pip install --target <tmp> --no-deps --offline`: its build backend
(hatchling) comes from uv's cache, where `uv sync` put it when it built the workspace members, so nothing is
downloaded and the project's environment is left as it was. The target directory is then put on PYTHONPATH
(for `python -m tocsin plugins` and the example's own tests) or on sys.path (for delivering in this process).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tocsin.testing import make_monitor
from tocsin.testing.receiver import HttpReceiver

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tocsin-discord"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A directory holding the installed example: its module and its .dist-info with the entry point."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to build the example (python -m pip install uv)"
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run([uv, "pip", "install", "--target", str(target), "--no-deps", "--offline", str(EXAMPLE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return target


def run(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    env.pop("TOCSIN_LOAD_PLUGINS", None)  # every installed plugin, as a user would have it
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_installed_package_carries_only_the_module_and_its_entry_point(site):
    (info,) = site.glob("tocsin_discord-0.1.0.dist-info")
    assert (info / "entry_points.txt").read_text().split() == ["[tocsin]", "discord", "=", "tocsin_discord"]
    assert "Requires-Dist: tocsin<0.2,>=0.1" in (info / "METADATA").read_text()
    installed = sorted(path.name for path in site.iterdir() if not path.name.startswith("."))  # uv's .lock
    assert installed == ["tocsin_discord-0.1.0.dist-info", "tocsin_discord.py"]  # no tests, no README


def test_tocsin_plugins_lists_it_with_its_hook_and_channel(site):
    result = run(site, "-m", "tocsin", "plugins", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    (discord,) = [info for info in listing["plugins"] if info["distribution"] == "tocsin-discord"]
    assert discord == {"name": "discord", "distribution": "tocsin-discord", "version": "0.1.0",
                       "hooks": ["register_notification_channels"],
                       "registers": {"notification channel": ["discord"]}}
    assert listing["failed"] == []
    text = run(site, "-m", "tocsin", "plugins").stdout
    assert "discord  (tocsin-discord 0.1.0)\n  hooks: register_notification_channels\n" in text


async def test_it_is_discovered_by_its_entry_point_and_delivers(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("TOCSIN_LOAD_PLUGINS", "tocsin-discord")
    importlib.invalidate_caches()
    async with HttpReceiver(default=204) as discord:
        webhook = discord.url + "api/webhooks/42/SECRET-TOKEN"
        config = {"channels": [{"name": "chat", "type": "discord", "webhook_url": webhook}],
                  "notifications": {"egress": {"allow": ["127.0.0.1"]}}}
        async with make_monitor(config=config, entrypoints=True) as monitor:
            channel = monitor.notify.channels["chat"]
            result = await monitor.notify.test("chat")
    assert Path(sys.modules[type(channel).__module__].__file__).parent == site  # the installed copy, by entry point
    assert result.ok, result.error
    (request,) = discord.requests
    assert request.path == "/api/webhooks/42/SECRET-TOKEN"
    assert request.json()["content"].startswith("**[TEST] tocsin test notification**\n")
    assert "SECRET-TOKEN" not in repr(channel.config)


def test_the_example_s_own_tests_pass_against_the_installed_package(site):
    result = run(site, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", cwd=EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 passed" in result.stdout  # the channel contract (7) and the Discord test
