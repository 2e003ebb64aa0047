"""Message text as tsvector literals: the quick ASCII path gives FTS5's tokens, positions and all."""

from __future__ import annotations

import random

import psycopg
from pg_test_helpers import DSN, require_server
from tocsin_postgres.fulltext import MAX_TOKEN_BYTES, tsvector

from tocsin.ext import tokenize


def _literal(text: str) -> str:
    """The tsvector literal spelled out from the shared tokenizer, token by token."""
    return " ".join(f"{token}:{position}" for position, token in enumerate(tokenize(text), 1))


def test_ascii_messages_give_the_shared_tokenizers_tokens_with_their_positions():
    rng = random.Random(17)
    alphabet = [chr(code) for code in range(128)]
    messages = ["", "   ", "GET /api/v1/users/42 200 in 17 ms", "Db-1 FAILED: x=3.5 /var/log\tE42\n"]
    messages += ["".join(rng.choices(alphabet, k=rng.randrange(1, 120))) for _ in range(5000)]
    for message in messages:
        assert tsvector(message) == _literal(message), message


def test_long_and_non_ascii_messages_keep_their_tokens():
    assert tsvector("Grüße aus Köln") == "'gruße':1 'aus':2 'koln':3"
    long_word = "a" * (MAX_TOKEN_BYTES + 1)
    assert tsvector(f"x {long_word} y") == "x:1 y:3"  # too long to index; the next word keeps its position


def test_postgresql_reads_the_literal_as_the_tokens_at_their_positions():
    require_server()
    with psycopg.connect(DSN) as connection:
        (stored,) = connection.execute("SELECT %s::tsvector::text", (tsvector("Retry retry, RETRY now"),)).fetchone()
    assert stored == "'now':4 'retry':1,2,3"
