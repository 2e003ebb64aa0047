"""W3C Trace Context over HTTP: traceparent/tracestate parsing and formatting, inject/extract, middlewares.

Incoming: `extract(headers)` returns the caller's `SpanContext` (remote=True), or None when there is no
valid `traceparent`, in which case the server starts a new trace; it never raises on bad headers.
Outgoing: `inject(headers)` writes the current span's `traceparent` (and `tracestate`); `inject_httpx`
and `inject_httpx_async` are the same as httpx request event hooks. `ASGITracingMiddleware` and
`WSGITracingMiddleware` open a "server" span per request, parented on the incoming headers.

tracestate handling: members are split on commas with optional whitespace, invalid members and repeated
keys (after the first) are dropped, at most 32 members are kept, and the header is cut to 512 characters
by removing members longer than 128 characters first, then members from the right.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from tocsin.signals.context import current_span
from tocsin.signals.tracing import ActiveSpan, SpanContext, Tracer, use_span

MAX_TRACESTATE_MEMBERS = 32
MAX_TRACESTATE_LENGTH = 512
LONG_TRACESTATE_MEMBER = 128

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_KEY = re.compile(r"[a-z0-9][a-z0-9_\-*/@]{0,255}")
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_OWS = " \t"
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16

Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]
ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# -- header values ----------------------------------------------------------------------------------


def parse_traceparent(traceparent: str, tracestate: str = "") -> SpanContext | None:
    """The remote SpanContext a traceparent value describes (with its tracestate), or None if invalid.

    Version ff is invalid; version 00 must end after the flags; a later version is read by its first four
    fields. All-zero ids and uppercase hex are invalid.
    """
    match = _TRACEPARENT.fullmatch(traceparent.strip(_OWS))
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE_ID or span_id == _ZERO_SPAN_ID:
        return None
    state = format_tracestate(parse_tracestate(tracestate)) if tracestate else ""
    return SpanContext(trace_id, span_id, bool(int(flags, 16) & 1), remote=True, tracestate=state)


def format_traceparent(span: ActiveSpan | SpanContext) -> str:
    """The version-00 traceparent value for a span or span context."""
    return f"00-{span.trace_id}-{span.span_id}-{'01' if span.sampled else '00'}"


def parse_tracestate(tracestate: str) -> list[tuple[str, str]]:
    """The valid (key, value) members of a tracestate value, in order; invalid and repeated keys dropped."""
    members: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in tracestate.split(","):
        key, equals, value = raw.strip(_OWS).partition("=")
        if equals and key not in seen and _KEY.fullmatch(key) and _VALUE.fullmatch(value):
            seen.add(key)
            members.append((key, value))
    return members


def format_tracestate(members: Iterable[tuple[str, str]]) -> str:
    """A tracestate value: at most 32 members and 512 characters (long members go first, then from the right)."""
    entries = [f"{key}={value}" for key, value in members][:MAX_TRACESTATE_MEMBERS]
    while entries and sum(map(len, entries)) + len(entries) - 1 > MAX_TRACESTATE_LENGTH:
        long = [index for index, entry in enumerate(entries) if len(entry) > LONG_TRACESTATE_MEMBER]
        del entries[long[-1] if long else -1]
    return ",".join(entries)


# -- carriers ---------------------------------------------------------------------------------------


def extract(headers: Headers) -> SpanContext | None:
    """The caller's span context from request headers (any name case), or None to start a new trace.

    `headers` is a mapping (a dict, httpx.Headers, ...) or (name, value) pairs of str or bytes (ASGI). More
    than one traceparent header is invalid; several tracestate headers are joined.
    """
    multi_items = getattr(headers, "multi_items", None)
    if multi_items is not None:
        items = multi_items()
    elif isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = headers
    traceparents: list[str] = []
    tracestates: list[str] = []
    for key, value in items:
        name = key.decode("latin-1") if isinstance(key, bytes) else key
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if not isinstance(name, str) or not isinstance(text, str):
            continue
        name = name.lower()
        if name == "traceparent":
            traceparents.append(text)
        elif name == "tracestate":
            tracestates.append(text)
    if len(traceparents) != 1:
        return None
    return parse_traceparent(traceparents[0], ",".join(tracestates))


def inject(headers: MutableMapping[str, str], span: ActiveSpan | SpanContext | None = None) -> None:
    """Write `traceparent` (and `tracestate`) for `span`, by default the current span, into outgoing headers."""
    if span is None:
        span = current_span.get()
        if span is None:
            return
    headers["traceparent"] = format_traceparent(span)
    if span.tracestate:
        headers["tracestate"] = span.tracestate


def inject_httpx(request: Any) -> None:
    """httpx.Client request hook: `httpx.Client(event_hooks={"request": [inject_httpx]})`."""
    inject(request.headers)


async def inject_httpx_async(request: Any) -> None:
    """httpx.AsyncClient request hook (AsyncClient hooks must be coroutines)."""
    inject(request.headers)


# -- server middlewares -----------------------------------------------------------------------------


def _record_response(span: ActiveSpan, status_code: int) -> None:
    span.set_attribute("http.response.status_code", status_code)
    if status_code >= 500:
        span.set_status("error", f"HTTP {status_code}")


class ASGITracingMiddleware:
    """Wraps an ASGI app: each HTTP request runs in a "server" span parented on its traceparent header."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Handle one ASGI connection; non-HTTP scopes (lifespan, websocket) pass straight through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        path = scope.get("path", "/")
        attributes = {"http.request.method": method, "url.path": path, "url.scheme": scope.get("scheme", "http")}
        if scope.get("query_string"):
            attributes["url.query"] = scope["query_string"].decode("latin-1")
        if scope.get("client"):
            attributes["client.address"] = scope["client"][0]
        parent = extract(scope.get("headers") or ())
        with self.tracer.span(f"{method} {path}", kind="server", parent=parent, attributes=attributes) as span:

            async def send_traced(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    _record_response(span, message["status"])
                await send(message)

            await self.app(scope, receive, send_traced)


class WSGITracingMiddleware:
    """Wraps a WSGI app: each request runs in a "server" span that ends when the server closes the body."""

    def __init__(self, app: WSGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Handle one request; the body is iterated with the server span current."""
        method = environ.get("REQUEST_METHOD", "GET")
        path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
        attributes = {
            "http.request.method": method,
            "url.path": path,
            "url.scheme": environ.get("wsgi.url_scheme", "http"),
        }
        if environ.get("QUERY_STRING"):
            attributes["url.query"] = environ["QUERY_STRING"]
        if environ.get("REMOTE_ADDR"):
            attributes["client.address"] = environ["REMOTE_ADDR"]
        traceparent = environ.get("HTTP_TRACEPARENT")
        parent = parse_traceparent(traceparent, environ.get("HTTP_TRACESTATE", "")) if traceparent else None
        span = self.tracer.start_span(f"{method} {path}", kind="server", parent=parent, attributes=attributes)

        def start_traced(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            code = status.split(" ", 1)[0]
            if code.isascii() and code.isdigit():
                _record_response(span, int(code))
            return start_response(status, headers, exc_info)

        try:
            with use_span(span):
                body = self.app(environ, start_traced)
        except Exception as exc:
            span.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return _TracedBody(body, span)


class _TracedBody:
    """A WSGI response body that is iterated with its server span current and ends the span on close()."""

    def __init__(self, body: Iterable[bytes], span: ActiveSpan) -> None:
        self._body = body
        self._span = span

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._body)
        while True:
            with use_span(self._span):
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                except Exception as exc:
                    self._span.__exit__(type(exc), exc, exc.__traceback__)
                    raise
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._span.end()
