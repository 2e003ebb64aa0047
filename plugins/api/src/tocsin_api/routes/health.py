"""`/api/v1` health endpoints: the system status with every component, a component's history, heartbeats.

The status comes from the running monitor's scheduler (`monitor.health`), the history from storage
(`health_history`). A heartbeat beat reaches a heartbeat component that is already set up (in
`[[health.checks]]` with `type = "heartbeat"`, or in code with `monitor.health.heartbeat(name, ...)`): the API
never creates components, since a component's period, grace and criticality belong in config, and a typo in
a cron job's URL would otherwise add a critical component that turns the system unhealthy a day later.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody

from tocsin import ConfigError, Monitor, TocsinError
from tocsin.ext import (
    MAX_QUERY_LIMIT,
    HealthResult,
    HealthStatus,
    Page,
    decode_cursor,
    encode_cursor,
)
from tocsin_api import params
from tocsin_api.deps import MonitorDep, storage_of


class ComponentStatus(msgspec.Struct, kw_only=True):
    """A component now: `status` counts its dependencies, `check_status` is its own check's (after
    hysteresis); `cause` is the unhealthy dependency that degrades it; `since_ns` is when `status` last
    changed; `last_result` is its newest stored result."""

    name: str
    status: HealthStatus
    check_status: HealthStatus
    cause: str | None
    critical: bool
    depends_on: list[str]
    message: str
    since_ns: int | None
    last_check_ns: int | None
    last_result: HealthResult | None


class SystemStatus(msgspec.Struct, kw_only=True):
    """The overall status (the worst over critical components) and every component, by name."""

    status: HealthStatus
    components: list[ComponentStatus]


class Beat(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A heartbeat's beat: `ok` (a run finished well), `start` (a run began; it must beat within the grace)
    or `fail` (a run failed: unhealthy now, with `message` as the reason)."""

    status: Literal["ok", "start", "fail"] = "ok"
    message: str = ""


class BeatAccepted(msgspec.Struct, kw_only=True):
    """A beat taken: the component checks it at once (its new status shows in `GET /health` right after)."""

    component: str
    status: Literal["ok", "start", "fail"]
    time_ns: int



@get("/health", summary="System status and every component", tags=["health"])
async def system_health(monitor: MonitorDep) -> SystemStatus:
    """The overall status and each component's status, dependencies and newest stored result."""
    storage = storage_of(monitor)
    snapshot = monitor.health.status()
    components = []
    for component in snapshot.components:
        last = await storage.health_history(component.name, limit=1)
        components.append(ComponentStatus(
            name=component.name, status=component.status, check_status=component.check_status,
            cause=component.cause, critical=component.critical, depends_on=list(component.depends_on),
            message=component.message, since_ns=component.since_ns, last_check_ns=component.last_check_ns,
            last_result=last[0] if last else None,
        ))  # fmt: skip
    return SystemStatus(status=snapshot.status, components=components)


def _known(monitor: Monitor, name: str) -> bool:
    try:
        monitor.health.component(name)
    except TocsinError:
        return False
    return True


@get("/health/{component:str}", summary="A component's stored results", tags=["health"])
async def component_history(
    monitor: MonitorDep,
    component: FromPath[str],
    start: FromQuery[str | None] = None,
    end: FromQuery[str | None] = None,
    status: FromQuery[HealthStatus | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
) -> Page[HealthResult]:
    """Results newest first in [start, end); a component no longer watched is served while results remain."""
    storage = storage_of(monitor)
    limit = params.limit(limit)
    start_ns, end_ns = params.time_ns(start, "start"), params.time_ns(end, "end")
    skip = 0
    if cursor:
        at, skip = decode_cursor(cursor, tuple[int, int])
        if not 0 <= skip <= MAX_QUERY_LIMIT or at >= 2**63 - 1:
            raise params.bad("cursor", "pass back a next_cursor unchanged")
        end_ns = at + 1 if end_ns is None else min(end_ns, at + 1)
    # Results tied on time_ns come in a fixed order (the later write first), so a cursor is the time of the
    # page's last result and how many results at that time were already served.
    fetched = await storage.health_history(component, start_ns=start_ns, end_ns=end_ns, limit=limit + skip + 1,
                                           status=status)
    if not fetched and not _known(monitor, component) and not await storage.health_history(component, limit=1):
        raise NotFoundException(f"no health component {component!r}")
    items = fetched[skip:skip + limit]
    next_cursor = None
    if len(fetched) > skip + limit:
        last = items[-1].time_ns
        next_cursor = encode_cursor((last, sum(1 for result in fetched[:skip + limit] if result.time_ns == last)))
    return Page(items=items, next_cursor=next_cursor)


@post("/health/{component:str}/heartbeat", status_code=202, opt={"scope": "write"},
      summary="Send a heartbeat component a beat", tags=["health"])
async def heartbeat(monitor: MonitorDep, component: FromPath[str],
                    data: JSONBody[Beat | None] = None) -> BeatAccepted:
    """A beat (`ok`, the default), the start of a run, or a failure, for a heartbeat set up in config or code."""
    beat = data or Beat()
    if not _known(monitor, component):
        raise NotFoundException(f"no health component {component!r}; heartbeats are set up in [[health.checks]] "
                                "(type = \"heartbeat\") or with monitor.health.heartbeat()")
    try:
        check = monitor.health.heartbeat(component)
    except ConfigError as error:
        raise HTTPException(status_code=409, detail=str(error)) from None
    if beat.status == "ok":
        check.beat()
        time_ns = check.last_beat_ns
    elif beat.status == "start":
        check.start()
        time_ns = check.run_started_ns
    else:
        check.fail(beat.message)
        time_ns = check.failure[0] if check.failure is not None else None
    return BeatAccepted(component=component, status=beat.status,
                        time_ns=time_ns if time_ns is not None else monitor.clock.now_ns())


ROUTES = [system_health, component_history, heartbeat]
