"""Tokens and lemmas for Russian and English: what keyword search and metaphor keys are made of.

Russian words are lemmatised with pymorphy3 (its dictionary ships as a PyPI package), English
with simplemma; both offline. Results are cached per word form, since a vault repeats its words.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

WORD_RE = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


@lru_cache(maxsize=1)
def morph() -> Any:
    """The process-wide pymorphy3 analyser (loading it takes ~0.3 s, so do it once)."""
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


def is_cyrillic(word: str) -> bool:
    return bool(_CYRILLIC.search(word))


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Return ``(word, start, end)`` for each word in ``text``."""
    return [(m.group(0), m.start(), m.end()) for m in WORD_RE.finditer(text)]


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    """The dictionary form of one word, lower-cased (``метафору`` → ``метафора``, ``maps`` → ``map``)."""
    w = word.lower().replace("ё", "е")
    if is_cyrillic(w):
        parses = morph().parse(w)
        return parses[0].normal_form.replace("ё", "е") if parses else w
    if w.isascii() and w.isalpha():
        import simplemma

        return simplemma.lemmatize(w, lang="en").lower()
    return w


def lemmas(text: str) -> list[str]:
    """Lemmas of every word in ``text``, in order."""
    return [lemma(w) for w, _, _ in tokenize(text)]


def fts_lemmas(text: str) -> str:
    """The text stored in (and queried against) the FTS5 index: space-separated lemmas."""
    return " ".join(lemmas(text))
