"""Rule test files (promtool style): the examples pass, failures read as diffs, and the CLI commands."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

import pytest

from tocsin.errors import ConfigError
from tocsin.plugins import make_plugin_manager
from tocsin.testing.rulefile import expand_values, expand_words
from tocsin.testing.ruletests import arun_file, render

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"


@pytest.fixture(scope="module")
def pm():
    return make_plugin_manager(entrypoints=False)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.test.toml")), ids=lambda path: path.name)
async def test_example_rule_files_pass(path, pm):
    outcomes = await arun_file(path, pm)
    assert outcomes and all(outcome.passed for outcome in outcomes), "\n".join(render(o) for o in outcomes)


@pytest.mark.parametrize(("text", "expected"), [
    ("1 2 3", [1, 2, 3]),
    ("1+1x3", [1, 2, 3, 4]),
    ("-2+4x3", [-2, 2, 6, 10]),
    ("1-2x4", [1, -1, -3, -5, -7]),
    ("5x2 _ 7", [5, 5, 5, None, 7]),
    ("1 _x3 stale", [1, None, None, None, None]),
    ("1e3 .5", [1000, 0.5]),
])
def test_expanding_notation_matches_promtool(text, expected):
    assert expand_values(text) == expected


def test_words_use_the_same_notation_and_bad_tokens_are_named():
    assert expand_words("healthy unhealthyx2 _", ("healthy", "unhealthy")) == [
        "healthy", "unhealthy", "unhealthy", "unhealthy", None]
    with pytest.raises(ConfigError, match="cannot read 'sick'"):
        expand_words("sick", ("healthy",))
    with pytest.raises(ConfigError, match="cannot read '1x'"):
        expand_values("1x")


FAILING = """
    evaluation_interval = "1m"

    [[rules]]
    name = "q"
    metric = "depth"
    aggregate = "last"
    window = "1m"
    by = ["queue"]
    threshold = 10
    for = "1m"

    [[tests]]
    name = "wrong on purpose"

    [[tests.series]]
    metric = "depth"
    labels = { queue = "mail" }
    values = "50x5"

    [[tests.alerts]]
    at = "1m"
    rule = "q"
    expect = [{ labels = { queue = "mail" }, state = "pending" }]

    [[tests.notifications]]
    at = "2m"
    rule = "q"
    kind = "firing"
"""


async def test_a_failing_test_prints_expected_and_got_as_a_diff(tmp_path, pm):
    path = tmp_path / "wrong.test.toml"
    path.write_text(textwrap.dedent(FAILING))
    [outcome] = await arun_file(path, pm)
    assert not outcome.passed
    assert render(outcome).splitlines() == [
        f"FAIL  {path} :: wrong on purpose",
        "  alerts of rule 'q' at 1m:",
        '      -{queue="mail"} pending',
        '      +{queue="mail"} firing',
        "  notifications:",
        "      -2m firing q {}",
        '      +1m firing q {queue="mail"}',
    ]


@pytest.mark.parametrize(("body", "message"), [
    ("[[tests]]\nname = 't'\nsurprise = 1\n", "tests[0].surprise: unknown key"),
    ('[[tests]]\nname = "t"\n[[tests.alerts]]\nat = "1m"\nrule = "nope"\n', "rules that are not defined: nope"),
    ('config = "x.toml"\n[[rules]]\nname = "r"\nmetric = "m"\n', "not both"),
    ('[[rules]]\nname = "r"\n', "a metric rule needs 'metric'"),
    ("this is not toml", "cannot read rule test file"),
    ('evaluation_interval = "0s"\n', "evaluation_interval: must be at least 1s"),
    ('[[tests]]\nname = "t"\n[[tests.series]]\nmetric = "m"\nvalues = "1 x"\n',
     "tests[0].series[0].values: cannot read 'x' in series values '1 x'"),
    ('[[tests]]\nname = "t"\n[[tests.health]]\ncomponent = "db"\nstatuses = "fine"\n',
     "tests[0].health[0].statuses: cannot read 'fine'"),
    ('[[tests]]\nname = "t"\n[[tests.silences]]\nmatchers = "a=b"\n',
     "tests[0].silences[0]: silence.ends_ns: a silence needs an end (or until_resolved)"),
])
async def test_bad_test_files_are_config_errors(tmp_path, pm, body, message):
    path = tmp_path / "bad.test.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=re.escape(message)):
        await arun_file(path, pm)


# -- the CLI ---------------------------------------------------------------------------------------------


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`tocsin ARGS` in this process (as `tocsin.cli.main` runs it): exit code, stdout, stderr."""
    from tocsin.cli import main

    with pytest.raises(SystemExit) as caught:
        main(list(args))
    out, err = capsys.readouterr()
    return caught.value.code or 0, out, err


def test_rules_test_command_exit_codes(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "rules", "test", *map(str, sorted(EXAMPLES.glob("*.test.toml"))))
    assert code == 0, out
    assert out.strip().endswith("9 passed, 0 failed")
    (tmp_path / "wrong.test.toml").write_text(textwrap.dedent(FAILING))
    code, out, err = run_cli(capsys, "rules", "test", str(tmp_path / "wrong.test.toml"))
    assert (code, err) == (1, "")
    assert '      +{queue="mail"} firing' in out and out.strip().endswith("0 passed, 1 failed")


def test_alerts_commands_against_a_config_storage(tmp_path, capsys, monkeypatch):
    pytest.importorskip("tocsin_sqlite")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOCSIN_CONFIG", raising=False)
    config = tmp_path / "tocsin.toml"
    config.write_text(textwrap.dedent(f"""
        [storage]
        backend = "sqlite"
        path = "{tmp_path / 'alerts.db'}"
        [[alerting.rules]]
        name = "queue-deep"
        metric = "depth"
        aggregate = "last"
        by = ["queue"]
        threshold = 10
    """))

    async def fire() -> str:
        from tocsin.alerting.service import AlertingService
        from tocsin.monitor import Monitor

        monitor = Monitor.from_config(config)
        async with monitor:
            monitor.metrics.gauge("depth").set(50, queue="mail")
            await monitor.flush()
            [alert] = (await AlertingService(monitor).evaluate()).alerts
            return alert.fingerprint

    fingerprint = asyncio.run(fire())
    code, out, err = run_cli(capsys, "alerts", "list", "--config", str(config))
    assert (code, err) == (0, "")
    assert out == f"{fingerprint}  firing     warning  queue-deep  {{queue=mail}}\n"
    monkeypatch.setenv("TOCSIN_CONFIG", str(config))
    code, out, err = run_cli(capsys, "alerts", "ack", fingerprint, "--by", "ann", "--for", "1h", "--comment", "on it")
    assert code == 0 and out.strip().endswith("{queue=mail} (acknowledged by ann)"), err
    code, out, _ = run_cli(capsys, "alerts", "resolve", fingerprint, "--by", "bob")
    assert code == 0 and out.startswith(f"{fingerprint}  resolved ")  # issue 18: not `firing ... (resolved)`
    code, out, _ = run_cli(capsys, "alerts", "list", "--json", "--state", "firing")
    assert code == 0 and '"handling": "resolved"' in out
    code, _, err = run_cli(capsys, "alerts", "ack", "0000")
    assert (code, err.strip()) == (1, "tocsin: error: cannot acknowledge: no alert has fingerprint '0000'")
    code, _, err = run_cli(capsys, "alerts", "ack", fingerprint, "--for", "soon")
    assert code == 2 and "--for" in err
    assert not (tmp_path / "tocsin.db").exists()
