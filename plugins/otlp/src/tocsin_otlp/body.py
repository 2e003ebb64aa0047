"""A request body as OTLP allows it: its encoding from `Content-Type`, gzip undone, both under one size limit.

The limit holds for the body as sent and again after decompression, which is read in bounded steps, so a
small gzip that inflates to gigabytes (a "gzip bomb") is stopped at the limit instead of filling memory.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable
from typing import Literal

from tocsin_otlp.errors import ExportRefused

Encoding = Literal["protobuf", "json"]
PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")
JSON_TYPE = "application/json"
_GZIP = 16 + zlib.MAX_WBITS
_STEP = 1024 * 1024


def encoding_of(content_type: str | None) -> Encoding:
    """`protobuf` or `json` for a Content-Type (parameters such as charset ignored); 415 for anything else."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in PROTOBUF_TYPES:
        return "protobuf"
    if media == JSON_TYPE:
        return "json"
    raise ExportRefused(415, f"unsupported Content-Type {media[:100]!r}: send application/x-protobuf or "
                             "application/json")


def too_large(limit: int) -> ExportRefused:
    """The 413 for a body over `limit` bytes (as sent or decompressed)."""
    return ExportRefused(413, f"request body is over {limit} bytes (as sent or after decompression)")


async def read(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """The whole body of a streamed request, or 413 as soon as it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def inflate(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body with its Content-Encoding (none, identity or gzip) undone; 413 past `limit`, 400 if corrupt."""
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        if len(body) > limit:
            raise too_large(limit)
        return body
    if coding != "gzip":
        raise ExportRefused(415, f"unsupported Content-Encoding {coding[:50]!r}: send gzip or none")
    out: list[bytes] = []
    size = 0
    data = body
    try:
        while data:  # one gzip member after another, as gzip.decompress reads them
            stream = zlib.decompressobj(_GZIP)
            while data:
                piece = stream.decompress(data, _STEP)
                size += len(piece)
                if size > limit:
                    raise too_large(limit)
                out.append(piece)
                data = stream.unconsumed_tail
            if not stream.eof:
                raise ExportRefused(400, "the gzip body is truncated")
            data = stream.unused_data
    except zlib.error as error:
        raise ExportRefused(400, f"the body is not valid gzip: {error}") from None
    return b"".join(out)
