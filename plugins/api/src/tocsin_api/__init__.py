"""tocsin-api: the Litestar REST and WebSocket API, and `tocsin serve`.

A plugin like any other: it adds its hook specifications (`register_routes`, `actor_from_request`) and the
`serve` and `demo` commands. `create_app(monitor)` builds the application for tests and embedding.
"""

from __future__ import annotations

from typing import Any

from tocsin import hookimpl
from tocsin.ext import LazyCommand
from tocsin_api import hookspecs


@hookimpl
def add_hookspecs(pm):
    pm.add_hookspecs(hookspecs)


@hookimpl
def register_commands(cli):
    """`tocsin serve` and `tocsin demo`, imported (with Litestar and uvicorn) only when one of them runs."""
    cli.add_command(LazyCommand("serve", "tocsin_api.serve:serve",
                                "Serve the REST and WebSocket API (and the plugins' routes) with the monitor "
                                "running inside."))
    cli.add_command(LazyCommand("demo", "tocsin_api.demo.command:demo",
                                "Run a simulated shop with an embedded monitor and serve the API and dashboard on it "
                                "(Ctrl-C stops)."))


def __getattr__(name: str) -> Any:
    """`tocsin_api.create_app`, imported on first use so loading the plugin does not import Litestar."""
    if name == "create_app":
        from tocsin_api.app import create_app

        return create_app
    raise AttributeError(f"module 'tocsin_api' has no attribute {name!r}")


__all__ = ["create_app"]
