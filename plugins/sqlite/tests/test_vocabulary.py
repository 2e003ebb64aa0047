"""Prefix expansion from the FTS5 index pages: the same terms as fts5vocab, the same answers as FTS5."""

from __future__ import annotations

import random

import pytest
from sqlite_test_helpers import T0, config, log, run
from tocsin_sqlite import SQLiteStorage, vocabulary

from tocsin.builtins.memory_storage import MemoryStorage
from tocsin.storage.protocol import LogQuery

STEMS = ["conn", "connect", "connection", "connected", "cache", "cached", "re", "refused", "retry", "retrying",
         "time", "timeout", "timer", "zeta", "über", "naïve"]


def _messages(count: int) -> list[str]:
    """Words from STEMS (some with a digit), and now and then a random hex token (many distinct terms)."""
    rng = random.Random(3)

    def word() -> str:
        if rng.random() < 0.15:
            return f"{rng.getrandbits(20):x}"
        return rng.choice(STEMS) + rng.choice(["", "", "", str(rng.randrange(4))])

    return [" ".join(word() for _ in range(rng.randint(2, 7))) for _ in range(count)]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The same records in SQLite (many small writes, so the index has many segments) and in memory."""
    storage = SQLiteStorage(config(tmp_path_factory.mktemp("vocabulary") / "t.db"))
    memory = MemoryStorage()
    records = [log(message, n) for n, message in enumerate(_messages(6000))]

    async def fill() -> None:
        await storage.open()
        for first in range(0, len(records), 50):
            await storage.write_logs(records[first : first + 50])
            await memory.write_logs(records[first : first + 50])

    run(fill())
    yield storage, memory
    run(storage.close())


def _vocabulary(db, prefix: str) -> list[str]:
    db.connection.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.v USING fts5vocab(main, logs_fts, 'row')")
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return [term for (term,) in db.connection.execute("SELECT term FROM temp.v WHERE term >= ? AND term < ?",
                                                      (prefix, upper))]


@pytest.mark.parametrize("prefix", ["co", "conn", "connecti", "ca", "re", "ti", "time", "ze", "zz", "ub", "na", "1",
                                    "12", "a", "f0", "0", "3"])
def test_terms_read_from_the_pages_are_the_terms_fts5vocab_lists(stores, prefix):
    storage, _ = stores

    def both(db):
        return vocabulary.terms_with_prefix(db, "logs_fts", prefix, limit=100_000, min_pages=0), _vocabulary(db, prefix)

    pages, vocab = run(storage._write(both, "compare vocabularies"))  # fts5vocab needs a writable connection
    assert pages == vocab
    assert run(storage._read(lambda db: db.fetch("SELECT count(*) FROM logs_fts_idx")[0][0], "count")) > 3


def test_too_many_terms_or_an_unknown_format_fall_back(stores, monkeypatch):
    storage, _ = stores
    def terms(prefix: str, min_pages: int | None = 0) -> list[str] | None:
        return run(storage._read(lambda db: vocabulary.terms_with_prefix(db, "logs_fts", prefix, min_pages=min_pages),
                                 "expand"))

    assert terms("a") is None  # more than 32 hex tokens
    assert terms("conn", min_pages=None) is None  # the index is small enough for FTS5's own prefix query
    assert terms("conn") == ["conn", "conn0", "conn1", "conn2", "conn3", "connect", "connect0", "connect1",
                             "connect2", "connect3", "connected", "connected0", "connected1", "connected2",
                             "connected3", "connection", "connection0", "connection1", "connection2", "connection3"]
    monkeypatch.setattr(vocabulary, "FORMAT_VERSION", 99)
    assert terms("conn") is None


@pytest.mark.parametrize("text", ["conn*", "conne*", '"cache conn"*', "ti* -timeout", "(re* OR ze*) cached",
                                  "connection* connected", "-conn* cache", "über*", "na*", "zz*"])
@pytest.mark.parametrize("expanded", [True, False])
def test_expanded_prefixes_find_what_fts5_finds(stores, monkeypatch, text, expanded):
    storage, memory = stores
    if expanded:
        monkeypatch.setattr(vocabulary, "MIN_PAGES", 0)
    for limit, start in ((50, None), (1000, T0 + 3000 * 1_000_000)):
        query = LogQuery(text=text, limit=limit, start_ns=start)
        got, want = run(storage.search_logs(query)), run(memory.search_logs(query))
        assert [hit.record.message for hit in got.items] == [hit.record.message for hit in want.items]
        assert got.total == want.total or (got.total is None and want.total > 1000)
