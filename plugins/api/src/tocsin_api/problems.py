"""Errors as RFC 9457 problem details (`application/problem+json`) with a stable `type` per kind.

Every error of the API is one of these kinds, so a client can branch on `type` and show `detail`:
`urn:tocsin:problem:<kind>`, where kind is validation, bad-query, not-found, unauthorized, forbidden,
too-large, rate-limited, conflict, unavailable or internal. A validation problem lists each field with the
reason in `errors`. A 500 never carries the exception's text (it may hold data or secrets); it is logged.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from tocsin import ConfigError, QueryError, StorageError
from tocsin.ext import StorageUnavailable

log = logging.getLogger("tocsin.api")

PROBLEM_JSON = "application/problem+json"

_KINDS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("unprocessable", "Unprocessable content"),
    429: ("rate-limited", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


class FieldError(msgspec.Struct, kw_only=True):
    """One field of a request that is wrong, and why."""

    field: str
    reason: str
    source: str = ""


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem details body."""

    type: str
    title: str
    status: int
    detail: str = ""
    instance: str = ""
    errors: list[FieldError] = []


def problem(request: Request[Any, Any, Any], status: int, detail: str, *, kind: str | None = None,
            errors: list[FieldError] | None = None, headers: dict[str, str] | None = None) -> Response[Problem]:
    """A problem+json response for `request`."""
    default_kind, title = _KINDS.get(status, ("internal", "Internal server error"))
    body = Problem(type=f"urn:tocsin:problem:{kind or default_kind}", title=title, status=status, detail=detail,
                   instance=request.url.path, errors=errors or [])
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_AT = re.compile(r" - at `\$\.data(?P<path>[^`]*)`$")


def _field(item: dict[str, Any], cause: BaseException | None) -> FieldError:
    """One field error; a body field is named by its path (`[1].level`) where msgspec said where."""
    source = item.get("source", "")
    source = getattr(source, "value", source)  # Litestar gives the ParamType enum for parameters
    field, reason = str(item.get("key") or "body"), str(item.get("message", ""))
    where = _AT.search(str(cause or ""))
    if field == "data" and where is not None and where.group("path"):
        field = where.group("path").lstrip(".")
    return FieldError(field=field, reason=reason, source=str(source))


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [_field(item, exc.__cause__) for item in extra if isinstance(item, dict)]
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors) or str(exc.detail)
    return problem(request, 400, detail, kind="validation", errors=errors)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    headers = dict(exc.headers or {})
    if exc.status_code == 429 and "Retry-After" not in headers:  # clients (and OTLP exporters) honour it
        headers["Retry-After"] = str(max(1, int(headers.get("RateLimit-Reset", "1") or 1)))
    return problem(request, exc.status_code, str(exc.detail), headers=headers)


def _query(request: Request[Any, Any, Any], exc: QueryError) -> Response[Problem]:
    return problem(request, 400, str(exc), kind="bad-query")


def _config(request: Request[Any, Any, Any], exc: ConfigError) -> Response[Problem]:
    errors = [FieldError(field=p.path, reason=p.message) for p in exc.problems]
    return problem(request, 422, str(exc), kind="invalid-config", errors=errors)


def _storage(request: Request[Any, Any, Any], exc: StorageError) -> Response[Problem]:
    if isinstance(exc, StorageUnavailable):
        return problem(request, 503, "storage is busy; try again", headers={"Retry-After": "1"})
    log.warning("tocsin-api: storage error on %s %s: %r", request.method, request.url.path, exc)
    return problem(request, 500, "storage error", kind="internal")


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.exception("tocsin-api: unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "internal error", kind="internal")


PROBLEM_RESPONSES: dict[int, ResponseSpec] = {
    status: ResponseSpec(data_container=Problem, media_type=PROBLEM_JSON, description=title, generate_examples=False)
    for status, (_, title) in _KINDS.items() if status not in (405, 415)
} | {500: ResponseSpec(data_container=Problem, media_type=PROBLEM_JSON, description="Internal server error",
                       generate_examples=False)}

EXCEPTION_HANDLERS: dict[Any, Any] = {
    ValidationException: _validation,
    HTTPException: _http,
    QueryError: _query,
    ConfigError: _config,
    StorageError: _storage,
    Exception: _internal,
}


