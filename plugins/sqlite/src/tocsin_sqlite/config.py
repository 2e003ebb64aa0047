"""The sqlite backend's settings (its keys in `[storage]`), importable without the backend itself."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from tocsin.ext import Duration


class SQLiteConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[storage]` keys of the sqlite backend."""

    path: str = "./tocsin.db"
    """The database file; created (with its -wal and -shm files beside it) if missing."""
    durability: Literal["normal", "strict"] = "normal"
    """normal: synchronous=NORMAL, a committed write survives a crash of the process but may roll back on
    power loss or an OS crash; strict: synchronous=FULL, every commit is fsync'd before it returns."""
    busy_timeout: Duration = Duration(5.0)
    """How long a write waits for another process holding the write lock before it fails."""
    query_timeout: Duration = Duration(5.0)
    """A read running longer is stopped with a QueryError."""
    readers: Annotated[int, msgspec.Meta(ge=1, le=16)] = 2
    """Reader threads (concurrent queries)."""
    wal_limit_mb: Annotated[int, msgspec.Meta(ge=1)] = 64
    """The WAL is checkpointed and truncated once it grows past this."""
    cache_mb: Annotated[int, msgspec.Meta(ge=1)] = 64
    """SQLite page cache per connection."""
    mmap_mb: Annotated[int, msgspec.Meta(ge=0)] = 256
    """How much of the file SQLite reads through a memory map, shared by every connection (0: none)."""
