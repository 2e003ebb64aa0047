"""Snippets of short ASCII hits found by single words: one regular expression marks what the tokens would."""

from __future__ import annotations

import random

from tocsin_postgres.snippets import mark, marked

from tocsin.ext import parse_log_query

WORDS = ["conn", "connection", "Connection", "CONNECTIONS", "refused", "e42", "E42x", "42", "a", "ab"]
SEPARATORS = [" ", "  ", "-", ".", ": ", "/", "_", "'", "\t", "=", "(", ")"]
QUERIES = ["connection", "conn*", "refused OR e42", "connection refused", "ab*", "ab NOT refused", "conn* connection",
           '"connection refused"', "42 OR e42*", "connection OR connections", "level:error refused"]


def test_single_word_queries_mark_short_ascii_messages_as_token_by_token_marking_does():
    rng = random.Random(11)
    for _ in range(3000):
        parts = [rng.choice(WORDS) + rng.choice(SEPARATORS) for _ in range(rng.randrange(0, 12))]
        message = "".join(parts)[: rng.choice([200, 60])]
        for query in QUERIES:
            expr = parse_log_query(query).expr
            assert mark(message, expr) == marked(message, expr), (message, query)


def test_overlapping_terms_mark_a_word_once_and_neighbours_apart():
    expr = parse_log_query("conn* connection").expr
    assert mark("Connection conn, connections!", expr) == "[Connection] [conn], [connections]!"
