"""Newest-first keyset pagination in SQL, with the cursors `tocsin.storage.cursors` encodes.

A listing is ordered by a key of two columns, descending; the cursor is the key of the last item served,
and the next page is every row whose key is smaller. Rows written between two page requests neither
repeat nor shift the pages (the same semantics as the memory backend).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

from tocsin.ext import Page, decode_cursor, encode_cursor
from tocsin.ext import check_limit as _check_limit

T = TypeVar("T")


def check_limit(limit: int) -> None:
    """A page must hold at least one item (`tocsin.ext.check_limit`, the same rule and message everywhere).

    A query's `limit` is also capped at MAX_QUERY_LIMIT: the backend checks every query with
    `tocsin.ext.check_query_values` before it gets here. History reads (`alert_history`, `health_history`)
    take a plain limit, which only has to be at least 1.
    """
    _check_limit(limit)


def before(first: sa.ColumnElement, second: sa.ColumnElement) -> sa.ColumnElement:
    """Rows whose key (first, second) is smaller than the bound parameters `after_0`, `after_1`."""
    k0, k1 = sa.bindparam("after_0"), sa.bindparam("after_1")
    return sa.or_(first < k0, sa.and_(first == k0, second < k1))


def cursor_key(cursor: str | None, shape: type[tuple[Any, ...]]) -> dict[str, Any]:
    """The bound parameters `before` needs for a cursor (empty without one); a bad cursor is a QueryError."""
    if cursor is None:
        return {}
    return {f"after_{i}": value for i, value in enumerate(decode_cursor(cursor, shape))}


def page(
    items: Sequence[T], limit: int, key: Callable[[T], tuple[Any, ...]], total: int | None
) -> Page[T]:
    """A Page from up to limit + 1 items in order: the extra one only says whether a next page exists."""
    served = list(items[:limit])
    next_cursor = encode_cursor(key(served[-1])) if len(items) > limit else None
    return Page(items=served, next_cursor=next_cursor, total=total)
