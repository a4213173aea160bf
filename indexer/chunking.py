"""Split a turn's text into passages that fit the model window, along the text's own structure.

Each passage is a contiguous slice of the turn text and keeps its character offset, so search can
point at it. The text is read as Markdown blocks (paragraphs, headings, list items, table rows,
code-block lines, quote lines; horizontal rules are dropped), and consecutive blocks are packed
into passages while they fit. A block too long for the window is split along its structure — a
list by items, a table by rows, a code block by lines, a paragraph by sentences, then words —
never in the middle of a row or an item unless that alone is too long.

No junk passages: a heading or an opening code fence is kept with what follows it, and a piece
too small to mean anything on its own (``|``, ``note`.``, a lone word) is merged into a neighbour
even if that makes the neighbour a little longer than the budget (the model window is far larger).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

_SENT_END = re.compile(r"(?<=[.!?…;:])\s+")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)
_BLANK = re.compile(r"^[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}(?:[ \t]|$)")
_TABLE = re.compile(r"^[ \t]*\|")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+")
_QUOTE = re.compile(r"^[ \t]*>")
_RULE = re.compile(r"^[ \t]{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")

CHARS_PER_TOKEN = 3.0
"""Fallback budget when the engine can't count tokens (Russian runs ~3-4 chars per subword)."""
MIN_TOKENS = 8
"""A passage below this many tokens, or with fewer than ``MIN_WORDS`` words, joins a neighbour."""
MIN_WORDS = 3
SLACK = 1.5
"""A small piece may make its neighbour up to this many times the budget."""
CHUNKER_VERSION = "4"
"""Changes whenever the same text would be split differently (or the passages of a note change
otherwise): an index made by another version re-chunks its notes (unchanged passages keep their
vectors, since vectors are keyed by passage text)."""


@dataclass(frozen=True)
class Chunk:
    start: int
    """Character offset of ``text`` in the turn text."""
    text: str


@dataclass
class _Unit:
    """A piece of the text that is never split unless it alone exceeds the budget."""

    a: int
    b: int
    kind: str
    """``para``, ``heading``, ``item``, ``row``, ``code``, ``quote``."""
    glue_next: bool = False
    """Kept with the next unit (a heading, an opening fence)."""


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _spans(text: str, sep: re.Pattern[str], start: int, end: int) -> list[tuple[int, int]]:
    """Non-blank pieces of ``text[start:end]`` between matches of ``sep``, as (start, end)."""
    out, pos = [], start
    for m in sep.finditer(text, start, end):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, end))
    return [(a, b) for a, b in (_trim(text, a, b) for a, b in out) if a < b]


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of every line, without its newline."""
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, pos + len(line)))
        pos += len(line) + 1
    return out


def _groups(text: str) -> list[tuple[int, int, bool]]:
    """Blank-line separated blocks as ``(start, end, is_code)``; a fenced code block is one block
    even across blank lines, and horizontal rules separate blocks without belonging to any."""
    out: list[tuple[int, int, bool]] = []
    lines = _lines(text)
    i, n = 0, len(lines)
    cur: list[int] | None = None

    def flush() -> None:
        nonlocal cur
        if cur is not None:
            a, b = _trim(text, cur[0], cur[1])
            if a < b:
                out.append((a, b, False))
            cur = None

    while i < n:
        a, b = lines[i]
        line = text[a:b]
        if _BLANK.match(line) or _RULE.match(line):
            flush()
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            flush()
            mark = fence.group(1)
            j = i + 1
            while j < n and not text[lines[j][0] : lines[j][1]].lstrip().startswith(mark):
                j += 1
            end = lines[min(j, n - 1)][1]
            x, y = _trim(text, a, end)
            if x < y:
                out.append((x, y, True))
            i = j + 1
            continue
        if cur is None:
            cur = [a, b]
        else:
            cur[1] = b
        i += 1
    flush()
    return out


def markdown_units(text: str, start: int, end: int, code: bool = False) -> list[_Unit]:
    """The structure of one block ``text[start:end]``: its headings (glued to what follows),
    list items (with their continuation lines), table rows (the ``|---|`` line stays with the
    header row), quote lines, code lines (fences glued to their first and last line) and
    paragraphs, in order."""
    lines = [(a, b) for a, b in _lines(text[start:end])]
    lines = [(a + start, b + start) for a, b in lines]
    if code:
        # blank lines and the spaces around a line are no part of a passage (a split after
        # «>>>>> » must not end the passage with its space); indentation inside a unit stays
        body = [_trim(text, a, b) for a, b in lines if text[a:b].strip()]
        if len(body) <= 2:
            return [_Unit(*_trim(text, start, end), "code")]
        units = [_Unit(a, b, "code") for a, b in body[1:-1]]
        units[0].a = body[0][0]
        units[-1].b = body[-1][1]
        return units
    units: list[_Unit] = []
    for a, b in lines:
        line = text[a:b]
        if not line.strip():
            continue
        prev = units[-1] if units else None
        if _HEADING.match(line):
            units.append(_Unit(a, b, "heading", glue_next=True))
        elif _TABLE.match(line):
            if _TABLE_RULE.match(line) and prev is not None and prev.kind == "row":
                prev.b = b
            else:
                units.append(_Unit(a, b, "row"))
        elif _ITEM.match(line):
            units.append(_Unit(a, b, "item"))
        elif _QUOTE.match(line):
            units.append(_Unit(a, b, "quote"))
        elif prev is not None and prev.kind in ("item", "para"):
            prev.b = b  # a continuation line
        else:
            units.append(_Unit(a, b, "para"))
    return [_Unit(*_trim(text, u.a, u.b), u.kind, u.glue_next) for u in units]


def is_meaningful(text: str) -> bool:
    """False for pieces too small to stand alone as a passage (fewer than ``MIN_WORDS`` words)."""
    return len(_WORD.findall(text)) >= MIN_WORDS


class Chunker:
    """Structure-aware splitter for one model window (see the module docstring)."""

    def __init__(self, budget: int, count_tokens: Callable[[str], int | None] | None = None) -> None:
        self.budget = max(8, budget)
        self._count = count_tokens
        self._overhead = 0
        if count_tokens is not None:
            base = count_tokens("")
            if base is None:
                self._count = None
            else:
                self._overhead = base

    def cost(self, piece: str) -> int:
        """Tokens ``piece`` adds to a passage (without the per-passage prefix and special tokens)."""
        if self._count is not None:
            n = self._count(piece)
            if n is not None:
                return max(0, n - self._overhead)
        return math.ceil(len(piece) / CHARS_PER_TOKEN)

    @property
    def room(self) -> int:
        return self.budget - self._overhead

    def split(self, text: str) -> list[Chunk]:
        spans = self._merge_small(text, self._fit_blocks(text, _groups(text)))
        return [Chunk(a, text[a:b]) for a, b in spans]

    def _fit_blocks(self, text: str, blocks: list[tuple[int, int, bool]]) -> list[tuple[int, int]]:
        """Greedily merge consecutive blocks while they fit; a block too big alone is split along
        its structure (``_fit`` of its units). A heading block that would end a passage starts the
        next one instead."""
        room = self.room
        out: list[tuple[int, int]] = []
        cur: list[tuple[int, int, bool]] = []  # (start, end, is a lone heading)
        cur_cost = 0

        def take_heading() -> list[tuple[int, int]]:
            if len(cur) > 1 and cur[-1][2]:
                a, b, _ = cur.pop()
                return [(a, b)]
            return []

        def flush() -> None:
            if cur:
                out.append((cur[0][0], cur[-1][1]))

        for a, b, code in blocks:
            c = self.cost(text[a:b])
            heading = not code and bool(_HEADING.match(text[a:b])) and "\n" not in text[a:b]
            if c > room:
                carry = take_heading()
                if len(cur) == 1 and cur[0][2]:
                    carry, cur = [(cur[0][0], cur[0][1])], []
                flush()
                cur, cur_cost = [], 0
                units = markdown_units(text, a, b, code)
                if carry:
                    units.insert(0, _Unit(carry[0][0], carry[0][1], "heading", glue_next=True))
                out.extend(self._fit(text, [(u.a, u.b) for u in self._glue(text, units)], level=0))
                continue
            if cur and cur_cost + 1 + c <= room:  # the separator between pieces costs about one token
                cur.append((a, b, heading))
                cur_cost += 1 + c
                continue
            carry = take_heading()
            flush()
            cur = [(x, y, True) for x, y in carry] + [(a, b, heading)]
            cur_cost = self.cost(text[cur[0][0] : b])
        flush()
        return out

    def _glue(self, text: str, units: list[_Unit]) -> list[_Unit]:
        """Join each glue-forward unit (a heading) to the next unit when both fit the budget."""
        out: list[_Unit] = []
        for u in units:
            prev = out[-1] if out else None
            if prev is not None and prev.glue_next and self.cost(text[prev.a : u.b]) <= self.room:
                out[-1] = _Unit(prev.a, u.b, u.kind, u.glue_next)
            else:
                out.append(_Unit(u.a, u.b, u.kind, u.glue_next))
        return out

    def _fit(self, text: str, pieces: list[tuple[int, int]], level: int) -> list[tuple[int, int]]:
        """Greedily merge consecutive pieces while they fit; split pieces that alone are too big."""
        room = self.room
        out: list[tuple[int, int]] = []
        cur: tuple[int, int] | None = None
        cur_cost = 0
        for a, b in pieces:
            c = self.cost(text[a:b])
            if c > room:
                if cur:
                    out.append(cur)
                    cur, cur_cost = None, 0
                out.extend(self._split_big(text, a, b, level))
                continue
            if cur and cur_cost + 1 + c <= room:
                cur, cur_cost = (cur[0], b), cur_cost + 1 + c
            else:
                if cur:
                    out.append(cur)
                cur, cur_cost = (a, b), c
        if cur:
            out.append(cur)
        return out

    def _split_big(self, text: str, a: int, b: int, level: int) -> list[tuple[int, int]]:
        """A piece too long for the window: at sentences, then words, then characters."""
        if level == 0:
            parts = _spans(text, _SENT_END, a, b)
            if len(parts) > 1:
                return self._fit(text, parts, level=1)
        if level <= 1:
            parts = _spans(text, _SPACE, a, b)
            if len(parts) > 1:
                return self._fit(text, parts, level=2)
        # one enormous "word": cut it by characters
        step = max(1, int(self.room * CHARS_PER_TOKEN / 2))
        return [(i, min(i + step, b)) for i in range(a, b, step)]

    def _merge_small(self, text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Merge passages too small to mean anything into the smaller of their neighbours (the
        next one when the small one is a heading), up to ``SLACK`` times the budget."""
        out = [(a, b, self.cost(text[a:b])) for a, b in spans]
        cap = int(self.room * SLACK)
        i = 0
        while len(out) > 1 and i < len(out):
            a, b, c = out[i]
            piece = text[a:b]
            if c >= MIN_TOKENS and (is_meaningful(piece) or c * 2 >= self.room):
                i += 1
                continue
            left = out[i - 1] if i > 0 and out[i - 1][2] + 1 + c <= cap else None
            right = out[i + 1] if i + 1 < len(out) and out[i + 1][2] + 1 + c <= cap else None
            if left is not None and (right is None or (not _HEADING.match(piece) and left[2] <= right[2])):
                out[i - 1 : i + 1] = [(left[0], b, left[2] + 1 + c)]
            elif right is not None:
                out[i : i + 2] = [(a, right[1], c + 1 + right[2])]
            else:
                i += 1
        return [(a, b) for a, b, _ in out]


def chunk_text(
    text: str, budget: int, count_tokens: Callable[[str], int | None] | None = None
) -> list[Chunk]:
    """Passages of ``text`` of at most about ``budget`` tokens each (see ``Chunker``)."""
    return Chunker(budget, count_tokens).split(text)
