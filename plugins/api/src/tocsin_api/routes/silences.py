"""`/api/v1` silences endpoints: list, create, read and expire silences, and preview what one would mute.

Silences go through `monitor.alerting`, so one made here is checked like one made in code (it needs an end,
or `until_resolved`, and a matcher that does not match the empty string) and is seen by the next evaluation.
Matchers are Prometheus selectors: `service="db", env=~"prod|staging"` (braces optional).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, JSONBody, QueryParameter

from tocsin import ConfigError, QueryError
from tocsin.ext import Alert, Duration, LabelMatcher, Silence, compile_matchers, parse_matchers
from tocsin_api import params
from tocsin_api.deps import MonitorDep

SILENCE_STATES = ("pending", "active", "expired")
_FIELDS = {"silence.matchers": "matchers", "silence.ends_ns": "ends", "silence.starts_ns": "starts",
           "silence.created_by": "created_by"}


class SilenceInfo(msgspec.Struct, kw_only=True):
    """A silence and whether it is pending, active or expired now."""

    id: str
    state: str
    matchers: list[LabelMatcher]
    starts_ns: int
    ends_ns: int
    created_by: str
    comment: str
    until_resolved: bool
    created_ns: int


class NewSilence(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A silence to create: matchers (selector text, or a list of selectors or matchers), when it starts (default
    now), and when it ends (`ends`, `duration`, or `until_resolved`); who (default: the API key's name) and why."""

    matchers: str | list[str | LabelMatcher]
    starts: str | int | None = None
    ends: str | int | None = None
    duration: str | float | None = None
    until_resolved: bool = False
    comment: str = ""
    created_by: str | None = None


class Selector(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Matchers to preview: selector text, or a list of selectors or matchers."""

    matchers: str | list[str | LabelMatcher]


def _info(silence: Silence, now_ns: int) -> SilenceInfo:
    state = "pending" if now_ns < silence.starts_ns else "active" if now_ns < silence.ends_ns else "expired"
    return SilenceInfo(id=silence.id, state=state, matchers=silence.matchers, starts_ns=silence.starts_ns,
                       ends_ns=silence.ends_ns, created_by=silence.created_by, comment=silence.comment,
                       until_resolved=silence.until_resolved, created_ns=silence.created_ns)


def _matchers(value: str | list[str | LabelMatcher]) -> list[LabelMatcher]:
    """Matchers checked here (syntax and regexes), so a bad one is a 400 naming `matchers`."""
    found: list[LabelMatcher] = []
    try:
        for item in [value] if isinstance(value, str) else value:
            found += parse_matchers(item) if isinstance(item, str) else [item]
        compile_matchers(found)
    except QueryError as error:
        raise params.bad_body("matchers", str(error)) from None
    if not found:
        raise params.bad_body("matchers", "give at least one matcher")
    return found


def _time(value: str | int | None, name: str, now_ns: int) -> int | None:
    if value is None:
        return None
    try:
        return params.time_ns(str(value), name, now_ns=now_ns)
    except ValidationException as error:
        raise params.bad_body(name, str(error.detail).removeprefix(f"{name}: ")) from None


async def _find(monitor: MonitorDep, silence_id: str) -> Silence:
    silence = next((s for s in await monitor.alerting.list_silences() if s.id == silence_id), None)
    if silence is None:
        raise NotFoundException(f"no silence has id {silence_id!r}")
    return silence


@get("/silences", summary="List silences, active and expired", tags=["silences"])
async def list_silences(monitor: MonitorDep,
                        wanted: Annotated[str | None, QueryParameter(name="state")] = None) -> list[SilenceInfo]:
    """Every silence kept (expired ones stay until the alerts retention), or those pending, active or expired."""
    if wanted is not None and wanted not in SILENCE_STATES:
        raise params.bad("state", f"{wanted!r} is not one of {', '.join(SILENCE_STATES)}")
    now = monitor.clock.now_ns()
    found = [_info(silence, now) for silence in await monitor.alerting.list_silences()]
    return [info for info in found if wanted is None or info.state == wanted]


@post("/silences", status_code=201, opt={"scope": "write"}, summary="Create a silence", tags=["silences"])
async def create_silence(monitor: MonitorDep, request: Request[Any, Any, Any],
                         data: JSONBody[NewSilence]) -> SilenceInfo:
    """Mute notifications of matching alerts from `starts` until `ends`, for `duration`, or until they resolve."""
    now = monitor.clock.now_ns()
    matchers = _matchers(data.matchers)
    starts_ns = _time(data.starts, "starts", now)
    ends_ns = _time(data.ends, "ends", now)
    duration_s = None
    if data.duration is not None:
        if ends_ns is not None:
            raise params.bad_body("duration", "give either ends or duration, not both")
        try:
            duration_s = float(Duration.parse(data.duration))
        except ValueError as error:
            raise params.bad_body("duration", str(error)) from None
        if duration_s <= 0:
            raise params.bad_body("duration", "must be longer than 0s")
    if ends_ns is None and duration_s is None and not data.until_resolved:
        raise params.bad_body("ends", "a silence needs an end: give ends, duration or until_resolved")
    created_by = data.created_by
    if created_by is None:
        created_by = str(getattr(request.scope.get("user"), "name", "") or "anonymous")
    try:
        silence = await monitor.alerting.create_silence(
            matchers, created_by=created_by, comment=data.comment, starts_ns=starts_ns, ends_ns=ends_ns,
            duration_s=duration_s, until_resolved=data.until_resolved)
    except ConfigError as error:
        problems = [{"key": _FIELDS.get(p.path, p.path), "message": p.message, "source": "body"}
                    for p in error.problems]
        detail = "; ".join(f"{p['key']}: {p['message']}" for p in problems)
        raise ValidationException(detail, extra=problems) from None
    return _info(silence, monitor.clock.now_ns())


@get("/silences/{silence_id:str}", summary="One silence", tags=["silences"])
async def get_silence(monitor: MonitorDep, silence_id: FromPath[str]) -> SilenceInfo:
    """A silence by id; 404 when there is none."""
    return _info(await _find(monitor, silence_id), monitor.clock.now_ns())


@delete("/silences/{silence_id:str}", status_code=200, opt={"scope": "write"}, summary="Expire a silence",
        tags=["silences"])
async def expire_silence(monitor: MonitorDep, silence_id: FromPath[str]) -> SilenceInfo:
    """End a silence now; it stays, expired, for history. 404 when there is none."""
    await _find(monitor, silence_id)
    return _info(await monitor.alerting.expire_silence(silence_id), monitor.clock.now_ns())


@post("/silences/preview", status_code=200, summary="The alerts a silence would mute now", tags=["silences"])
async def preview_silence(monitor: MonitorDep, data: JSONBody[Selector]) -> list[Alert]:
    """The pending and firing alerts these matchers cover (nothing is created)."""
    return await monitor.alerting.preview_silence(_matchers(data.matchers))


ROUTES = [list_silences, create_silence, get_silence, expire_silence, preview_silence]
