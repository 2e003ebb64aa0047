"""The Litestar application of `tocsin serve`: the `/api/v1` routes, keys and scopes, limits and headers.

`create_app(monitor)` builds it. Every `/api/v1` route is behind the scope guard (`tocsin_api.auth`); each
handler names the scope it needs in `opt` (read by default). `/healthz` and `/readyz` stay public for load
balancers. Errors are problem+json (`tocsin_api.problems`). Other plugins add routes with the
`register_routes(monitor)` hook; their routes sit behind the same guard, so a handler names its scope in `opt`
(`opt={"scope": None}` makes it public). With `manage=True` the app owns the monitor: it starts it on startup and
closes it (flushing everything) on shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from litestar import Litestar, Request, Response, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers import HTTPRouteHandler
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig

import tocsin
from tocsin import Monitor
from tocsin_api.auth import KeyRing, actor_of, scope_guard
from tocsin_api.feed import ChangeFeed
from tocsin_api.problems import EXCEPTION_HANDLERS, PROBLEM_RESPONSES
from tocsin_api.requests import LenientJSONRequest
from tocsin_api.routes import ROUTES, probes

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
}


def _security_headers(response: Response[Any]) -> Response[Any]:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _caller(request: Request[Any, Any, Any]) -> str:
    """Who a rate limit counts against: the API key's name, else the client address."""
    actor = actor_of(request)
    if actor is not None and actor.name != "anonymous":
        return f"key:{actor.name}"
    return f"addr:{request.client.host if request.client else 'unknown'}"


def _lifespan(monitor: Monitor) -> Callable[[Litestar], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        async with monitor:
            feed = ChangeFeed(monitor)  # what other processes write, on this process's bus
            await feed.start()
            try:
                yield
            finally:
                await feed.stop()

    return lifespan


def _document_problems(app: Litestar) -> None:
    """Every operation documents its error answers as problem+json, so clients (and schemathesis) know them."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if isinstance(handler, HTTPRouteHandler):
                handler.responses = {**PROBLEM_RESPONSES, **(handler.responses or {})}


def create_app(monitor: Monitor, *, manage: bool = True) -> Litestar:
    """The API serving `monitor`; with `manage`, the app starts and closes the monitor."""
    cfg = monitor.config.server
    extra = [handler for handlers in monitor.pm.hook.register_routes(monitor=monitor) for handler in handlers or []]
    api = Router(path="/api/v1", route_handlers=ROUTES, guards=[scope_guard])
    plugin_routes = [Router(path="/", route_handlers=extra, guards=[scope_guard])] if extra else []
    rate_limit = RateLimitConfig(rate_limit=("minute", cfg.rate_limit), identifier_for_request=_caller,
                                 exclude=["/healthz", "/readyz"])
    app = Litestar(
        route_handlers=[api, *probes.PUBLIC, *plugin_routes],
        dependencies={"monitor": Provide(lambda: monitor, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=LenientJSONRequest,
        request_max_body_size=cfg.max_body_bytes,
        cors_config=CORSConfig(allow_origins=cfg.cors_origins) if cfg.cors_origins else None,
        middleware=[rate_limit.middleware] if cfg.rate_limit else [],
        after_request=_security_headers,
        openapi_config=OpenAPIConfig(title="tocsin", version=tocsin.__version__, path="/schema"),
        lifespan=[_lifespan(monitor)] if manage else [],
        state=State({"monitor": monitor, "keyring": KeyRing(cfg.api_keys)}),
        debug=False,
        logging_config=None,  # the app owns logging; errors go to the `tocsin.api` logger
    )
    _document_problems(app)
    return app
