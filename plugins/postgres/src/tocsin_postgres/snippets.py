"""Search hit snippets marked exactly as SQLite's FTS5 marks them, so both backends return the same hits.

SQLite's search shows a message of up to 200 characters whole, through FTS5's `highlight()`, and a longer
one through `snippet()` cut to 32 tokens. This module reproduces both from the message's tokens
(`tocsin.ext.tokenize`'s splitting) and the query's phrases:

* An instance is an occurrence of one positive phrase (a term of the query not under NOT); overlapping
  instances merge (adjacent ones do not), and each is wrapped in `[` `]` from the start of its first token to
  the end of its last.
* The snippet window is the one FTS5 picks: each instance scores the window starting there (1000 per
  distinct phrase in it, 1 per repeat), then the window is centred on the instances it covers; a window
  starting at a sentence (the text's start, or a token after `. ` or `: `) gets a bonus of 120 at the start
  of the text and 100 elsewhere. The best score wins, the earliest on ties. The text runs from the window's
  first token (`…` before it unless it is the text's start) to its last (`…` after unless it ends the text).
"""

from __future__ import annotations

import functools
import re

from tocsin.ext import AllOf, AnyOf, Node, Term, token_spans
from tocsin_postgres.fulltext import FOLD_ASCII

SNIPPET_CHARS = 200
SNIPPET_TOKENS = 32
ELLIPSIS = "…"

_SENTENCE_END = re.compile(r"[.:][ \t\n\r]+$")
_ASCII_TOKEN = re.compile("[0-9A-Za-z]+")


def spans(message: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The folded tokens of a message and where each stands (start, end): `tocsin.ext.token_spans`, with a path
    for ASCII text (where a token is a run of letters and digits, lower-cased) twice as quick."""
    if message.isascii():
        tokens = message.encode().translate(FOLD_ASCII).decode().split()
        return tokens, [match.span() for match in _ASCII_TOKEN.finditer(message)]
    found = token_spans(message)
    return [token for _, _, token in found], [(start, end) for start, end, _ in found]


def _phrases(node: Node | None) -> list[Term]:
    """The positive terms of an expression, in query order (FTS5's phrase numbers)."""
    if isinstance(node, Term):
        return [node]
    if isinstance(node, AllOf | AnyOf):
        return [term for item in node.items for term in _phrases(item)]
    return []


def _instances(terms: list[Term], tokens: list[str]) -> list[tuple[int, int, int]]:
    """Every (first token, last token, phrase number) where a phrase occurs, by position."""
    found = []
    for number, term in enumerate(terms):
        *head, last = term.tokens
        if not head:  # one word, the common case: no slices to compare
            found += [(i, i, number) for i, token in enumerate(tokens)
                      if (token.startswith(last) if term.prefix else token == last)]
            continue
        width = len(term.tokens)
        for i in range(len(tokens) - width + 1):
            end = tokens[i + width - 1]
            if (end.startswith(last) if term.prefix else end == last) and tokens[i : i + width - 1] == head:
                found.append((i, i + width - 1, number))
    found.sort()
    return found


def _coalesced(instances: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Instances merged where they overlap (not where they only touch)."""
    merged: list[tuple[int, int]] = []
    for start, end, _ in instances:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _score(instances: list[tuple[int, int, int]], first: int, size: int) -> tuple[int, int]:
    """FTS5's score of the window of `size` tokens from `first`, and where it would centre that window."""
    seen: set[int] = set()
    score, begin, last = 0, -1, 0
    for start, end, phrase in instances:
        if first <= start < first + size:
            score += 1 if phrase in seen else 1000
            seen.add(phrase)
            begin = start if begin < 0 else begin
            last = end + 1
    spare = size - (last - begin)
    return score, begin - (abs(spare) // 2 if spare >= 0 else -(abs(spare) // 2))


def _window(message: str, spans: list[tuple[int, int]], instances: list[tuple[int, int, int]]) -> int:
    """The first token of the snippet window FTS5 would choose."""
    count = len(spans)
    sentences = [i for i, (start, _) in enumerate(spans) if i == 0 or _SENTENCE_END.search(message[:start])]
    best_score, best_start = 0, 0
    for start, _, _ in instances:
        score, centred = _score(instances, start, SNIPPET_TOKENS)
        centred = max(0, min(centred, count - SNIPPET_TOKENS))
        if score > best_score:
            best_score, best_start = score, centred
        if sentences and count > SNIPPET_TOKENS:
            sentence = next(s for s in reversed(sentences) if s <= start) if sentences[0] <= start else sentences[0]
            if sentence < start:
                bonus = _score(instances, sentence, SNIPPET_TOKENS)[0] + (120 if sentence == 0 else 100)
                if bonus > best_score:
                    best_score, best_start = bonus, sentence
    return best_start


@functools.lru_cache(maxsize=256)
def _words(expr: Node) -> re.Pattern[str] | None:
    """For a query whose positive terms are all single ASCII words (or prefixes): a pattern matching each whole
    ASCII token they find; None for any other query. Such instances are single tokens, one per token however
    many terms find it, never merged with their neighbours, so marking them is one `re.sub`."""
    terms = _phrases(expr)
    if not terms or any(len(term.tokens) != 1 or not term.tokens[0].isascii() for term in terms):
        return None
    words = "|".join(re.escape(term.tokens[0]) + ("[0-9A-Za-z]*" if term.prefix else "") for term in terms)
    return re.compile(f"(?<![0-9A-Za-z])(?:{words})(?![0-9A-Za-z])", re.IGNORECASE | re.ASCII)


def mark(message: str, expr: Node) -> str:
    """The hit's snippet: the message highlighted whole up to 200 characters, else a 32-token window of it.
    A short ASCII message found by single words (the common hit) is marked by one regular expression."""
    words = _words(expr) if len(message) <= SNIPPET_CHARS and message.isascii() else None
    if words is not None:
        return words.sub(r"[\g<0>]", message)
    return marked(message, expr)


def marked(message: str, expr: Node) -> str:
    """`mark` token by token, for any message and query."""
    tokens, places = spans(message)
    instances = _instances(_phrases(expr), tokens)
    first, last = 0, len(places) - 1
    if len(message) > SNIPPET_CHARS:
        first = _window(message, places, instances)
        last = min(first + SNIPPET_TOKENS - 1, len(places) - 1)
    begin = places[first][0] if first > 0 else 0
    end = len(message) if last >= len(places) - 1 else places[last][1]
    pieces = [ELLIPSIS] if first > 0 else []
    position = begin
    for start, stop in _coalesced(instances):
        if start < first or start > last:
            continue
        stop = min(stop, last)
        pieces += [message[position : places[start][0]], "[", message[places[start][0] : places[stop][1]], "]"]
        position = places[stop][1]
    pieces.append(message[position:end])
    if end < len(message):
        pieces.append(ELLIPSIS)
    return "".join(pieces)
