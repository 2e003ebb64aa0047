"""`tocsin demo`: a simulated shop monitored by an embedded tocsin, served with the API (and the dashboard).

Nothing to configure: the store is a temporary SQLite file (removed on exit unless `--keep` or `--db`), the
config is the demo's own (`tocsin_api.demo.config`), and the plugins are the ones the demo needs — tocsin-api,
tocsin-sqlite and, when it is installed, tocsin-dashboard — whatever `TOCSIN_CONFIG` or `TOCSIN_LOAD_PLUGINS` say.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import random
import shutil
import socket
import tempfile
from collections.abc import Generator

import click
import uvicorn

from tocsin import Monitor
from tocsin_api.app import create_app
from tocsin_api.demo.config import demo_config
from tocsin_api.demo.live import DemoPlugin
from tocsin_api.serve import is_loopback

WANTED = ("api", "sqlite", "dashboard")
"""Entry points of the `tocsin` group the demo loads when they are installed (`api` is this plugin)."""


class DemoServer(uvicorn.Server):
    """uvicorn, except that Ctrl-C and SIGTERM end the process normally (exit 0) once it has shut down.

    uvicorn raises the signal it caught again after a graceful shutdown, which turns Ctrl-C into a
    KeyboardInterrupt traceback and SIGTERM into death by signal; the demo has already closed everything.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """uvicorn's handlers while serving, and nothing raised again afterwards."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def installed_plugins() -> dict[str, object]:
    """The demo's plugins by entry-point name: those of WANTED that are installed and load."""
    plugins: dict[str, object] = {}
    for entry_point in importlib.metadata.entry_points(group="tocsin"):
        if entry_point.name in WANTED and entry_point.name not in plugins:
            try:
                plugins[entry_point.name] = entry_point.load()
            except Exception as error:  # a broken optional plugin: the demo runs without it
                click.echo(f"tocsin demo: plugin {entry_point.name!r} failed to load ({error!r}); "
                           "going on without it", err=True)
    if not hasattr(plugins.get("dashboard"), "register_routes"):  # absent, or a version that serves no page
        plugins.pop("dashboard", None)
    return plugins


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one), so the URL printed is right before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as error:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port} ({error.strerror}); "
                                   "pass another --port (0 picks a free one)") from None
    sock.listen(2048)
    return sock


def banner(url: str, db_path: str | None, keep: bool, dashboard: bool, seed: int, made: int) -> str:
    """What the demo prints once it serves: where to look, where the data is, how to stop."""
    where = "in memory (install tocsin-sqlite to store it in a file)" if db_path is None else db_path
    fate = "" if db_path is None else (" (kept on exit)" if keep else " (removed on exit; --keep keeps it)")
    lines = [f"tocsin demo: a simulated shop, seed {seed}, {made} requests of history, stored {where}{fate}"]
    if dashboard:
        lines.append(f"  dashboard: {url}/")
    lines.append(f"  API:       {url}/api/v1  (OpenAPI at {url}/schema/openapi.json)")
    if not dashboard:
        lines.append("  (install tocsin-dashboard for the web page)")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (loopback only: no API keys).")
@click.option("--port", type=click.IntRange(0, 65535), default=8420, show_default=True,
              help="Port; 0 picks a free one.")
@click.option("--speed", type=click.FloatRange(0.1, 60), default=1.0, show_default=True,
              help="How many times faster than real time the shop's story runs.")
@click.option("--seed", type=int, default=None, help="Replay the same simulated traffic (default: a random seed).")
@click.option("--rate", type=click.FloatRange(0.5, 200), default=6.0, show_default=True,
              help="Average requests per second the shop serves.")
@click.option("--history", "history_minutes", type=click.FloatRange(0, 120), default=15.0, show_default=True,
              help="Minutes of made-up history written at start, so charts are not empty.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), default=None,
              help="Store in this SQLite file and keep it (default: a temporary file removed on exit).")
@click.option("--keep", is_flag=True, help="Keep the temporary SQLite file on exit and print where it is.")
def demo(host: str, port: int, speed: float, seed: int | None, rate: float, history_minutes: float,
         db_path: str | None, keep: bool) -> None:
    """Run a simulated shop with an embedded monitor and serve the API and dashboard on it (Ctrl-C stops)."""
    if not is_loopback(host):
        raise click.UsageError(f"the demo has no API keys, so it listens on loopback only, not {host}; "
                               "use `tocsin serve` with [[server.api_keys]] to serve a network")
    seed = random.SystemRandom().randrange(1_000_000) if seed is None else seed
    plugins = installed_plugins()
    if db_path is not None and "sqlite" not in plugins:
        raise click.UsageError("--db needs tocsin-sqlite (pip install tocsin-sqlite)")
    sock = listen(host, port)
    workdir = tempfile.mkdtemp(prefix="tocsin-demo-") if "sqlite" in plugins and db_path is None else None
    db_path = os.path.join(workdir, "demo.db") if workdir is not None else db_path
    address = f"[{host.strip('[]')}]" if ":" in host else host
    url = f"http://{address}:{sock.getsockname()[1]}"

    def ready(made: int) -> None:
        click.echo(banner(url, db_path, keep or workdir is None, "dashboard" in plugins, seed, made))

    shop = DemoPlugin(seed, speed=speed, rps=rate, history_minutes=history_minutes,
                      on_ready=ready, say=click.echo)
    try:
        monitor = Monitor.from_config(demo_config(db_path, speed), plugins=[*plugins.values(), shop],
                                      entrypoints=False)
        shop.watch(monitor)
        server = DemoServer(uvicorn.Config(create_app(monitor), log_level="warning", lifespan="on"))
        server.run(sockets=[sock])
    finally:
        sock.close()
        if workdir is not None and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if not server.started:
        raise click.ClickException("the demo did not start (the error is above)")
    click.echo("tocsin demo: stopped" + ("" if workdir is None or keep else ", temporary store removed"))
