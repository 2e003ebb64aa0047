"""The `/api/v1` route handlers, one module per area; `ROUTES` is what the API router mounts."""

from __future__ import annotations

from tocsin_api.routes import (
    alerts,
    health,
    logs,
    metrics,
    notifications,
    rules,
    silences,
    system,
    traces,
    workflows,
    ws,
)

ROUTES: list[object] = [
    *metrics.ROUTES,
    *traces.ROUTES,
    *logs.ROUTES,
    *alerts.ROUTES,
    *rules.ROUTES,
    *silences.ROUTES,
    *notifications.ROUTES,
    *health.ROUTES,
    *workflows.ROUTES,
    *system.ROUTES,
    *ws.ROUTES,
]
