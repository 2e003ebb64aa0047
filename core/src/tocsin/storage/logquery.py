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
does: a token is a run of letters, digits and private-use characters, lower-cased with accents removed
(`Café` finds `cafe`); everything else separates tokens. So `db-1` is the phrase "db 1", `/var/log` is
"var log", `it's` is "it s" and `3.5` is "3 5". A term with no letters or digits (`---`, `"!!!"`) is dropped.

Field filters apply to the whole query, so they stand at the top level, never inside OR or parentheses.
Repeating a field means either value: `level:error level:critical`. Values match exactly and case-sensitively,
except `level` (any case; `warn` and `fatal` are accepted) and trace/span ids (hex, any case). A record with
no value for a field never matches `field:x` and always passes `-field:x`. An unknown `name:` is plain text:
`http://x` and `key:value` search for the phrases "http x" and "key value".

Uppercase OR, AND and NOT are operators; write the word in lower case or quote it to search for it. A `-`
negates only when it starts a term and is followed by something (`--flag` and a lone `-` are text). A query
must look for something: field filters alone are fine, but negated words need a word that is not negated
beside them (`-debug` is refused even with `level:error`, and so is `a OR -b`, "every message without b"),
because an inverted index cannot list what lacks a word. An unclosed quote or parenthesis runs to the end.
Limits: 1000 characters, 32 terms (words, phrases and field filters), 8 levels of parentheses.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

import msgspec

from tocsin.errors import QueryError
from tocsin.models import LOG_LEVELS, LogRecord

MAX_QUERY_CHARS = 1000
MAX_TERMS = 32
MAX_DEPTH = 8
MIN_PREFIX_CHARS = 2
SNIPPET_CHARS = 200

# -- Tokenizer: SQLite FTS5 unicode61, remove_diacritics 1 ------------------------------------------------
#
# The three tables below were extracted from the unicode61 tokenizer of SQLite 3.40.1 (its Unicode data is
# older than Python's, so `unicodedata` categories would disagree for thousands of characters). test_logquery
# compares this tokenizer with the linked SQLite for every BMP codepoint and a sample of the others.
#
# Non-ASCII separators (hex codepoint ranges); every other non-ASCII codepoint, unassigned ones included, is
# a token character. In ASCII only [0-9A-Za-z] are token characters.
_SEPARATORS = (
    "80-a9 ab-b1 b4 b6-b8 bb bf d7 f7 2c2-2c5 2d2-2df 2e5-2eb 2ed 2ef-2ff 305 30d-30e 310 312-31a "
    "31c-322 329-32c 32f 332-36f 375 37e 384-385 387 3f6 482-489 55a-55f 589-58a 58f 591-5c7 5f3-5f4 "
    "600-604 606-61b 61e-61f 64b-65f 66a-66d 670 6d4 6d6-6e4 6e7-6ed 6fd-6fe 700-70d 70f 711 730-74a "
    "7a6-7b0 7eb-7f3 7f6-7f9 816-819 81b-823 825-827 829-82d 830-83e 859-85b 85e 8e4-8fe 900-903 "
    "93a-93c 93e-94f 951-957 962-965 970 981-983 9bc 9be-9c4 9c7-9c8 9cb-9cd 9d7 9e2-9e3 9f2-9f3 "
    "9fa-9fb a01-a03 a3c a3e-a42 a47-a48 a4b-a4d a51 a70-a71 a75 a81-a83 abc abe-ac5 ac7-ac9 acb-acd "
    "ae2-ae3 af0-af1 b01-b03 b3c b3e-b44 b47-b48 b4b-b4d b56-b57 b62-b63 b70 b82 bbe-bc2 bc6-bc8 "
    "bca-bcd bd7 bf3-bfa c01-c03 c3e-c44 c46-c48 c4a-c4d c55-c56 c62-c63 c7f c82-c83 cbc cbe-cc4 "
    "cc6-cc8 cca-ccd cd5-cd6 ce2-ce3 d02-d03 d3e-d44 d46-d48 d4a-d4d d57 d62-d63 d79 d82-d83 dca "
    "dcf-dd4 dd6 dd8-ddf df2-df4 e31 e34-e3a e3f e47-e4f e5a-e5b eb1 eb4-eb9 ebb-ebc ec8-ecd f01-f1f "
    "f34-f3f f71-f87 f8d-f97 f99-fbc fbe-fcc fce-fda 102b-103e 104a-104f 1056-1059 105e-1060 "
    "1062-1064 1067-106d 1071-1074 1082-108d 108f 109a-109f 10fb 135d-1368 1390-1399 1400 166d-166e "
    "1680 169b-169c 16eb-16ed 1712-1714 1732-1736 1752-1753 1772-1773 17b4-17d6 17d8-17db 17dd "
    "1800-180e 18a9 1920-192b 1930-193b 1940 1944-1945 19b0-19c0 19c8-19c9 19de-19ff 1a17-1a1b "
    "1a1e-1a1f 1a55-1a5e 1a60-1a7c 1a7f 1aa0-1aa6 1aa8-1aad 1b00-1b04 1b34-1b44 1b5a-1b7c 1b80-1b82 "
    "1ba1-1bad 1be6-1bf3 1bfc-1bff 1c24-1c37 1c3b-1c3f 1c7e-1c7f 1cc0-1cc7 1cd0-1ce8 1ced 1cf2-1cf4 "
    "1dc0-1de6 1dfc-1dff 1fbd 1fbf-1fc1 1fcd-1fcf 1fdd-1fdf 1fed-1fef 1ffd-1ffe 2000-2064 206a-206f "
    "207a-207e 208a-208e 20a0-20b9 20d0-20f0 2100-2101 2103-2106 2108-2109 2114 2116-2118 211e-2123 "
    "2125 2127 2129 212e 213a-213b 2140-2144 214a-214d 214f 2190-23f3 2400-2426 2440-244a 249c-24e9 "
    "2500-26ff 2701-2775 2794-2b4c 2b50-2b59 2ce5-2cea 2cef-2cf1 2cf9-2cfc 2cfe-2cff 2d70 2d7f "
    "2de0-2e2e 2e30-2e3b 2e80-2e99 2e9b-2ef3 2f00-2fd5 2ff0-2ffb 3000-3004 3008-3020 302a-3030 "
    "3036-3037 303d-303f 3099-309c 30a0 30fb 3190-3191 3196-319f 31c0-31e3 3200-321e 322a-3247 3250 "
    "3260-327f 328a-32b0 32c0-32fe 3300-33ff 4dc0-4dff a490-a4c6 a4fe-a4ff a60d-a60f a66f-a67e a69f "
    "a6f0-a6f7 a700-a716 a720-a721 a789-a78a a802 a806 a80b a823-a82b a836-a839 a874-a877 a880-a881 "
    "a8b4-a8c4 a8ce-a8cf a8e0-a8f1 a8f8-a8fa a926-a92f a947-a953 a95f a980-a983 a9b3-a9cd a9de-a9df "
    "aa29-aa36 aa43 aa4c-aa4d aa5c-aa5f aa77-aa79 aa7b aab0 aab2-aab4 aab7-aab8 aabe-aabf aac1 "
    "aade-aadf aaeb-aaf1 aaf5-aaf6 abe3-abed d800-dfff fb1e fb29 fbb2-fbc1 fd3e-fd3f fdfc-fdfd "
    "fe00-fe19 fe20-fe26 fe30-fe52 fe54-fe66 fe68-fe6b feff ff01-ff0f ff1a-ff20 ff3b-ff40 ff5b-ff65 "
    "ffe0-ffe6 ffe8-ffee fff9-ffff 10100-10102 10137-1013f 10179-10189 10190-1019b 101d0-101fd 1039f "
    "103d0 10857 1091f 1093f 10a01-10a03 10a05-10a06 10a0c-10a0f 10a38-10a3a 10a3f 10a50-10a58 10a7f "
    "10b39-10b3f 11000-11002 11038-1104d 11080-11082 110b0-110c1 11100-11102 11127-11134 11140-11143 "
    "11180-11182 111b3-111c0 111c5-111c8 116ab-116b7 12470-12473 16f51-16f7e 16f8f-16f92 1d000-1d0f5 "
    "1d100-1d126 1d129-1d1dd 1d200-1d245 1d300-1d356 1d6c1 1d6db 1d6fb 1d715 1d735 1d74f 1d76f 1d789 "
    "1d7a9 1d7c3 1eef0-1eef1 1f000-1f02b 1f030-1f093 1f0a0-1f0ae 1f0b1-1f0be 1f0c1-1f0cf 1f0d1-1f0df "
    "1f110-1f12e 1f130-1f16b 1f170-1f19a 1f1e6-1f202 1f210-1f23a 1f240-1f248 1f250-1f251 1f300-1f320 "
    "1f330-1f335 1f337-1f37c 1f380-1f393 1f3a0-1f3c4 1f3c6-1f3ca 1f3e0-1f3f0 1f400-1f43e 1f440 "
    "1f442-1f4f7 1f4f9-1f4fc 1f500-1f53d 1f540-1f543 1f550-1f567 1f5fb-1f640 1f645-1f64f 1f680-1f6c5 "
    "1f700-1f773 e0001 e0020-e007f e0100-e01ef"
)
# Combining marks that continue a token (and are dropped from it) but cannot start one.
_DIACRITICS = "300-304 306-30c 30f 311 31b 323-328 32d-32e 330-331"
# Case folding runs `first[-last][/step]:delta`: a codepoint c in the run folds to c + delta.
_CASE_FOLDS = (
    "41-5a:+32 b5:+775 c0-d6:+32 d8-de:+32 100-12e/2:+1 132-136/2:+1 139-147/2:+1 14a-176/2:+1 "
    "178:-121 179-17d/2:+1 17f:-268 181:+210 182-184/2:+1 186:+206 187:+1 189-18a:+205 18b:+1 18e:+79 "
    "18f:+202 190:+203 191:+1 193:+205 194:+207 196:+211 197:+209 198:+1 19c:+211 19d:+213 19f:+214 "
    "1a0-1a4/2:+1 1a6:+218 1a7:+1 1a9:+218 1ac:+1 1ae:+218 1af:+1 1b1-1b2:+217 1b3-1b5/2:+1 1b7:+219 "
    "1b8:+1 1bc:+1 1c4:+2 1c5:+1 1c7:+2 1c8:+1 1ca:+2 1cb-1db/2:+1 1de-1ee/2:+1 1f1:+2 1f2-1f4/2:+1 "
    "1f6:-97 1f7:-56 1f8-21e/2:+1 220:-130 222-232/2:+1 23a:+10795 23b:+1 23d:-163 23e:+10792 241:+1 "
    "243:-195 244:+69 245:+71 246-24e/2:+1 370-372/2:+1 376:+1 386:+38 388-38a:+37 38c:+64 "
    "38e-38f:+63 391-3a1:+32 3a3-3ab:+32 3c2:+1 3cf:+8 3d0:-30 3d1:-25 3d5:-15 3d6:-22 3d8-3ee/2:+1 "
    "3f0:-54 3f1:-48 3f4:-60 3f5:-64 3f7:+1 3f9:-7 3fa:+1 3fd-3ff:-130 400-40f:+80 410-42f:+32 "
    "460-480/2:+1 48a-4be/2:+1 4c0:+15 4c1-4cd/2:+1 4d0-526/2:+1 531-556:+48 10a0-10c5:+7264 "
    "10c7:+7264 10cd:+7264 1e00-1e94/2:+1 1e9b:-58 1e9e:-7615 1ea0-1efe/2:+1 1f08-1f0f:-8 "
    "1f18-1f1d:-8 1f28-1f2f:-8 1f38-1f3f:-8 1f48-1f4d:-8 1f59-1f5f/2:-8 1f68-1f6f:-8 1f88-1f8f:-8 "
    "1f98-1f9f:-8 1fa8-1faf:-8 1fb8-1fb9:-8 1fba-1fbb:-74 1fbc:-9 1fbe:-7173 1fc8-1fcb:-86 1fcc:-9 "
    "1fd8-1fd9:-8 1fda-1fdb:-100 1fe8-1fe9:-8 1fea-1feb:-112 1fec:-7 1ff8-1ff9:-128 1ffa-1ffb:-126 "
    "1ffc:-9 2126:-7517 212a:-8383 212b:-8262 2132:+28 2160-216f:+16 2183:+1 2c00-2c2e:+48 2c60:+1 "
    "2c62:-10743 2c63:-3814 2c64:-10727 2c67-2c6b/2:+1 2c6d:-10780 2c6e:-10749 2c6f:-10783 "
    "2c70:-10782 2c72:+1 2c75:+1 2c7e-2c7f:-10815 2c80-2ce2/2:+1 2ceb-2ced/2:+1 2cf2:+1 "
    "a640-a66c/2:+1 a680-a696/2:+1 a722-a72e/2:+1 a732-a76e/2:+1 a779-a77b/2:+1 a77d:-35332 "
    "a77e-a786/2:+1 a78b:+1 a78d:-42280 a790-a792/2:+1 a7a0-a7a8/2:+1 a7aa:-42308 ff21-ff3a:+32 "
    "10400-10427:+40"
)

_ASCII_SEPARATORS = ((0x00, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7F))


def _hex_ranges(spec: str) -> list[tuple[int, int]]:
    """Parse `a-b c` (hex) into inclusive (first, last) codepoint ranges."""
    ranges = []
    for item in spec.split():
        first, _, last = item.partition("-")
        ranges.append((int(first, 16), int(last or first, 16)))
    return ranges


def _char_class(ranges: list[tuple[int, int]]) -> str:
    """The body of a regex character class holding the given codepoint ranges."""
    return "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


def _strip_accent(char: str) -> str:
    """`é` -> `e`: remove_diacritics 1 takes the accent off a letter that is an ASCII letter plus one mark.

    This rule reproduces SQLite's own table exactly, and canonical decompositions never change.
    """
    parts = unicodedata.decomposition(char).split()
    if len(parts) == 2 and not parts[0].startswith("<"):
        base, mark = int(parts[0], 16), int(parts[1], 16)
        if base < 0x80 and chr(base).isalpha() and 0x300 <= mark <= 0x36F:
            return chr(base).lower()
    return char


def _fold_table() -> dict[int, str | None]:
    """The str.translate table that folds token characters the way unicode61 does: case, then accents."""
    case: dict[int, int] = {}
    for item in _CASE_FOLDS.split():
        span, _, delta = item.partition(":")
        span, _, step = span.partition("/")
        ((first, last),) = _hex_ranges(span)
        case.update((c, c + int(delta)) for c in range(first, last + 1, int(step or 1)))
    table: dict[int, str | None] = {}
    for c in (*case, *range(0xC0, 0x250), *range(0x1E00, 0x1F00)):  # the Latin blocks with accented letters
        folded = _strip_accent(chr(case.get(c, c)))
        if folded != chr(c):
            table[c] = folded
    for first, last in _hex_ranges(_DIACRITICS):
        table.update(dict.fromkeys(range(first, last + 1)))
    return table


_SEPARATOR_CLASS = _char_class([*_ASCII_SEPARATORS, *_hex_ranges(_SEPARATORS)])
_ASCII_TOKEN = re.compile("[0-9a-z]+")  # the common case, after str.lower(); about 10x faster
_TOKEN = re.compile(f"[^{_SEPARATOR_CLASS}{_char_class(_hex_ranges(_DIACRITICS))}][^{_SEPARATOR_CLASS}]*")
_FOLD = _fold_table()


def tokenize(text: str) -> list[str]:
    """Split text into folded tokens exactly as SQLite FTS5's unicode61 tokenizer (remove_diacritics 1)."""
    if text.isascii():
        return _ASCII_TOKEN.findall(text.lower())
    return [match.group().translate(_FOLD) for match in _TOKEN.finditer(text)]


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
        spans = [match.span() for match in _TOKEN.finditer(message)]
        tokens = [message[start:end].translate(_FOLD) for start, end in spans]
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
_FIELD = re.compile(r"([A-Za-z_]+):(.*)", re.DOTALL)
_KEYWORDS = ("OR", "AND", "NOT")
_ENDS_OPERAND = ("", ")", "OR", "AND")
_NOTHING_POSITIVE = (
    "nothing to look for: `-word` and `NOT word` only leave messages out, so add a word to search for "
    "(a negated field filter such as -level:debug may stand alone)"
)


class _Lexeme(msgspec.Struct, kw_only=True, frozen=True):
    """One piece of query syntax: `(`, `)`, `OR`, `AND`, `NOT`, `-`, `word`, `phrase` or `field`."""

    kind: str
    at: int
    text: str = ""
    name: str = ""
    prefix: bool = False


class _Field(msgspec.Struct, kw_only=True, frozen=True):
    """A field filter on its way to ParsedQuery.fields (or .excluded when negated)."""

    name: str
    values: tuple[str, ...]
    negated: bool = False


def _quoted(text: str, i: int) -> tuple[str, int]:
    """Read a quoted string starting at text[i] == '"'; an unclosed quote runs to the end."""
    close = text.find('"', i + 1)
    return (text[i + 1 :], len(text)) if close < 0 else (text[i + 1 : close], close + 1)


def _bare_word(text: str, i: int) -> int:
    """The end of the bare word starting at i: whitespace, a quote or an unbalanced `)` ends it."""
    depth = 0
    while i < len(text) and not text[i].isspace() and text[i] != '"':
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            if depth == 0:
                break
            depth -= 1
        i += 1
    return i


def _lex(text: str) -> list[_Lexeme]:
    """Split query text into lexemes."""
    lexemes: list[_Lexeme] = []
    i = 0
    while i < len(text):
        char = text[i]
        start = i
        if char.isspace():
            i += 1
        elif char in "()":
            lexemes.append(_Lexeme(kind=char, at=i))
            i += 1
        elif char == '"':
            body, i = _quoted(text, i)
            stars = len(text[i:]) - len(text[i:].lstrip("*"))
            lexemes.append(_Lexeme(kind="phrase", at=start, text=body, prefix=stars > 0))
            i += stars
        elif char == "-" and text[i + 1 : i + 2] not in ("", "-", ")") and not text[i + 1].isspace():
            lexemes.append(_Lexeme(kind="-", at=i))
            i += 1
        else:
            i = _bare_word(text, i)
            word = text[start:i]
            after_minus = bool(lexemes) and lexemes[-1].kind == "-" and lexemes[-1].at == start - 1
            field = _FIELD.fullmatch(word)
            if word in _KEYWORDS and not after_minus:
                lexemes.append(_Lexeme(kind=word, at=start))
            elif field and field.group(1).lower() in _FIELD_NAMES:
                value = field.group(2)
                if not value and text[i : i + 1] == '"':
                    value, i = _quoted(text, i)
                lexemes.append(_Lexeme(kind="field", at=start, name=field.group(1).lower(), text=value))
            else:
                lexemes.append(_Lexeme(kind="word", at=start, text=word, prefix=word.endswith("*")))
    return lexemes


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

    def __init__(self, lexemes: list[_Lexeme]) -> None:
        self.lexemes = lexemes
        self.position = 0
        self.terms = 0
        self.fields: dict[str, list[str]] = {}
        self.excluded: dict[str, list[str]] = {}

    def peek(self) -> str:
        """The kind of the next lexeme, or "" at the end."""
        return self.lexemes[self.position].kind if self.position < len(self.lexemes) else ""

    def take(self) -> _Lexeme:
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

    def term(self, lexeme: _Lexeme) -> Term | None:
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
    parser = _Parser(_lex(text))
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
