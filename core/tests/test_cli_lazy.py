"""`tocsin.ext.LazyCommand`: a command listed by `--help` without importing its module, run (and helped) in full."""

from __future__ import annotations

import sys

import click
import pytest
from click.testing import CliRunner

from tocsin.ext import LazyCommand

MODULE = "lazy_greeting"


@pytest.fixture
def greeting(tmp_path, monkeypatch):
    """A module holding a click group with one subcommand, importable but not yet imported."""
    (tmp_path / f"{MODULE}.py").write_text(
        "import click\n\n\n"
        "@click.group()\n"
        "def greet():\n"
        '    """Greet people in several ways."""\n\n\n'
        "@greet.command()\n"
        "@click.option('--name', default='world')\n"
        "def hello(name):\n"
        '    """Say hello."""\n'
        "    click.echo(f'hello, {name}')\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    group = click.Group("tool")
    group.add_command(LazyCommand("greet", f"{MODULE}:greet", "Greet people in several ways."))
    return group


def test_help_lists_the_command_without_importing_it(greeting):
    result = CliRunner().invoke(greeting, ["--help"])
    assert result.exit_code == 0, result.output
    assert "greet  Greet people in several ways." in result.output
    assert MODULE not in sys.modules


def test_running_it_imports_the_module_and_hands_over(greeting):
    result = CliRunner().invoke(greeting, ["greet", "hello", "--name", "ada"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello, ada\n"
    assert MODULE in sys.modules


def test_its_help_and_usage_errors_are_the_real_commands(greeting):
    helped = CliRunner().invoke(greeting, ["greet", "--help"])
    assert helped.exit_code == 0
    assert "Usage: tool greet [OPTIONS] COMMAND [ARGS]..." in helped.output
    assert "hello  Say hello." in helped.output
    wrong = CliRunner().invoke(greeting, ["greet", "hello", "--nope"])
    assert wrong.exit_code == 2
    assert "Usage: tool greet hello [OPTIONS]" in wrong.output
    assert "No such option '--nope'" in wrong.output


def test_a_target_without_an_attribute_is_refused_at_once():
    with pytest.raises(ValueError, match="must be 'module:attribute'"):
        LazyCommand("greet", "lazy_greeting", "Greet.")


def test_a_target_that_is_not_a_command_fails_when_run(greeting):
    greeting.add_command(LazyCommand("echo", "click:echo", "Not a command."))
    result = CliRunner().invoke(greeting, ["echo"])
    assert isinstance(result.exception, TypeError)
    assert "'click:echo' is not a click command" in str(result.exception)
