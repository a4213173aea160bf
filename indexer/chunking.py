"""Split a turn's text into passages that fit the model window, at paragraph boundaries when possible.

Each passage keeps its character offset in the turn text so search can point at it. Passages are
made of whole paragraphs; a paragraph too long for the window is split at sentences, then at words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

_PARA_SEP = re.compile(r"\n[ \t]*\n\s*")
_SENT_END = re.compile(r"(?<=[.!?…;:])\s+")
_SPACE = re.compile(r"\s+")

CHARS_PER_TOKEN = 3.0
"""Fallback budget when the engine can't count tokens (Russian runs ~3-4 chars per subword)."""


@dataclass(frozen=True)
class Chunk:
    start: int
    """Character offset of ``text`` in the turn text."""
    text: str


def _spans(text: str, sep: re.Pattern[str], start: int, end: int) -> list[tuple[int, int]]:
    """Non-blank pieces of ``text[start:end]`` between matches of ``sep``, as (start, end)."""
    out, pos = [], start
    for m in sep.finditer(text, start, end):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, end))
    result = []
    for a, b in out:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            result.append((a, b))
    return result


class Chunker:
    """Paragraph-aware splitter for one model window."""

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
        spans = self._fit(text, _spans(text, _PARA_SEP, 0, len(text)), level=0)
        return [Chunk(a, text[a:b]) for a, b in spans]

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
            joiner = 1 if cur else 0  # the separator between pieces costs about one token
            if cur and cur_cost + joiner + c <= room:
                cur, cur_cost = (cur[0], b), cur_cost + joiner + c
            else:
                if cur:
                    out.append(cur)
                cur, cur_cost = (a, b), c
        if cur:
            out.append(cur)
        return out

    def _split_big(self, text: str, a: int, b: int, level: int) -> list[tuple[int, int]]:
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


def chunk_text(
    text: str, budget: int, count_tokens: Callable[[str], int | None] | None = None
) -> list[Chunk]:
    """Passages of ``text`` of at most ``budget`` tokens each (see ``Chunker``)."""
    return Chunker(budget, count_tokens).split(text)
