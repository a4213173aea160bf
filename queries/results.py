"""Search results: one ``Hit`` per turn, with a snippet and the link that opens the note."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from indexer import textproc

SNIPPET_CHARS = 220
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Hit:
    """One turn found by ``search`` or ``similar``."""

    uid: str
    conversation_id: str
    note: str
    """Vault-relative path of the note holding the turn."""
    title: str
    role: str
    """``user``, ``assistant`` or ``note`` (a section of a plain note)."""
    model: str | None
    time: str | None
    """Local time of the turn, ISO 8601 without offset (None for plain notes)."""
    score: float
    """Higher is better; its scale depends on the mode (cosine, -BM25, or fused rank score)."""
    snippet: str
    """Text around the best-matching passage, whitespace collapsed."""
    uri: str
    """``obsidian://open?vault=…&file=…`` for the note."""
    passage: int = 0
    """Sequence number of the best-matching passage within the turn."""
    highlights: tuple[tuple[int, int], ...] = field(default=(), compare=False)
    """``(start, end)`` offsets in ``snippet`` of the words that matched the query (Python
    string indices, i.e. code points; ``--json`` gives them as ``[start, end]`` pairs)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "conversation_id": self.conversation_id,
            "note": self.note,
            "title": self.title,
            "role": self.role,
            "model": self.model,
            "time": self.time,
            "score": round(self.score, 6),
            "snippet": self.snippet,
            "uri": self.uri,
            "passage": self.passage,
            "highlights": [list(span) for span in self.highlights],
        }


def make_snippet(
    text: str, match_lemmas: frozenset[str] | set[str], *, width: int = SNIPPET_CHARS
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Cut ``width`` characters of ``text`` around the densest run of matching words.

    A word matches when its lemma (the one the FTS index stored) is in ``match_lemmas``, so
    «метафоры» is highlighted for a query «метафору». Returns the snippet and highlight offsets.
    """
    tokens = textproc.tokenize(text)
    hits = [(s, e) for w, s, e in tokens if match_lemmas and textproc.lemma(w) in match_lemmas]
    if len(text) <= width:
        lo, hi = 0, len(text)
    else:
        # choose the window start (at a matched word) that covers the most matches
        best_start, best_count = 0, 0
        for i, (s, _) in enumerate(hits):
            count = sum(1 for s2, e2 in hits[i:] if e2 <= s + width)
            if count > best_count:
                best_start, best_count = s, count
        # put some context before the first match, then snap to word boundaries
        lo = max(0, best_start - width // 4) if best_count else 0
        hi = min(len(text), lo + width)
        lo = max(0, hi - width)
        if lo > 0:
            nxt = next((s for _, s, _ in tokens if s >= lo), lo)
            lo = nxt
        if hi < len(text):
            prev = [e for _, _, e in tokens if e <= hi]
            if prev and prev[-1] > lo:
                hi = prev[-1]
    # rebuild the window segment by segment, collapsing whitespace and tracking highlights
    out: list[str] = ["…"] if lo > 0 else []
    pos = 1 if lo > 0 else 0
    spans: list[tuple[int, int]] = []
    cursor = lo
    for s, e in hits:
        if s < lo or e > hi:
            continue
        gap = _SPACE.sub(" ", text[cursor:s])
        if not out and not spans:
            gap = gap.lstrip()
        out.append(gap)
        pos += len(gap)
        out.append(text[s:e])
        spans.append((pos, pos + e - s))
        pos += e - s
        cursor = e
    tail = _SPACE.sub(" ", text[cursor:hi]).rstrip()
    if not spans:
        tail = tail.lstrip()
    out.append(tail)
    if hi < len(text):
        out.append("…")
    return "".join(out), tuple(spans)
