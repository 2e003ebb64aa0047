"""The interface every notification channel implements, and how its failures are classified.

A channel is a class with a nested `Config` Struct and `async send(notification)`; that is all a third-party
channel needs. The dispatcher owns retries, backoff, timeouts, rate limits and isolation; a channel only says
what a failure means (`classify_error`), how to check its config (`validate_config`), what it would send
(`render_preview`), and optionally its per-attempt `timeout_s`, `rate_limit` per `destination()` and
`max_batch` (how many alerts one message may carry; PagerDuty-like channels use 1).

HTTP channels use `self.http`: an httpx client behind the egress guard (`tocsin.notify.egress`), so every request
is checked after DNS resolution, pinned to the vetted address, never redirected, and its response read capped.
"""

from __future__ import annotations

import abc
import email.utils
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import msgspec

from tocsin.errors import DeliveryError, DeliveryRefused, EgressDenied
from tocsin.models import Notification

if TYPE_CHECKING:
    import httpx

    from tocsin.notify.egress import EgressGuard
    from tocsin.runtime import Runtime

MAX_ERROR_BODY = 1024


@dataclass(frozen=True)
class RateLimit:
    """At most `count` messages per `per_s` seconds to one destination, with bursts of up to `burst`."""

    count: int
    per_s: float
    burst: int = 1

    @property
    def interval_s(self) -> float:
        """Seconds between messages at the steady rate."""
        return self.per_s / self.count


@dataclass(frozen=True)
class Verdict:
    """What a failed attempt means: retry with backoff, give up, or retry after a server-given delay."""

    kind: Literal["retryable", "permanent", "rate_limited"]
    retry_after_s: float | None = None
    status_code: int | None = None

    @classmethod
    def retryable(cls, status_code: int | None = None) -> Verdict:
        """A transient failure (network, timeout, 5xx): retry with backoff."""
        return cls("retryable", None, status_code)

    @classmethod
    def permanent(cls, status_code: int | None = None) -> Verdict:
        """A failure retrying cannot fix (4xx, refused egress, a bug in the channel)."""
        return cls("permanent", None, status_code)

    @classmethod
    def rate_limited(cls, retry_after_s: float | None, status_code: int | None = 429) -> Verdict:
        """The destination asked us to slow down; retry no sooner than `retry_after_s` when it said so."""
        return cls("rate_limited", retry_after_s, status_code)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # a peer's "³" is unreadable, not a crash
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def raise_for_status(response: httpx.Response, what: str) -> None:
    """Raise DeliveryRefused for a non-2xx response: status, Retry-After and the body's first 1 KiB."""
    import httpx

    if response.is_success:
        return
    status = response.status_code
    try:
        body = response.text[:MAX_ERROR_BODY]
    except httpx.ResponseNotRead:
        body = ""
    if response.is_redirect:
        raise DeliveryRefused(f"{what} answered {status} (a redirect; redirects are not followed)",
                              status_code=status, permanent=True)
    raise DeliveryRefused(f"{what} answered {status}: {body}".rstrip(": "), status_code=status,
                          retry_after_s=parse_retry_after(response.headers.get("retry-after")))


def classify_status(status: int, retry_after_s: float | None = None) -> Verdict:
    """The HTTP retry matrix: 429 rate limited, 408 and 5xx retryable, every other status permanent."""
    if status == 429:
        return Verdict.rate_limited(retry_after_s, status)
    if status == 408 or status >= 500:
        return Verdict.retryable(status)
    return Verdict.permanent(status)


class NotificationChannel(abc.ABC):
    """Delivers notifications to one destination; built as `Channel(config, name=...)`.

    Subclasses set a nested `Config` Struct (its fields are the channel's keys in `[[channels]]`) and
    implement `send`, raising `DeliveryError` when the destination refuses (`DeliveryRefused` with the
    status code, or `raise_for_status(response, ...)`, lets the dispatcher tell a retry from a give-up).
    The notify service sets `egress` and `monitor` on each channel it builds.
    """

    Config: ClassVar[type[msgspec.Struct]]
    timeout_s: ClassVar[float | None] = None
    """Per-attempt timeout; None uses `[notifications] timeout` (10 s). SMTP channels use 30."""
    rate_limit: ClassVar[RateLimit | None] = None
    """How fast one destination may be sent to (Slack: RateLimit(1, 1.0)); None for no limit."""
    max_batch: ClassVar[int | None] = None
    """How many alerts one message may carry; None for a whole group, 1 for one message per alert."""

    monitor: Runtime | None = None
    egress: EgressGuard | None = None
    _http: httpx.AsyncClient | None = None

    def __init__(self, config: msgspec.Struct, *, name: str = "") -> None:
        self.config = config
        self.name = name or type(self).__name__

    @abc.abstractmethod
    async def send(self, notification: Notification) -> None:
        """Deliver one notification, or raise DeliveryError."""

    def validate_config(self) -> list[str]:
        """Problems with this channel's config beyond what its Struct checks (e.g. a URL egress refuses)."""
        return []

    def classify_error(self, error: BaseException) -> Verdict:
        """What a failed `send` means. The default knows DeliveryRefused, httpx errors and network errors.

        A plain DeliveryError is retried; any other exception is taken as a bug in the channel and not retried.
        """
        if isinstance(error, EgressDenied):
            return Verdict.permanent()
        if isinstance(error, DeliveryRefused):
            if error.permanent is not None:
                return Verdict.permanent(error.status_code) if error.permanent else Verdict.retryable(error.status_code)
            if error.status_code is not None:
                return classify_status(error.status_code, error.retry_after_s)
            return Verdict.retryable()
        httpx = sys.modules.get("httpx")  # an httpx error means httpx is loaded; never import it just to check
        if httpx is not None and isinstance(error, httpx.HTTPStatusError):
            response = error.response
            return classify_status(response.status_code, parse_retry_after(response.headers.get("retry-after")))
        if httpx is not None and isinstance(error, httpx.TransportError):
            return Verdict.retryable()
        if isinstance(error, OSError | TimeoutError | DeliveryError):
            return Verdict.retryable()
        return Verdict.permanent()

    def render_preview(self, notification: Notification) -> dict[str, Any]:
        """What `send` would send for this notification, without sending it (shown by previews)."""
        return {"title": notification.title, "body": notification.body}

    def destination(self) -> str:
        """The key rate limits apply to (a webhook URL, a routing key); by default the channel's name."""
        return self.name

    @property
    def http(self) -> httpx.AsyncClient:
        """An httpx client behind this channel's egress guard, created on first use and closed by `aclose`."""
        if self._http is None:
            from tocsin.notify.egress import EgressGuard

            guard = self.egress or EgressGuard()
            self._http = guard.client(timeout_s=self.timeout_s)
        return self._http

    async def aclose(self) -> None:
        """Release what the channel holds (its HTTP client)."""
        if self._http is not None:
            client, self._http = self._http, None
            await client.aclose()
