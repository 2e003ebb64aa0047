"""The log search language's lexer: query text split into words, phrases, fields, brackets and operators.

Brackets that open inside a word and are closed later belong to the word, so text pasted from a log line
(`connect(host, port)`) stays one word; a bracket that starts a term groups. `tocsin.storage.logquery`
parses the lexemes.
"""

from __future__ import annotations

import re
from collections.abc import Container

import msgspec

_FIELD = re.compile(r"([A-Za-z_]+):(.*)", re.DOTALL)
_KEYWORDS = ("OR", "AND", "NOT")


class Lexeme(msgspec.Struct, kw_only=True, frozen=True):
    """One piece of query syntax: `(`, `)`, `OR`, `AND`, `NOT`, `-`, `word`, `phrase` or `field`."""

    kind: str
    at: int
    text: str = ""
    name: str = ""
    prefix: bool = False


def _quoted(text: str, i: int) -> tuple[str, int]:
    """Read a quoted string starting at text[i] == '"'; an unclosed quote runs to the end."""
    close = text.find('"', i + 1)
    return (text[i + 1 :], len(text)) if close < 0 else (text[i + 1 : close], close + 1)


def _closing_brackets(text: str) -> dict[int, int]:
    """Where each `(` outside quotes is closed: the index of its matching `)`, for those that are closed."""
    closes: dict[int, int] = {}
    opened: list[int] = []
    quoted = False
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            opened.append(i)
        elif char == ")" and opened:
            closes[opened.pop()] = i
    return closes


def _bare_word(text: str, i: int, closes: dict[int, int]) -> int:
    """The end of the bare word starting at i: whitespace, a quote or an unbalanced `)` ends it.

    A `(` inside the word that is closed later takes everything up to its `)` into the word, spaces, commas
    and quotes included, so `connect(host, port)` is one word (the phrase "connect host port").
    """
    depth = 0
    while i < len(text) and not text[i].isspace() and text[i] != '"':
        if text[i] == "(":
            if i in closes:
                i = closes[i]
            else:
                depth += 1
        elif text[i] == ")":
            if depth == 0:
                break
            depth -= 1
        i += 1
    return i


def lex(text: str, field_names: Container[str]) -> list[Lexeme]:
    """Split query text into lexemes; `name:value` is a field lexeme when `name` is in `field_names`."""
    lexemes: list[Lexeme] = []
    closes = _closing_brackets(text)
    i = 0
    while i < len(text):
        char = text[i]
        start = i
        if char.isspace():
            i += 1
        elif char in "()":
            lexemes.append(Lexeme(kind=char, at=i))
            i += 1
        elif char == '"':
            body, i = _quoted(text, i)
            stars = len(text[i:]) - len(text[i:].lstrip("*"))
            lexemes.append(Lexeme(kind="phrase", at=start, text=body, prefix=stars > 0))
            i += stars
        elif char == "-" and text[i + 1 : i + 2] not in ("", "-", ")") and not text[i + 1].isspace():
            lexemes.append(Lexeme(kind="-", at=i))
            i += 1
        else:
            i = _bare_word(text, i, closes)
            word = text[start:i]
            after_minus = bool(lexemes) and lexemes[-1].kind == "-" and lexemes[-1].at == start - 1
            field = _FIELD.fullmatch(word)
            if word in _KEYWORDS and not after_minus:
                lexemes.append(Lexeme(kind=word, at=start))
            elif field and field.group(1).lower() in field_names:
                value = field.group(2)
                if not value and text[i : i + 1] == '"':
                    value, i = _quoted(text, i)
                lexemes.append(Lexeme(kind="field", at=start, name=field.group(1).lower(), text=value))
            else:
                lexemes.append(Lexeme(kind="word", at=start, text=word, prefix=word.endswith("*")))
    return lexemes
