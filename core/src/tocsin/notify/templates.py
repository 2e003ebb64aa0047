"""Notification templates: a jinja2 sandbox, the default title and body per event kind, and safe rendering.

Templates run in jinja2's `ImmutableSandboxedEnvironment`, so `{{ ''.__class__.__mro__ }}` and friends raise
instead of reaching Python internals. Plain-text templates (title, body) are not escaped; the HTML template
(for email bodies) escapes every value. Rendering is bounded: a deadline (1 s of CPU) and an output cap (64 KiB),
because the sandbox does not stop `{% for a in x %}{% for b in x %}` loops. Templates are checked when the
config loads (syntax, unknown variable names, and a sample render in the sandbox), and rendered leniently for
real alerts: a missing label renders as nothing rather than losing the notification.

What a template sees is the `RenderContext` of the message being rendered: `alerts` (every alert in it, as
dicts), `firing`, `resolved`, `alert` (the first), `kind`, `channel`, `rule`, `severity`, `group_labels`,
`common_labels`, `failure` (for "notification failed" notices) and `more` (alerts beyond the listed ones).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
import jinja2.meta
import jinja2.sandbox
import msgspec

from tocsin.config.schema import Config, RuleConfig
from tocsin.errors import ConfigProblem, DeliveryError
from tocsin.models import SEVERITIES, Alert, Notification, Severity

RENDER_TIMEOUT_S = 1.0
MAX_OUTPUT_CHARS = 64 * 1024
LISTED_ALERTS = 20
TRUNCATED = "…[truncated]"

internal_log = logging.getLogger("tocsin")

CONTEXT_NAMES = frozenset(
    {"alerts", "firing", "resolved", "alert", "kind", "channel", "rule", "severity", "group_labels",
     "common_labels", "failure", "failures", "more", "listed", "title"}
)

_LABELS = "{% for k, v in a.labels|dictsort %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}"
_LISTING = (
    "{% for a in listed %}"
    "- [{{ a.status|upper }}] {{ a.rule }}{% if a.labels %} {{ '{' }}" + _LABELS + "{{ '}' }}{% endif %}"
    "{% if a.value is not none %} value={{ a.value }}{% if a.condition %} ({{ a.condition }}){% endif %}{% endif %}"
    "{% if a.annotations.summary %}: {{ a.annotations.summary }}{% endif %}\n"
    "{% endfor %}"
    "{% if more %}… and {{ more }} more\n{% endif %}"
)

DEFAULT_TITLES: dict[str, str] = {
    "firing": "[FIRING{% if firing|length > 1 %}:{{ firing|length }}{% endif %}] {{ rule }} ({{ severity }})",
    "resolved": "[RESOLVED{% if resolved|length > 1 %}:{{ resolved|length }}{% endif %}] {{ rule }}",
    "acknowledged": "[ACKNOWLEDGED] {{ rule }}{% if alert.acknowledged_by %} by {{ alert.acknowledged_by }}{% endif %}",
    "test": "[TEST] tocsin test notification",
    "failed": "[NOTIFICATION FAILED] {{ failure.channel }}",
}
DEFAULT_BODIES: dict[str, str] = {
    "firing": _LISTING,
    "resolved": _LISTING,
    "acknowledged": _LISTING + "{% if alert.ack_comment %}Comment: {{ alert.ack_comment }}\n{% endif %}",
    "test": "This is a test notification from tocsin to the channel {{ channel }}. If you can read it, "
    "the channel works.\n",
    "failed": "{% for f in failures %}A {{ f.kind }} notification to {{ f.channel }}{% if f.rule %} about "
    "{{ f.rule }}{% endif %} could not be delivered after {{ f.attempts }} attempt(s): {{ f.error }}\n"
    "{% endfor %}",
}
DEFAULT_HTML = (
    "<h2>{{ title }}</h2>\n<ul>\n{% for a in listed %}<li><b>{{ a.status|upper }}</b> {{ a.rule }}"
    "{% for k, v in a.labels|dictsort %} <code>{{ k }}={{ v }}</code>{% endfor %}"
    "{% if a.annotations.summary %}<br>{{ a.annotations.summary }}{% endif %}</li>\n{% endfor %}</ul>\n"
    "{% if more %}<p>… and {{ more }} more</p>\n{% endif %}"
)


class RenderError(DeliveryError):
    """A template failed at render time: it raised, ran past its deadline, or broke the sandbox."""


class _DeadlineExceeded(Exception):
    pass


def _environment(autoescape: bool) -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        autoescape=autoescape, undefined=jinja2.Undefined
    )
    for name in ("lipsum", "cycler", "joiner"):  # nothing a notification needs; less to reach through
        env.globals.pop(name, None)
    return env


TEXT = _environment(autoescape=False)
HTML = _environment(autoescape=True)


@dataclass(frozen=True)
class Template:
    """A compiled template with its source, rendered in the sandbox with a deadline and an output cap."""

    source: str
    compiled: jinja2.Template
    html: bool = False

    def render(self, context: Mapping[str, Any]) -> str:
        """Render, raising RenderError on any failure; output beyond the cap is cut and marked."""
        try:
            return _bounded(lambda: self.compiled.generate(dict(context)))
        except _DeadlineExceeded:
            raise RenderError(f"template ran longer than {RENDER_TIMEOUT_S:g} s and was stopped") from None
        except RenderError:
            raise
        except Exception as error:
            raise RenderError(f"template failed: {type(error).__name__}: {error}") from None


def _bounded(generate: Any) -> str:
    """Consume a template's output under a CPU deadline (a trace function) and an output cap."""
    deadline = time.perf_counter() + RENDER_TIMEOUT_S
    ticks = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal ticks
        ticks += 1
        if ticks % 256 == 0 and time.perf_counter() > deadline:
            raise _DeadlineExceeded
        return tracer if frame.f_code.co_filename == "<template>" else None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        parts: list[str] = []
        size = 0
        chunks: Iterator[str] = generate()
        for chunk in chunks:
            parts.append(chunk)
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                return "".join(parts)[:MAX_OUTPUT_CHARS] + TRUNCATED
            if time.perf_counter() > deadline:
                raise _DeadlineExceeded
        return "".join(parts)
    finally:
        sys.settrace(previous)


@functools.lru_cache(maxsize=256)
def compile_template(source: str, *, html: bool = False, what: str = "template") -> Template:
    """Compile and check a template: syntax, names outside the render context, and a sample render.

    Raises ValueError naming `what`, so a config Struct reports it at the key's path.
    """
    env = HTML if html else TEXT
    try:
        ast = env.parse(source)
        compiled = env.from_string(source)
    except jinja2.TemplateSyntaxError as error:
        raise ValueError(f"{what}: template syntax error on line {error.lineno}: {error.message}") from None
    unknown = sorted(jinja2.meta.find_undeclared_variables(ast) - CONTEXT_NAMES - set(env.globals))
    if unknown:
        known = ", ".join(sorted(CONTEXT_NAMES))
        raise ValueError(f"{what}: unknown variable(s) {', '.join(unknown)}; a template can use {known}")
    template = Template(source, compiled, html)
    try:
        template.render(SAMPLE_CONTEXT)
    except RenderError as error:
        raise ValueError(f"{what}: {error}") from None
    return template


def template_problems(config: Config) -> list[ConfigProblem]:
    """Every notification template in the config compiled once when it loads; a bad one is a problem at its
    section, with the key and the reason (`channels[0]: title_template: unknown variable(s) ...`)."""
    sections = [(f"channels[{i}]", {"title_template": channel.title_template, "body_template": channel.body_template})
                for i, channel in enumerate(config.channels)]
    sections += [(f"notifications.rule_templates.{rule}", {"title": templates.title, "body": templates.body})
                 for rule, templates in config.notifications.rule_templates.items()]
    problems = []
    for path, templates in sections:
        for key, source in templates.items():
            try:
                if source is not None:
                    compile_template(source, what=key)
            except ValueError as error:
                problems.append(ConfigProblem(path, str(error)))
    return problems


# -- the context a template sees --------------------------------------------------------------------------


@dataclass
class RenderContext:
    """Everything about one message being rendered; the dispatcher sets it while the render hook runs.

    `alerts` holds (kind, alert) pairs in message order; `failures` the failure records of a
    "notification failed" notice; `title_template` and `body_template` the overrides that apply, if any.
    """

    channel: str
    kind: str
    alerts: Sequence[tuple[str, Alert]] = ()
    group_labels: Mapping[str, str] = field(default_factory=dict)
    failures: Sequence[Mapping[str, Any]] = ()
    title_template: Template | None = None
    body_template: Template | None = None
    rules: Mapping[str, RuleConfig] = field(default_factory=dict)
    """The alert rules by name, so each alert shows its rule's condition (the built-in renderer fills it)."""

    def severity(self) -> Severity:
        """The message's severity: the highest of its firing alerts (of all its alerts when none fires)."""
        firing = [alert.severity for kind, alert in self.alerts if kind != "resolved"]
        severities = firing or [alert.severity for _, alert in self.alerts]
        return max(severities, key=SEVERITIES.index) if severities else "warning"

    def variables(self) -> dict[str, Any]:
        """The template variables for this message."""
        alerts = [_alert_vars(kind, alert, self.rules.get(alert.rule)) for kind, alert in self.alerts]
        rules = {a["rule"] for a in alerts}
        common = dict(alerts[0]["labels"]) if alerts else {}
        for a in alerts[1:]:
            if not common:
                break
            common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
        failure = dict(self.failures[0]) if self.failures else {}
        return {
            "alerts": alerts,
            "firing": [a for a in alerts if a["status"] == "firing"],
            "resolved": [a for a in alerts if a["status"] == "resolved"],
            "alert": alerts[0] if alerts else _alert_vars(self.kind, _NO_ALERT),
            "listed": alerts[:LISTED_ALERTS],
            "more": max(0, len(alerts) - LISTED_ALERTS),
            "kind": self.kind,
            "channel": self.channel,
            "rule": next(iter(rules)) if len(rules) == 1 else (f"{len(rules)} rules" if rules else ""),
            "severity": self.severity(),
            "group_labels": dict(self.group_labels),
            "common_labels": common,
            "failure": failure,
            "failures": [dict(item) for item in self.failures],
        }


_NO_ALERT = Alert(fingerprint="", rule="")


def _alert_vars(kind: str, alert: Alert, rule: RuleConfig | None = None) -> dict[str, Any]:
    data = msgspec.structs.asdict(alert)
    data["status"] = "resolved" if kind == "resolved" else "firing" if kind == "firing" else kind
    threshold = _threshold(rule, alert.severity) if rule is not None else None
    data["threshold"] = threshold
    data["expression"] = _expression(rule) if rule is not None else ""
    data["condition"] = f"{data['expression']} {_comparison(rule.op, threshold)}" if rule is not None else ""
    return data


_SYMBOLS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "neq": "!="}


def _threshold(rule: RuleConfig, severity: str) -> float | list[float]:
    """The threshold the alert crossed: its severity level's, else the rule's."""
    return next((level.threshold for level in rule.levels if level.severity == severity), rule.threshold)


def _comparison(op: str, threshold: float | list[float] | None) -> str:
    """`> 90`, `inside [1, 5]`, or the operator's name and threshold for a plugin's operator."""
    shown = f"[{', '.join(f'{b:g}' for b in threshold)}]" if isinstance(threshold, list) else f"{threshold:g}"
    return f"{_SYMBOLS.get(op, op)} {shown}"


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"


def _expression(rule: RuleConfig) -> str:
    """What a rule compares with its threshold, e.g. `avg(disk_used{mount="/"}) over 5m`."""
    match = ", ".join(f'{k}="{v}"' for k, v in sorted(rule.match.items()))
    selector = f"{rule.metric or ''}{'{' + match + '}' if match else ''}"
    window = f" over {_seconds(float(rule.window))}"
    if rule.kind == "metric":
        return f"{rule.aggregate}({selector}){window}"
    if rule.kind == "absent":
        return f"absent({selector}){window}"
    if rule.kind == "log":
        where = ", ".join(part for part in (f"level>={rule.level}" if rule.level else "",
                                            f"{rule.query!r}" if rule.query else "") if part)
        return f"count(logs{{{where}}}){window}"
    if rule.kind == "workflow":
        return f"{rule.aggregate}({rule.measure or 'failures'} of {rule.workflow}){window}"
    return f"health({rule.component})"


SAMPLE_CONTEXT = RenderContext(
    channel="sample",
    kind="firing",
    alerts=[("firing", Alert(fingerprint="0" * 16, rule="sample-rule", labels={"host": "web-1"},
                             annotations={"summary": "sample"}, value=1.0, state="firing"))],
    failures=[{"channel": "sample", "kind": "firing", "rule": "sample-rule", "attempts": 1, "error": "sample"}],
).variables() | {"title": "sample title"}

current_render: contextvars.ContextVar[RenderContext | None] = contextvars.ContextVar("tocsin_render", default=None)
"""The message being dispatched, set by the dispatcher (and by previews) around the render_notification hook
and around the channel's `send`, so a channel can read the group's labels and every alert's event kind."""


# -- defaults ---------------------------------------------------------------------------------------------

_DEFAULTS: dict[tuple[str, str], Template] = {}


def default_template(kind: str, part: str) -> Template:
    """The built-in template for an event kind's `title`, `body` or `html`, compiled once."""
    key = (kind if kind in DEFAULT_TITLES else "firing", part)
    template = _DEFAULTS.get(key)
    if template is None:
        source = {"title": DEFAULT_TITLES, "body": DEFAULT_BODIES}.get(part, {}).get(key[0], DEFAULT_HTML)
        template = _DEFAULTS[key] = compile_template(source, html=part == "html", what=f"default {part}")
    return template


def render_text(context: RenderContext) -> tuple[str, str]:
    """Title and body for a message: the overrides in the context, falling back to the defaults.

    An override that fails at render time falls back to the default template for that part, so a broken
    custom template never costs a page; the built-in templates are not expected to fail.
    """
    variables = context.variables()
    title = " ".join(_render_part(context.kind, "title", context.title_template, variables).split())
    body = _render_part(context.kind, "body", context.body_template, {**variables, "title": title})
    return title, body


def _render_part(kind: str, part: str, override: Template | None, variables: dict[str, Any]) -> str:
    if override is not None:
        try:
            return override.render(variables)
        except RenderError as error:
            internal_log.warning("tocsin: a custom %s template failed, the default was used: %s", part, error)
    return default_template(kind, part).render(variables)


def render_html(notification: Notification, template: Template | None = None) -> str:
    """An HTML body (every value escaped) for the message being rendered, for channels such as email."""
    context = current_render.get() or context_for(notification, channel="")
    variables = {**context.variables(), "title": notification.title}
    return (template or default_template(context.kind, "html")).render(variables)


def context_for(notification: Notification, *, channel: str) -> RenderContext:
    """A context for one notification outside a dispatch (every alert it carries, default templates)."""
    return RenderContext(channel=channel, kind=notification.kind, alerts=notification.alert_events())


def overrides(config: Any, channel: str, rules: set[str]) -> tuple[Template | None, Template | None]:
    """The custom title and body templates for a message: the channel's, else the rule's (one rule only)."""
    title = body = None
    if len(rules) == 1:
        rule = config.notifications.rule_templates.get(next(iter(rules)))
        if rule is not None:
            title, body = rule.title, rule.body
    for channel_config in config.channels:
        if channel_config.name == channel:
            title = channel_config.title_template or title
            body = channel_config.body_template or body
    return (compile_template(title, what="title") if title else None,
            compile_template(body, what="body") if body else None)


def rendered(notification: Notification, context: RenderContext) -> Notification:
    """The notification with its title and body rendered from `context` (the built-in renderer)."""
    title, body = render_text(context)
    return msgspec.structs.replace(notification, title=title, body=body)
