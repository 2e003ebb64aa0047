"""W3C Trace Context: traceparent/tracestate parsing and formatting, inject/extract, ASGI and WSGI middleware."""

from __future__ import annotations

import wsgiref.util

import httpx
import pytest

from tocsin.models import Span
from tocsin.signals.buffer import BoundedBuffer
from tocsin.signals.propagation import (
    ASGITracingMiddleware,
    WSGITracingMiddleware,
    extract,
    format_traceparent,
    format_tracestate,
    inject,
    inject_httpx,
    inject_httpx_async,
    parse_traceparent,
    parse_tracestate,
)
from tocsin.signals.sampling import AlwaysOff
from tocsin.signals.tracing import SpanContext, Tracer

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
EXAMPLE = f"00-{TRACE}-{SPAN}-01"


@pytest.fixture
def tracer() -> Tracer:
    return Tracer(service="api", buffer=BoundedBuffer("spans", 1000))


def one_span(tracer: Tracer) -> Span:
    [span] = tracer.drain(0)
    return span


# -- traceparent -------------------------------------------------------------------------------------


def test_the_spec_example_parses():
    ctx = parse_traceparent(EXAMPLE)
    assert ctx == SpanContext(TRACE, SPAN, sampled=True, remote=True, tracestate="")


@pytest.mark.parametrize(
    ("flags", "sampled"), [("01", True), ("00", False), ("09", True), ("02", False), ("ff", True)]
)
def test_only_the_sampled_bit_of_the_flags_counts(flags, sampled):
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-{flags}").sampled is sampled


@pytest.mark.parametrize(
    "value", [EXAMPLE, f"00-{TRACE}-{SPAN}-00", "00-12345678901234567890123456789012-1234567890123456-01"]
)
def test_traceparent_round_trips(value):
    assert format_traceparent(parse_traceparent(value)) == value


@pytest.mark.parametrize("value", [f" {EXAMPLE}", f"\t{EXAMPLE}", f"{EXAMPLE} ", f"{EXAMPLE}\t", f"\t {EXAMPLE} \t"])
def test_surrounding_whitespace_is_ignored(value):
    assert parse_traceparent(value).trace_id == TRACE


@pytest.mark.parametrize(
    "value",
    [
        f"cc-{TRACE}-{SPAN}-01",
        f"cc-{TRACE}-{SPAN}-01-what-the-future-will-be-like",
        f"01-{TRACE}-{SPAN}-09-extra",
    ],
)
def test_a_future_version_is_read_by_its_first_four_fields(value):
    ctx = parse_traceparent(value)
    assert (ctx.trace_id, ctx.span_id, ctx.sampled) == (TRACE, SPAN, True)
    assert format_traceparent(ctx) == EXAMPLE  # sent on as version 00


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE}-{SPAN}-01.",
        f"cc-{TRACE}-{SPAN}-01.what-the-future-will-be-like",
        f"00-{TRACE.upper()}-{SPAN}-01",  # uppercase hex
        f"00-{TRACE}-{SPAN.upper()}-01",
        f"00-{TRACE}-{SPAN}-0A",
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero ids
        f"00-{TRACE}-{'0' * 16}-01",
        f".0-{TRACE}-{SPAN}-01",
        f"0-{TRACE}-{SPAN}-01",
        f"000-{TRACE}-{SPAN}-01",
        f"00-{TRACE}1-{SPAN}-01",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE[:-1]}.-{SPAN}-01",
        f"00-{TRACE}-{SPAN}1-01",
        f"00-{TRACE}-{SPAN[:-1]}-01",
        f"00-{TRACE}-{SPAN}-001",
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE}-{SPAN}-.0",
        f"00_{TRACE}_{SPAN}_01",
        f"{EXAMPLE}\n",
        f"{EXAMPLE}, {EXAMPLE}",  # two headers folded into one
    ],
)
def test_invalid_traceparents_are_rejected(value):
    assert parse_traceparent(value) is None


# -- tracestate --------------------------------------------------------------------------------------


def test_tracestate_round_trips():
    value = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    assert parse_tracestate(value) == [("rojo", "00f067aa0ba902b7"), ("congo", "t61rcWkgMzE")]
    assert format_tracestate(parse_tracestate(value)) == value


def test_tracestate_whitespace_and_empty_members():
    assert parse_tracestate("foo=1 \t , \t bar=2,\t \tbaz=3") == [("foo", "1"), ("bar", "2"), ("baz", "3")]
    assert parse_tracestate(",, foo=1 ,,") == [("foo", "1")]
    assert parse_tracestate("") == [] and parse_tracestate("  ") == []
    assert parse_tracestate("foo= leading") == [("foo", " leading")]  # leading spaces belong to the value


def test_every_allowed_tracestate_character_is_kept():
    key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
    value = "".join(map(chr, [*range(0x20, 0x2C), *range(0x2D, 0x3D), *range(0x3E, 0x7F)]))
    assert parse_tracestate(f"{key}={value}") == [(key, value)]
    assert parse_tracestate(f"{key}@a-z0-9_-*/={value}") == [(f"{key}@a-z0-9_-*/", value)]


@pytest.mark.parametrize(
    "member",
    ["FOO=1", "foo.bar=1", "foo =1", "_foo=1", "foo", "=1", "foo=", "foo=a=b", "foo=caf\u00e9", "foo=\x01",
     f"{'k' * 257}=1", f"foo={'v' * 257}"],
)  # fmt: skip
def test_invalid_tracestate_members_are_dropped_and_the_rest_kept(member):
    assert parse_tracestate(f"a=1,{member},b=2") == [("a", "1"), ("b", "2")]


def test_a_repeated_tracestate_key_keeps_its_first_entry():
    assert parse_tracestate("foo=1,bar=2,foo=3") == [("foo", "1"), ("bar", "2")]


def test_tracestate_keeps_at_most_32_members():
    members = [(f"k{i}", str(i)) for i in range(40)]
    assert parse_tracestate(format_tracestate(members)) == members[:32]


def test_long_tracestate_drops_long_members_first_then_from_the_right():
    long_member = ("big", "x" * 200)
    small = [(f"k{i:02d}", "v" * 26) for i in range(20)]  # 30 characters each
    value = format_tracestate([small[0], long_member, *small[1:]])
    assert "big=" not in value  # dropped first although it is not the rightmost
    assert len(value) <= 512
    kept = parse_tracestate(value)
    assert kept == small[: len(kept)]  # then members were dropped from the right
    assert len(kept) == 16  # 16 * 30 + 15 commas = 495; a 17th would pass 512


# -- extract / inject --------------------------------------------------------------------------------


def test_extract_from_a_dict_with_any_header_case():
    assert extract({"TraceParent": EXAMPLE, "TRACESTATE": "foo=1"}) == SpanContext(
        TRACE, SPAN, sampled=True, remote=True, tracestate="foo=1"
    )


def test_extract_from_asgi_byte_pairs_joins_tracestate_headers():
    ctx = extract([(b"traceparent", EXAMPLE.encode()), (b"tracestate", b"foo=1,bar=2"), (b"tracestate", b""),
                   (b"tracestate", b"baz=3")])  # fmt: skip
    assert ctx.tracestate == "foo=1,bar=2,baz=3"


def test_extract_from_httpx_headers_sees_duplicates():
    headers = httpx.Headers([("traceparent", EXAMPLE), ("x-other", "1")])
    assert extract(headers).span_id == SPAN
    duplicated = httpx.Headers([("traceparent", EXAMPLE), ("traceparent", f"00-{TRACE}-{'1' * 16}-01")])
    assert extract(duplicated) is None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"tracestate": "foo=1"},  # tracestate alone is ignored
        {"trace-parent": EXAMPLE},
        {"traceparent": f"ff-{TRACE}-{SPAN}-01", "tracestate": "foo=1"},
        [("traceparent", EXAMPLE), ("traceparent", EXAMPLE)],  # a repeated traceparent is invalid
        {"traceparent": None},
    ],
)
def test_extract_returns_none_for_missing_or_invalid_context(headers):
    assert extract(headers) is None


def test_inject_writes_the_current_span(tracer):
    headers: dict[str, str] = {}
    inject(headers)
    assert headers == {}  # no current span, nothing to send
    with tracer.span("call", kind="client") as span:
        inject(headers)
    assert headers == {"traceparent": f"00-{span.trace_id}-{span.span_id}-01"}


def test_inject_carries_tracestate_and_the_unsampled_flag():
    tracer = Tracer(service="s", buffer=BoundedBuffer("spans", 10), sampler=AlwaysOff())
    parent = SpanContext(TRACE, SPAN, sampled=False, remote=True, tracestate="rojo=1")
    headers: dict[str, str] = {}
    with tracer.span("call", parent=parent) as span:
        inject(headers)
    assert headers == {"traceparent": f"00-{TRACE}-{span.span_id}-00", "tracestate": "rojo=1"}
    explicit: dict[str, str] = {}
    inject(explicit, parent)
    assert explicit == {"traceparent": f"00-{TRACE}-{SPAN}-00", "tracestate": "rojo=1"}


def test_a_trace_continues_across_an_inject_extract_round_trip():
    client_tracer = Tracer(service="client", buffer=BoundedBuffer("a", 10))
    server_tracer = Tracer(service="server", buffer=BoundedBuffer("b", 10))
    headers: dict[str, str] = {}
    with client_tracer.span("GET /items", kind="client") as call:
        inject(headers)
    with server_tracer.span("handle", kind="server", parent=extract(headers)):
        pass
    served = one_span(server_tracer)
    assert (served.trace_id, served.parent_span_id, served.service) == (call.trace_id, call.span_id, "server")


def test_inject_httpx_sets_headers_on_a_real_request(tracer):
    request = httpx.Request("GET", "http://example.invalid/items", headers={"Traceparent": "stale"})
    with tracer.span("client") as span:
        inject_httpx(request)
    assert request.headers.get_list("traceparent") == [format_traceparent(span)]


# -- ASGI --------------------------------------------------------------------------------------------


def make_asgi_app(tracer: Tracer, status: int = 200, fail: bool = False):
    seen: dict[str, object] = {}

    async def app(scope, receive, send):
        seen["span"] = tracer.current_span()
        if fail:
            raise RuntimeError("handler crashed")
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app, seen


async def call_asgi(app, headers=(), path="/items", query=b""):
    scope = {"type": "http", "method": "GET", "path": path, "scheme": "http", "query_string": query,
             "headers": list(headers), "client": ("10.0.0.7", 52000), "server": ("127.0.0.1", 8000)}  # fmt: skip
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_asgi_middleware_opens_a_server_span_under_the_incoming_trace(tracer):
    app, seen = make_asgi_app(tracer)
    sent = await call_asgi(ASGITracingMiddleware(app, tracer), [(b"traceparent", EXAMPLE.encode())], query=b"q=1")
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    span = one_span(tracer)
    assert seen["span"].span_id == span.span_id  # the handler ran inside the span
    assert (span.name, span.kind, span.trace_id, span.parent_span_id) == ("GET /items", "server", TRACE, SPAN)
    assert span.attributes == {
        "http.request.method": "GET",
        "url.path": "/items",
        "url.scheme": "http",
        "url.query": "q=1",
        "client.address": "10.0.0.7",
        "http.response.status_code": 200,
    }
    assert span.status == "unset"
    assert tracer.current_span() is None


async def test_asgi_middleware_starts_a_new_trace_on_an_invalid_header(tracer):
    app, _ = make_asgi_app(tracer)
    await call_asgi(ASGITracingMiddleware(app, tracer), [(b"traceparent", f"00-{TRACE.upper()}-{SPAN}-01".encode())])
    span = one_span(tracer)
    assert span.parent_span_id is None and span.trace_id != TRACE.lower()


async def test_asgi_middleware_marks_server_errors(tracer):
    app, _ = make_asgi_app(tracer, status=503)
    await call_asgi(ASGITracingMiddleware(app, tracer))
    span = one_span(tracer)
    assert (span.status, span.status_message, span.attributes["http.response.status_code"]) == (
        "error", "HTTP 503", 503,
    )  # fmt: skip


async def test_asgi_middleware_records_a_crashing_handler(tracer):
    app, _ = make_asgi_app(tracer, fail=True)
    with pytest.raises(RuntimeError, match="handler crashed"):
        await call_asgi(ASGITracingMiddleware(app, tracer))
    span = one_span(tracer)
    assert span.status == "error" and span.events[0].name == "exception"


async def test_asgi_middleware_passes_other_scopes_through(tracer):
    scopes = []

    async def app(scope, receive, send):
        scopes.append((scope["type"], tracer.current_span()))

    await ASGITracingMiddleware(app, tracer)({"type": "lifespan"}, None, None)
    assert scopes == [("lifespan", None)]
    assert tracer.drain(0) == []


async def test_httpx_client_to_asgi_app_continues_the_trace(tracer):
    server_tracer = Tracer(service="server", buffer=BoundedBuffer("server", 10))
    app, _ = make_asgi_app(server_tracer)
    transport = httpx.ASGITransport(app=ASGITracingMiddleware(app, server_tracer))
    hooks = {"request": [inject_httpx_async]}
    async with httpx.AsyncClient(transport=transport, base_url="http://svc", event_hooks=hooks) as client:
        with tracer.span("GET /items", kind="client") as call:
            response = await client.get("/items")
    assert response.status_code == 200 and response.text == "ok"
    served = one_span(server_tracer)
    assert (served.trace_id, served.parent_span_id) == (call.trace_id, call.span_id)


# -- WSGI --------------------------------------------------------------------------------------------


def wsgi_environ(path: str = "/report", **headers: str) -> dict:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "REMOTE_ADDR": "10.0.0.9"}
    environ.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    wsgiref.util.setup_testing_defaults(environ)
    return environ


def call_wsgi(app, environ) -> tuple[str, bytes]:
    statuses: list[str] = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        body.close()
    return statuses[0], data


def test_wsgi_middleware_spans_the_request_and_the_body(tracer):
    seen: dict[str, object] = {}

    def app(environ, start_response):
        seen["call"] = tracer.current_span()
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            seen["body"] = tracer.current_span()
            with tracer.span("render"):
                yield b"a"
            yield b"b"

        return body()

    middleware = WSGITracingMiddleware(app, tracer)
    environ = wsgi_environ(traceparent=EXAMPLE, tracestate="rojo=1")
    body = middleware(environ, lambda status, headers, exc_info=None: None)
    assert tracer.current_span() is None  # not left current while the server holds the body
    assert len(tracer.drain(0)) == 0  # the span is still open
    assert b"".join(body) == b"ab"
    body.close()
    spans = {span.name: span for span in tracer.drain(0)}
    server = spans["GET /report"]
    assert seen["call"].span_id == seen["body"].span_id == server.span_id
    assert (server.kind, server.trace_id, server.parent_span_id) == ("server", TRACE, SPAN)
    assert seen["call"].tracestate == "rojo=1"
    assert spans["render"].parent_span_id == server.span_id
    assert server.attributes == {
        "http.request.method": "GET",
        "url.path": "/report",
        "url.scheme": "http",
        "client.address": "10.0.0.9",
        "http.response.status_code": 200,
    }


def test_wsgi_middleware_marks_errors_and_new_traces(tracer):
    def app(environ, start_response):
        start_response("500 Internal Server Error", [])
        return [b"oops"]

    status, data = call_wsgi(WSGITracingMiddleware(app, tracer), wsgi_environ(traceparent="not-a-header"))
    assert (status, data) == ("500 Internal Server Error", b"oops")
    span = one_span(tracer)
    assert span.status == "error" and span.parent_span_id is None


def test_wsgi_middleware_records_a_crashing_app_and_body(tracer):
    def crashing(environ, start_response):
        raise LookupError("no report")

    with pytest.raises(LookupError):
        WSGITracingMiddleware(crashing, tracer)(wsgi_environ(), lambda *args: None)
    assert tracer.current_span() is None

    def crashing_body(environ, start_response):
        start_response("200 OK", [])
        yield b"partial"
        raise ValueError("stream broke")

    with pytest.raises(ValueError, match="stream broke"):
        call_wsgi(WSGITracingMiddleware(crashing_body, tracer), wsgi_environ())
    first, second = tracer.drain(0)
    assert first.status_message == "LookupError: no report"
    assert second.status_message == "ValueError: stream broke"
    assert second.events[0].attributes["exception.type"] == "ValueError"


def test_wsgi_body_close_is_passed_on_and_ends_the_span(tracer):
    closed = []

    class Body(list):
        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("204 No Content", [])
        return Body()

    body = WSGITracingMiddleware(app, tracer)(wsgi_environ(), lambda *args: None)
    body.close()  # closed without being iterated
    assert closed == [True]
    assert one_span(tracer).attributes["http.response.status_code"] == 204


def test_httpx_client_to_wsgi_app_continues_the_trace(tracer):
    server_tracer = Tracer(service="server", buffer=BoundedBuffer("server", 10))

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    transport = httpx.WSGITransport(app=WSGITracingMiddleware(app, server_tracer))
    hooks = {"request": [inject_httpx]}
    with (
        httpx.Client(transport=transport, base_url="http://svc", event_hooks=hooks) as client,
        tracer.span("GET /", kind="client") as call,
    ):
        response = client.get("/")
    assert response.text == "hello"
    served = one_span(server_tracer)
    assert (served.trace_id, served.parent_span_id) == (call.trace_id, call.span_id)
