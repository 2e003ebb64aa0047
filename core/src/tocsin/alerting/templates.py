"""Annotation templates: Jinja2 in an immutable sandbox, with a render deadline and an output cap.

A rule's annotations (summary, description, runbook...) are templates that see the alert:

    {{ value }}  {{ labels.route }}  {{ rule }}  {{ severity }}  {{ threshold }}  {{ state }}
    {{ value | humanize }}  {{ 90 | humanize_duration }}

The sandbox refuses attribute tricks (`''.__class__`) and ranges over 100,000 items, but it does not
bound CPU, so every render also stops at RENDER_SECONDS (checked at each output chunk and each call)
and output is cut at MAX_OUTPUT characters. `check_template` runs when the config loads: it compiles
the template and renders it once against sample values, so syntax errors, sandbox violations and
runaway loops are config errors. At evaluation time a template that fails renders as a short
`<template error: ...>` text instead of losing the alert.
"""

from __future__ import annotations

import contextvars
import functools
import math
import time
from collections.abc import Mapping
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

RENDER_SECONDS = 1.0
MAX_OUTPUT = 64 * 1024
SAMPLE_CONTEXT: dict[str, Any] = {
    "value": 1.0,
    "labels": {"alertname": "sample", "severity": "warning"},
    "rule": "sample",
    "severity": "warning",
    "threshold": 0.0,
    "state": "firing",
}

_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("tocsin_template_deadline", default=math.inf)


class TemplateTimeout(TemplateError):
    """A template ran past its render deadline."""


def humanize(value: Any) -> str:
    """A number with an SI suffix and 4 significant digits: 1234567 -> '1.235M', 0.00042 -> '420u'."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number == 0 or not math.isfinite(number):
        return f"{number:g}"
    prefixes = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"))
    for scale, suffix in prefixes:
        if abs(number) >= scale:
            return f"{number / scale:.4g}{suffix}"
    return f"{number:.4g}"


def humanize_duration(value: Any) -> str:
    """Seconds as '1h 2m 3s' (or '250ms' below a second)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(seconds):
        return f"{seconds:g}s"
    if abs(seconds) < 1:
        return f"{seconds * 1000:.4g}ms"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if seconds or not parts:
        parts.append(f"{seconds:.4g}s")
    return sign + " ".join(parts)


def _check_deadline() -> None:
    if time.monotonic() > _deadline.get():
        raise TemplateTimeout(f"rendering took longer than {RENDER_SECONDS:g}s")


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, checking the render deadline on every call a template makes."""

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # jinja2's own signature
        """Refuse to go on past the deadline, then call as the sandbox does."""
        _check_deadline()
        return super().call(__context, __obj, *args, **kwargs)


_ENV = _Environment(autoescape=False, keep_trailing_newline=False)
_ENV.filters["humanize"] = humanize
_ENV.filters["humanize_duration"] = humanize_duration


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> Template:
    """Each distinct template source is compiled once."""
    return _ENV.from_string(source)


def _render(source: str, context: Mapping[str, Any]) -> str:
    """Render with the deadline and the output cap; raises on any template failure."""
    if "{" not in source:  # no Jinja2 syntax at all: the text is its own rendering
        return source
    template = _compile(source)
    token = _deadline.set(time.monotonic() + RENDER_SECONDS)
    try:
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(context):
            _check_deadline()
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_OUTPUT:
                return "".join(chunks)[:MAX_OUTPUT] + "…"
        return "".join(chunks)
    finally:
        _deadline.reset(token)


def check_template(source: str) -> str | None:
    """None when `source` compiles and renders against sample values, else what is wrong in one line."""
    try:
        _ENV.parse(source)
        _render(source, SAMPLE_CONTEXT)
    except Exception as error:  # any failure of a user template is a config problem, reported in one line
        return f"{type(error).__name__}: {' '.join(str(error).split())}"
    return None


def render_annotations(templates: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
    """Every annotation rendered; one that fails becomes `<template error: ...>` so the alert is never lost."""
    rendered: dict[str, str] = {}
    for key, source in templates.items():
        try:
            rendered[key] = _render(source, context)
        except Exception as error:  # a broken template must not stop the alert
            rendered[key] = f"<template error: {type(error).__name__}: {' '.join(str(error).split())[:200]}>"
    return rendered
