"""`tocsin serve`: the API (and every plugin's routes) on uvicorn, with the monitor running inside.

Listening on anything but loopback needs API keys (`[server] api_keys`): an open API on a network is
refused with a message that says how to fix it.
"""

from __future__ import annotations

import ipaddress

import click

from tocsin import Monitor


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="The config file (default: TOCSIN_CONFIG, else defaults).")
@click.option("--host", default=None, help="Bind address (default: [server] host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: [server] port, 8420).")
def serve(config_path: str | None, host: str | None, port: int | None) -> None:
    """Serve the REST and WebSocket API (and the plugins' routes) with the monitor running inside."""
    import uvicorn

    from tocsin_api.app import create_app

    monitor = Monitor.from_config(config_path)
    server = monitor.config.server
    host = host or server.host
    port = port or server.port
    if not is_loopback(host) and not server.api_keys:
        raise click.UsageError(
            f"refusing to listen on {host} without API keys: anyone who can reach it could read and change "
            "everything. Add [[server.api_keys]] to the config, or listen on 127.0.0.1.")
    click.echo(f"tocsin: serving on http://{host}:{port} (API at /api/v1, OpenAPI at /schema/openapi.json)")
    uvicorn.run(create_app(monitor), host=host, port=port, log_level="warning", lifespan="on")
