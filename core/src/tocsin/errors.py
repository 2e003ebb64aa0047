"""Every error tocsin raises on purpose.

The tree:

* TocsinError
  + ConfigError              a config file or dict is wrong; carries every problem found, each with its path
  + PluginError
    - PluginLoadError        an installed plugin could not be imported
    - DuplicateRegistration  two plugins registered the same name in one registry
    - UnknownName            config asked for a backend/channel/operator/check nobody registered
  + InstrumentError          a metric/label name or a recorded value breaks the rules (raised at the call)
  + StorageError             the storage backend could not do what was asked
    - SchemaVersionError     the database was written by a newer tocsin
    - StorageUnavailable     transient: locked, busy, disk I/O or full, connection lost; the write may work later
    - UnstorableRecord       permanent: this record can never be stored as it is
  + QueryError               a query (log search, metric query, cursor) is malformed or too expensive
  + DeliveryError            a notification could not be delivered
    - EgressDenied           the egress guard refused a request (scheme or address)
    - DeliveryRefused        the destination answered with an error status

User-facing errors say what was wrong and where, never a secret value.
"""

from __future__ import annotations

from dataclasses import dataclass


class TocsinError(Exception):
    """Base class of every error tocsin raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config: where (a path like `channels[1].min_severity`) and what."""

    path: str
    message: str
    line: int | None = None

    def render(self, source: str | None = None) -> str:
        """Format as `file:line: path: message`, leaving out the parts that are unknown."""
        where = [part for part in (source, str(self.line) if self.line else None) if part]
        prefix = ":".join(where)
        located = f"{self.path}: {self.message}" if self.path else self.message
        return f"{prefix}: {located}" if prefix else located


class ConfigError(TocsinError):
    """A config is invalid; `problems` lists every problem found, not only the first."""

    def __init__(self, problems: list[ConfigProblem] | str, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem("", problems)]
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(problem.render(source) for problem in self.problems))


class PluginError(TocsinError):
    """Something is wrong with a plugin or a registry."""


class PluginLoadError(PluginError):
    """An installed plugin raised while it was imported or registered."""


class DuplicateRegistration(PluginError):
    """Two plugins registered the same name in one registry."""


class UnknownName(PluginError):
    """A name was looked up in a registry that holds no such entry."""


class InstrumentError(TocsinError, ValueError):
    """A metric name, label name or recorded value breaks the naming or type rules."""


class StorageError(TocsinError):
    """The storage backend could not complete an operation."""


class SchemaVersionError(StorageError):
    """The database schema is newer than this version of tocsin understands."""


class StorageUnavailable(StorageError):
    """A transient storage failure (locked, busy, disk I/O or full, connection lost): the same write may succeed
    later, so the writer keeps the batch and retries it with backoff."""


class UnstorableRecord(StorageError, ValueError):
    """A permanent failure of one record (a value no backend column can hold): retrying cannot help, so the
    writer isolates the record, stores the rest of its batch, and counts it as dropped with `reason`."""

    def __init__(self, message: str, *, reason: str = "unstorable") -> None:
        super().__init__(message)
        self.reason = reason


class QueryError(TocsinError, ValueError):
    """A query is malformed, too long, too complex, or ran past its deadline."""


class DeliveryError(TocsinError):
    """A notification could not be delivered to a channel."""


class EgressDenied(DeliveryError):
    """A request the egress guard refused: a scheme other than http(s), or a non-public address."""


class DeliveryRefused(DeliveryError):
    """The destination answered with an error status; carries it so the dispatcher can decide on a retry."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after_s: float | None = None,
                 permanent: bool | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.permanent = permanent
