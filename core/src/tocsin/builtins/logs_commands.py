"""Built-in `tocsin logs search` command: search the logs of a config's storage from the shell.

Like `tocsin alerts list`, it opens the storage of a config (`--config`, else `TOCSIN_CONFIG`) without starting
the monitor's services, so it needs no running server and works next to a running application. QUERY is the log
search language (`tocsin.storage.logquery`); an empty QUERY lists every record the options let through. Records
print newest first, one line each, or as JSON lines with `--json`; notices ("… more", "no matching log
records") go to stderr so stdout stays pipeable. A bad query or option exits 2 with click's usage message;
memory storage or a store file that does not exist is an error (exit 1): a search never creates a store.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import click
import msgspec

from tocsin.builtins.stored import CONFIG_OPTION, existing_store
from tocsin.errors import QueryError
from tocsin.hookspecs import hookimpl
from tocsin.models import LOG_LEVELS, LogHit, LogRecord
from tocsin.storage.protocol import MAX_NS, MAX_QUERY_LIMIT, MIN_NS, LogQuery, Page
from tocsin.values import Duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LEVEL_ALIASES = {"warn": "warning", "fatal": "critical"}
WHEN_HELP = "a duration ago (15m, 2h, 7d) or an ISO-8601 time (2026-12-03T10:00:00Z; without a zone, UTC)"
When: TypeAlias = tuple[str, bool, int]
"""A --since/--until value: (as written, whether it is a duration ago, ns ago or ns since the epoch)."""
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)} | {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


@click.group()
def logs() -> None:
    """Search the logs in a config's storage."""


def _level(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    name = LEVEL_ALIASES.get(value.strip().lower(), value.strip().lower())
    if name not in LOG_LEVELS:
        raise click.BadParameter(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)} "
                                 "(a minimum: warning means warning, error and critical)")
    return name


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> When | None:
    """(value, True, ns ago) for a duration, (value, False, ns since the epoch) for a timestamp."""
    if value is None:
        return None
    try:
        return value, True, round(Duration.parse(value) * 1e9)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"expected {WHEN_HELP}, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return value, False, (moment - EPOCH) // timedelta(microseconds=1) * 1000


def _resolve(when: When | None, now_ns: int, option: str) -> int | None:
    if when is None:
        return None
    value, relative, ns = when
    at = now_ns - ns if relative else ns
    if not MIN_NS <= at <= MAX_NS:
        moment = f"{value} ago" if relative else value
        raise click.BadParameter(f"{moment} is outside the times tocsin stores (the years 1677 to 2262)",
                                 param_hint=option)
    return at


def _query_text(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Check a non-blank query here, so a typo is a usage error before any storage is opened."""
    from tocsin.storage.logquery import parse

    if value.strip():
        try:
            parse(value)
        except QueryError as error:
            raise click.BadParameter(str(error), param_hint="'QUERY'") from None
    return value


def _time(ns: int) -> str:
    """UTC ISO-8601 with milliseconds: 2026-12-03T10:00:00.123Z."""
    moment = EPOCH + timedelta(microseconds=ns // 1000)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _value(value: object) -> str:
    if isinstance(value, str):
        plain = value and value.isprintable() and not any(c.isspace() or c in "\"'=" for c in value)
        return value if plain else msgspec.json.encode(value).decode()
    return msgspec.json.encode(value).decode()


async def _search(storage: Any, query: LogQuery) -> Page[LogHit]:
    await storage.open()
    try:
        return await storage.search_logs(query)
    finally:
        await storage.close()


def line(record: LogRecord) -> str:
    """One record on one line: time, level, service, message, key=value attributes, trace=<id>."""
    parts = [_time(record.time_ns), f"{record.level.upper():<8}", record.service.translate(_ESCAPES) or "-",
             record.message.translate(_ESCAPES)]
    parts += [f"{key.translate(_ESCAPES)}={_value(value)}" for key, value in record.attributes.items()]
    if record.trace_id:
        parts.append(f"trace={record.trace_id}")
    return "  ".join(parts)


@logs.command("search")
@click.argument("text", metavar="[QUERY]", required=False, default="", callback=_query_text)
@CONFIG_OPTION
@click.option("--level", metavar="LEVEL", default=None, callback=_level,
              help="Only this level and above: debug, info, warning, error or critical.")
@click.option("--service", metavar="NAME", default=None, help="Only records of this service.")
@click.option("--since", metavar="WHEN", default=None, callback=_when, help=f"Only records from then on: {WHEN_HELP}.")
@click.option("--until", metavar="WHEN", default=None, callback=_when, help="Only records before then (as --since).")
@click.option("--limit", metavar="N", default=50, show_default=True, type=click.IntRange(1, MAX_QUERY_LIMIT),
              help="Print at most this many records.")
@click.option("--json", "as_json", is_flag=True, help="Print each record as one JSON object per line.")
def logs_search(text: str, config_path: str | None, level: str | None, service: str | None, since: When | None,
                until: When | None, limit: int, as_json: bool) -> None:
    """Search logs, newest first. QUERY is the log search language (docs/storage.md); "" lists everything.

    Put `--` before a QUERY that starts with `-` (tocsin logs search -- '-debug timeout').

    \b
    tocsin logs search 'timeout OR refused' --service api --since 2h
    tocsin logs search '' --level error --since 2026-12-03T10:00:00Z --json | jq .message
    """
    now_ns = time.time_ns()
    start_ns, end_ns = _resolve(since, now_ns, "'--since'"), _resolve(until, now_ns, "'--until'")
    if start_ns is not None and end_ns is not None and start_ns >= end_ns:
        raise click.UsageError("--since must be before --until")
    storage = existing_store(config_path).storage
    query = LogQuery(text=text, level=level, service=service, start_ns=start_ns, end_ns=end_ns,  # type: ignore[arg-type]
                     limit=limit)
    try:
        page = asyncio.run(_search(storage, query))
    except QueryError as error:
        raise click.UsageError(f"bad query: {error}") from None
    for hit in page.items:
        click.echo(msgspec.json.encode(hit.record).decode() if as_json else line(hit.record))
    if not page.items:
        click.echo("no matching log records", err=True)
    elif page.next_cursor is not None:
        more = f"{page.total - len(page.items):,} " if page.total is not None else ""
        click.echo(f"… {more}more; use --limit or narrow the query", err=True)


@hookimpl
def register_commands(cli):
    """Add the `logs` command group."""
    cli.add_command(logs)
