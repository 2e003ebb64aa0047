"""Writing metric families as Prometheus text 0.0.4 or OpenMetrics 1.0.0, and choosing one from `Accept`.

A `Family` is one metric as Prometheus sees it (name, type, help, unit, samples); this module only formats.
The two formats differ where the specs do: 0.0.4 names a counter's TYPE after its `_total` sample and has no
UNIT, OpenMetrics names the family without `_total`, escapes `"` in HELP, and ends with `# EOF`.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import msgspec

Kind = Literal["counter", "gauge", "summary", "unknown"]
LabelPairs = tuple[tuple[str, str], ...]

TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_1_0_0 = "application/openmetrics-text; version=1.0.0; charset=utf-8"
OPENMETRICS_0_0_1 = "application/openmetrics-text; version=0.0.1; charset=utf-8"
_OPENMETRICS_VERSIONS = {"": OPENMETRICS_1_0_0, "1.0.0": OPENMETRICS_1_0_0, "0.0.1": OPENMETRICS_0_0_1}


class Sample(NamedTuple):
    """One line: the family name plus `suffix` (`_total`, `_sum`, `_count` or ""), its labels and value."""

    suffix: str
    labels: LabelPairs
    value: float


class Family(msgspec.Struct, kw_only=True):
    """One metric family: `name` without type suffixes, its type, HELP text, OpenMetrics unit and samples."""

    name: str
    kind: Kind
    help: str
    unit: str = ""
    samples: list[Sample] = []


def escape_help(text: str, *, openmetrics: bool) -> str:
    """HELP text escaped: `\\` and newline always, `"` too in OpenMetrics (its escaped-string)."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


def escape_label_value(value: str) -> str:
    """A label value escaped for either format: `\\`, `"` and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Go's ParseFloat reads it: `+Inf`, `-Inf`, `NaN`, else Python's shortest repr."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(labels: LabelPairs) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{escape_label_value(value)}"' for name, value in labels) + "}"


def render(families: list[Family], *, openmetrics: bool) -> bytes:
    """The exposition of `families` in one format, as UTF-8 (unpaired surrogates become `?`)."""
    lines: list[str] = []
    for family in families:
        meta = family.name + ("_total" if family.kind == "counter" and not openmetrics else "")
        kind = "untyped" if family.kind == "unknown" and not openmetrics else family.kind
        lines.append(f"# HELP {meta} {escape_help(family.help, openmetrics=openmetrics)}")
        lines.append(f"# TYPE {meta} {kind}")
        if openmetrics and family.unit:
            lines.append(f"# UNIT {meta} {family.unit}")
        lines.extend(f"{family.name}{sample.suffix}{_labels(sample.labels)} {format_value(sample.value)}"
                     for sample in family.samples)
    if openmetrics:
        lines.append("# EOF")
    return ("\n".join(lines) + "\n").encode("utf-8", "replace")


def _media_ranges(accept: str) -> list[tuple[float, str, dict[str, str]]]:
    """The media ranges of an Accept header as (q, type, parameters); a bad q counts as 0."""
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        options = {}
        for param in params:
            key, _, value = param.partition("=")
            options[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(options.pop("q", "1"))
        except ValueError:
            q = 0.0
        if media and math.isfinite(q):
            ranges.append((q, media.lower(), options))
    return ranges


def negotiate(accept: str | None) -> str:
    """The Content-Type to answer with: OpenMetrics when the client prefers a version of it we write (1.0.0
    or 0.0.1), else text 0.0.4 (also for no Accept, `*/*` or `text/plain`), as Prometheus' own clients do."""
    best_q, best = 0.0, TEXT_0_0_4
    for q, media, options in _media_ranges(accept or ""):
        if media == "application/openmetrics-text" and q > best_q:
            content_type = _OPENMETRICS_VERSIONS.get(options.get("version", ""))
            if content_type is not None:
                best_q, best = q, content_type
        elif media in ("text/plain", "text/*", "*/*") and q > best_q:
            best_q, best = q, TEXT_0_0_4
    return best


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether `Accept-Encoding` admits gzip (Prometheus sends `gzip`)."""
    return any(media == "gzip" and q > 0 for q, media, _ in _media_ranges(accept_encoding or ""))
