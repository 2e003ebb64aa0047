"""Built-in health check types: http, tcp, disk, storage and memory, plus the core's callable and heartbeat.

Each is a `HealthCheck` with a `Config` Struct whose fields are the extra keys of its `[[health.checks]]`
entry. The scheduler applies the component's timeout from outside (a hung check is cancelled), so the checks
themselves set no timeouts. httpx is imported on the first http check, not with tocsin.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from tocsin.health.check import CheckOutcome, HealthCheck
from tocsin.health.local import CallableCheck, HeartbeatCheck
from tocsin.hookspecs import hookimpl
from tocsin.values import Duration, Secret

if TYPE_CHECKING:
    from tocsin.runtime import Runtime

Percent = Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
MiB = 1024 * 1024


def _latency_outcome(latency: float, degraded_after: float | None, what: str, **details: Any) -> CheckOutcome:
    """Healthy, or degraded when slower than `degraded_after`; the latency is the observed value."""
    if degraded_after is not None and latency > degraded_after:
        return CheckOutcome(status="degraded", message=f"{what} took {latency:.3f}s (over {degraded_after:g}s)",
                            observed=latency, details=details)
    return CheckOutcome(message=f"{what} in {latency:.3f}s", observed=latency, details=details)


class HttpCheck(HealthCheck):
    """Requests a URL: unhealthy on a connection error, an unexpected status or a body that does not match."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        url: str
        method: Literal["GET", "HEAD", "POST"] = "GET"
        headers: dict[str, Secret] = {}
        expected_status: list[int] = []  # empty: any 2xx or 3xx
        body_match: str | None = None  # a regular expression searched in the response text
        degraded_after: Duration | None = None
        verify_tls: bool = True

        def __post_init__(self) -> None:
            if self.body_match is not None:
                try:
                    re.compile(self.body_match)
                except re.error as error:
                    raise ValueError(f"body_match: not a valid regular expression ({error})") from None

    def __init__(self, config: msgspec.Struct, *, name: str = "", monitor: Runtime | None = None) -> None:
        super().__init__(config, name=name, monitor=monitor)
        self._client: Any = None
        self._body = re.compile(self.config.body_match) if self.config.body_match is not None else None

    async def check(self) -> CheckOutcome:
        import httpx

        cfg = self.config
        if self._client is None:
            self._client = httpx.AsyncClient(verify=cfg.verify_tls, follow_redirects=False, timeout=None)
        started = time.perf_counter()
        try:
            response = await self._client.request(
                cfg.method, cfg.url, headers={key: value.reveal() for key, value in cfg.headers.items()}
            )
        except httpx.HTTPError as error:
            return CheckOutcome(status="unhealthy", message=f"{cfg.method} {cfg.url} failed: {error!r}")
        latency = time.perf_counter() - started
        code = response.status_code
        expected = code in cfg.expected_status if cfg.expected_status else 200 <= code < 400
        if not expected:
            wanted = ", ".join(map(str, cfg.expected_status)) or "2xx or 3xx"
            return CheckOutcome(status="unhealthy", message=f"HTTP {code} (expected {wanted})", observed=latency,
                                details={"status_code": code})
        if self._body is not None and not self._body.search(response.text):
            return CheckOutcome(status="unhealthy", message=f"body does not match {cfg.body_match!r}",
                                observed=latency, details={"status_code": code})
        return _latency_outcome(latency, cfg.degraded_after, f"HTTP {code}", status_code=code)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class TcpCheck(HealthCheck):
    """Opens (and closes) a TCP connection; unhealthy when it cannot connect."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        host: str
        port: Port
        degraded_after: Duration | None = None

    async def check(self) -> CheckOutcome:
        cfg = self.config
        started = time.perf_counter()
        try:
            _, writer = await asyncio.open_connection(cfg.host, cfg.port)
        except OSError as error:
            return CheckOutcome(status="unhealthy", message=f"cannot connect to {cfg.host}:{cfg.port}: {error}")
        latency = time.perf_counter() - started
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return _latency_outcome(latency, cfg.degraded_after, f"connected to {cfg.host}:{cfg.port}")


class DiskCheck(HealthCheck):
    """Free space on the file system holding `path`, in percent: unhealthy or degraded below the thresholds."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        path: str = "."
        min_free_percent: Percent = 5.0
        degraded_below_percent: Percent = 10.0

    async def check(self) -> CheckOutcome:
        cfg = self.config
        usage = await asyncio.to_thread(shutil.disk_usage, cfg.path)  # statvfs can hang on a network mount
        free = 100.0 * usage.free / usage.total if usage.total else 0.0
        details = {"path": cfg.path, "free_bytes": usage.free, "total_bytes": usage.total}
        message = f"{free:.1f}% free on {cfg.path}"
        if free < cfg.min_free_percent:
            return CheckOutcome(status="unhealthy", message=f"{message} (below {cfg.min_free_percent:g}%)",
                                observed=free, details=details)
        if free < cfg.degraded_below_percent:
            return CheckOutcome(status="degraded", message=f"{message} (below {cfg.degraded_below_percent:g}%)",
                                observed=free, details=details)
        return CheckOutcome(message=message, observed=free, details=details)


class StorageCheck(HealthCheck):
    """The monitor's own storage backend answers a cheap `stats()` call."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        degraded_after: Duration | None = None

    async def check(self) -> CheckOutcome:
        storage = self.monitor.storage if self.monitor is not None else None
        if storage is None:
            return CheckOutcome(status="unhealthy", message="storage is not open")
        started = time.perf_counter()
        stats = await storage.stats()
        latency = time.perf_counter() - started
        return _latency_outcome(latency, self.config.degraded_after, f"{self.monitor.config.storage.backend} stats",
                                rows=sum(stats.rows.values()), bytes=stats.bytes)


def resident_bytes() -> int:
    """This process's resident memory: VmRSS from /proc, else the peak from getrusage (Linux KiB, macOS bytes)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class MemoryCheck(HealthCheck):
    """This process's resident memory in MiB: unhealthy or degraded above the thresholds (none by default)."""

    class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        max_rss_mb: Annotated[float, msgspec.Meta(gt=0)] | None = None
        degraded_rss_mb: Annotated[float, msgspec.Meta(gt=0)] | None = None

    async def check(self) -> CheckOutcome:
        cfg = self.config
        rss = resident_bytes() / MiB
        message = f"{rss:.1f} MiB resident"
        if cfg.max_rss_mb is not None and rss > cfg.max_rss_mb:
            return CheckOutcome(status="unhealthy", message=f"{message} (over {cfg.max_rss_mb:g} MiB)", observed=rss)
        if cfg.degraded_rss_mb is not None and rss > cfg.degraded_rss_mb:
            return CheckOutcome(status="degraded", message=f"{message} (over {cfg.degraded_rss_mb:g} MiB)",
                                observed=rss)
        return CheckOutcome(message=message, observed=rss)


@hookimpl
def register_health_checks(register):
    register("http", HttpCheck)
    register("tcp", TcpCheck)
    register("disk", DiskCheck)
    register("storage", StorageCheck)
    register("memory", MemoryCheck)
    register("callable", CallableCheck)
    register("heartbeat", HeartbeatCheck)

