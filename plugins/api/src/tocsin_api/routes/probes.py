"""Liveness and readiness for load balancers and orchestrators, public (no API key), at the root and
under `/api/v1`."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.exceptions import HTTPException

from tocsin_api.deps import MonitorDep


class Probe(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A probe's answer."""

    status: str
    storage: str = ""


@get(["/healthz", "/api/v1/healthz"], opt={"scope": None}, summary="Liveness: the process answers",
     tags=["system"])
async def healthz() -> Probe:
    """200 while the process runs."""
    return Probe(status="ok")


@get(["/readyz", "/api/v1/readyz"], opt={"scope": None}, summary="Readiness: storage answers", tags=["system"])
async def readyz(monitor: MonitorDep) -> Probe:
    """200 when the monitor is started and its storage answers a cheap query; 503 otherwise."""
    storage = monitor.storage
    if not monitor.started or monitor.closed or storage is None:
        raise HTTPException(status_code=503, detail="the monitor is not running")
    try:
        await storage.list_metrics()
    except Exception as error:
        raise HTTPException(status_code=503, detail=f"storage does not answer: {type(error).__name__}") from None
    return Probe(status="ready", storage=monitor.config.storage.backend)


PUBLIC = [healthz, readyz]
