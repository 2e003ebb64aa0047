"""Log search conformance: the shared corpus gives the same answers on PostgreSQL, on SQLite, and in the reference."""

from __future__ import annotations

import pytest
from tocsin_sqlite import SQLiteStorage

from tocsin.testing.contracts.search_corpus import QUERIES, answer, expected, write_corpus


@pytest.fixture
async def both(storage, tmp_path):
    """The corpus written to the test's PostgreSQL schema and to a SQLite file."""
    sqlite = SQLiteStorage(SQLiteStorage.Config(path=str(tmp_path / "corpus.db")))
    await sqlite.open()
    await write_corpus(storage)
    await write_corpus(sqlite)
    yield storage, sqlite
    await sqlite.close()


async def test_every_corpus_query_answers_alike_on_both_backends(both):
    postgres, sqlite = both
    differences = []
    for fields in QUERIES:
        want = expected(fields)
        limit = fields.get("limit", 100)
        got = await answer(postgres, fields)
        reference = await answer(sqlite, fields)
        if got[0] != want[:limit]:
            differences.append(f"{fields}: postgres found {got[0]}, the reference {want[:limit]}")
        if got != reference:
            differences.append(f"{fields}: postgres answered {got}, sqlite {reference}")
    assert not differences, "\n".join(differences)


async def test_the_corpus_finds_something_for_most_queries(both):
    found = [fields for fields in QUERIES if expected(fields)]
    assert len(found) >= len(QUERIES) - 3  # a corpus whose queries find nothing would prove nothing
