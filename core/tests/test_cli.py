"""The `tocsin` command line, run as a real subprocess: exit codes, output, and never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tocsin", *args], capture_output=True, text=True, env=environ,
                          timeout=60)


def test_version():
    from tocsin import __version__

    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tocsin, version {__version__}"


def test_plugins_lists_builtins_with_hooks_and_names():
    result = run("plugins")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "tocsin.builtins.memory_storage  (tocsin " in out
    assert "  storage backend: memory" in out
    assert "  notification channel: log" in out
    assert "  alert operator: gt, gte, lt, lte, eq, neq, inside, outside" in out


def test_plugins_json_includes_entry_point_plugins_and_failures(fake_dist):
    root = fake_dist("tocsin-near", "1.2.3", "tocsin_near", """
        from tocsin import hookimpl

        @hookimpl
        def register_alert_operators(register):
            register("near", lambda value, threshold: abs(value - threshold) < 1)
    """)
    fake_dist("tocsin-broken", "0.9.0", "tocsin_broken", "raise RuntimeError('boom')\n")
    result = run("plugins", "--json", env={"PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    near = next(p for p in payload["plugins"] if p["name"] == "near")
    assert near == {"name": "near", "distribution": "tocsin-near", "version": "1.2.3",
                    "hooks": ["register_alert_operators"], "registers": {"alert operator": ["near"]}}
    [failure] = payload["failed"]
    assert failure["distribution"] == "tocsin-broken"
    assert failure["error"] == "RuntimeError: boom"
    expected = "tocsin: plugin 'broken' from tocsin-broken 0.9.0 failed to load: RuntimeError: boom"
    assert result.stderr.strip() == expected


def test_ctrl_c_while_plugins_load_aborts_without_a_traceback(fake_dist):
    root = fake_dist("tocsin-slow", "1.0.0", "tocsin_slow", """
        import os
        import signal

        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while this plugin is imported
    """)
    result = run("plugins", env={"PYTHONPATH": str(root)})
    assert result.returncode == 1
    assert result.stderr.strip() == "Aborted!"
    assert "Traceback" not in result.stdout + result.stderr


def test_config_check_good_file(tmp_path):
    path = tmp_path / "tocsin.toml"
    path.write_text('service = "shop"\n[[channels]]\nname = "ops"\ntype = "log"\n')
    result = run("config", "check", str(path))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{path}: ok\n", "")


def test_config_check_bad_file_prints_every_problem_and_no_traceback(tmp_path):
    path = tmp_path / "tocsin.toml"
    path.write_text(textwrap.dedent("""\
        [[channels]]
        name = "ops"
        type = "log"

        [[channels]]
        name = "pager"
        type = "log"
        min_severity = "urgent"

        [tracing]
        sample_rat = 0.5
        """))
    result = run("config", "check", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:8: channels[1].min_severity: expected one of info|warning|error|critical, got 'urgent'",
        f"{path}:11: tracing.sample_rat: unknown key (did you mean 'sample_rate'?)",
        f"{path}: 2 problems",
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("service = \n", "invalid TOML"),
        ('[storage]\nbackend = "nope"\n', "unknown storage backend 'nope'"),
        ('service = "${NOT_SET_ANYWHERE_X}"\n', "environment variable NOT_SET_ANYWHERE_X is not set"),
    ],
)
def test_config_check_reports_without_traceback(tmp_path, content, expected):
    path = tmp_path / "tocsin.toml"
    path.write_text(content)
    result = run("config", "check", str(path))
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_missing_file(tmp_path):
    result = run("config", "check", str(tmp_path / "nope.toml"))
    assert result.returncode == 2  # a usage error, as for every command's --config (test_a_missing_config_...)
    assert result.stderr.splitlines()[0] == f"{tmp_path / 'nope.toml'}: no such file"


EGRESS_REFUSED = """\
    [[channels]]
    name = "chat"
    type = "slack"
    webhook_url = "http://127.0.0.1:9/hook"

    [[channels]]
    name = "hook"
    type = "webhook"
    url = "ftp://example.com/x"
    """


def test_config_check_reports_urls_the_egress_guard_refuses_with_path_and_line(tmp_path):
    pytest.importorskip("tocsin_slack")
    pytest.importorskip("tocsin_webhook")
    path = tmp_path / "tocsin.toml"
    path.write_text(textwrap.dedent(EGRESS_REFUSED))
    result = run("config", "check", str(path))
    assert result.returncode == 1, result.stdout
    assert result.stderr.splitlines() == [
        f"{path}:1: channels[0]: webhook_url: refusing to connect to 127.0.0.1: 127.0.0.1 is not a public address; "
        "list it in [notifications.egress] allow to permit it",
        f"{path}:6: channels[1]: url: only http and https URLs are allowed, got ftp scheme",
        f"{path}: 2 problems",
    ]
    assert "/hook" not in result.stderr  # a webhook URL's path is its token


@pytest.mark.parametrize("name", ["egress-refused", "egress-allowed", "full"])
async def test_a_config_that_passes_check_starts_and_one_that_fails_does_not(tmp_path, name):
    pytest.importorskip("tocsin_slack")
    pytest.importorskip("tocsin_webhook")
    from tocsin import Monitor
    from tocsin.errors import ConfigError

    text = {
        "egress-refused": EGRESS_REFUSED,
        "egress-allowed": EGRESS_REFUSED.replace("ftp://", "https://")
        + '[notifications.egress]\nallow = ["127.0.0.1"]\n',
        "full": """\
            service = "shop"
            [storage]
            backend = "memory"
            [[channels]]
            name = "ops"
            type = "log"
            [[channels]]
            name = "hook"
            type = "webhook"
            url = "https://hooks.example.com/x"
            fallback = "ops"
            [[alerting.rules]]
            name = "slow"
            metric = "latency"
            threshold = 1
            channels = ["hook"]
            [[health.checks]]
            name = "db"
            type = "tcp"
            host = "127.0.0.1"
            port = 9
            [[health.checks]]
            name = "api"
            type = "http"
            url = "http://127.0.0.1:9/health"
            depends_on = ["db"]
            [[workflows.expect]]
            name = "nightly"
            schedule = "every 1h"
            """,
    }[name]
    path = tmp_path / "tocsin.toml"
    path.write_text(textwrap.dedent(text))
    checked = run("config", "check", str(path))
    try:
        monitor = Monitor.from_config(path)
        await monitor.astart()
        await monitor.aclose()
        started = True
    except ConfigError:
        started = False
    assert (checked.returncode == 0) == started, checked.stderr
    assert started == (name != "egress-refused")


@pytest.mark.parametrize("command", [
    ["config", "check", "MISSING"],
    ["alerts", "list", "--config", "MISSING"],
    ["logs", "search", "x", "--config", "MISSING"],
    ["notify", "test", "ops", "--config", "MISSING"],
    ["serve", "--config", "MISSING"],
])
def test_a_missing_config_file_is_a_usage_error_for_every_command(tmp_path, command):
    if command[0] == "serve":
        pytest.importorskip("tocsin_api")
    missing = str(tmp_path / "missing.toml")
    result = run(*[missing if arg == "MISSING" else arg for arg in command], env={"TOCSIN_CONFIG": ""})
    assert result.returncode == 2, result.stderr
    assert "missing.toml" in result.stderr and "Traceback" not in result.stderr
