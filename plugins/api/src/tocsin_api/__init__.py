"""tocsin-api: the Litestar REST and WebSocket API, and `tocsin serve`.

A plugin like any other: it adds its hook specifications (`register_routes`, `actor_from_request`) and the
`serve` and `demo` commands. `create_app(monitor)` builds the application for tests and embedding.
"""

from __future__ import annotations

from tocsin import hookimpl
from tocsin_api import hookspecs
from tocsin_api.app import create_app


@hookimpl
def add_hookspecs(pm):
    pm.add_hookspecs(hookspecs)


@hookimpl
def register_commands(cli):
    from tocsin_api.demo.command import demo
    from tocsin_api.serve import serve

    cli.add_command(serve)
    cli.add_command(demo)


__all__ = ["create_app"]
