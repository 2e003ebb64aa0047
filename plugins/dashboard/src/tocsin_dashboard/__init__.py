"""tocsin's web dashboard: live charts, alerts, traces, logs, workflows, served by tocsin serve.

The plugin mounts a static page shell and its assets on `tocsin serve` through tocsin-api's
`register_routes(monitor)` hook; the page reads every datum from `/api/v1` and the WebSocket in the browser.
"""

from __future__ import annotations

from typing import Any

from tocsin import hookimpl


@hookimpl(optionalhook=True)  # the hook is tocsin-api's: without it installed the plugin still loads
def register_routes(monitor: Any) -> list[Any]:
    """The dashboard's public page shell and static assets (data comes from the API, behind its keys)."""
    from tocsin_dashboard.routes import HANDLERS  # Litestar is imported only where routes are served

    return list(HANDLERS)
