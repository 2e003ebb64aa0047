"""The log search language: parsing, tokenizing like SQLite, FTS5 rendering, matching and highlighting."""

from __future__ import annotations

import functools
import random
import re
import sqlite3

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tocsin.builtins.memory_storage import MemoryStorage
from tocsin.errors import QueryError
from tocsin.models import LOG_LEVELS, LogRecord
from tocsin.storage.logquery import MAX_QUERY_CHARS, SNIPPET_CHARS, ParsedQuery, parse
from tocsin.storage.protocol import LogQuery
from tocsin.storage.tokens import tokenize

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def record(message: str = "", **fields: object) -> LogRecord:
    """A log record with defaults for everything but what the test cares about."""
    return LogRecord(time_ns=1, level=fields.pop("level", "info"), message=message, **fields)


# -- The tokenizer agrees with SQLite FTS5 unicode61 ---------------------------------------------------


def sqlite_tokens(documents: list[str]) -> list[list[str]]:
    """Tokenize documents with the linked SQLite's FTS5, via fts5vocab's per-instance listing."""
    con = sqlite3.connect(":memory:")
    con.execute("CREATE VIRTUAL TABLE d USING fts5(body)")  # the default tokenizer: unicode61
    con.execute("CREATE VIRTUAL TABLE v USING fts5vocab(d, 'instance')")
    con.executemany("INSERT INTO d(rowid, body) VALUES (?, ?)", enumerate(documents))
    found: list[list[str]] = [[] for _ in documents]
    for term, doc in con.execute("SELECT term, doc FROM v ORDER BY doc, offset"):
        found[doc].append(term)
    return found


def codepoint_documents(codepoints: list[int], per_document: int = 2048) -> list[str]:
    """Documents that show, for each codepoint, whether it separates, starts or only continues a token."""
    return [
        "".join(f" x{chr(c)}y {chr(c)}" for c in codepoints[i : i + per_document])
        for i in range(0, len(codepoints), per_document)
    ]


def test_tokenizer_agrees_with_sqlite_for_every_bmp_codepoint():
    bmp = [c for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    documents = [*codepoint_documents(bmp[:127]), *codepoint_documents(bmp)]  # ASCII has its own fast path
    assert documents[0].isascii()
    assert [tokenize(document) for document in documents] == sqlite_tokens(documents)


def test_tokenizer_agrees_with_sqlite_beyond_the_bmp():
    sample = sorted({*range(0x10000, 0x110000, 97), *range(0x10400, 0x10450), *range(0x1F300, 0x1FAFF)})
    documents = codepoint_documents(sample)
    assert [tokenize(document) for document in documents] == sqlite_tokens(documents)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("db-1", ["db", "1"]),
        ("/var/log/syslog", ["var", "log", "syslog"]),
        ("3.5", ["3", "5"]),
        ("it's", ["it", "s"]),
        ("Connection REFUSED", ["connection", "refused"]),
        ("Café cafe\u0301 naïve", ["cafe", "cafe", "naive"]),  # precomposed and combining accents
        ("\u0301alone", ["alone"]),  # a combining mark cannot start a token
        (
            "Straße ΣΊΣΥΦΟΣ σίσυφος",
            ["straße", "σίσυφοσ", "σίσυφοσ"],
        ),  # simple case folding; Greek keeps accents
        ("under_score key=value", ["under", "score", "key", "value"]),
        ("東京タワー 😀 🤖", ["東京タワー", "🤖"]),  # 🤖 is newer than SQLite's Unicode tables: a "letter"
        ("", []),
        ("--- !!!", []),
    ],
)
def test_tokenize_examples(text, tokens):
    assert tokenize(text) == tokens == sqlite_tokens([text])[0]


# -- Parsing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fts5"),
    [
        ("connection refused", '("connection" AND "refused")'),
        ("connection AND refused", '("connection" AND "refused")'),
        ('"connection refused"', '"connection refused"'),
        ("conn*", '"conn" *'),
        ('"connection ref"*', '"connection ref" *'),
        ("timeout OR refused", '("timeout" OR "refused")'),
        ("(timeout OR refused) db", '(("timeout" OR "refused") AND "db")'),
        ("db timeout OR refused", '("db" AND ("timeout" OR "refused"))'),  # OR binds tighter than AND
        ("a OR b OR c", '("a" OR "b" OR "c")'),
        ("(a OR b) OR c", '("a" OR "b" OR "c")'),
        ("disk -full", '("disk" NOT "full")'),
        ("disk NOT full", '("disk" NOT "full")'),
        ('disk -"is full" -quota', '("disk" NOT ("is full" OR "quota"))'),
        ("disk -(full OR quota)", '("disk" NOT ("full" OR "quota"))'),
        ("a OR (b -c)", '("a" OR ("b" NOT "c"))'),
        ("-(a -b) c", '("c" NOT ("a" NOT "b"))'),
        ("db-1", '"db 1"'),
        ("/var/log", '"var log"'),
        ("3.5", '"3 5"'),
        ("it's", '"it s"'),
        ("Café", '"cafe"'),
        ("foo:bar", '"foo bar"'),  # an unknown field is text
        ("http://example.com", '"http example com"'),
        ("col:x", '"col x"'),
        ("foo(bar)", '"foo bar"'),  # parentheses inside a word belong to the word
        ("(foo(bar))", '"foo bar"'),
        ("NEAR(a", '"near a"'),
        ("a --verbose", '("a" AND "verbose")'),  # a double dash is text
        ("a - b", '("a" AND "b")'),  # so is a lone dash
        ("a --- b", '("a" AND "b")'),  # terms with no tokens are dropped
        ('a "!!!" b', '("a" AND "b")'),
        ("-OR x", '("x" NOT "or")'),  # after `-` a keyword is a word
        ("or and not", '("or" AND "and" AND "not")'),
        ('"OR"', '"or"'),
        ('"unclosed phrase', '"unclosed phrase"'),
        ("(unclosed group", '("unclosed" AND "group")'),
        ('a"b', '("a" AND "b")'),
        ("*foo", '"foo"'),
        ("((((((((deep))))))))", '"deep"'),
        ("🤖", '"🤖"'),
    ],
)
def test_parse_renders_fts5(query, fts5):
    parsed = parse(query)
    assert parsed.to_fts5() == fts5
    assert parsed.has_text
    assert parsed.fields == parsed.excluded == {}


@pytest.mark.parametrize(
    ("query", "fields", "excluded", "fts5"),
    [
        ("level:error", {"level": ["error"]}, {}, None),
        ("level:ERROR", {"level": ["error"]}, {}, None),
        ("level:warn", {"level": ["warning"]}, {}, None),
        ("level:warning+", {"level": ["warning", "error", "critical"]}, {}, None),
        ("level:>=error", {"level": ["error", "critical"]}, {}, None),
        ("level:error level:critical", {"level": ["error", "critical"]}, {}, None),
        ("level:error level:error+", {"level": ["error", "critical"]}, {}, None),
        ("-level:debug", {}, {"level": ["debug"]}, None),
        ("NOT level:debug", {}, {"level": ["debug"]}, None),
        ("service:api timeout", {"service": ["api"]}, {}, '"timeout"'),
        ('service:"my api" x', {"service": ["my api"]}, {}, '"x"'),
        ('Service:"my api', {"service": ["my api"]}, {}, None),
        ("-service:api -service:worker x", {}, {"service": ["api", "worker"]}, '"x"'),
        ("logger:app.db", {"logger": ["app.db"]}, {}, None),
        (f"trace:{TRACE.upper()}", {"trace_id": [TRACE]}, {}, None),
        (f"trace_id:{TRACE}", {"trace_id": [TRACE]}, {}, None),
        (f"span:{SPAN}", {"span_id": [SPAN]}, {}, None),
        ("execution:run-42 step:load", {"execution_id": ["run-42"], "step": ["load"]}, {}, None),
        ("step:http://x", {"step": ["http://x"]}, {}, None),
        ("level:error '---'", {"level": ["error"]}, {}, None),
    ],
)
def test_parse_field_filters(query, fields, excluded, fts5):
    parsed = parse(query)
    assert (parsed.fields, parsed.excluded, parsed.to_fts5()) == (fields, excluded, fts5)
    assert parsed.has_text == (fts5 is not None)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty query"),
        ("  \t\n", "empty query"),
        ("x" * (MAX_QUERY_CHARS + 1), f"the limit is {MAX_QUERY_CHARS}"),
        (" ".join(f"w{i}" for i in range(33)), "33 terms; the limit is 32"),
        (" ".join(f"level:{LOG_LEVELS[i % 5]}" for i in range(33)), "33 terms"),
        ("(" * 9 + "deep" + ")" * 9, "deeper than 8"),
        ("---", "nothing to search for"),
        ('"!!!"', "nothing to search for"),
        ("-debug", "nothing to look for"),
        ("NOT debug", "nothing to look for"),
        ("-debug level:error", "nothing to look for"),
        ("-a -b", "nothing to look for"),
        ("x OR (-a -b)", "nothing to look for"),
        ("a OR -b", "OR cannot combine with a negated term"),
        ("a OR NOT b", "OR cannot combine with a negated term"),
        ("-(-a) b", "cannot be negated again"),
        ("NOT -a b", "cannot be negated again"),
        ("level:error OR timeout", "cannot be combined with OR"),
        ("(level:error timeout)", "cannot go inside parentheses"),
        ("-(service:api) x", "cannot go inside parentheses"),
        ("level:", "needs a value"),
        ('level:"" x', "needs a value"),
        ("level:loud", "not a log level"),
        ("trace:abc", "32 hex characters"),
        (f"span:{TRACE}", "16 hex characters"),
        ("a*", "too short"),
        ("db-1*", "too short"),
        ("a b)", "unmatched `)` at character 4"),
        ("OR", "OR at character 1 needs a term"),
        ("a OR", "needs a term on each side"),
        ("a OR OR b", "needs a term on each side"),
        ("AND a", "AND at character 1 needs a term"),
        ("a AND", "needs a term on each side"),
        ("NOT", "NOT at character 1 needs a term after it"),
        ("a NOT)", "needs a term after it"),
    ],
)
def test_parse_errors_name_the_rule(query, message):
    with pytest.raises(QueryError) as caught:
        parse(query)
    assert message in str(caught.value)


def test_limits_are_inclusive():
    assert parse("x" * MAX_QUERY_CHARS).to_fts5() == '"' + "x" * MAX_QUERY_CHARS + '"'
    assert parse(" ".join(f"w{i}" for i in range(32))).has_text
    assert parse("(" * 8 + "deep" + ")" * 8).has_text


# -- Brackets pasted from logs (issue 12) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fts5"),
    [
        ("connect(host, port)", '"connect host port"'),
        ("retry(3 times)", '"retry 3 times"'),
        ("NEAR(a b, 3)", '"near a b 3"'),
        ("connect(host)", '"connect host"'),
        ("connect(host,port)", '"connect host port"'),
        ('open("/etc/hosts", "r")', '"open etc hosts r"'),  # quotes inside the brackets are text too
        ("f(g(x, y), z)", '"f g x y z"'),
        ("f(a OR b, NOT c)", '"f a or b not c"'),  # operator words inside the brackets are text
        ("connect(host, port) failed", '("connect host port" AND "failed")'),
        ("connect(host, port)*", '"connect host port" *'),
        ("db -connect(host, port)", '("db" NOT "connect host port")'),
        ("(connect(host, port) OR retry(3 times)) db", '(("connect host port" OR "retry 3 times") AND "db")'),
        ("(host, port)", '("host" AND "port")'),  # a group: the comma separates like a space
        ("x (a, b) OR c", '("x" AND (("a" AND "b") OR "c"))'),
        ("NEAR(a b", '("near a" AND "b")'),  # never closed: the word ends at the space
        ("f(g(x, y)", '"f g x y"'),  # the inner `(` is closed, the outer never
        ('connect(b "x)"', '("connect b" AND "x")'),  # a `)` inside quotes does not close
        ("step:load(1, 2) x", '"x"'),
    ],
)
def test_brackets_inside_a_word_are_text(query, fts5):
    assert parse(query).to_fts5() == fts5


def test_a_bracket_inside_a_field_value_is_part_of_it():
    assert parse("step:load(1, 2)").fields == {"step": ["load(1, 2)"]}


@pytest.mark.parametrize("query", ["a b)", "connect(host) port)", "(a) b)"])
def test_a_lone_closing_bracket_is_still_refused(query):
    with pytest.raises(QueryError, match="unmatched `\\)`"):
        parse(query)


async def test_pasted_call_finds_the_line_it_came_from():
    storage = MemoryStorage(MemoryStorage.Config())
    await storage.open()
    try:
        await storage.write_logs(
            [
                record("connect(host, port) failed"),
                record("connect(port, host) failed"),
                record("retry(3 times) then give up"),
                record("NEAR(a b, 3) is FTS5 syntax"),
                record("connect host"),
            ]
        )

        async def found(text: str) -> list[str]:
            page = await storage.search_logs(LogQuery(text=text))
            return [hit.record.message for hit in page.items]

        assert await found("connect(host, port)") == ["connect(host, port) failed"]
        assert await found("connect(host, port) failed") == ["connect(host, port) failed"]
        assert await found("retry(3 times)") == ["retry(3 times) then give up"]
        assert await found("NEAR(a b, 3)") == ["NEAR(a b, 3) is FTS5 syntax"]
        assert await found("connect(host)") == ["connect host", "connect(host, port) failed"]
    finally:
        await storage.close()


@pytest.mark.parametrize("text", ["", " ", "  \t\n"])
async def test_empty_text_is_no_text_filter(text):
    storage = MemoryStorage(MemoryStorage.Config())
    await storage.open()
    try:
        await storage.write_logs(
            [
                LogRecord(time_ns=1, level="info", message="first", service="api"),
                LogRecord(time_ns=3, level="error", message="third", service="api"),
                LogRecord(time_ns=2, level="debug", message="second", service="worker"),
            ]
        )
        everything = await storage.search_logs(LogQuery(text=text))
        assert [hit.record.message for hit in everything.items] == ["third", "second", "first"]
        assert everything.total == 3
        narrowed = await storage.search_logs(LogQuery(text=text, service="api", level="info"))
        assert [hit.record.message for hit in narrowed.items] == ["third", "first"]
    finally:
        await storage.close()
    with pytest.raises(QueryError, match="empty query"):  # parse() itself has nothing to parse
        parse(text)


# The inputs RELIABILITY.md §3.5 found to break raw FTS5 MATCH, and friends.
RELIABILITY_CORPUS = [
    *(
        '"unterminated',
        'a"b',
        "AND OR",
        "AND",
        "OR",
        "NOT",
        "foo AND",
        "(foo",
        "NEAR(",
        "NEAR(a b",
        "^",
        "''",
    ),
    *("'   '", "foo)", "db-1", "-disk", "disk -full", "nosuchcol:api", 'col:"x', "/var/log", "retry 3/5"),
    *("3.5", "it's", "*", "*foo", "service:api", "^disk", "foo*", "{message}: disk", '"', "(", ")", "-", ":"),
    *(
        "NEAR(a b)",
        "col:x",
        '""',
        "\x00",
        "a\x00b",
        "R\u00d2",
        "Ünïcödé",
        "東京",
        "😀",
        "🤖 robot",
        "\u210c\U0001d522\U0001d529\U0001d529\U0001d52c",
    ),
    *("\u200b", "x" * 10_000, "a" * 1000, "(" * 50, ")" * 50, '"' * 7, "a OR b AND c NOT d", "- - -", "--"),
    *("level:error", "level:>=", "trace:", "{}[]<>|\\", '\\"', "$(rm -rf /)", "'; DROP TABLE logs; --"),
]


@pytest.mark.parametrize("query", RELIABILITY_CORPUS)
def test_reliability_corpus_parses_or_raises_query_error(query):
    try:
        parsed = parse(query)
    except QueryError:
        return
    check_against_sqlite(parsed)


# -- Matching in Python agrees with FTS5 MATCH ----------------------------------------------------------

WORDS = [
    *("connection", "refused", "Connection", "REFUSED", "timeout", "timed", "out", "conn", "connect"),
    *("connected", "connecting", "db-1", "db", "1", "12", "db-12", "/var/log/syslog", "var", "log", "3.5"),
    *("3", "5", "it's", "it", "s", "café", "CAFE", "Café", "cafe\u0301", "naïve", "naive", "Straße"),
    *(
        "strasse",
        "ΣΊΣΥΦΟΣ",
        "σίσυφος",
        "東京",
        "東京タワー",
        "😀",
        "🤖",
        "İstanbul",
        "ﬁle",
        "\uff21\uff42\uff43",
        "abc",
    ),
    *("٣٤", "x\u0305y", "OR", "or", "AND", "not", "NOT", "NEAR", "a", "b", "c", "ab", "key=value"),
    *("key:value", "http://example.com/a?b=c", "E042", "e042", "0xdeadbeef", "user@example.com"),
    *("--verbose", "health", "check", "healthcheck", "disk", "full", "retry", "3/5", "ǅ", "Ǆ", "ǆ"),
    *("\u212a", "k", "\u212b", "å", "a\u0308", "ä", "error", "warning", "api"),
]
SEPARATORS = [" ", " ", " ", ", ", "-", "/", ".", ": ", "\t", "\n", "", "'", "\u00a0", "_"]
SERVICES = ["api", "worker", "my api", ""]
FRAGMENTS = [
    *WORDS,
    *('"connection refused"', '"db 1"', "conn*", "con*", "ca*", '"conn re"*', "ΣΊΣ*", "東京*", "e04*"),
    *("OR", "OR", "AND", "NOT", "-", "(", ")", '"', "*", ":", "^", "NEAR(a b)", "col:x", '""', "--"),
    *("level:error", "level:warning+", "level:>=error", "-level:debug", "level:info", "service:api"),
    *(
        'service:"my api"',
        "-service:worker",
        "logger:app.db",
        "-logger:app",
        f"trace:{TRACE}",
        f"-trace:{TRACE}",
    ),
    *(f"span:{SPAN}", "execution:run-1", "-execution:run-2", "step:load", "-step:save", "foo:bar"),
]


def random_records(count: int, seed: int = 20240611) -> list[LogRecord]:
    """Varied messages built from WORDS, with field values that the field filters can hit and miss."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        words = rng.choices(WORDS, k=rng.randint(1, 12))
        message = "".join(word + rng.choice(SEPARATORS) for word in words)
        records.append(
            LogRecord(
                id=i + 1,
                time_ns=i,
                level=rng.choice(LOG_LEVELS),
                message=message,
                service=rng.choice(SERVICES),
                logger=rng.choice(["app", "app.db"]),
                trace_id=rng.choice([None, TRACE, "f" * 32]),
                span_id=rng.choice([None, SPAN]),
                execution_id=rng.choice([None, "run-1", "run-2"]),
                step=rng.choice([None, "load", "save"]),
            )
        )
    return records


COLUMNS = ("level", "service", "logger", "trace_id", "span_id", "execution_id", "step")


@functools.cache
def corpus() -> tuple[sqlite3.Connection, tuple[LogRecord, ...]]:
    """An in-memory SQLite log table with an FTS5 index on message, and the same records in Python."""
    records = tuple(random_records(300))
    con = sqlite3.connect(":memory:", check_same_thread=False)
    con.execute(f"CREATE TABLE logs (id INTEGER PRIMARY KEY, message TEXT, {', '.join(COLUMNS)})")
    con.execute("CREATE VIRTUAL TABLE t USING fts5(message)")
    for rec in records:
        con.execute(
            f"INSERT INTO logs VALUES (?, ?{', ?' * len(COLUMNS)})",
            (rec.id, rec.message, *(getattr(rec, column) for column in COLUMNS)),
        )
        con.execute("INSERT INTO t(rowid, message) VALUES (?, ?)", (rec.id, rec.message))
    return con, records


def sql_search(con: sqlite3.Connection, parsed: ParsedQuery) -> set[int]:
    """What a SQL backend does with a ParsedQuery: fields and excluded as WHERE, the text as FTS5 MATCH."""
    where, params = [], []
    for column, values in parsed.fields.items():
        assert column in COLUMNS
        where.append(f"{column} IN ({', '.join('?' * len(values))})")
        params += values
    for column, values in parsed.excluded.items():
        assert column in COLUMNS
        where.append(f"({column} IS NULL OR {column} NOT IN ({', '.join('?' * len(values))}))")
        params += values
    if parsed.has_text:
        where.append("id IN (SELECT rowid FROM t WHERE t MATCH ?)")
        params.append(parsed.to_fts5())
    sql = "SELECT id FROM logs" + (" WHERE " + " AND ".join(where) if where else "")
    return {row[0] for row in con.execute(sql, params)}


FTS5_SYNTAX = re.compile(r"(?:\s|\(|\)|\*|AND|OR|NOT)*")


def check_against_sqlite(parsed: ParsedQuery) -> set[int]:
    """Assert that SQLite (WHERE + MATCH) and ParsedQuery.matches select exactly the same records."""
    fts5 = parsed.to_fts5()
    assert (fts5 is not None) == parsed.has_text
    if fts5 is not None:  # outside double-quoted strings there is nothing but operators
        assert FTS5_SYNTAX.fullmatch(re.sub(r'"[^"]*"', "", fts5)), fts5
    con, records = corpus()
    in_python = {rec.id for rec in records if parsed.matches(rec)}
    assert sql_search(con, parsed) == in_python, fts5
    return in_python


DIFFERENTIAL_QUERIES = [
    *("connection", "Connection refused", '"connection refused"', "conn*", "connect*", '"conn re"*', "db-1"),
    *("db 1", '"db 1"', "db-12", "/var/log", "var OR log", "3.5", "it's", "café", "cafe", "CAFÉ", "naive"),
    *("strasse", "straße", "σίσυφος", "ΣΊΣΥΦΟΣ", "σισυφος", "東京", "東京*", "🤖", "istanbul", "file", "abc"),
    *("\uff41\uff42\uff43", "٣٤", "x y", "k", "å", "ä", "a", "or", '"OR"', "key:value", "http://example.com", "e042"),
    *(
        "timeout OR refused",
        "(timeout OR refused) db",
        "db timeout OR refused",
        "disk -full",
        "disk NOT full",
    ),
    *('connection -"connection refused"', "a -(b OR c)", "a OR (b -c)", "(a OR b) (c OR ab)", "-(a -b) c"),
    *("level:error", "level:warning+", "-level:debug", "level:error level:critical connection"),
    *('service:"my api"', "-service:api -service:worker", f"trace:{TRACE} refused", f"-trace:{TRACE}"),
    *(f"span:{SPAN}", "execution:run-1 step:load", "-step:save health", "logger:app.db", "foo:bar"),
]


@pytest.mark.parametrize("query", DIFFERENTIAL_QUERIES)
def test_matches_agrees_with_fts5(query):
    check_against_sqlite(parse(query))


def test_differential_queries_are_not_vacuous():
    hits = [len(check_against_sqlite(parse(query))) for query in DIFFERENTIAL_QUERIES]
    total = len(corpus()[1])
    assert sum(0 < hit < total for hit in hits) >= 0.9 * len(hits)


def built_query(parts: list[str], joiner: str) -> str:
    """Join generated query fragments."""
    return joiner.join(parts)


query_texts = st.builds(
    built_query,
    st.lists(
        st.one_of(
            st.sampled_from(FRAGMENTS),
            st.sampled_from(WORDS).map(lambda word: "-" + word),
            st.text(max_size=4),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([" ", " ", ""]),
)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(query_texts)
def test_generated_queries_agree_with_fts5(text):
    try:
        parsed = parse(text)
    except QueryError:
        return
    check_against_sqlite(parsed)


@settings(max_examples=120, deadline=None, database=None)
@given(st.text(st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=200))
def test_any_text_parses_or_raises_query_error(text):
    try:
        parsed = parse(text)
    except QueryError:
        return
    check_against_sqlite(parsed)


# The FTS5 index of the SQLite backend, as tocsin_sqlite.dialect.FTS_DDL creates it (core cannot import it).
SQLITE_BACKEND_FTS = (
    "CREATE VIRTUAL TABLE logs_fts USING fts5(message, level, content='logs', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 1', columnsize=0)"
)
SYNTAX = [
    "(",
    ")",
    "f(",
    "a, b)",
    '"',
    ":",
    "*",
    "-",
    ",",
    " ",
    "^",
    "+",
    "OR",
    "AND",
    "NOT",
    "NEAR",
    "level:",
    "step:",
    "x",
]
any_text = st.text(st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=120)
syntax_heavy_text = st.lists(
    st.sampled_from(SYNTAX) | st.text(st.sampled_from('()",:*- ab1é\u0301\ud800'), max_size=6) | any_text,
    max_size=12,
).map("".join)


@functools.cache
def sqlite_backend_index() -> sqlite3.Connection:
    """An in-memory copy of the SQLite backend's log index, with a few rows in it."""
    con = sqlite3.connect(":memory:", check_same_thread=False)
    con.execute("CREATE TABLE logs (id INTEGER PRIMARY KEY, message TEXT, level TEXT)")
    con.execute(SQLITE_BACKEND_FTS)
    rows = [(1, "connect(host, port) failed", "3"), (2, "retry(3 times)", "2"), (3, "Café NEAR(a b, 3)", "1")]
    con.executemany("INSERT INTO logs VALUES (?, ?, ?)", rows)
    con.executemany("INSERT INTO logs_fts(rowid, message, level) VALUES (?, ?, ?)", rows)
    return con


@settings(max_examples=300, deadline=None, database=None)
@given(any_text | syntax_heavy_text)
def test_any_string_parses_or_raises_query_error_and_fts5_accepts_it(text):
    try:
        parsed = parse(text)
    except QueryError:
        return
    fts5 = parsed.to_fts5()
    if fts5 is None:
        return
    con = sqlite_backend_index()
    for expression in (fts5, f"message : ({fts5})", f'message : ({fts5}) AND level : ("3" OR "4")'):
        con.execute("SELECT rowid FROM logs_fts WHERE logs_fts MATCH ?", (expression,)).fetchall()
    text_only = msgspec.structs.replace(parsed, fields={}, excluded={})
    in_python = {row[0] for row in con.execute("SELECT id, message FROM logs") if text_only.matches(record(row[1]))}
    in_sqlite = con.execute("SELECT rowid FROM logs_fts WHERE logs_fts MATCH ?", (f"message : ({fts5})",))
    assert in_python == {row[0] for row in in_sqlite}


# -- matches() on fields --------------------------------------------------------------------------------


def test_matches_checks_fields_and_text_together():
    parsed = parse("level:error+ service:api -step:save refused")
    assert parsed.matches(record("Connection REFUSED", level="critical", service="api", step="load"))
    assert parsed.matches(record("refused", level="error", service="api"))  # no step: not excluded
    assert not parsed.matches(record("refused", level="warning", service="api"))
    assert not parsed.matches(record("refused", level="error", service="API"))  # values are exact
    assert not parsed.matches(record("refused", level="error", service="api", step="save"))
    assert not parsed.matches(record("accepted", level="error", service="api"))


def test_a_missing_field_never_matches_a_filter():
    assert not parse(f"trace:{TRACE}").matches(record("x"))
    assert parse(f"-trace:{TRACE}").matches(record("x"))
    assert parse(f"trace:{TRACE.upper()}").matches(record("x", trace_id=TRACE))


def test_phrases_and_prefixes_respect_token_order():
    parsed = parse('"connection refused" db*')
    assert parsed.matches(record("db1: Connection refused"))
    assert not parsed.matches(record("refused connection to db1"))
    assert not parsed.matches(record("connection refused by mysql"))
    assert parse("db-1").matches(record("host db.1 down"))
    assert not parse("db-1").matches(record("db-12 down"))


# -- highlight() ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message", "snippet"),
    [
        ("refused", "Connection refused by db-1", "Connection [refused] by db-1"),
        (
            '"connection refused"',
            "connection reset; Connection refused",
            "connection reset; [Connection] [refused]",
        ),
        ("db-1", "db 2 and db-1", "db 2 and [db]-[1]"),
        ("cafe", "Un CAFÉ, s'il vous plaît", "Un [CAFÉ], s'il vous plaît"),
        ("cafe", "cafe\u0301!", "[cafe\u0301]!"),
        ("conn*", "connecting to conn-pool", "[connecting] to [conn]-pool"),
        ("disk -full", "disk full", "[disk] full"),
        ("a OR zz", "a b a", "[a] b [a]"),
        ("level:error", "nothing to mark", "nothing to mark"),
        ("[x]", "[x] marks", "[[x]] marks"),
    ],
)
def test_highlight_marks_matched_tokens(query, message, snippet):
    assert parse(query).highlight(message) == snippet


def test_highlight_cuts_long_messages_around_the_first_match():
    message = "x " * 300 + "needle" + " y" * 300
    snippet = parse("needle").highlight(message)
    assert snippet[:3] + snippet[-3:] == "…x  y…"
    assert "[needle]" in snippet
    assert len(snippet) == SNIPPET_CHARS + len("[]") + len("……")
    assert snippet.replace("[", "").replace("]", "").strip("…") in message


def test_highlight_window_stays_inside_the_message():
    start = "needle " + "x" * 500
    assert parse("needle").highlight(start) == "[needle] " + "x" * (SNIPPET_CHARS - 7) + "…"
    end = "x" * 500 + " needle"
    assert parse("needle").highlight(end) == "…" + "x" * (SNIPPET_CHARS - 7) + " [needle]"
    assert parse("level:info").highlight("z" * 500) == "z" * SNIPPET_CHARS + "…"


def test_parsed_query_round_trips_through_json():
    parsed = parse('a -b (c OR "d ef"*) level:error+ -service:api')
    assert msgspec.json.decode(msgspec.json.encode(parsed), type=ParsedQuery) == parsed
