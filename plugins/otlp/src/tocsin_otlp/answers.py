"""What the receiver answers, in the request's own encoding as OTLP/HTTP requires.

Success is the signal's `Export*ServiceResponse`: empty when every record was stored, with `partial_success`
(`rejected_<records>` and `error_message`) when some were refused. A refusal is a `google.rpc.Status` with
the gRPC code for its HTTP status and a message for developers. `Status` is two fields, so it is written
here by hand rather than pulling in googleapis-common-protos.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tocsin_otlp.body import JSON_TYPE, PROTOBUF_TYPES, Encoding
from tocsin_otlp.errors import ExportRefused

MEDIA_TYPES: dict[Encoding, str] = {"protobuf": PROTOBUF_TYPES[0], "json": JSON_TYPE}
GRPC_CODES = {400: 3, 413: 8, 415: 3, 429: 8, 503: 14}
"""google.rpc.Code per HTTP status: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE."""


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def status_body(refusal: ExportRefused, encoding: Encoding) -> bytes:
    """A `google.rpc.Status` for a refused request: protobuf bytes or its JSON form."""
    code = GRPC_CODES.get(refusal.status, 2)
    if encoding == "json":
        return msgspec.json.encode({"code": code, "message": refusal.message})
    message = refusal.message.encode("utf-8", "replace")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(message)) + message


def export_body(response: type[Any], partial: type[Any], field: str, rejected: int, message: str,
                encoding: Encoding) -> bytes:
    """An `Export*ServiceResponse`: empty on full success, else with `partial_success` set."""
    if not rejected and not message:
        return b"{}" if encoding == "json" else b""
    if encoding == "json":
        camel = "rejected" + field.removeprefix("rejected_").title().replace("_", "")
        return msgspec.json.encode({"partialSuccess": {camel: str(rejected), "errorMessage": message}})
    answer = response(partial_success=partial(**{field: rejected, "error_message": message}))
    return answer.SerializeToString()
