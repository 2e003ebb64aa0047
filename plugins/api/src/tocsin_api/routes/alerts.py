"""`/api/v1` alerts endpoints: list and read alerts with their transitions, acknowledge and resolve them.

Alerts are read from storage (the source of truth); acknowledge and resolve go through `monitor.alerting`,
so they are saved with their transitions and notify receivers exactly as they would from code.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_type_hints

import msgspec
from litestar import Request, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from tocsin import QueryError
from tocsin.ext import SEVERITIES, Alert, AlertQuery, AlertTransition, Duration, Page
from tocsin_api import params
from tocsin_api.deps import MonitorDep, storage_of

ALERT_STATES: tuple[str, ...] = get_args(get_type_hints(Alert)["state"])
"""Every evaluation state an alert can be in (from the Alert model)."""


def caller(request: Request[Any, Any, Any]) -> str:
    """The name of the API key making the request ("anonymous" on an open API)."""
    actor = request.scope.get("user")
    return str(getattr(actor, "name", "") or "anonymous")


class AlertDetail(msgspec.Struct, kw_only=True):
    """One alert and its transitions, oldest first."""

    alert: Alert
    transitions: list[AlertTransition]


class HandlingRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Who acknowledges or resolves (default: the API key's name), why, and for an acknowledgement how long."""

    by: str | None = None
    comment: str = ""
    for_: str | float | None = msgspec.field(name="for", default=None)


@get("/alerts", summary="List alerts, most recently updated first", tags=["alerts"])
async def list_alerts(
    monitor: MonitorDep,
    states: Annotated[list[str] | None, QueryParameter(name="state")] = None,
    rule: FromQuery[str | None] = None,
    severity: FromQuery[str | None] = None,
    match: Annotated[list[str] | None, QueryParameter(name="match[]")] = None,
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
) -> Page[Alert]:
    """Alerts by state (repeatable), rule, severity and label selectors, a page at a time."""
    for value in states or []:
        if value not in ALERT_STATES:
            raise params.bad("state", f"{value!r} is not one of {', '.join(ALERT_STATES)}")
    if severity is not None and severity not in SEVERITIES:
        raise params.bad("severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    query = AlertQuery(rule=rule or None, states=list(states or []), severity=severity,  # type: ignore[arg-type]
                       matchers=params.matchers(match), cursor=cursor or None, limit=params.limit(limit))
    return await storage_of(monitor).list_alerts(query)


@get("/alerts/transitions", summary="Every alert transition in a time range", tags=["alerts"])
async def transitions(monitor: MonitorDep, start: FromQuery[str | None] = None,
                      end: FromQuery[str | None] = None) -> list[AlertTransition]:
    """The transitions of every alert in [start, end), oldest first (default: the last hour)."""
    now = monitor.clock.now_ns()
    start_ns = params.time_ns(start, "start", now_ns=now)
    end_ns = params.time_ns(end, "end", now_ns=now)
    end_ns = now if end_ns is None else end_ns
    start_ns = end_ns - 3600 * 10**9 if start_ns is None else start_ns
    if start_ns >= end_ns:
        raise params.bad("end", "must be after start")
    return await storage_of(monitor).transitions_between(start_ns, end_ns)


@get("/alerts/{fingerprint:str}", summary="One alert with its transitions", tags=["alerts"])
async def get_alert(monitor: MonitorDep, fingerprint: FromPath[str], limit: FromQuery[int] = 100) -> AlertDetail:
    """The alert and its last `limit` transitions, oldest first; 404 when no alert has this fingerprint."""
    storage = storage_of(monitor)
    alert = await _known(monitor, fingerprint)
    return AlertDetail(alert=alert, transitions=await storage.alert_history(fingerprint, params.limit(limit)))


@post("/alerts/{fingerprint:str}/acknowledge", status_code=200, opt={"scope": "write"},
      summary="Acknowledge an alert", tags=["alerts"])
async def acknowledge(monitor: MonitorDep, request: Request[Any, Any, Any], fingerprint: FromPath[str],
                      data: JSONBody[HandlingRequest | None] = None) -> Alert:
    """Firing notifications stop until the alert resolves, or until `for` has passed; 409 when it is over."""
    body = data or HandlingRequest()
    until_ns = None
    if body.for_ is not None:
        try:
            seconds = float(Duration.parse(body.for_))
        except ValueError as error:
            raise params.bad_body("for", str(error)) from None
        if seconds <= 0:
            raise params.bad_body("for", "must be longer than 0s")
        until_ns = monitor.clock.now_ns() + round(seconds * 1e9)
    by = _who(request, body)
    await _known(monitor, fingerprint)
    try:
        return await monitor.alerting.acknowledge(fingerprint, by, body.comment, until_ns)
    except QueryError as error:
        raise HTTPException(status_code=409, detail=str(error)) from None


@post("/alerts/{fingerprint:str}/resolve", status_code=200, opt={"scope": "write"},
      summary="Resolve an alert by hand", tags=["alerts"])
async def resolve(monitor: MonitorDep, request: Request[Any, Any, Any], fingerprint: FromPath[str],
                  data: JSONBody[HandlingRequest | None] = None) -> Alert:
    """Receivers hear `resolved` and the alert stays quiet until its condition clears once; 409 when it is over."""
    body = data or HandlingRequest()
    if body.for_ is not None:
        raise params.bad_body("for", "only an acknowledgement takes `for`")
    by = _who(request, body)
    await _known(monitor, fingerprint)
    try:
        return await monitor.alerting.resolve(fingerprint, by, body.comment)
    except QueryError as error:
        raise HTTPException(status_code=409, detail=str(error)) from None



async def _known(monitor: MonitorDep, fingerprint: str) -> Alert:
    alert = await storage_of(monitor).get_alert(fingerprint)
    if alert is None:
        raise NotFoundException(f"no alert has fingerprint {fingerprint!r}")
    return alert


def _who(request: Request[Any, Any, Any], body: HandlingRequest) -> str:
    if body.by is None:
        return caller(request)
    if not body.by.strip():
        raise params.bad_body("by", "say who (or leave it out: the API key's name)")
    return body.by.strip()


ROUTES = [list_alerts, transitions, get_alert, acknowledge, resolve]
