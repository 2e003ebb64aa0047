"""The httpx transport behind `EgressGuard.client()`: each request vetted and pinned to its address, bodies capped.

Kept apart from the guard so that httpx is imported only when a channel builds a client, not when tocsin starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that vets each request with the guard, pins the address and caps the response."""

    def __init__(self, resolve: Callable[[httpx.URL], Awaitable[str]], max_response_bytes: int,
                 inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.resolve = resolve
        self.max_response_bytes = max_response_bytes
        self.inner = inner or httpx.AsyncHTTPTransport(trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Resolve and check the host, connect to the vetted address, and wrap the body in a byte cap."""
        host = request.url.host
        address = await self.resolve(request.url)
        extensions = request.extensions
        if address != host and request.url.scheme == "https":
            extensions = {**extensions, "sni_hostname": host}
        forwarded = httpx.Request(request.method, request.url.copy_with(host=address), headers=request.headers,
                                  stream=request.stream, extensions=extensions)
        response = await self.inner.handle_async_request(forwarded)
        # httpx logs request.url at INFO once this returns: cut it to scheme://host/... (webhook paths are tokens)
        request.url = request.url.copy_with(path="/..." if request.url.path != "/" else "/", query=None)
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=CappedStream(stream, self.max_response_bytes),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close the inner transport's connections."""
        await self.inner.aclose()


class CappedStream(httpx.AsyncByteStream):
    """A response body that stops after `limit` bytes (the rest is never read) and closes the connection."""

    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        left = self.limit
        async for chunk in self.inner:
            if len(chunk) >= left:
                yield chunk[:left]
                break
            left -= len(chunk)
            yield chunk

    async def aclose(self) -> None:
        """Close the underlying stream (and so the connection when it was cut short)."""
        await self.inner.aclose()
