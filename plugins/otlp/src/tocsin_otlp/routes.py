"""`POST /v1/traces`, `/v1/logs` and `/v1/metrics` on `tocsin serve`: OTLP/HTTP as the spec has it.

Each route needs the `write` scope. The body is read in chunks up to `[plugins.otlp] max_body_bytes` (the
server's own `max_body_bytes` does not apply here, so the OTLP limit is the one a client meets), and every
answer, refusals included, is in the request's encoding: an `Export*ServiceResponse` or a `google.rpc.Status`.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from tocsin_otlp.answers import MEDIA_TYPES, status_body
from tocsin_otlp.body import Encoding, encoding_of, read, too_large
from tocsin_otlp.errors import ExportRefused
from tocsin_otlp.receiver import SIGNALS, Receiver


def refused(refusal: ExportRefused, encoding: Encoding) -> Response[bytes]:
    """The HTTP answer to a refused export: its status, a Status body, Retry-After when retryable."""
    headers = {"Retry-After": str(refusal.retry_after_s)} if refusal.retry_after_s is not None else None
    return Response(status_body(refusal, encoding), status_code=refusal.status, media_type=MEDIA_TYPES[encoding],
                    headers=headers)


def _handler(receiver: Receiver, signal: str) -> HTTPRouteHandler:
    limit = receiver.settings.max_body_bytes

    async def export(request: Request[Any, Any, Any]) -> Response[bytes]:
        content_type = request.headers.get("content-type")
        try:
            encoding = encoding_of(content_type)
        except ExportRefused as refusal:
            return refused(refusal, "json" if "json" in (content_type or "").lower() else "protobuf")
        try:
            refusal = receiver.busy()
            if refusal is not None:
                raise refusal
            if (request.content_length or 0) > limit:
                raise too_large(limit)
            body = await read(request.stream(), limit)
            result = await receiver.export(signal, body, content_type=content_type,
                                           content_encoding=request.headers.get("content-encoding"))
        except ExportRefused as refusal:
            return refused(refusal, encoding)
        return Response(result.body, status_code=200, media_type=MEDIA_TYPES[encoding])

    export.__doc__ = (f"Store an OTLP {signal} export (ExportServiceRequest as protobuf or OTLP/JSON, gzip or "
                      "not); partial success names the records refused.")
    return post(f"/v1/{signal}", opt={"scope": "write"}, request_max_body_size=None, status_code=200,
                operation_id=f"otlpExport{signal.title()}", summary=f"OTLP/HTTP {signal} export",
                tags=["otlp"], name=f"otlp-{signal}")(export)


def handlers(receiver: Receiver) -> list[HTTPRouteHandler]:
    """The three OTLP/HTTP routes of `receiver`."""
    return [_handler(receiver, signal) for signal in SIGNALS]
