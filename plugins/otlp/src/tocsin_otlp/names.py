"""OTLP metric and attribute names as tocsin (Prometheus-style) metric and label names.

Every character outside the allowed set becomes `_` (`http.server.duration` is `http_server_duration`), a
name starting with a digit gets a `_` (metric) or `key_` (label) in front, and a label starting with `__`
(reserved) gets `key` in front — the rules of OpenTelemetry's Prometheus translation, without unit suffixes.
"""

from __future__ import annotations

import re

_METRIC_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(name: str) -> str:
    """A valid tocsin metric name for an OTLP metric name."""
    fixed = _METRIC_INVALID.sub("_", name)
    return fixed if fixed and not fixed[0].isdigit() else f"_{fixed}"


def label_name(key: str) -> str:
    """A valid tocsin label name for an OTLP attribute key."""
    fixed = _LABEL_INVALID.sub("_", key)
    if not fixed or fixed[0].isdigit():
        return f"key_{fixed}"
    return f"key{fixed}" if fixed.startswith("__") else fixed
