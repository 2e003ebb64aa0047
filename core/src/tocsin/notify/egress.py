"""The egress guard every HTTP channel goes through: no requests to loopback, private or metadata addresses.

A webhook URL is user input, and a monitoring server that POSTs wherever it is told is an SSRF tool
(cortex#2036). The guard allows http and https only, resolves the host and refuses if any address is not
globally routable (loopback, RFC 1918, CGNAT, link-local incl. 169.254.169.254, ULA, multicast, unspecified,
and those addresses embedded in IPv6 as mapped, 6to4, Teredo or NAT64), then connects to the vetted address
(pinning defeats DNS rebinding) with the original Host header and TLS server name. Redirects are never
followed, a response body is read up to a cap, and the URL httpx logs at INFO is cut to scheme://host/...
(a webhook URL's path is its token). `[notifications.egress] allow` lists hosts, addresses or networks that
may be private (tests allow 127.0.0.1); `allow_private = true` switches the guard off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from tocsin.errors import EgressDenied

if TYPE_CHECKING:  # httpx is imported when a URL is checked or a client built, not when tocsin starts
    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True for a globally routable unicast address (and for IPv6 whose embedded IPv4 is one)."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return is_public(inner)
    return ip.is_global and not ip.is_multicast


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host:port (the event loop's getaddrinfo)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


class EgressGuard:
    """Decides which URLs HTTP channels may reach, and builds httpx clients that enforce it."""

    def __init__(
        self,
        allow: Sequence[str] = (),
        *,
        allow_private: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        resolver: Resolver | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.max_response_bytes = max_response_bytes
        self.resolver = resolver or system_resolver
        self.transport = transport
        self.allowed_hosts: set[str] = set()
        self.allowed_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in allow:
            try:
                self.allowed_networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.allowed_hosts.add(entry.strip().lower().rstrip("."))

    def _allowed(self, ip: IPAddress) -> bool:
        return self.allow_private or is_public(ip) or any(ip in network for network in self.allowed_networks)

    def check_url(self, url: str | httpx.URL) -> httpx.URL:
        """Check what can be checked without DNS (scheme, host, a literal address); raise EgressDenied."""
        import httpx

        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as error:
            raise EgressDenied(f"not a valid URL: {error}") from None
        if parsed.scheme not in ("http", "https"):
            raise EgressDenied(f"only http and https URLs are allowed, got {parsed.scheme or 'no'} scheme")
        if not parsed.host:
            raise EgressDenied("the URL has no host")
        try:
            literal = ipaddress.ip_address(parsed.host)
        except ValueError:
            return parsed
        if not self._allowed(literal):
            raise EgressDenied(_refusal(parsed.host, literal))
        return parsed

    async def resolve(self, url: httpx.URL) -> str:
        """The vetted address to connect to for `url`; EgressDenied if any address of its host is refused."""
        import httpx

        url = self.check_url(url)
        host = url.host
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            pass
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(address.split("%")[0]) for address in await self.resolver(host, port)]
        except OSError as error:
            raise httpx.ConnectError(f"could not resolve {host}: {error}") from None
        if not addresses:
            raise httpx.ConnectError(f"could not resolve {host}: no addresses")
        if host.lower().rstrip(".") not in self.allowed_hosts:
            for address in addresses:
                if not self._allowed(address):
                    raise EgressDenied(_refusal(host, address))
        return str(addresses[0])

    def client(self, timeout_s: float | None = None) -> httpx.AsyncClient:
        """An httpx client whose every request passes this guard; no redirects, no proxies from the environment."""
        import httpx

        from tocsin.notify.transport import GuardedTransport

        timeout = httpx.Timeout(None if timeout_s is None else timeout_s + 5.0)
        transport = GuardedTransport(self.resolve, self.max_response_bytes, self.transport)
        return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False, timeout=timeout)


def _refusal(host: str, address: IPAddress) -> str:
    return (f"refusing to connect to {host}: {address} is not a public address; "
            "list it in [notifications.egress] allow to permit it")
