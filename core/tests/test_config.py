"""Config loading: every section, every kind of mistake reported with its path and line, and secrets."""

from __future__ import annotations

import json
import textwrap

import msgspec
import pytest

from tocsin import hookimpl
from tocsin.assembly import load_config
from tocsin.config.schema import Config
from tocsin.errors import ConfigError
from tocsin.notify.channel import NotificationChannel
from tocsin.plugins import build_registries, make_plugin_manager
from tocsin.values import Duration, Secret


class WebhookChannel(NotificationChannel):
    """A channel with a required secret key, registered only in these tests."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        url: Secret
        timeout: Duration = Duration(10)

    async def send(self, notification):
        raise NotImplementedError


class TestPlugin:
    __name__ = "test-config-plugin"

    class Section(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        enabled: bool = True

    @hookimpl
    def register_notification_channels(self, register):
        register("hook", WebhookChannel)

    @hookimpl
    def register_config(self, register):
        register("extra", self.Section)


@pytest.fixture(scope="module")
def registries():
    return build_registries(make_plugin_manager(TestPlugin(), entrypoints=False))


def write(tmp_path, text: str, name: str = "tocsin.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(error: ConfigError) -> list[str]:
    return [f"{p.line}:{p.path}: {p.message}" for p in error.problems]


def test_no_config_is_a_working_embedded_setup(registries):
    config = load_config(None, registries=registries, environ={})
    assert isinstance(config, Config)
    assert config.storage.backend == "memory"  # no sqlite plugin registered in this manager
    assert config.server.port == 8420
    assert config.alerting.evaluation_interval == 60
    assert config.metrics.max_series_per_metric == 2000


def test_tocsin_config_env_names_the_file(tmp_path, registries):
    path = write(tmp_path, 'service = "shop"\n')
    config = load_config(None, registries=registries, environ={"TOCSIN_CONFIG": str(path)})
    assert config.service == "shop"


def test_full_toml_loads_with_durations_and_plugin_keys(tmp_path, registries):
    path = write(
        tmp_path,
        """
        service = "shop"
        [storage]
        backend = "memory"
        [storage.retention]
        logs = "3d"
        metrics = 3600
        [tracing]
        sample_rate = 0.25
        sampler = "ratio"
        [logging]
        flush_interval = "250ms"
        [alerting]
        evaluation_interval = "30s"
        [[alerting.rules]]
        name = "cpu-high"
        metric = "cpu_percent"
        op = "gte"
        threshold = 90
        for = "5m"
        channels = ["ops"]
        [alerting.rules.labels]
        team = "web"
        [[channels]]
        name = "ops"
        type = "hook"
        url = "${HOOK_URL}"
        min_severity = "warning"
        [plugins.extra]
        enabled = false
        """,
    )
    config = load_config(path, registries=registries, environ={"HOOK_URL": "https://example.test/x"})
    assert config.storage.retention.logs == 3 * 86400
    assert config.storage.retention.metrics == 3600
    assert config.logging.flush_interval == 0.25
    rule = config.alerting.rules[0]
    assert (rule.op, rule.threshold, rule.for_, rule.labels) == ("gte", 90.0, 300.0, {"team": "web"})
    channel = config.channels[0]
    assert isinstance(channel.options, WebhookChannel.Config)
    assert channel.options.url.reveal() == "https://example.test/x"
    assert channel.options.timeout == 10
    assert config.plugins["extra"] == TestPlugin.Section(enabled=False)


def test_every_problem_is_reported_with_path_and_line(tmp_path, registries):
    path = write(
        tmp_path,
        """\
        [storage]
        backend = "memory"
        [storage.retention]
        metrics = "banana"

        [[channels]]
        name = "ops"
        type = "log"

        [[channels]]
        name = "pager"
        type = "log"
        min_severity = "urgent"
        chanel = "x"

        [[channels]]
        name = "s"
        type = "slak"

        [[channels]]
        name = "h"
        type = "hook"
        url = "${UNSET_URL}"
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, registries=registries, environ={})
    lines = str(caught.value).splitlines()
    assert f"{path}:13: channels[1].min_severity: expected one of info|warning|error|critical, got 'urgent'" in lines
    assert f"{path}:14: channels[1].chanel: unknown key" in lines
    assert any(line.startswith(f"{path}:18: channels[2].type: unknown notification channel 'slak'; installed:")
               and "hook (test-config-plugin)" in line and "log (tocsin.builtins.log_channel)" in line
               for line in lines)
    assert f"{path}:23: channels[3].url: environment variable UNSET_URL is not set" in lines
    assert any("storage.retention.metrics: expected a duration" in line and ":4:" in line for line in lines)
    assert len(caught.value.problems) == 5


def test_unknown_keys_suggest_the_close_one(registries):
    with pytest.raises(ConfigError) as caught:
        load_config({"tracing": {"sample_rat": 0.5}}, registries=registries, environ={})
    assert str(caught.value) == "tracing.sample_rat: unknown key (did you mean 'sample_rate'?)"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"server": {"port": "80"}}, "server.port: expected an integer, got a string '80'"),
        ({"server": {"port": 70000}}, "server.port: expected an integer <= 65535, got an integer 70000"),
        ({"tracing": {"sample_rate": 2}}, "tracing.sample_rate: expected a number <= 1.0, got an integer 2"),
        ({"metrics": {"flush_interval": -1}}, "metrics.flush_interval: a duration cannot be negative, got -1"),
        ({"metrics": {"flush_interval": True}}, "metrics.flush_interval: expected a duration like '30s', '5m', "
                                                 "'1h', got True"),
        ({"channels": {"name": "x"}}, "channels: expected a list, got a table"),
        ({"channels": [{"type": "log"}]}, "channels[0].name: missing required key"),
        ({"logging": {"level": "verbose"}}, "logging.level: expected one of debug|info|warning|error|critical, "
                                            "got 'verbose'"),
        ({"alerting": {"rules": [{"name": "r", "threshold": "x"}]}},
         "alerting.rules[0].threshold: expected a number or a list, got a string 'x'"),
        ({"plugins": {"nope": {}}}, "plugins.nope: unknown plugin section; installed: extra (test-config-plugin)"),
        ({"storage": {"backend": "sqlit"}}, "storage.backend: unknown storage backend 'sqlit'; installed: "
                                            "memory (tocsin.builtins.memory_storage)"),
    ],
)
def test_wrong_values_name_the_path_and_the_rule(data, expected, registries):
    with pytest.raises(ConfigError) as caught:
        load_config(data, registries=registries, environ={})
    assert str(caught.value) == expected


def test_cross_references_are_checked(registries):
    data = {
        "channels": [{"name": "ops", "type": "log"}, {"name": "ops", "type": "log"}],
        "alerting": {"rules": [{"name": "r", "op": "bigger", "channels": ["ops", "pager"]}]},
        "health": {"checks": [{"name": "db", "type": "missing-type"}]},
    }
    with pytest.raises(ConfigError) as caught:
        load_config(data, registries=registries, environ={})
    messages = str(caught.value).splitlines()
    assert any(m.startswith("health.checks[0].type: unknown health check 'missing-type'; installed: http (")
               for m in messages)
    data["health"] = {"checks": []}
    with pytest.raises(ConfigError) as caught:
        load_config(data, registries=registries, environ={})
    messages = str(caught.value).splitlines()
    assert "channels[1].name: duplicate name 'ops'" in messages
    assert any(m.startswith("alerting.rules[0].op: unknown alert operator 'bigger'; installed: gt (") for m in messages)
    assert "alerting.rules[0].channels[1]: unknown channel 'pager'; ops" in messages


def test_env_substitution_defaults_and_escapes(registries):
    config = load_config(
        {"service": "${SVC:-fallback}-$${literal}", "server": {"host": "${HOST}"}},
        registries=registries,
        environ={"HOST": "0.0.0.0"},
    )
    assert config.service == "fallback-${literal}"
    assert config.server.host == "0.0.0.0"


def test_secrets_never_print(registries):
    config = load_config(
        {"channels": [{"name": "h", "type": "hook", "url": "https://hooks.example/T0/SECRETVALUE"}],
         "server": {"api_keys": [{"name": "ci", "key": "SECRETVALUE", "scopes": ["read", "write"]}]}},
        registries=registries,
        environ={},
    )
    rendered = [repr(config), str(config.channels[0].options.url),
                msgspec.json.encode(config, enc_hook=lambda v: repr(v)).decode()]
    for text in rendered:
        assert "SECRETVALUE" not in text
        assert "<secret>" in text
    assert config.server.api_keys[0].key.reveal() == "SECRETVALUE"


def test_a_mistyped_secret_is_not_echoed(registries):
    with pytest.raises(ConfigError) as caught:
        load_config({"server": {"api_keys": [{"name": "ci", "key": 987654321}]}}, registries=registries, environ={})
    assert str(caught.value) == "server.api_keys[0].key: expected a string (a secret), got int"


def test_json_config_and_syntax_errors(tmp_path, registries):
    good = write(tmp_path, json.dumps({"service": "api", "metrics": {"flush_interval": "15s"}}), "c.json")
    assert load_config(good, registries=registries, environ={}).metrics.flush_interval == 15
    bad_json = write(tmp_path, '{"service": "api",\n "x": }', "bad.json")
    with pytest.raises(ConfigError, match=r"bad\.json:2: invalid JSON"):
        load_config(bad_json, registries=registries, environ={})
    bad_toml = write(tmp_path, 'service = "x"\nmetrics = [\n', "bad.toml")
    with pytest.raises(ConfigError, match=r"bad\.toml:\d+: invalid TOML"):
        load_config(bad_toml, registries=registries, environ={})
    with pytest.raises(ConfigError, match=r"missing\.toml: no such file"):
        load_config(tmp_path / "missing.toml", registries=registries, environ={})


def test_without_registries_plugin_keys_stay_plain_data():
    config = load_config({"channels": [{"name": "s", "type": "slack", "webhook_url": "u"}]}, environ={})
    assert config.channels[0].options == {"webhook_url": "u"}


DOCS = __import__("pathlib").Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def config_keys(struct: type, seen: set[type] | None = None) -> set[str]:
    """Every key name a Struct (and the Structs inside it) accepts."""
    import typing

    seen = seen or set()
    keys: set[str] = set()
    for field in msgspec.structs.fields(struct):
        if field.name != "options":
            keys.add(field.encode_name)
        stack = [field.type]
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct) and annotation not in seen:
                seen.add(annotation)
                keys |= config_keys(annotation, seen)
            stack.extend(typing.get_args(annotation))
    return keys


def test_every_config_key_is_documented():
    text = DOCS.read_text()
    import re

    missing = sorted(key for key in config_keys(Config) if not re.search(rf"[`\[.]{key}[`\]]", text))
    assert missing == []


def test_documented_toml_examples_load(registries):
    import re

    blocks = [block for block in re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.S)
              if not re.match(r"# [\w.-]+\.toml\n", block)]  # whole files: tests/test_docs.py checks them
    assert len(blocks) >= 4
    config = load_config(__import__("tomllib").loads("\n".join(blocks)), registries=registries,
                         environ={"TOCSIN_CI_KEY": "k"})
    assert config.alerting.rules[0].channels == ["ops"]
    assert config.tracing.sample_rate == 0.1


class GuardedChannel(NotificationChannel):
    """A channel whose own check asks the egress guard about its URL, as the HTTP channels do."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        url: str

    def validate_config(self) -> list[str]:
        from tocsin.errors import EgressDenied

        try:
            assert self.egress is not None, "the loader hands every channel the config's egress guard"
            self.egress.check_url(self.config.url)
        except EgressDenied as error:
            return [f"url: {error}"]
        return []

    async def send(self, notification):
        raise NotImplementedError


class GuardedPlugin:
    __name__ = "test-guarded-plugin"

    @hookimpl
    def register_notification_channels(self, register):
        register("guarded", GuardedChannel)


@pytest.fixture(scope="module")
def guarded():
    return build_registries(make_plugin_manager(TestPlugin(), GuardedPlugin(), entrypoints=False))


def test_urls_the_egress_guard_refuses_are_problems_with_path_and_line(tmp_path, guarded):
    path = write(tmp_path, """\
        [[channels]]
        name = "loop"
        type = "guarded"
        url = "http://127.0.0.1:8080/hook"

        [[channels]]
        name = "ftp"
        type = "guarded"
        url = "ftp://example.com/x"

        [[channels]]
        name = "allowed"
        type = "guarded"
        url = "http://10.1.2.3/hook"

        [notifications.egress]
        allow = ["10.0.0.0/8"]
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(path, registries=guarded, environ={})
    assert problems_of(caught.value) == [
        "1:channels[0]: url: refusing to connect to 127.0.0.1: 127.0.0.1 is not a public address; "
        "list it in [notifications.egress] allow to permit it",
        "6:channels[1]: url: only http and https URLs are allowed, got ftp scheme",
    ]


def test_structural_reference_and_channel_problems_are_reported_together(tmp_path, guarded):
    path = write(tmp_path, """\
        [tracing]
        sample_rat = 0.5

        [[channels]]
        name = "ops"
        type = "guarded"
        url = "http://127.0.0.1/x"

        [[channels]]
        name = "ops"
        type = "log"

        [[alerting.rules]]
        name = "r"
        metric = "m"
        threshold = "high"
        channels = ["pager"]

        [[health.checks]]
        name = "db"
        type = "tcp"
        host = "localhost"
        port = 5432
        depends_on = ["net"]
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(path, registries=guarded, environ={})
    assert problems_of(caught.value) == [
        "2:tracing.sample_rat: unknown key (did you mean 'sample_rate'?)",
        "4:channels[0]: url: refusing to connect to 127.0.0.1: 127.0.0.1 is not a public address; "
        "list it in [notifications.egress] allow to permit it",
        "10:channels[1].name: duplicate name 'ops'",
        "16:alerting.rules[0].threshold: expected a number or a list, got a string 'high'",
        "17:alerting.rules[0].channels[0]: unknown channel 'pager'; ops",
        "24:health.checks[0].depends_on[0]: unknown component 'net'",
    ]


def test_references_are_checked_when_the_section_itself_has_structural_problems(registries):
    data = {
        "channels": [{"name": "ops", "type": "log", "min_severity": "urgent"}, {"name": "ops", "type": "log"}],
        "alerting": {"rules": [{"name": "r", "op": "bigger", "channels": ["pager", 3]}]},
    }
    with pytest.raises(ConfigError) as caught:
        load_config(data, registries=registries, environ={})
    messages = str(caught.value).splitlines()
    assert "channels[0].min_severity: expected one of info|warning|error|critical, got 'urgent'" in messages
    assert "channels[1].name: duplicate name 'ops'" in messages
    assert any(m.startswith("alerting.rules[0].op: unknown alert operator 'bigger'; installed: gt (") for m in messages)
    assert "alerting.rules[0].channels[0]: unknown channel 'pager'; ops" in messages
    assert "alerting.rules[0].channels[1]: expected a string, got an integer 3" in messages
    assert len(messages) == 5


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"storage": {"bakend": "memory"}}, "storage.bakend: unknown key (did you mean 'backend'?)"),
        ({"channels": [{"name": "a", "type": "log", "min_severty": "error"}]},
         "channels[0].min_severty: unknown key (did you mean 'min_severity'?)"),
        ({"channels": [{"name": "a", "type": "hook", "url": "x", "timout": "5s"}]},
         "channels[0].timout: unknown key (did you mean 'timeout'?)"),
        ({"health": {"checks": [{"name": "a", "type": "tcp", "host": "h", "port": 1, "critcal": False}]}},
         "health.checks[0].critcal: unknown key (did you mean 'critical'?)"),
        ({"plugins": {"extr": {}}}, "plugins.extr: unknown plugin section (did you mean 'extra'?); "
                                    "installed: extra (test-config-plugin)"),
    ],
)
def test_an_unknown_key_in_any_section_suggests_the_close_one(data, expected, registries):
    with pytest.raises(ConfigError) as caught:
        load_config(data, registries=registries, environ={})
    assert str(caught.value) == expected


@pytest.mark.parametrize(
    ("data", "path", "name"),
    [
        ({"channels": [{"name": "a", "type": "slack", "webhook_url": "x"}]}, "channels[0].type", "slack"),
        ({"channels": [{"name": "a", "type": "pagerduty"}]}, "channels[0].type", "pagerduty"),
        ({"storage": {"backend": "sqlite", "path": "x.db"}}, "storage.backend", "sqlite"),
        ({"storage": {"backend": "postgres"}}, "storage.backend", "postgres"),
    ],
)
def test_a_known_plugin_that_is_not_installed_says_what_to_install(data, path, name, registries):
    with pytest.raises(ConfigError) as caught:
        load_config(data, registries=registries, environ={})
    [problem] = caught.value.problems
    assert problem.path == path
    assert problem.message.startswith("unknown ")
    assert problem.message.endswith(f"; {name!r} comes with tocsin-{name}: install it (pip install tocsin-{name})")


def test_an_unknown_name_that_no_tocsin_plugin_provides_gets_no_install_hint(registries):
    with pytest.raises(ConfigError) as caught:
        load_config({"channels": [{"name": "a", "type": "discord"}]}, registries=registries, environ={})
    assert "pip install" not in str(caught.value) and "comes with" not in str(caught.value)
