"""Log search conformance: the shared corpus gives the same answers on PostgreSQL, on SQLite, and in the reference."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg_test_helpers import config, fresh_schema
from tocsin_postgres import PostgresStorage
from tocsin_sqlite import SQLiteStorage

from tocsin.errors import QueryError
from tocsin.testing.contracts.search_corpus import CORPUS, QUERIES, answer, expected, write_corpus


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


@pytest.fixture(scope="module")
def both_sync(tmp_path_factory):
    """The corpus on a PostgreSQL schema of its own and a SQLite file, with a runner for their coroutines (one
    event loop for the module, as Hypothesis calls the test many times on sync fixtures)."""
    loop = asyncio.new_event_loop()
    with fresh_schema() as name:
        postgres = PostgresStorage(config(name))
        sqlite = SQLiteStorage(SQLiteStorage.Config(path=str(tmp_path_factory.mktemp("corpus") / "corpus.db")))
        for backend in (postgres, sqlite):
            loop.run_until_complete(backend.open())
            loop.run_until_complete(write_corpus(backend))
        yield loop.run_until_complete, postgres, sqlite
        for backend in (postgres, sqlite):
            loop.run_until_complete(backend.close())
    loop.close()


def _words() -> list[str]:
    """The corpus's own words (and pieces of them, for prefixes), a few it lacks, and odd characters."""
    words = sorted({word for message, _, _ in CORPUS for word in message.split()})
    return [*words[:60], "db", "conn", "zzz", "³", "\x00", "é", "日本"]


_PIECES = st.sampled_from(_words()) | st.sampled_from(
    ['"', "*", " ", "OR", "AND", "NOT", "-", "(", ")", "level:error", "service:api", "-service:web", ":", "\\",
     "service:\x00", "level:³"])
TEXTS = st.lists(_PIECES, min_size=1, max_size=8).map(" ".join) | st.lists(_PIECES, max_size=6).map("".join)


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=TEXTS)
def test_generated_searches_answer_alike_on_both_backends_and_the_reference(both_sync, text):
    """Searches made up from the corpus's words and the language's operators (a fixed sample, the same each
    run): PostgreSQL and SQLite give the same answer or both refuse the query, and the answer is the
    reference's."""
    run, postgres, sqlite = both_sync
    answers = []
    for backend in (postgres, sqlite):
        try:
            answers.append(run(answer(backend, {"text": text})))
        except QueryError as error:
            answers.append(("refused", str(error)))
    assert answers[0] == answers[1], text
    if answers[0][0] != "refused":
        assert answers[0][0] == expected({"text": text})[:100], text
