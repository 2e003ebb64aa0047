"""Hooks tocsin-api adds (through `add_hookspecs`), so other plugins can put routes on `tocsin serve`.

The core never imports Litestar; these hooks exist only where tocsin-api is installed. The dashboard, OTLP
and Prometheus plugins implement `register_routes`.
"""

from __future__ import annotations

from pluggy import HookspecMarker

hookspec = HookspecMarker("tocsin")


@hookspec
def register_routes(monitor):
    """Return a list of Litestar route handlers, controllers or routers to mount on `tocsin serve`."""


@hookspec(firstresult=True)
def actor_from_request(monitor, request):
    """Return who makes `request` (an `Actor`), or None to defer to the next plugin and then to API keys."""
