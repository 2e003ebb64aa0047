"""Copy, filter and page records for the memory backend the way a database would, so it behaves like one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from tocsin.errors import UnstorableRecord
from tocsin.storage.cursors import decode_cursor, encode_cursor
from tocsin.storage.protocol import MAX_QUERY_LIMIT, Page, check_limit

R = TypeVar("R", bound=msgspec.Struct)


def detached(record: R) -> R:
    """A deep copy sharing nothing with the caller, as a database round trip would give."""
    try:
        return msgspec.msgpack.decode(msgspec.msgpack.encode(record), type=type(record))
    except (TypeError, OverflowError, msgspec.MsgspecError) as error:
        raise UnstorableRecord(f"cannot store {type(record).__name__}: {error}") from None


def in_range(time_ns: int, start_ns: int | None, end_ns: int | None) -> bool:
    """Whether a time is in [start_ns, end_ns); a bound that is None does not limit."""
    return (start_ns is None or time_ns >= start_ns) and (end_ns is None or time_ns < end_ns)


def drop_old(records: list[R], is_old: Callable[[R], bool]) -> tuple[list[R], int]:
    """The records to keep and how many were dropped."""
    kept = [record for record in records if not is_old(record)]
    return kept, len(records) - len(kept)


def keyset_page(
    items: list[R],
    key: Callable[[R], tuple[Any, ...]],
    limit: int,
    cursor: str | None,
    shape: type[tuple[Any, ...]],
) -> Page[R]:
    """Newest-first keyset pagination: sort by `key` descending; the cursor is the last key served.

    The limit of a query's page is from 1 to MAX_QUERY_LIMIT (`check_query_values` says so first, naming the
    query; this holds the listings that do not call it to the same rule).
    """
    check_limit(limit, MAX_QUERY_LIMIT)
    ordered = sorted(items, key=key, reverse=True)
    total = len(ordered)
    if cursor is not None:
        after = decode_cursor(cursor, shape)
        ordered = [item for item in ordered if key(item) < after]
    served = ordered[:limit]
    next_cursor = encode_cursor(key(served[-1])) if len(ordered) > limit else None
    return Page(items=[detached(item) for item in served], next_cursor=next_cursor, total=total)
