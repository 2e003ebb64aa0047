"""Log search on SQLite: hostile input, the memory backend as an oracle, snippets, totals, time keys."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlite_test_helpers import MS, T0, config, log, run
from tocsin_sqlite import SQLiteStorage, search

from tocsin.builtins.memory_storage import MemoryStorage
from tocsin.errors import QueryError
from tocsin.models import LOG_LEVELS
from tocsin.storage.protocol import LogQuery

# RELIABILITY.md section 3.5: every one of these raised sqlite3.OperationalError as raw FTS5 MATCH input.
HOSTILE = [
    '"unterminated', 'a"b', "AND OR", "AND", "OR", "NOT", "foo AND", "(foo", "NEAR(", "NEAR(a b", "^", "''",
    "'   '", "foo)", "db-1", "-disk", "disk -full", "nosuchcol:api", 'col:"x', "/var/log", "retry 3/5", "3.5",
    "it's", "*", "*foo", "service:api", "^disk", "foo*", "{message}: disk", "message:x", "level:2", "rank:1",
    "logs_fts:x", "\x00", "a\x00b", "c*", '"" *', "x" * 1001, " ".join(["w"] * 40), "(" * 20 + "a", ")))",
    "NEAR(disk full, 2)", "disk + full", "disk:*", '"disk" * *', "trace:zz", "level:loud", "-", "--", "- a",
    "a OR", "OR a", "a AND AND b", "NOT NOT a", "-(a OR b)", "a OR -b", 'service:"', "(((a)))", "é*", "ß",
]

WORDS = ["disk", "full", "payment", "failed", "order", "retried", "cache", "miss", "user", "timeout", "db",
         "connection", "connected", "refused", "café", "3", "42", "api"]
JOINERS = [" ", " ", " ", "-", "/", ".", ": ", "'"]


def _messages(count: int) -> list[str]:
    rng = random.Random(7)
    out = []
    for _ in range(count):
        words = rng.sample(WORDS, rng.randint(1, 6))
        text = words[0]
        for word in words[1:]:
            text += rng.choice(JOINERS) + word
        out.append(text)
    return out


def _records():
    """60 records 10 ms apart, then a cluster of 6 inside one or two 1 ms id buckets."""
    rng = random.Random(11)
    messages = _messages(66)
    records = [
        log(message, i * 10, level=rng.choice(LOG_LEVELS), service=rng.choice(["api", "web", ""]),
            trace_id=rng.choice([None, "a" * 32, "b" * 32]), execution_id=rng.choice([None, "run-1"]))
        for i, message in enumerate(messages[:60])
    ]
    cluster = [log(message, 700 + i * 0.3, level="error", service="api") for i, message in enumerate(messages[60:])]
    return records, cluster


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    """The same records in a SQLite store and in the memory backend (the reference)."""
    sqlite_store = SQLiteStorage(config(tmp_path_factory.mktemp("search") / "t.db"))
    memory = MemoryStorage()
    records, cluster = _records()

    async def fill() -> None:
        await sqlite_store.open()
        for store in (sqlite_store, memory):
            await store.write_logs(records[:30])
            await store.write_logs(records[30:])
            await store.write_logs(cluster)

    run(fill())
    yield sqlite_store, memory
    run(sqlite_store.close())


async def _all_pages(store, query: LogQuery) -> tuple[list[str], list[str], int | None]:
    """Messages and snippets over every page, and the first page's total."""
    messages, snippets, total, cursor = [], [], None, None
    for number in range(100):
        page = await store.search_logs(LogQuery(**{**_fields(query), "cursor": cursor}))
        if number == 0:
            total = page.total
        messages += [hit.record.message for hit in page.items]
        snippets += [hit.snippet for hit in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return messages, snippets, total
    raise AssertionError("pagination does not end")


def _fields(query: LogQuery) -> dict:
    return {name: getattr(query, name) for name in query.__struct_fields__}


def _same_answer(backends, query: LogQuery) -> None:
    sqlite_store, memory = backends
    try:
        expected = run(_all_pages(memory, query))
    except QueryError:
        with pytest.raises(QueryError):
            run(_all_pages(sqlite_store, query))
        return
    got = run(_all_pages(sqlite_store, query))
    assert got[0] == expected[0]
    assert got[2] == expected[2]
    if query.text.strip():
        assert all(("[" in snippet) == ("]" in snippet) for snippet in got[1])


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_a_query_error_or_an_answer_never_a_database_error(backends, text):
    sqlite_store, _ = backends
    try:
        page = run(sqlite_store.search_logs(LogQuery(text=text)))
    except QueryError:
        pass
    else:
        assert page.total is None or page.total >= len(page.items)
    _same_answer(backends, LogQuery(text=text))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_any_text_is_a_query_error_or_an_answer(backends, text):
    sqlite_store, _ = backends
    try:
        run(sqlite_store.search_logs(LogQuery(text=text, limit=5)))
    except QueryError:
        pass


_TERM = st.one_of(
    st.sampled_from(WORDS),
    st.builds(lambda a, b: f'"{a} {b}"', st.sampled_from(WORDS), st.sampled_from(WORDS)),
    st.builds(lambda w, k: w[:k] + "*", st.sampled_from(WORDS), st.integers(2, 5)),
    st.builds(lambda a, b: f"({a} OR {b})", st.sampled_from(WORDS), st.sampled_from(WORDS)),
)
_EXTRA = st.sampled_from(["-disk", "-failed", 'NOT "payment failed"', "level:error", "level:warning+", "-level:debug",
                          "service:api", "-service:web", "trace:" + "a" * 32, "execution:run-1", "-execution:run-1",
                          'service:""', "level:info level:critical"])


def _rarely(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """None three times in four, so that most queries still find something."""
    return st.one_of(st.none(), st.none(), st.none(), strategy)


_TIME = st.floats(0, 720).map(lambda ms: T0 + round(ms * MS))


@st.composite
def _queries(draw) -> LogQuery:
    terms = draw(st.lists(_TERM, max_size=2)) + draw(st.lists(_EXTRA, max_size=1))
    draw(st.randoms()).shuffle(terms)
    start = draw(_rarely(_TIME))
    return LogQuery(
        text=" ".join(terms),
        level=draw(_rarely(st.sampled_from(LOG_LEVELS))),
        service=draw(_rarely(st.sampled_from(["api", "web", "nope"]))),
        trace_id=draw(_rarely(st.sampled_from(["b" * 32, "B" * 32, "not-a-trace"]))),
        start_ns=start,
        end_ns=draw(_rarely(_TIME if start is None else st.floats(0, 300).map(lambda ms: start + round(ms * MS)))),
        limit=draw(st.integers(1, 12)),
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=_queries())
def test_answers_match_the_memory_backend(backends, query):
    if query.trace_id == "B" * 32:  # any-case hex finds the stored trace on SQLite; memory compares strings
        query = LogQuery(**{**_fields(query), "trace_id": "b" * 32})
    _same_answer(backends, query)


@pytest.mark.parametrize(
    "query",
    [
        LogQuery(start_ns=T0 + 700 * MS, end_ns=T0 + round(700.9 * MS)),  # inside the cluster's first bucket
        LogQuery(start_ns=T0 + round(700.5 * MS), end_ns=T0 + round(701.3 * MS)),
        LogQuery(start_ns=T0 + round(701.2 * MS)),
        LogQuery(end_ns=T0 + round(700.6 * MS), text="disk OR failed OR user OR cache OR db"),
        LogQuery(level="error", start_ns=T0 + 699 * MS),
    ],
)
def test_time_ranges_cut_inside_an_id_bucket_are_exact(backends, query):
    _same_answer(backends, query)


async def test_matches_are_marked_and_long_messages_cut(storage):
    long_text = "lorem " * 60 + "payment declined " + "ipsum " * 60
    await storage.write_logs([log("payment failed", 1), log(long_text, 2)])
    page = await storage.search_logs(LogQuery(text="payment"))
    short, cut = page.items[1].snippet, page.items[0].snippet
    assert short == "[payment] failed"
    assert "[payment]" in cut and "…" in cut and len(cut) < len(long_text) // 2
    plain = await storage.search_logs(LogQuery(level="info"))
    assert [hit.snippet for hit in plain.items] == [long_text, "payment failed"]


async def test_total_is_exact_up_to_the_limit_then_unknown(storage):
    await storage.write_logs([log(f"tick {n}", n) for n in range(search.TOTAL_LIMIT + 5)])
    await storage.write_logs([log("tock", 5000)])
    page = await storage.search_logs(LogQuery(text="tick", limit=10))
    assert page.total is None and len(page.items) == 10 and page.next_cursor
    narrow = await storage.search_logs(LogQuery(text="tick", limit=10, start_ns=T0, end_ns=T0 + 500 * MS))
    assert narrow.total == 500
    assert (await storage.search_logs(LogQuery(text="tock"))).total == 1
    second = await storage.search_logs(LogQuery(text="tick", limit=10, end_ns=T0 + 500 * MS, cursor=narrow.next_cursor))
    assert second.total == 500


async def test_late_records_are_listed_by_time_not_arrival(storage):
    await storage.write_logs([log("new a", 50), log("new b", 60)])
    await storage.write_logs([log("old a", 10), log("old b", 55), log("old c", 60)])
    page = await storage.search_logs(LogQuery())
    assert [hit.record.message for hit in page.items] == ["old c", "new b", "old b", "new a", "old a"]
    assert len({hit.record.id for hit in page.items}) == 5
    ranged = await storage.search_logs(LogQuery(start_ns=T0 + 55 * MS, end_ns=T0 + 61 * MS))
    assert [hit.record.message for hit in ranged.items] == ["old c", "new b", "old b"]


async def test_a_full_id_bucket_spills_and_ranges_stay_exact(storage):
    burst = [log(f"burst {n}", 100) for n in range(600)]  # 600 records in one 1 ms bucket of 256 ids
    await storage.write_logs([log("before", 99), *burst, log("after", 101.5)])
    await storage.write_logs([log("late", 100)])
    everything = await storage.search_logs(LogQuery(limit=1000))
    assert len({hit.record.id for hit in everything.items}) == 603
    in_order = [hit.record.message for hit in everything.items if hit.record.message != "late"]
    assert in_order[0] == "after" and in_order[-1] == "before"  # a late record into a full region comes after it
    upto = await storage.search_logs(LogQuery(end_ns=T0 + 100 * MS + 1, limit=1000))
    assert upto.total == 602 and {h.record.message for h in upto.items} >= {"before", "late", "burst 599"}
    since = await storage.search_logs(LogQuery(start_ns=T0 + 101 * MS, text="after OR burst"))
    assert [hit.record.message for hit in since.items] == ["after"]


async def test_a_runaway_query_stops_at_the_deadline(tmp_path):
    storage = SQLiteStorage(config(tmp_path / "t.db", query_timeout=0))
    await storage.open()
    try:
        await storage.write_logs([log(f"worker {n} picked job {n * 7}", n) for n in range(3000)])
        with pytest.raises(QueryError, match="deadline"):
            await storage.search_logs(LogQuery(text="wo* OR pi* OR jo*", limit=1000))
    finally:
        await storage.close()


def test_match_errors_from_sqlite_become_query_errors(backends, monkeypatch):
    sqlite_store, _ = backends
    monkeypatch.setattr(search, "_match", lambda db, planned: 'message : ("disk" AND)')
    with pytest.raises(QueryError, match="fts5"):
        run(sqlite_store.search_logs(LogQuery(text="disk")))
