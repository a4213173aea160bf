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


@lru_cache(maxsize=20_000)
def lemma_variants(word: str, *, min_ratio: float = 0.2) -> tuple[str, ...]:
    """Every plausible dictionary form of ``word``, best first (for query expansion).

    pymorphy3 often has several readings (``битом`` → битый / бит / бить); the index stores
    only the best one per word, so a query ORs the plausible ones to find a document whose
    word happened to get another reading. Readings scoring below ``min_ratio`` of the best
    are dropped (``стали`` stays ``стать``, not ``сталь`` at 1 %).
    """
    best = lemma(word)
    w = word.lower().replace("ё", "е")
    if not is_cyrillic(w):
        return (best,)
    parses = morph().parse(w)
    if not parses:
        return (best,)
    top = parses[0].score or 1.0
    out = [best]
    for p in parses[1:]:
        form = p.normal_form.replace("ё", "е")
        if form not in out and p.score >= min_ratio * top:
            out.append(form)
    return tuple(out)


#: Lemmas too common to rank on their own (Russian and English function words).
#: Dropped from keyword queries unless quoted or the query has nothing else.
STOP_LEMMAS: frozenset[str] = frozenset(
    ["а", "без", "более", "бы", "быть", "в", "вам", "вас", "весь", "во", "вот", "все", "всего", "всегда", "вы", "где", "да", "даже", "для", "до", "его", "ее", "если", "есть", "еще", "же", "за", "здесь", "и", "из", "или", "им", "их", "к", "как", "какой", "когда", "кто", "ли", "либо", "между", "меня", "мне", "мной", "мочь", "мой", "мы", "на", "над", "надо", "наш", "не", "него", "нее", "нет", "ни", "них", "но", "ну", "о", "об", "один", "он", "она", "они", "оно", "от", "который", "очень", "по", "под", "после", "потом", "потому", "почему", "при", "про", "раз", "с", "сам", "свой", "себя", "со", "так", "такой", "там", "тоже", "только", "тот", "то", "ты", "у", "уж", "уже", "хотя", "чем", "через", "что", "чтобы", "чтоб", "это", "этот", "я", "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "more", "most", "my", "no", "nor", "not", "of", "off", "on", "once", "only", "or", "other", "our", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your"]
)


def is_stop(lemma_: str) -> bool:
    """True for function words (by lemma) that keyword search should not rank on."""
    return lemma_ in STOP_LEMMAS
