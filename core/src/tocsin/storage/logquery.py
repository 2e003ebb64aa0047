"""The log search language: what people type into a search box, parsed once and run by every backend.

Raw FTS5 `MATCH` syntax raises on ordinary text (`db-1`, `/var/log`, `3.5`, `it's`), so user text never
reaches a search engine as syntax. `parse` turns it into a `ParsedQuery`: `to_fts5()` renders it with every
token quoted, `matches()` evaluates the same query in Python, and `fields`/`excluded` become WHERE clauses.

    connection refused          both words, anywhere in the message (implicit AND; `AND` may be written)
    "connection refused"        a phrase: the words next to each other, in this order
    conn*  "connection ref"*    the (last) word only has to start so; at least 2 characters before the `*`
    timeout OR refused          either; OR binds tighter than AND: `db timeout OR refused` = db AND (...)
    (timeout OR refused) db     parentheses group, at most 8 deep
    -debug  -"health check"  NOT debug  -(a OR b)      leave out messages that match
    level:error  service:api  logger:app.db  trace:<32 hex>  span:<16 hex>  execution:<id>  step:<name>
    level:warning+  level:>=warning     warning, error or critical
    service:"my api"  -service:api      a quoted value; an excluded value

Words are split and compared exactly as SQLite FTS5's default `unicode61` tokenizer (remove_diacritics 1)
does (see `tocsin.storage.tokens`): a token is a run of letters, digits and private-use characters,
lower-cased with accents removed (`Café` finds `cafe`); everything else separates tokens. So `db-1` is the
phrase "db 1", `/var/log` is "var log", `it's` is "it s" and `3.5` is "3 5". A term with no letters or digits
(`---`, `"!!!"`) is dropped.

Brackets work like that too, so text pasted from a log finds itself: a `(` inside a word belongs to the word,
and so does everything up to its matching `)`, spaces, commas, quotes and operator words included. So
`connect(host)` is the phrase "connect host", `connect(host, port)` is "connect host port", `retry(3 times)` is
"retry 3 times" and `NEAR(a b, 3)` is "near a b 3" (FTS5's NEAR is not an operator here). Only a `(` that
starts a term groups, as in `(timeout OR refused)`; inside a group a comma separates like a space
(`(host, port)` is host AND port). A `(` inside a word that is never closed does not swallow the rest: the
word ends at the next space as usual (`NEAR(a b` is "near a" AND b).

Field filters apply to the whole query, so they stand at the top level, never inside OR or parentheses.
Repeating a field means either value: `level:error level:critical`. Values match exactly and case-sensitively,
except `level` (any case; `warn` and `fatal` are accepted) and trace/span ids (hex, any case). A record with
no value for a field never matches `field:x` and always passes `-field:x`. An unknown `name:` is plain text:
`http://x` and `key:value` search for the phrases "http x" and "key value".

Uppercase OR, AND and NOT are operators; write the word in lower case or quote it to search for it. A `-`
negates only when it starts a term and is followed by something (`--flag` and a lone `-` are text). A query
must look for something: field filters alone are fine, but negated words need a word that is not negated
beside them (`-debug` is refused even with `level:error`, and so is `a OR -b`, "every message without b"),
because an inverted index cannot list what lacks a word. An unclosed quote or group runs to the end.
Limits: 1000 characters, 32 terms (words, phrases and field filters), 8 levels of parentheses.

An empty or blank text is not a query: `parse("")` raises QueryError. Backends never call it with one:
`LogQuery(text="")` (or only whitespace) means no text filter, and `search_logs` lists every record that the
other filters of the `LogQuery` let through, newest first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec

from tocsin.errors import QueryError
from tocsin.models import LOG_LEVELS, LogRecord
from tocsin.storage.lexer import Lexeme, lex
from tocsin.storage.tokens import token_spans, tokenize

MAX_QUERY_CHARS = 1000
MAX_TERMS = 32
MAX_DEPTH = 8
MIN_PREFIX_CHARS = 2
SNIPPET_CHARS = 200

# -- The parsed query --------------------------------------------------------------------------------------


class Term(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, tag=True):
    """Folded tokens that must appear next to each other; with `prefix` the last one only has to start so."""

    tokens: tuple[str, ...]
    prefix: bool = False


class AllOf(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, tag=True):
    """Every item matches (items may be `Not`, but at least one is not)."""

    items: tuple[Node, ...]


class AnyOf(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, tag=True):
    """At least one item matches (no item is a `Not`)."""

    items: tuple[Node, ...]


class Not(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, tag=True):
    """The item does not match; appears only as an item of `AllOf`."""

    item: Node


Node = Term | AllOf | AnyOf | Not


class _Message:
    """A message's tokens, and their set for quick membership tests."""

    __slots__ = ("tokens", "vocabulary")

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.vocabulary = set(self.tokens)


def _occurrences(term: Term, tokens: list[str]) -> Iterator[int]:
    """Yield every index of `tokens` at which `term` occurs."""
    *head, last = term.tokens
    width = len(term.tokens)
    for i in range(len(tokens) - width + 1):
        end = tokens[i + width - 1]
        if (end.startswith(last) if term.prefix else end == last) and tokens[i : i + width - 1] == head:
            yield i


def _matches(node: Node, message: _Message) -> bool:
    """Evaluate the text expression against a tokenized message (isinstance chain: this is the hot path)."""
    if isinstance(node, Term):
        if len(node.tokens) > 1:
            return (
                message.vocabulary.issuperset(node.tokens[:-1])
                and next(_occurrences(node, message.tokens), None) is not None
            )
        if node.prefix:
            return any(word.startswith(node.tokens[0]) for word in message.vocabulary)
        return node.tokens[0] in message.vocabulary
    if isinstance(node, AllOf):
        return all(_matches(item, message) for item in node.items)
    if isinstance(node, AnyOf):
        return any(_matches(item, message) for item in node.items)
    return not _matches(node.item, message)


def _fts5(node: Node) -> str:
    """Render a positive expression as FTS5: every token double-quoted, every operator in parentheses."""
    match node:
        case Term(tokens=tokens, prefix=prefix):
            return '"' + " ".join(tokens) + '"' + (" *" if prefix else "")
        case AnyOf(items=items):
            return "(" + " OR ".join(_fts5(item) for item in items) + ")"
        case AllOf(items=items):
            wanted = [_fts5(item) for item in items if not isinstance(item, Not)]
            unwanted = [_fts5(item.item) for item in items if isinstance(item, Not)]
            text = wanted[0] if len(wanted) == 1 else "(" + " AND ".join(wanted) + ")"
            if len(unwanted) > 1:
                unwanted = ["(" + " OR ".join(unwanted) + ")"]
            return f"({text} NOT {unwanted[0]})" if unwanted else text
    raise AssertionError(f"cannot render {node!r} on its own")  # parse() never builds such a tree


def _positive_terms(node: Node) -> Iterator[Term]:
    """Every term that is not under a `Not`: the ones worth highlighting."""
    match node:
        case Term():
            yield node
        case AllOf(items=items) | AnyOf(items=items):
            for item in items:
                yield from _positive_terms(item)


class ParsedQuery(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A parsed log search: a text expression over message tokens plus field filters for the whole query.

    `fields` maps a record field (level, service, logger, trace_id, span_id, execution_id, step) to the values
    it may have; `excluded` to the values it must not have. A record whose field is None never matches
    `fields` and always passes `excluded` (in SQL: `col IS NULL OR col NOT IN (...)`).
    """

    source: str
    expr: Node | None = None
    fields: dict[str, list[str]] = {}
    excluded: dict[str, list[str]] = {}

    @property
    def has_text(self) -> bool:
        """True when the query searches message text (and so `to_fts5()` is not None)."""
        return self.expr is not None

    def matches(self, record: LogRecord) -> bool:
        """Whether a record satisfies the whole query: field filters and message text."""
        if any(getattr(record, name) not in values for name, values in self.fields.items()):
            return False
        if any(getattr(record, name) in values for name, values in self.excluded.items()):
            return False
        return self.expr is None or _matches(self.expr, _Message(record.message))

    def to_fts5(self) -> str | None:
        """The text part as an FTS5 MATCH expression with every token quoted, or None when there is none."""
        return None if self.expr is None else _fts5(self.expr)

    def highlight(self, message: str) -> str:
        """The message with each matched token wrapped in `[` `]`, cut to ~200 characters around the first."""
        found = token_spans(message)
        spans = [(start, end) for start, end, _ in found]
        tokens = [token for _, _, token in found]
        marked: set[int] = set()
        for term in _positive_terms(self.expr) if self.expr is not None else ():
            for i in _occurrences(term, tokens):
                marked.update(range(i, i + len(term.tokens)))
        start, end = 0, len(message)
        if end > SNIPPET_CHARS:
            first = spans[min(marked)][0] if marked else 0
            start = max(0, min(first - SNIPPET_CHARS // 4, end - SNIPPET_CHARS))
            end = start + SNIPPET_CHARS
        pieces = ["…"] if start > 0 else []
        position = start
        for i in sorted(marked):
            token_start, token_end = spans[i]
            if start <= token_start and token_end <= end:
                pieces += [message[position:token_start], "[", message[token_start:token_end], "]"]
                position = token_end
        pieces.append(message[position:end])
        if end < len(message):
            pieces.append("…")
        return "".join(pieces)


# -- Parsing -----------------------------------------------------------------------------------------------

_FIELD_NAMES = {
    "level": "level",
    "service": "service",
    "logger": "logger",
    "trace": "trace_id",
    "trace_id": "trace_id",
    "span": "span_id",
    "span_id": "span_id",
    "execution": "execution_id",
    "execution_id": "execution_id",
    "step": "step",
}
_LEVEL_ALIASES = {"warn": "warning", "fatal": "critical"}
_HEX_IDS = {"trace_id": re.compile(r"[0-9a-fA-F]{32}"), "span_id": re.compile(r"[0-9a-fA-F]{16}")}
_ENDS_OPERAND = ("", ")", "OR", "AND")
_NOTHING_POSITIVE = (
    "nothing to look for: `-word` and `NOT word` only leave messages out, so add a word to search for "
    "(a negated field filter such as -level:debug may stand alone)"
)


class _Field(msgspec.Struct, kw_only=True, frozen=True):
    """A field filter on its way to ParsedQuery.fields (or .excluded when negated)."""

    name: str
    values: tuple[str, ...]
    negated: bool = False


def _field_values(name: str, value: str) -> tuple[str, ...]:
    """Validate and normalize the value of `name:value`; `level:warning+` expands to several levels."""
    if not value:
        raise QueryError(f'field filter `{name}:` needs a value, e.g. level:error or service:"my api"')
    field = _FIELD_NAMES[name]
    if field == "level":
        level = value.lower()
        at_least = level.startswith(">=") or level.endswith("+")
        level = level.removeprefix(">=").removesuffix("+")
        level = _LEVEL_ALIASES.get(level, level)
        if level not in LOG_LEVELS:
            raise QueryError(
                f"`{name}:{value}` is not a log level: use one of {', '.join(LOG_LEVELS)} "
                "(level:warning+ or level:>=warning means warning and above)"
            )
        index = LOG_LEVELS.index(level)
        return LOG_LEVELS[index:] if at_least else (level,)
    if field in _HEX_IDS:
        if not _HEX_IDS[field].fullmatch(value):
            width = 32 if field == "trace_id" else 16
            raise QueryError(f"`{name}:{value}` is not a {field}: expected {width} hex characters")
        return (value.lower(),)
    return (value,)


def _flatten(kind: type[AllOf] | type[AnyOf], items: list[Node]) -> Node | None:
    """Join items with AND or OR, merging nested joins of the same kind; None when nothing is left."""
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    if len(flat) <= 1:
        return flat[0] if flat else None
    return kind(items=tuple(flat))


def _check_searchable(node: Node) -> None:
    """Refuse what an inverted index cannot answer: nothing positive to look for, or a negated negation."""
    match node:
        case Not():
            raise QueryError(_NOTHING_POSITIVE)
        case AnyOf(items=items):
            for item in items:
                _check_searchable(item)
        case AllOf(items=items):
            for item in items:
                if isinstance(item, Not):
                    if isinstance(item.item, Not):
                        raise QueryError("a negation cannot be negated again; drop both")
                    _check_searchable(item.item)
                else:
                    _check_searchable(item)
            if all(isinstance(item, Not) for item in items):
                raise QueryError(_NOTHING_POSITIVE)


class _Parser:
    """Recursive descent over lexemes; OR binds tighter than AND, negation tightest of all."""

    def __init__(self, lexemes: list[Lexeme]) -> None:
        self.lexemes = lexemes
        self.position = 0
        self.terms = 0
        self.fields: dict[str, list[str]] = {}
        self.excluded: dict[str, list[str]] = {}

    def peek(self) -> str:
        """The kind of the next lexeme, or "" at the end."""
        return self.lexemes[self.position].kind if self.position < len(self.lexemes) else ""

    def take(self) -> Lexeme:
        """Consume and return the next lexeme."""
        self.position += 1
        return self.lexemes[self.position - 1]

    def sequence(self, depth: int) -> Node | None:
        """Terms joined by implicit or explicit AND, up to a `)` or the end."""
        items: list[Node] = []
        operands = 0
        while self.peek() not in ("", ")"):
            if self.peek() == "AND":
                lexeme = self.take()
                if operands == 0 or self.peek() in _ENDS_OPERAND:
                    raise QueryError(f"AND at character {lexeme.at + 1} needs a term on each side")
            operand = self.disjunction(depth)
            operands += 1
            if isinstance(operand, _Field):
                if depth > 0:
                    raise QueryError(
                        f"field filter `{operand.name}:` cannot go inside parentheses: "
                        "field filters apply to the whole query"
                    )
                self.add_field(operand)
            elif operand is not None:
                items.append(operand)
        return _flatten(AllOf, items)

    def disjunction(self, depth: int) -> Node | _Field | None:
        """Operands joined by OR."""
        operands = [self.unary(depth)]
        while self.peek() == "OR":
            lexeme = self.take()
            if self.peek() in _ENDS_OPERAND:
                raise QueryError(f"OR at character {lexeme.at + 1} needs a term on each side")
            operands.append(self.unary(depth))
        if len(operands) == 1:
            return operands[0]
        for operand in operands:
            if isinstance(operand, _Field):
                raise QueryError(
                    f"field filter `{operand.name}:` cannot be combined with OR: field filters apply to the "
                    "whole query; repeat a field to accept either value (level:error level:critical)"
                )
            if isinstance(operand, Not):
                raise QueryError(
                    "OR cannot combine with a negated term (as in `a OR -b`): that would list every message "
                    "without b; negate outside the OR instead"
                )
        return _flatten(AnyOf, [operand for operand in operands if operand is not None])

    def unary(self, depth: int) -> Node | _Field | None:
        """An operand, optionally negated with `-` or NOT."""
        if self.peek() not in ("-", "NOT"):
            return self.primary(depth)
        lexeme = self.take()
        if self.peek() in ("-", "NOT"):
            raise QueryError(f"a negation cannot be negated again (character {lexeme.at + 1})")
        if self.peek() in _ENDS_OPERAND:
            raise QueryError(f"{lexeme.kind} at character {lexeme.at + 1} needs a term after it")
        operand = self.primary(depth)
        if isinstance(operand, _Field):
            return _Field(name=operand.name, values=operand.values, negated=True)
        return None if operand is None else Not(item=operand)

    def primary(self, depth: int) -> Node | _Field | None:
        """A group, a field filter, a phrase or a word (None when it holds no token)."""
        lexeme = self.take()
        if lexeme.kind == "(":
            if depth >= MAX_DEPTH:
                raise QueryError(f"parentheses nest deeper than {MAX_DEPTH} levels at character {lexeme.at + 1}")
            group = self.sequence(depth + 1)
            if self.peek() == ")":
                self.take()
            return group
        if lexeme.kind == "field":
            self.terms += 1
            return _Field(name=lexeme.name, values=_field_values(lexeme.name, lexeme.text))
        if lexeme.kind in ("word", "phrase"):
            return self.term(lexeme)
        raise QueryError(f"{lexeme.kind} at character {lexeme.at + 1} needs a term on each side")

    def term(self, lexeme: Lexeme) -> Term | None:
        """The tokens of a word or phrase; None when it has no letters or digits."""
        tokens = tokenize(lexeme.text)
        if not tokens:
            return None
        if lexeme.prefix and len(tokens[-1]) < MIN_PREFIX_CHARS:
            raise QueryError(
                f"prefix `{lexeme.text.strip()}` is too short: put at least {MIN_PREFIX_CHARS} letters or "
                "digits before the `*`"
            )
        self.terms += 1
        return Term(tokens=tuple(tokens), prefix=lexeme.prefix)

    def add_field(self, field: _Field) -> None:
        """Record a top-level field filter; repeated fields accept any of their values."""
        target = self.excluded if field.negated else self.fields
        values = target.setdefault(_FIELD_NAMES[field.name], [])
        values.extend(value for value in field.values if value not in values)


def parse(text: str) -> ParsedQuery:
    """Parse a log search written in the language above; bad input raises QueryError and nothing else."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}")
    if not text.strip():
        raise QueryError("empty query: type a word to search for, or a field filter such as level:error")
    parser = _Parser(lex(text, _FIELD_NAMES))
    expr = parser.sequence(0)
    if parser.peek() == ")":
        raise QueryError(f"unmatched `)` at character {parser.take().at + 1}: remove it, or quote it to search for it")
    if parser.terms > MAX_TERMS:
        raise QueryError(f"query has {parser.terms} terms; the limit is {MAX_TERMS} (words, phrases and field filters)")
    if expr is None:
        if not parser.fields and not parser.excluded:
            raise QueryError("nothing to search for: words need a letter or digit (`---` and `!!!` are ignored)")
    else:
        _check_searchable(expr)
    return ParsedQuery(source=text, expr=expr, fields=parser.fields, excluded=parser.excluded)
