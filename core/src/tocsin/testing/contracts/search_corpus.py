"""A corpus of log lines and searches that every backend must answer alike (log search conformance).

`CORPUS` holds messages chosen where tokenizers disagree (hyphens, paths, dots, apostrophes, accents, case,
non-Latin scripts, brackets, repeated words, long lines), each with a level and a service; `QUERIES` the
searches run over them: words, phrases, prefixes, OR, negation, field filters, brackets pasted from a log.
`write_corpus` stores the corpus through the storage protocol; `expected` is the reference answer, computed
with `ParsedQuery.matches` (the language's own definition); `answer` runs a search and keeps what must agree:
the ids' messages in order, the snippets and the total. A backend test compares its answers with the
reference, and with another backend's (tocsin-postgres compares itself with SQLite this way).
"""

from __future__ import annotations

from typing import Any

from tocsin.models import LOG_LEVELS, LogRecord
from tocsin.storage.logquery import parse
from tocsin.storage.protocol import LogQuery

T0 = 1_700_000_000_000_000_000
STEP_NS = 1_000_000_000

LONG = ("lorem ipsum dolor sit amet " * 12) + "the needle sits here after a long preamble " + ("tail words " * 10)

CORPUS: tuple[tuple[str, str, str], ...] = (
    ("connection refused by db-1", "error", "api"),
    ("Connection refused: retrying in 3.5 seconds", "warning", "api"),
    ("connection reset by peer", "error", "web"),
    ("connected to db-2 after 3 attempts", "info", "api"),
    ("reading /var/log/syslog failed", "error", "ops"),
    ("it's a trap: user's session expired", "warning", "web"),
    ("Café au lait served at 08:00", "info", "cafe"),
    ("CAFE closed; resume tomorrow", "info", "cafe"),
    ("naïve résumé parsing for Zoë", "debug", "api"),
    ("Ελληνικά μηνύματα σφάλματος", "info", "intl"),
    ("日本語のログ 行 with english", "info", "intl"),
    ("connect(host, port) returned -1", "error", "api"),
    ("retry(3 times) then give up", "warning", "worker"),
    ("NEAR(a b, 3) is not an operator", "info", "worker"),
    ("timeout waiting for lock", "error", "worker"),
    ("lock acquired after timeout", "info", "worker"),
    ("payment payment payment declined", "error", "billing"),
    ("payment accepted for order 42", "info", "billing"),
    ("order 42 shipped; order 43 pending", "info", "billing"),
    ("user=alice action=login status=ok", "info", "auth"),
    ("user=bob action=login status=failed", "warning", "auth"),
    ("http://example.com/path?q=1 returned 500", "error", "web"),
    ("key:value pairs are text", "info", "web"),
    ("health check ok", "debug", "ops"),
    ("health check failed for db-1", "error", "ops"),
    ("disk almost full on /dev/sda1", "critical", "ops"),
    ("Disk full!!! writes rejected", "critical", "ops"),
    ("--- separator line ---", "debug", "ops"),
    ("version 1.2.3-beta released", "info", "release"),
    ("v1.2.3 hotfix applied", "info", "release"),
    ("connections pooled: 10 idle, 2 busy", "debug", "api"),
    ("conn pool exhausted", "error", "api"),
    ("cONNECTION ReFuSeD in mixed case", "warning", "api"),
    ("refused connection order reversed", "info", "api"),
    ("error: debug mode enabled in production", "warning", "ops"),
    ("debug: verbose tracing on", "debug", "ops"),
    ("emoji 🔥 fire in the hole", "info", "fun"),
    ("tab\tseparated\tvalues here", "info", "fun"),
    ("newline\ninside the message", "info", "fun"),
    ('quotes "inside" the text', "info", "fun"),
    (LONG, "info", "long"),
    ("a b c d e f g", "debug", "fun"),
    ("x1y2z3 alnum token", "info", "fun"),
    ("ÀÉÎÕÜ upper accents", "info", "intl"),
    ("straße und STRASSE", "info", "intl"),
)

QUERIES: tuple[dict[str, Any], ...] = (
    {"text": "connection"},
    {"text": "connection refused"},
    {"text": '"connection refused"'},
    {"text": '"refused connection"'},
    {"text": "conn*"},
    {"text": "connect*"},
    {"text": '"connection ref"*'},
    {"text": "db-1"},
    {"text": "db"},
    {"text": "/var/log"},
    {"text": "3.5"},
    {"text": "it's"},
    {"text": "Café"},
    {"text": "cafe"},
    {"text": "resume"},
    {"text": "zoe"},
    {"text": "Ελληνικά"},
    {"text": "日本語のログ"},
    {"text": "connect(host, port)"},
    {"text": "retry(3 times)"},
    {"text": "NEAR(a b, 3)"},
    {"text": "timeout OR lock"},
    {"text": "timeout lock"},
    {"text": '"timeout waiting"'},
    {"text": "(timeout OR refused) lock"},
    {"text": "payment -declined"},
    {"text": "payment NOT declined"},
    {"text": 'health -"check ok"'},
    {"text": "order 42"},
    {"text": '"order 42"'},
    {"text": "user=alice"},
    {"text": "http://example.com"},
    {"text": "key:value"},
    {"text": "disk", "level": "critical"},
    {"text": "level:warning+ connection"},
    {"text": "level:error service:api"},
    {"text": "connection -service:web"},
    {"text": "service:ops"},
    {"text": "-level:debug health"},
    {"text": "1.2.3"},
    {"text": "v1"},
    {"text": "x1y2z3"},
    {"text": "needle"},
    {"text": '"needle sits"'},
    {"text": "fire"},
    {"text": "separated values"},
    {"text": "newline inside"},
    {"text": '"inside"'},
    {"text": "aeiou"},
    {"text": "straße"},
    {"text": "strasse"},
    {"text": "a b c"},
    {"text": '"e f g"'},
    {"text": "nothingmatchesthis"},
    {"text": "", "service": "billing"},
    {"text": "", "level": "error"},
    {"text": "connection", "limit": 2},
    {"text": "connection", "start_ns": T0 + 2 * STEP_NS, "end_ns": T0 + 33 * STEP_NS},
)


def records() -> list[LogRecord]:
    """The corpus as log records, one a second from T0."""
    return [
        LogRecord(time_ns=T0 + i * STEP_NS, level=level, service=service, message=message)  # type: ignore[arg-type]
        for i, (message, level, service) in enumerate(CORPUS)
    ]


async def write_corpus(backend: Any) -> None:
    """Store the corpus through the storage protocol, in two batches."""
    stored = records()
    await backend.write_logs(stored[:20])
    await backend.write_logs(stored[20:])


def expected(fields: dict[str, Any]) -> list[str]:
    """The reference answer: the messages a search must find, newest first (before `limit`)."""
    text = fields.get("text", "")
    parsed = parse(text) if text.strip() else None
    lowest = LOG_LEVELS.index(fields["level"]) if "level" in fields else 0
    found = []
    for record in reversed(records()):
        if LOG_LEVELS.index(record.level) < lowest:
            continue
        if "service" in fields and record.service != fields["service"]:
            continue
        if "start_ns" in fields and not fields["start_ns"] <= record.time_ns < fields["end_ns"]:
            continue
        if parsed is None or parsed.matches(record):
            found.append(record.message)
    return found


async def answer(backend: Any, fields: dict[str, Any]) -> tuple[list[str], list[str], int | None]:
    """A backend's answer to one search: messages in order, snippets, and the total."""
    page = await backend.search_logs(LogQuery(**fields))
    return [hit.record.message for hit in page.items], [hit.snippet for hit in page.items], page.total
