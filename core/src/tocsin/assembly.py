"""Loading a config checked across every wing: its structure (`tocsin.config`), then what alerting and
notifications say of it (rule expressions, routing, templates).

The config wing knows nothing of the services; this module, which sees both sides, hands their checks to it.
`load_config` and `config_from_data` are what the Monitor, the CLI and `tocsin.testing` call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tocsin.alerting.rules import alerting_problems
from tocsin.config.load import Check, parse_config, read_config
from tocsin.config.schema import Config
from tocsin.notify.routing import notification_problems
from tocsin.notify.templates import template_problems

CONFIG_CHECKS: tuple[Check, ...] = (
    lambda config: alerting_problems(config.alerting),
    template_problems,
    notification_problems,
)


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    registries: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load and check a config from a path, a dict, `TOCSIN_CONFIG`, or defaults (in that order).

    `registries` (from `tocsin.plugins.build_registries`) lets plugin-owned keys and names be checked;
    without it they are kept as plain data.
    """
    return read_config(source, registries=registries, environ=environ, checks=CONFIG_CHECKS)


def config_from_data(
    data: Mapping[str, Any],
    *,
    registries: Any = None,
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
    text: str | None = None,
) -> Config:
    """Check plain data (already read from `source`, whose `text` locates problems) into a Config."""
    return parse_config(data, registries=registries, environ=environ, source=source, text=text, checks=CONFIG_CHECKS)
