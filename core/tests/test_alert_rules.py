"""Rule checks at config load, matcher syntax, annotation templates in the sandbox, and the compiled rule."""

from __future__ import annotations

import pytest

from tocsin.alerting import templates as alert_templates
from tocsin.alerting.rules import CompiledRule, fingerprint
from tocsin.alerting.silences import format_matchers, parse_matchers
from tocsin.alerting.templates import check_template, humanize, humanize_duration, render_annotations
from tocsin.assembly import load_config
from tocsin.errors import ConfigError, QueryError
from tocsin.models import LabelMatcher
from tocsin.plugins import build_registries, make_plugin_manager


@pytest.fixture(scope="module")
def registries():
    return build_registries(make_plugin_manager(entrypoints=False))


def problems(registries, *rules: dict, **alerting) -> list[str]:
    data = {"alerting": {"rules": list(rules), **alerting}, "channels": [{"name": "ops", "type": "log"}]}
    with pytest.raises(ConfigError) as caught:
        load_config(data, registries=registries, environ={})
    return str(caught.value).splitlines()


@pytest.mark.parametrize(("rule", "expected"), [
    ({"name": "r"}, "alerting.rules[0].metric: rule 'r': a metric rule needs 'metric'"),
    ({"name": "r", "kind": "log"}, "alerting.rules[0].query: rule 'r': a log rule needs 'query' or 'level'"),
    ({"name": "r", "kind": "health"}, "alerting.rules[0].component: rule 'r': a health rule needs 'component'"),
    ({"name": "r", "metric": "m", "query": "x"}, "alerting.rules[0].query: rule 'r': 'query' does not apply to a "
                                                  "metric rule"),
    ({"name": "r", "kind": "absent", "metric": "m", "by": ["a"]},
     "alerting.rules[0].by: rule 'r': 'by' does not apply to a absent rule"),
    ({"name": "r", "kind": "log", "level": "error", "measure": "failures"},
     "alerting.rules[0].measure: rule 'r': 'measure' does not apply to a log rule"),
    ({"name": "r", "metric": "bad-name"}, "alerting.rules[0].metric: rule 'r': invalid metric name 'bad-name': a "
                                          "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*"),
    ({"name": "r", "metric": "m", "op": "inside", "threshold": 3},
     "alerting.rules[0].threshold: rule 'r': operator 'inside' takes [low, high], got 3.0"),
    ({"name": "r", "metric": "m", "op": "outside", "threshold": [5, 1]},
     "alerting.rules[0].threshold: rule 'r': operator 'outside' needs finite bounds with low <= high, got [5.0, 1.0]"),
    ({"name": "r", "metric": "m", "threshold": [1, 2]},
     "alerting.rules[0].threshold: rule 'r': operator 'gt' takes one number, got a list [1.0, 2.0]"),
    ({"name": "r", "metric": "m", "levels": [{"severity": "warning", "threshold": 2}]},
     "alerting.rules[0].levels[0].severity: rule 'r': severity 'warning' appears twice in the ladder"),
    ({"name": "r", "metric": "m", "labels": {"severity": "high"}},
     "alerting.rules[0].labels.severity: rule 'r': the 'severity' label is set by tocsin (use the rule's severity)"),
    ({"name": "r", "metric": "m", "by": ["bad-label"]},
     "alerting.rules[0].by: rule 'r': label name 'bad-label' must match [a-zA-Z_][a-zA-Z0-9_]* and not start with "
     "'__'"),
    ({"name": "r", "metric": "m", "matchers": ["env prod"]},
     "alerting.rules[0].matchers[0]: rule 'r': cannot read a label matcher at 'env prod' in 'env prod'; write "
     'label="value", with =, !=, =~ or !~'),
    ({"name": "r", "kind": "log", "query": "-debug"},
     "alerting.rules[0].query: rule 'r': nothing to look for: `-word` and `NOT word` only leave messages out, so "
     "add a word to search for (a negated field filter such as -level:debug may stand alone)"),
    ({"name": "r", "kind": "workflow", "workflow": "etl", "measure": "duration", "aggregate": "rate"},
     "alerting.rules[0].aggregate: rule 'r': 'rate' does not apply to run durations; use avg, min, max, sum, "
     "count, last or a percentile"),
    ({"name": "r", "metric": "m", "window": 0}, "alerting.rules[0].window: rule 'r': the window must be longer "
                                                "than 0s"),
    ({"name": "r", "metric": "m", "annotations": {"summary": "{{ value"}},
     "alerting.rules[0].annotations.summary: rule 'r': template error: TemplateSyntaxError: unexpected end of "
     "template, expected 'end of print statement'."),
    ({"name": "r", "metric": "m", "annotations": {"x": "{{ ''.__class__.__mro__ }}"}},
     "alerting.rules[0].annotations.x: rule 'r': template error: SecurityError: access to attribute '__class__' "
     "of 'str' object is unsafe."),
    ({"name": "r", "metric": "m", "annotations": {"x": "{{ range(10**9) | list }}"}},
     "alerting.rules[0].annotations.x: rule 'r': template error: OverflowError: Range too big. The sandbox blocks "
     "ranges larger than MAX_RANGE (100000)."),
    ({"name": "r", "metric": "m", "nodata_state": "sometimes"},
     "alerting.rules[0].nodata_state: expected one of normal|alerting|nodata|keep_last, got 'sometimes'"),
])
def test_bad_rules_are_config_errors_naming_the_rule_and_the_key(registries, rule, expected):
    found = problems(registries, rule)
    assert expected in found, found


def test_names_from_registries_and_the_section_itself(registries):
    found = problems(registries, {"name": "r", "metric": "m", "op": "bigger", "channels": ["pager"],
                                  "levels": [{"severity": "critical", "threshold": 1, "channels": ["nope"]}]},
                     evaluation_interval="0s")
    assert any(line.startswith("alerting.rules[0].op: unknown alert operator 'bigger'; installed: gt")
               for line in found)
    assert "alerting.rules[0].channels[0]: unknown channel 'pager'; ops" in found
    assert "alerting.rules[0].levels[0].channels[0]: unknown channel 'nope'; ops" in found
    assert "alerting.evaluation_interval: must be at least 1s" in found


def test_a_good_rule_loads_with_its_new_keys(registries):
    config = load_config({"alerting": {"evaluation_timeout": "10s", "for_outage_tolerance": "2h", "rules": [
        {"name": "r", "metric": "m", "matchers": ['env=~"prod|staging"'], "nodata_state": "nodata",
         "flap_threshold": 0, "levels": [{"severity": "critical", "threshold": 9}]}]}},
        registries=registries, environ={})
    rule = config.alerting.rules[0]
    assert (rule.nodata_state, rule.error_state, rule.flap_threshold, rule.levels[0].for_) == ("nodata", "error", 0,
                                                                                               None)
    assert config.alerting.for_outage_tolerance == 7200 and config.alerting.for_grace_period == 600


def test_compiled_rule_ladder_labels_and_fingerprints(registries):
    config = load_config({"alerting": {"rules": [
        {"name": "cpu", "metric": "cpu", "threshold": 80, "for": "5m", "labels": {"team": "web"},
         "match": {"env": "prod"}, "matchers": ['host!~"test-.*"'],
         "levels": [{"severity": "critical", "threshold": 95}, {"severity": "info", "threshold": 50, "for": "1m"}]}]}},
        registries=registries, environ={})
    rule = CompiledRule(config.alerting.rules[0], registries.operators.get("gt"))
    assert [(s.severity, s.threshold, s.policy.for_s) for s in rule.steps] == [
        ("info", 50, 60), ("warning", 80, 300), ("critical", 95, 300)]
    assert rule.matchers == [LabelMatcher(label="env", value="prod"), LabelMatcher(label="host", op="!~",
                                                                                   value="test-.*")]
    labels = rule.labels_for({"host": "a", "team": "series-team"}, rule.steps[2])
    assert labels == {"host": "a", "team": "web", "alertname": "cpu", "severity": "critical"}
    assert fingerprint("cpu", labels) == fingerprint("cpu", dict(reversed(labels.items())))
    assert fingerprint("cpu", labels) != fingerprint("cpu2", labels)
    assert rule.breaches(rule.steps[2], 96) and not rule.breaches(rule.steps[2], 95) and not rule.breaches(
        rule.steps[2], None)


@pytest.mark.parametrize(("text", "expected"), [
    ('alertname="cpu"', [LabelMatcher(label="alertname", value="cpu")]),
    ('{env=~"prod|staging", route!="/health"}', [LabelMatcher(label="env", op="=~", value="prod|staging"),
                                                 LabelMatcher(label="route", op="!=", value="/health")]),
    ("env=prod,team!~ops", [LabelMatcher(label="env", value="prod"), LabelMatcher(label="team", op="!~",
                                                                                  value="ops")]),
    (r'msg="say \"hi\", ok"', [LabelMatcher(label="msg", value='say "hi", ok')]),
])
def test_matcher_syntax_round_trips(text, expected):
    assert parse_matchers(text) == expected
    assert parse_matchers(format_matchers(expected)) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "no label matcher"), ("env", "cannot read a label matcher"), ("1env=x", "is not a label name"),
    ('env="a" team="b"', "expected ','"), ('env=~"["', "invalid regex"),
])
def test_bad_matchers_say_what_is_wrong(text, message):
    with pytest.raises(QueryError, match=message):
        parse_matchers(text)


def test_templates_see_the_alert_and_failures_never_lose_it():
    context = {"value": 1234.5, "labels": {"route": "/a"}, "rule": "r", "severity": "error", "threshold": 1000,
               "state": "firing"}
    rendered = render_annotations({"summary": "{{ rule }} {{ labels.route }} {{ value | humanize }} > {{ threshold }}",
                                   "plain": "runbook: see wiki", "broken": "{{ labels.missing.deeper }}"}, context)
    assert rendered["summary"] == "r /a 1.234k > 1000"
    assert rendered["plain"] == "runbook: see wiki"
    assert rendered["broken"].startswith("<template error: UndefinedError")


def test_templates_are_cut_at_the_output_cap_and_stopped_at_the_deadline(monkeypatch):
    huge = render_annotations({"x": "{% for i in range(100000) %}{{ 'y' * 10 }}{% endfor %}"}, {})["x"]
    assert len(huge) == alert_templates.MAX_OUTPUT + 1 and huge.endswith("…")
    monkeypatch.setattr(alert_templates, "RENDER_SECONDS", 0.01)
    spin = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    assert check_template(spin) == "TemplateTimeout: rendering took longer than 0.01s"


def test_humanize_filters():
    assert [humanize(v) for v in (0, 1234567, 0.00042, -2500, "n/a")] == ["0", "1.235M", "420u", "-2.5k", "n/a"]
    assert [humanize_duration(v) for v in (0.25, 59, 3723, 90061)] == ["250ms", "59s", "1h 2m 3s", "1d 1h 1m 1s"]
