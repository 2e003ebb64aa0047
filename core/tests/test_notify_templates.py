"""Notification templates: the sandbox, escaping, the render deadline and output cap, and config-time checks."""

from __future__ import annotations

import pytest

from tocsin.assembly import load_config
from tocsin.errors import ConfigError
from tocsin.models import Alert, Notification
from tocsin.notify.templates import (
    MAX_OUTPUT_CHARS,
    TRUNCATED,
    RenderContext,
    RenderError,
    compile_template,
    current_render,
    render_html,
    render_text,
)
from tocsin.plugins import build_registries, make_plugin_manager

XSS = "<script>alert(1)</script>"


def context(kind="firing", *alerts: Alert, **extra) -> RenderContext:
    return RenderContext(channel="ops", kind=kind, alerts=[(kind, a) for a in alerts], **extra)


def test_default_titles_and_bodies_per_kind():
    disk = Alert(fingerprint="a", rule="disk-full", severity="critical", value=97.5, labels={"host": "db-1"},
                 annotations={"summary": "Disk almost full"})
    assert render_text(context("firing", disk)) == (
        "[FIRING] disk-full (critical)", "- [FIRING] disk-full {host=db-1} value=97.5: Disk almost full\n")
    assert render_text(context("resolved", disk))[0] == "[RESOLVED] disk-full"
    acked = Alert(fingerprint="a", rule="disk-full", acknowledged_by="ann", ack_comment="on it")
    title, body = render_text(context("acknowledged", acked))
    assert title == "[ACKNOWLEDGED] disk-full by ann" and body.endswith("Comment: on it\n")
    assert render_text(context("test"))[0] == "[TEST] tocsin test notification"
    failure = {"channel": "slack", "kind": "firing", "rule": "disk-full", "attempts": 10, "error": "HTTP 503"}
    title, body = render_text(context("failed", failures=[failure]))
    assert title == "[NOTIFICATION FAILED] slack"
    assert body == ("A firing notification to slack about disk-full could not be delivered after 10 attempt(s): "
                    "HTTP 503\n")


def test_a_large_group_lists_twenty_alerts_then_counts_the_rest():
    alerts = [Alert(fingerprint=str(i), rule="r", severity="warning" if i else "critical") for i in range(25)]
    title, body = render_text(context("firing", *alerts))
    assert title == "[FIRING:25] r (critical)"
    assert body.count("\n") == 21 and body.endswith("… and 5 more\n")


def test_plain_text_is_not_escaped_and_html_is():
    alert = Alert(fingerprint="a", rule="r", labels={"host": XSS})
    _title, body = render_text(context("firing", alert))
    assert XSS in body
    html = render_html(Notification(title=f"T {XSS}", body=body, alert=alert))
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<h2>T &lt;script&gt;" in html


def test_render_html_uses_the_message_being_rendered():
    alerts = [Alert(fingerprint=str(i), rule="r") for i in range(3)]
    token = current_render.set(context("firing", *alerts))
    try:
        html = render_html(Notification(title="t", body="b"))
    finally:
        current_render.reset(token)
    assert html.count("<li>") == 3


@pytest.mark.parametrize(("source", "message"), [
    ("{{ ''.__class__.__mro__ }}", "SecurityError"),
    ("{{ cycler.__init__.__globals__ }}", "unknown variable(s) cycler"),
    ("{{ range(10**9) | list }}", "OverflowError"),
    ("{% for %}", "template syntax error on line 1"),
    ("{{ alrt.labels.host }}", "unknown variable(s) alrt"),
])
def test_unsafe_or_broken_templates_are_refused_when_compiled(source, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_template(source, what="body")


def test_a_runaway_template_is_stopped_and_output_is_capped():
    nested = "{% set x = range(100000)|list %}{% for a in x %}{% for b in x %}{% endfor %}{% endfor %}"
    with pytest.raises(ValueError, match="ran longer than 1 s"):
        compile_template(nested)
    huge = compile_template("{% for a in range(100000) %}{% for b in range(100) %}xxxxxxxxxx{% endfor %}{% endfor %}")
    text = huge.render({})
    assert len(text) == MAX_OUTPUT_CHARS + len(TRUNCATED) and text.endswith(TRUNCATED)


def test_a_missing_label_renders_as_nothing_not_an_error():
    template = compile_template("host={{ alert.labels.host }}!")
    assert template.render({"alert": {"labels": {}}}) == "host=!"
    with pytest.raises(RenderError, match="ZeroDivisionError"):
        compile_template("{{ 1 // (alert.value|int) }}").render({"alert": {"value": 0}})


def test_templates_in_config_are_checked_when_it_loads():
    registries = build_registries(make_plugin_manager(entrypoints=False))
    data = {
        "channels": [{"name": "ops", "type": "log", "title_template": "{{ ''.__class__.__mro__ }}",
                      "body_template": "{{ alert.labels.host }}"}],
        "notifications": {"rule_templates": {"disk-full": {"body": "{% if %}"}}},
    }
    with pytest.raises(ConfigError) as caught:
        load_config(data, registries=registries, environ={})
    assert [(p.path, p.message.split(":")[0]) for p in caught.value.problems] == [
        ("channels[0]", "title_template"), ("notifications.rule_templates.disk-full", "body")]
    data["channels"][0].pop("title_template")
    data["notifications"]["rule_templates"]["disk-full"]["body"] = "Disk full on {{ alert.labels.host }}"
    config = load_config(data, registries=registries, environ={})
    assert config.notifications.rule_templates["disk-full"].body == "Disk full on {{ alert.labels.host }}"


def test_the_default_body_shows_the_rule_condition_beside_the_value():
    from tocsin.config.schema import RuleConfig, SeverityLevel
    from tocsin.values import Duration

    disk = RuleConfig(name="disk-full", metric="disk_used", aggregate="max", window=Duration(300),
                      match={"mount": "/"}, op="gte", threshold=90.0,
                      levels=[SeverityLevel(severity="critical", threshold=97.0)])
    band = RuleConfig(name="temp", metric="temp_c", op="outside", threshold=[10.0, 30.5], window=Duration(3600))
    alerts = [Alert(fingerprint="a", rule="disk-full", severity="warning", value=91.5),
              Alert(fingerprint="b", rule="disk-full", severity="critical", value=98.0),
              Alert(fingerprint="c", rule="temp", value=31.0)]
    _, body = render_text(context("firing", *alerts, rules={"disk-full": disk, "temp": band}))
    assert body.splitlines() == [
        '- [FIRING] disk-full value=91.5 (max(disk_used{mount="/"}) over 5m >= 90)',
        '- [FIRING] disk-full value=98.0 (max(disk_used{mount="/"}) over 5m >= 97)',
        "- [FIRING] temp value=31.0 (avg(temp_c) over 1h outside [10, 30.5])"]
    variables = context("firing", alerts[1], rules={"disk-full": disk}).variables()
    shown = (variables["alert"]["threshold"], variables["alert"]["expression"])
    assert shown == (97.0, 'max(disk_used{mount="/"}) over 5m')


async def test_a_dispatched_message_shows_the_configured_rule_condition():
    from tocsin.testing import make_monitor

    rule = {"name": "cpu-high", "metric": "cpu_percent", "aggregate": "p95", "window": "10m", "op": "gt",
            "threshold": 85}
    config = {"channels": [{"name": "cap", "type": "captured"}], "alerting": {"rules": [rule]}}
    async with make_monitor(config=config) as monitor:
        preview = monitor.notify.preview(Alert(fingerprint="f", rule="cpu-high", value=92.0, state="firing"), "cap")
    assert preview.notification.body == "- [FIRING] cpu-high value=92.0 (p95(cpu_percent) over 10m > 85)\n"
