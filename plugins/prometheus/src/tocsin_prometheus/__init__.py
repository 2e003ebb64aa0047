"""tocsin for Prometheus: `/metrics` exposition and an Alertmanager-compatible receiver.

On `tocsin serve` (through tocsin-api's `register_routes(monitor)` hook) the plugin mounts `GET /metrics`
(text 0.0.4 or OpenMetrics 1.0.0 by `Accept`), `POST /api/v2/alerts` and `GET /api/v2/status` (so a
Prometheus server can use tocsin as its Alertmanager). Without a server, `exposition(monitor)` returns the
same exposition as bytes. Settings: `[plugins.prometheus]` (tocsin_prometheus.config.Settings).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tocsin import hookimpl
from tocsin_prometheus.config import Settings, settings_of
from tocsin_prometheus.exposition import exposition
from tocsin_prometheus.text import OPENMETRICS_1_0_0, TEXT_0_0_4, negotiate

if TYPE_CHECKING:
    from tocsin import Monitor

__all__ = ["OPENMETRICS_1_0_0", "TEXT_0_0_4", "Settings", "exposition", "negotiate"]


@hookimpl
def register_config(register: Any) -> None:
    """`[plugins.prometheus]`: metrics_scope, storage_stats_every, alert_source."""
    register("prometheus", Settings)


@hookimpl(optionalhook=True)  # the hook is tocsin-api's: without it the plugin still loads (exposition() works)
def register_routes(monitor: Monitor) -> list[Any]:
    """`GET /metrics`, `POST /api/v2/alerts`, `GET /api/v2/status`."""
    from tocsin_prometheus.routes import handlers  # Litestar is imported only where routes are served

    return handlers(monitor, settings_of(monitor.config.plugins))
