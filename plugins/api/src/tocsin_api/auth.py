"""Who is calling, and what they may do: API keys with scopes from `[server] api_keys`.

Keys are kept only as SHA-256 digests and a presented token is compared with every digest in constant time
(`hmac.compare_digest`), so neither the keys nor their timing leak. A key's scopes are `read` (GET
endpoints), `write` (ingest, acknowledge, resolve, silences, heartbeats, test sends) and `admin`
(everything). With no keys configured the API is open, and `tocsin serve` refuses to listen on anything
but loopback. Plugins may identify callers another way through the `actor_from_request` hook.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from tocsin import Monitor
from tocsin.ext import ApiKey

SCOPES = ("read", "write", "admin")


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """A caller: the key's name (or "anonymous" on an open API) and its scopes."""

    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        """Whether this caller holds `scope` (admin holds every scope)."""
        return scope in self.scopes or "admin" in self.scopes


ANONYMOUS = Actor(name="anonymous", scopes=frozenset(SCOPES))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class KeyRing:
    """The configured API keys as digests; `actor(token)` finds the key a bearer token is."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = [(_digest(key.key.reveal()), Actor(name=key.name, scopes=frozenset(key.scopes)))
                      for key in keys]

    @property
    def open(self) -> bool:
        """True when no keys are configured: every caller may do everything."""
        return not self._keys

    def actor(self, token: str | None) -> Actor | None:
        """The caller a token belongs to, or None; every digest is compared, whatever matches first."""
        if self.open:
            return ANONYMOUS
        if not token:
            return None
        presented = _digest(token)
        found = None
        for digest, actor in self._keys:
            if hmac.compare_digest(digest, presented) and found is None:
                found = actor
        return found


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The token of `Authorization: Bearer <token>`, or of `?access_token=` on a WebSocket (browsers cannot
    set headers there)."""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if connection.scope["type"] == "websocket":
        return connection.query_params.get("access_token")
    return None


def actor_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor | None:
    """Who makes this request: a plugin's answer first, then the API keys."""
    state = connection.app.state
    monitor: Monitor = state.monitor
    hook = getattr(monitor.pm.hook, "actor_from_request", None)
    if hook is not None:
        actor = hook(monitor=monitor, request=connection)
        if actor is not None:
            return actor
    return state.keyring.actor(bearer_token(connection))


def scope_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Let the request through when its caller holds the handler's scope (`opt["scope"]`, default read)."""
    scope = handler.opt.get("scope", "read")
    if scope is None:
        return
    actor = actor_of(connection)
    if actor is None:
        raise NotAuthorizedException("an API key is needed: send `Authorization: Bearer <key>`",
                                     headers={"WWW-Authenticate": 'Bearer realm="tocsin"'})
    if not actor.may(scope):
        raise PermissionDeniedException(f"the key {actor.name!r} lacks the {scope!r} scope")
    connection.scope["user"] = actor
