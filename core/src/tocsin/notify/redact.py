"""Scrubbing for the delivery log: secrets and URL paths out, length capped, before an error is stored.

Webhook URLs are secrets (the token is in the path), and httpx puts the full URL into its exception messages,
so an attempt's error text has every secret value of the channel's config replaced by `<secret>`, every URL
cut to scheme and host, and is capped at 1 KiB.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

from tocsin.values import Secret

MAX_ERROR_CHARS = 1024
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^/\s@'\"<>]*@)?([^/\s'\"<>]+)([^\s'\"<>]*)")


def secrets_in(config: object) -> list[str]:
    """Every secret value inside a config Struct (nested Structs, lists and dicts included).

    A secret URL also yields its path (with and without the query): servers echo a request's path in their
    errors without the host, and a webhook's path is its token.
    """
    found: list[str] = []
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, Secret):
            if value.reveal():
                found.append(value.reveal())
                url = _URL.fullmatch(value.reveal().strip())
                if url and len(url.group(3)) > 1:
                    found += {url.group(3), url.group(3).split("?")[0]} - {"/"}
        elif isinstance(value, msgspec.Struct):
            stack.extend(getattr(value, name) for name in value.__struct_fields__)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return found


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """The text with secret values replaced, URLs cut to scheme://host/…, and at most 1 KiB long."""
    text = _URL.sub(lambda match: match.group(1) + match.group(2) + ("/…" if match.group(3) else ""), text)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "<secret>")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
