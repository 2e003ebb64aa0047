"""The HTTP surface on `tocsin serve`: `GET /metrics`, and the Alertmanager v2 `POST /api/v2/alerts` and
`GET /api/v2/status` a Prometheus server (or any Alertmanager client) talks to."""

from __future__ import annotations

import gzip
import time
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException, ValidationException

from tocsin import Monitor, TocsinError
from tocsin.ext import StorageUnavailable
from tocsin_prometheus.alertmanager import BodyError, parse_alerts
from tocsin_prometheus.config import Settings
from tocsin_prometheus.exposition import StatsCache, exposition
from tocsin_prometheus.text import TEXT_0_0_4, accepts_gzip, negotiate

ALERTMANAGER_VERSION = "0.25.0"
"""The Alertmanager API whose behaviour the receiver follows (reported by `/api/v2/status`)."""


def handlers(monitor: Monitor, settings: Settings) -> list[Any]:
    """The route handlers for one monitor and the plugin's settings."""
    stats = StatsCache(float(settings.storage_stats_every))
    started = time.time()

    @get("/metrics", opt={"scope": None if settings.metrics_scope == "public" else settings.metrics_scope},
         summary="tocsin's metrics in Prometheus text 0.0.4 or OpenMetrics 1.0.0 (by Accept)", tags=["prometheus"])
    async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
        """The exposition, in the format the `Accept` header prefers, gzipped when the client accepts it."""
        content_type = negotiate(request.headers.get("accept"))
        body = exposition(monitor, openmetrics=content_type != TEXT_0_0_4, stats=await stats.get(monitor))
        headers = {"content-type": content_type, "vary": "Accept, Accept-Encoding"}  # exact: no second charset
        if accepts_gzip(request.headers.get("accept-encoding")):
            body = gzip.compress(body, compresslevel=1)
            headers["content-encoding"] = "gzip"
        return Response(body, media_type=content_type, headers=headers)

    @post("/api/v2/alerts", opt={"scope": "write"}, status_code=200, summary="Alertmanager API v2: post alerts",
          tags=["prometheus"])
    async def post_alerts(request: Request[Any, Any, Any]) -> Response[bytes]:
        """Alerts another system evaluated enter tocsin's state machine (an empty 200, as Alertmanager answers)."""
        try:
            alerts = parse_alerts(await request.body())
        except BodyError as error:
            raise ValidationException(str(error), extra=[{"key": error.field, "message": error.reason,
                                                          "source": "body"}]) from None
        try:
            await monitor.alerting.receive_external(settings.alert_source, alerts)
        except StorageUnavailable:
            raise
        except TocsinError as error:  # the monitor is not running (starting or stopping): the sender retries
            raise HTTPException(status_code=503, detail=str(error)) from None
        return Response(b"", media_type="application/json")

    @get("/api/v2/status", summary="Alertmanager API v2: status (this receiver's, minimal)", tags=["prometheus"])
    async def status() -> dict[str, Any]:
        """What Alertmanager's status reports, for clients that check it: no cluster, no config file."""
        return {"cluster": {"status": "disabled", "peers": []},
                "versionInfo": {"version": ALERTMANAGER_VERSION, "branch": "tocsin", "revision": "tocsin",
                                "buildUser": "", "buildDate": "", "goVersion": ""},
                "config": {"original": ""},
                "uptime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))}

    return [metrics, post_alerts, status]
