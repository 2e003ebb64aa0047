"""Loading a config checked across every wing: its structure (`tocsin.config`), then what alerting and
notifications say of it (rule expressions, routing, templates, each channel's own check and the egress guard).

The config wing knows nothing of the services; this module, which sees both sides, hands their checks to it.
`load_config` and `config_from_data` are what the Monitor, the CLI and `tocsin.testing` call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from tocsin.alerting.rules import alerting_problems
from tocsin.config.load import ScopedCheck, parse_config, read_config
from tocsin.config.schema import Config
from tocsin.notify.routing import notification_problems
from tocsin.notify.service import channel_problems
from tocsin.notify.templates import template_problems

CONFIG_CHECKS: tuple[ScopedCheck, ...] = (
    (("alerting",), lambda config: alerting_problems(config.alerting)),
    (("channels", "notifications"), template_problems),
    (("channels", "notifications"), notification_problems),
)


def config_checks(registries: Any) -> tuple[ScopedCheck, ...]:
    """Every check the startup runs on a config: CONFIG_CHECKS, and each channel built and validated as the
    notify service builds it (its own `validate_config()`, the egress guard) when the plugins are known."""
    if registries is None:
        return CONFIG_CHECKS
    channels: ScopedCheck = (("channels", "notifications"), lambda config: channel_problems(config, registries))
    return (*CONFIG_CHECKS, channels)


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
    return read_config(source, registries=registries, environ=environ, checks=config_checks(registries))


def config_from_data(
    data: Mapping[str, Any],
    *,
    registries: Any = None,
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
    text: str | None = None,
) -> Config:
    """Check plain data (already read from `source`, whose `text` locates problems) into a Config."""
    return parse_config(data, registries=registries, environ=environ, source=source, text=text,
                        checks=config_checks(registries))
