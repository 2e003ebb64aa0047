"""The one error of the receiver: a request it will not take, with the HTTP status OTLP/HTTP prescribes."""

from __future__ import annotations

from tocsin import TocsinError


class ExportRefused(TocsinError):
    """An OTLP export refused as a whole: 400 undecodable, 413 too large, 415 unsupported content type or
    encoding, 503 busy (retry after `retry_after_s`). Nothing of the request was stored."""

    def __init__(self, status: int, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        """Whether an OTLP client should send the same request again (429 and 503 only)."""
        return self.status in (429, 503)
