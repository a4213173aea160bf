"""How one metaphor was born, who introduced it, who took it up and how its contexts moved.

The computation is pure: a :class:`Timeline` is built from a list of :class:`Occurrence` values
(plus optional context vectors), so it can be tested without an index. :class:`IndexSource`
adapts the metaphor engine's read API (``queries.metaphors``) and the embedder to it.

Drift follows metaphor-methods.md §3: for each period, the cosine distance between the centroid
of its context embeddings and the first period's centroid (PRT), with an exact or seeded
permutation-test p-value when both periods have at least :data:`MIN_USES` uses. Everything is
deterministic, so a report over an unchanged index is byte-identical.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, Self

import numpy as np

from queries.metaphors import USE  # what every timeline, list and report counts as one use (one definition)
from vault_schema.models import TIMES

Granularity = Literal["month", "quarter", "week"]
GRANULARITIES: tuple[str, ...] = ("month", "quarter", "week")

MIN_USES = 3
"""Both periods need this many uses before a p-value means anything."""
N_PERMUTATIONS = 1000
PERMUTATION_SEED = 20240613
N_TERMS = 6
TOO_FEW = "too few uses"
MAX_WITH = 5
LEMMA_VERSION = "terms-1"
"""Changes whenever what ``content_lemmas`` keeps changes (its stop lists, parts of speech, the
lemmatisers): the disk cache of content lemmas is keyed by it."""
"""Renderers list this many co-occurring metaphors per period, then "+N more" (the data keeps all)."""
DRIFT_AXIS = 0.3
"""Charts draw drift on a fixed 0..DRIFT_AXIS axis (or up to the next tenth above the largest value),
so equal heights mean equal change on every chart instead of noise filling the axis. Drift is a
cosine distance of context centroids; with the default model (multilingual-e5-small) two unrelated
turns are about 0.14 apart (median over the dev vault, ``queries.graph.ECHO_THRESHOLD``'s
measurement). The timeline document carries it (``drift_axis``), so the explorer's chart
(``interfaces/serve/static/timeline.js``) draws the same scale as ``queries.render.chart``."""


class TimelineError(Exception):
    """A timeline cannot be built (unknown metaphor, bad granularity)."""


@dataclass(frozen=True)
class MetaphorRef:
    """The metaphor a timeline is about (or one it co-occurred with)."""

    id: str
    label: str
    variants: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "variants": list(self.variants)}


@dataclass(frozen=True)
class Occurrence:
    """One use of the metaphor in one turn."""

    uid: str
    conversation_id: str
    note: str
    """Vault-relative path of the note holding the turn."""
    title: str
    role: str
    """``user``, ``assistant`` or ``note`` (plain notes)."""
    time: str | None
    """ISO 8601 local time of the turn, or None when unknown."""
    sentence: str
    context: str = ""
    """Text embedded for drift (sentence ± neighbours); the sentence when empty."""
    surface: str = ""
    """The words of the image as written, masked out of the context before embedding."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "conversation_id": self.conversation_id,
            "note": self.note,
            "title": self.title,
            "role": self.role,
            "time": self.time,
            "sentence": self.sentence,
            "surface": self.surface,
        }

    @property
    def datetime(self) -> dt.datetime | None:
        return _parse_time(self.time)


@dataclass(frozen=True)
class FirstUse:
    uid: str
    role: str
    time: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "role": self.role, "time": self.time}


@dataclass(frozen=True)
class Uptake:
    """The other speaker's first use of the image after it was introduced."""

    role: str
    time: str | None
    uid: str
    lag_days: float | None
    """Days from the first use, to 2 decimals."""
    lag_seconds: float | None = None

    @property
    def lag(self) -> str | None:
        """The lag in human units: "8 min", "5 h", "3 days", "4 months"."""
        if self.lag_seconds is not None:
            return human_lag(self.lag_seconds / 86400.0)
        return human_lag(self.lag_days)

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "time": self.time, "uid": self.uid, "lag_days": self.lag_days, "lag": self.lag}


def human_lag(days: float | None) -> str | None:
    """A lag in the unit a person would use: minutes under an hour, hours under two days, days
    under two months, then months."""
    if days is None:
        return None
    minutes = round(days * 1440)
    if minutes < 60:
        return f"{minutes} min"
    hours = days * 24
    if hours < 47.5:
        return f"{round(hours)} h"
    if days < 59.5:
        return f"{round(days)} days"
    months = round(days / 30.44)
    return f"{months} month{'s' if months != 1 else ''}"


@dataclass(frozen=True)
class Quote:
    uid: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "text": self.text}


@dataclass(frozen=True)
class CoOccurrence:
    id: str
    label: str
    count: int
    """Conversations of the period in which both metaphors appear."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "count": self.count}


@dataclass(frozen=True)
class Period:
    period: str
    count: int
    user: int
    assistant: int
    drift: float | None
    """Cosine distance of this period's context centroid from the first period's (None: no vectors)."""
    p_value: float | None
    """Permutation-test p-value, None when either period has fewer than MIN_USES uses."""
    terms: tuple[str, ...]
    quote: Quote | None
    co_occurring: tuple[CoOccurrence, ...]
    note: int = 0
    """Uses in plain notes (role ``note``)."""

    @property
    def drift_note(self) -> str:
        """A human reading of the drift: the figure with its p-value, or why there is none."""
        if self.drift is None:
            return "—"
        if self.p_value is None:
            return f"{self.drift:.3f} ({TOO_FEW})" if self.drift else f"{self.drift:.3f}"
        return f"{self.drift:.3f} (p={self.p_value:.3f})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "count": self.count,
            "user": self.user,
            "assistant": self.assistant,
            "drift": self.drift,
            "p_value": self.p_value,
            "terms": list(self.terms),
            "quote": self.quote.to_dict() if self.quote else None,
            "co_occurring": [c.to_dict() for c in self.co_occurring],
        }



@dataclass(frozen=True)
class Timeline:
    metaphor: MetaphorRef
    occurrences: tuple[Occurrence, ...]
    first: FirstUse | None
    uptake: Uptake | None
    periods: tuple[Period, ...]
    by: str = "month"
    role: str | None = None
    """Set by :meth:`for_role`: occurrences and periods are that speaker's only."""
    source: str = "metaphor"
    """``metaphor`` (a metaphor of the engine) or ``text`` (a phrase found in the turns' text)."""
    vectors: Mapping[str, np.ndarray] | None = field(default=None, compare=False, repr=False)
    """Context vectors by uid (kept so :meth:`for_role` recomputes drift without re-embedding)."""
    cooccurring: Mapping[str, Sequence[MetaphorRef]] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metaphor": self.metaphor.to_dict(),
            "source": self.source,
            "use": USE,
            "times": TIMES,
            "by": self.by,
            "role": self.role,
            "occurrences": [o.to_dict() for o in self.occurrences],
            "first": self.first.to_dict() if self.first else None,
            "uptake": self.uptake.to_dict() if self.uptake else None,
            "periods": [p.to_dict() for p in self.periods],
            "drift_axis": DRIFT_AXIS,
        }

    def occurrence(self, uid: str) -> Occurrence | None:
        return next((o for o in self.occurrences if o.uid == uid), None)

    def for_role(self, role: str | None) -> Timeline:
        """``role``'s uses only (``timeline --role``): the occurrences *and* the period table
        (counts, drift, terms, quotes, co-occurrence) are recomputed from them; who introduced
        the image and who took it up still look at both speakers."""
        if not role:
            return self
        from dataclasses import replace

        mine = build_timeline(self.metaphor, (o for o in self.occurrences if o.role == role), by=self.by,
                              vectors=self.vectors, cooccurring=self.cooccurring)
        return replace(mine, first=self.first, uptake=self.uptake, role=role, source=self.source)

    @property
    def counts(self) -> dict[str, int]:
        roles = Counter(o.role for o in self.occurrences)
        return {"total": len(self.occurrences), "user": roles["user"], "assistant": roles["assistant"]}


# --- periods -------------------------------------------------------------------------------------


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def period_key(when: dt.datetime | dt.date, by: str) -> str:
    """``2025-03`` (month), ``2025-Q1`` (quarter) or ``2025-W09`` (ISO week)."""
    if by == "month":
        return f"{when.year:04d}-{when.month:02d}"
    if by == "quarter":
        return f"{when.year:04d}-Q{(when.month - 1) // 3 + 1}"
    if by == "week":
        year, week, _ = when.isocalendar()
        return f"{year:04d}-W{week:02d}"
    raise TimelineError(f"unknown period {by!r}: use one of {', '.join(GRANULARITIES)}")


def _period_start(key: str, by: str) -> dt.date:
    if by == "month":
        y, m = key.split("-")
        return dt.date(int(y), int(m), 1)
    if by == "quarter":
        y, q = key.split("-Q")
        return dt.date(int(y), (int(q) - 1) * 3 + 1, 1)
    y, w = key.split("-W")
    return dt.date.fromisocalendar(int(y), int(w), 1)


def period_range(first: str, last: str, by: str) -> list[str]:
    """Every period from ``first`` to ``last`` inclusive, gaps included (for charts)."""
    start, end = _period_start(first, by), _period_start(last, by)
    keys: list[str] = []
    day = start
    while day <= end:
        key = period_key(day, by)
        if not keys or keys[-1] != key:
            keys.append(key)
        if by == "week":
            day += dt.timedelta(days=7)
        else:
            step = 1 if by == "month" else 3
            month = day.month - 1 + step
            day = dt.date(day.year + month // 12, month % 12 + 1, 1)
    return keys


# --- drift ---------------------------------------------------------------------------------------


def _centroid(vectors: np.ndarray) -> np.ndarray:
    c = vectors.mean(axis=0)
    norm = float(np.linalg.norm(c))
    return c / norm if norm > 0 else c


def centroid_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine distance between the mean vectors of two sets (PRT in Kutuzov & Giulianelli)."""
    return float(1.0 - np.dot(_centroid(a), _centroid(b)))


def permutation_p_value(a: np.ndarray, b: np.ndarray, *, n_permutations: int = N_PERMUTATIONS) -> float:
    """P(distance ≥ observed) when period labels are shuffled.

    Exact over all splits when there are few enough, else ``n_permutations`` seeded shuffles
    (so the same input always gives the same figure).
    """
    pooled = np.vstack([a, b]).astype(np.float64)
    n, k = len(pooled), len(a)
    # measured on the same float64 rows the splits use (a float32 ``a``/``b`` gave an observed
    # distance a hair above the identical split's, so an exact test could return p = 0)
    observed = centroid_distance(pooled[:k], pooled[k:]) - 1e-9
    if math.comb(n, k) <= n_permutations:
        splits: Iterable[Sequence[int]] = itertools.combinations(range(n), k)
        total, hits = 0, 0
        for idx in splits:
            mask = np.zeros(n, dtype=bool)
            mask[list(idx)] = True
            total += 1
            hits += centroid_distance(pooled[mask], pooled[~mask]) >= observed
        return hits / total
    rng = np.random.default_rng(PERMUTATION_SEED)
    hits = 0
    for _ in range(n_permutations):
        perm = rng.permutation(n)
        hits += centroid_distance(pooled[perm[:k]], pooled[perm[k:]]) >= observed
    return (hits + 1) / (n_permutations + 1)


# --- characteristic terms ------------------------------------------------------------------------

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_EN_STOP = _words(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each even every few for from further
    get got had has have having he her here hers him his how i if in into is it its itself just like make
    many may me more most much must my myself no nor not now of off on once one only or other our ours out
    over own really same she should so some such than that the their theirs them then there these they this
    those through to too under until up us very was we were what when where which while who whom why will
    with would you your yours yourself thing something someone"""
)
_RU_KEEP_POS = frozenset({"NOUN", "ADJF", "ADJS", "VERB", "INFN", "PRTF", "PRTS", "COMP"})
_RU_STOP = _words(
    """быть мочь стать сказать говорить весь свой такой который этот тот самый один другой каждый
    хотеть делать сделать иметь есть нет да очень тоже также просто ещё еще уже можно нужно надо
    какой некоторый любой сам наш ваш мой твой её его их год раз"""
)


LEMMA_MEMO: dict[str, str | None] = {}
"""Content lemmas known without a lemmatiser: read from the disk cache next to the index
(``IndexSource``), so a timeline or report asked again loads neither pymorphy3's nor simplemma's
dictionaries (about half of a re-asked timeline's time: simplemma's English one alone took 0.5-0.8 s)."""
LEMMA_SEEN: dict[str, str | None] = {}
"""Every content lemma this process resolved (what ``IndexSource`` adds to its disk cache)."""


@lru_cache(maxsize=50_000)
def _content_lemma(word: str) -> str | None:
    """The lemma of a content word, or None for function words, numbers and very short words."""
    w = word.lower().replace("ё", "е")
    if len(w) < 3 or w.isdigit():
        return None
    lem = LEMMA_MEMO[w] if w in LEMMA_MEMO else _lemmatise_content(w)
    LEMMA_SEEN[w] = lem
    return lem


def _lemmatise_content(w: str) -> str | None:
    from indexer import textproc

    if textproc.is_cyrillic(w):
        parses = textproc.morph().parse(w)
        if not parses:
            return None
        tag = parses[0].tag
        if tag.POS not in _RU_KEEP_POS or "Apro" in tag or "Anum" in tag:
            return None
        lem = parses[0].normal_form.replace("ё", "е")
        return None if lem in _RU_STOP or textproc.is_stop(lem) else lem
    lem = textproc.lemma(w)
    if not lem.isalpha() or lem in _EN_STOP or w in _EN_STOP or textproc.is_stop(lem) or len(lem) < 3:
        return None
    return lem


def content_lemmas(text: str) -> list[str]:
    """Lemmas of the content words of ``text`` (stopwords and function words removed)."""
    from indexer import textproc

    out = []
    for word, _, _ in textproc.tokenize(text):
        lem = _content_lemma(word)
        if lem:
            out.append(lem)
    return out


def characteristic_terms(
    docs: Mapping[str, Sequence[str]], *, k: int = N_TERMS, alpha0: float = 10.0
) -> dict[str, tuple[str, ...]]:
    """Top ``k`` lemmas per period by weighted log-odds with an informative Dirichlet prior.

    (Monroe, Colaresi & Quinn 2008): each period against all other periods together; the prior
    shrinks rare words, which matters with 3–30 uses per period. A single period falls back to
    plain frequency.
    """
    counts = {p: Counter(lems) for p, lems in docs.items()}
    total = Counter[str]()
    for c in counts.values():
        total.update(c)
    n_total = sum(total.values())
    result: dict[str, tuple[str, ...]] = {}
    for p, c in counts.items():
        if not c:
            result[p] = ()
            continue
        n_i = sum(c.values())
        n_j = n_total - n_i
        if n_j == 0:
            ranked = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))
            result[p] = tuple(w for w, _ in ranked[:k])
            continue
        scores = []
        for w, y_i in c.items():
            a_w = alpha0 * total[w] / n_total
            y_j = total[w] - y_i
            # the "rest" terms are ≥ 0 and only 0 when this word is the whole vocabulary
            rest_i = max(n_i + alpha0 - y_i - a_w, 0.5)
            rest_j = max(n_j + alpha0 - y_j - a_w, 0.5)
            delta = math.log((y_i + a_w) / rest_i) - math.log((y_j + a_w) / rest_j)
            z = delta / math.sqrt(1.0 / (y_i + a_w) + 1.0 / (y_j + a_w))
            scores.append((z, y_i, w))
        scores.sort(key=lambda t: (-t[0], -t[1], t[2]))
        result[p] = tuple(w for _, _, w in scores[:k])
    return result


# --- display text --------------------------------------------------------------------------------

_MD_LINE_START = re.compile(r"^\s*(?:>\s*)*(?:#{1,6}\s+|[-*+]\s+(?:\[[ xX]\]\s+)?|\d{1,3}[.)]\s+)?")
_MD_WIKILINK = re.compile(r"!?\[\[([^\]|#^]*)(?:[#^][^\]|]*)?(?:\|([^\]]*))?\]\]")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)\s]*\)")
_MD_PAIRED = re.compile(r"(\*\*|~~|==)(\S(?:.*?\S)?)\1")
_MD_STAR = re.compile(r"(?<![\w*])\*(\S(?:[^*]*?\S)?)\*(?![\w*])")
_MD_CODE = re.compile(r"`([^`]*)`")
# a marker whose partner fell outside the sentence ("**Хорошая метафора …"): at a word's edge
_MD_STRAY = re.compile(r"(?:(?<=\s)|^)(?:\*\*|~~|==)|(?:\*\*|~~|==)(?=\s|$)")
_SPACES = re.compile(r"\s+")


def plain_sentence(text: str) -> str:
    """A sentence as a reader sees it in Obsidian: list, quote and heading markers, ``**``/``*``/``~~``/``==``
    emphasis (not ``__``: Python names),
    inline code marks and link syntax removed (their words kept), whitespace collapsed.

    Sentences are cut from raw Markdown, so without this a quote reads "- **карта** смысла".
    """
    lines = []
    for line in text.splitlines() or [text]:
        line = _MD_LINE_START.sub("", line)
        line = _MD_WIKILINK.sub(lambda m: m.group(2) or m.group(1), line)
        line = _MD_LINK.sub(r"\1", line)
        line = _MD_CODE.sub(r"\1", line)
        for _ in range(3):  # nested emphasis: ***x***, **_x_**
            new = _MD_STAR.sub(r"\1", _MD_PAIRED.sub(r"\2", line))
            if new == line:
                break
            line = new
        lines.append(_MD_STRAY.sub("", line))
    return _SPACES.sub(" ", " ".join(lines)).strip()


def image_spans(text: str, phrases: Iterable[str]) -> list[tuple[int, int]]:
    """Where the image stands in ``text``: ``(start, end)`` of every case-insensitive, whole-word
    occurrence of any of ``phrases`` (longest first, never overlapping), in text order."""
    folded = text.casefold()
    if len(folded) != len(text):  # a rare letter changes length when folded: compare lowercased
        folded = text.lower()
    taken: list[tuple[int, int]] = []
    for phrase in sorted({p.strip() for p in phrases if p and p.strip()}, key=len, reverse=True):
        needle = phrase.casefold() if len(phrase.casefold()) == len(phrase) else phrase.lower()
        start = folded.find(needle)
        while start >= 0:
            end = start + len(needle)
            whole = (start == 0 or not folded[start - 1].isalnum()) and (end == len(folded) or not folded[end].isalnum())
            if whole and all(end <= a or start >= b for a, b in taken):
                taken.append((start, end))
            start = folded.find(needle, start + 1)
    return sorted(taken)


# --- the timeline --------------------------------------------------------------------------------


def _sort_key(o: Occurrence) -> tuple[int, str, str, str]:
    return (0 if o.time else 1, o.time or "", o.conversation_id, o.uid)


def mask_surface(context: str, surface: str) -> str:
    """Replace the image itself in a context, so drift measures what it is used *about*."""
    if not surface:
        return context
    return re.sub(re.escape(surface), "…", context, flags=re.IGNORECASE)


def build_timeline(
    metaphor: MetaphorRef,
    occurrences: Iterable[Occurrence],
    *,
    by: str = "month",
    vectors: Mapping[str, np.ndarray] | None = None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    cooccurring: Mapping[str, Sequence[MetaphorRef]] | None = None,
    n_terms: int = N_TERMS,
) -> Timeline:
    """Compute a :class:`Timeline`.

    ``vectors`` maps an occurrence uid to its context vector; missing ones are computed with
    ``embed`` (texts → L2-normalised rows) from the masked context. Without either, drift is None.
    ``cooccurring`` maps a conversation id to the *other* metaphors used in that conversation.
    """
    if by not in GRANULARITIES:
        raise TimelineError(f"unknown period {by!r}: use one of {', '.join(GRANULARITIES)}")
    occs = tuple(sorted(_dedupe(occurrences), key=_sort_key))
    timed = [o for o in occs if o.datetime is not None]

    first = FirstUse(occs[0].uid, occs[0].role, occs[0].time) if occs else None
    uptake = _uptake(first, timed)

    vecs = _context_vectors(occs, vectors, embed)
    by_period: dict[str, list[Occurrence]] = {}
    for o in timed:
        by_period.setdefault(period_key(o.datetime, by), []).append(o)  # type: ignore[arg-type]
    keys = sorted(by_period, key=lambda k: _period_start(k, by))

    own = set(content_lemmas(" ".join((metaphor.label, *metaphor.variants))))
    docs = {
        k: [lem for o in by_period[k] for lem in content_lemmas(o.context or o.sentence) if lem not in own]
        for k in keys
    }
    terms = characteristic_terms(docs, k=n_terms)

    base: np.ndarray | None = None
    periods = []
    for i, key in enumerate(keys):
        group = by_period[key]
        roles = Counter(o.role for o in group)
        matrix = _stack(group, vecs)
        drift = p_value = None
        if matrix is not None:
            if i == 0:
                base, drift = matrix, 0.0
            elif base is not None:
                drift = round(centroid_distance(base, matrix), 4)
                if len(base) >= MIN_USES and len(matrix) >= MIN_USES:
                    p_value = round(permutation_p_value(base, matrix), 4)
        periods.append(
            Period(
                period=key,
                count=len(group),
                user=roles["user"],
                assistant=roles["assistant"],
                note=roles["note"],
                drift=drift,
                p_value=p_value,
                terms=terms.get(key, ()),
                quote=_representative(group, matrix),
                co_occurring=_cooccurring(group, cooccurring or {}, metaphor.id),
            )
        )
    return Timeline(metaphor, occs, first, uptake, tuple(periods), by, vectors=vecs, cooccurring=cooccurring)


def _dedupe(occurrences: Iterable[Occurrence]) -> list[Occurrence]:
    """One occurrence per turn: a turn using the image twice is one use for timelines."""
    seen: dict[tuple[str, str], Occurrence] = {}
    for o in occurrences:
        seen.setdefault((o.conversation_id, o.uid), o)
    return list(seen.values())


def _uptake(first: FirstUse | None, timed: Sequence[Occurrence]) -> Uptake | None:
    if first is None or first.role not in ("user", "assistant"):
        return None
    other = "assistant" if first.role == "user" else "user"
    taken = next((o for o in timed if o.role == other), None)
    if taken is None:
        return None
    lag = seconds = None
    start, end = _parse_time(first.time), taken.datetime
    if start is not None and end is not None:
        seconds = (end - start).total_seconds()
        lag = round(seconds / 86400.0, 2)
    return Uptake(taken.role, taken.time, taken.uid, lag, seconds)


def _context_vectors(
    occs: Sequence[Occurrence],
    vectors: Mapping[str, np.ndarray] | None,
    embed: Callable[[list[str]], np.ndarray] | None,
) -> dict[str, np.ndarray]:
    out = {uid: np.asarray(v, dtype=np.float32) for uid, v in (vectors or {}).items()}
    missing = [o for o in occs if o.uid not in out]
    if missing and embed is not None:
        texts = [mask_surface(o.context or o.sentence, o.surface) for o in missing]
        rows = np.asarray(embed(texts), dtype=np.float32)
        for o, row in zip(missing, rows, strict=True):
            out[o.uid] = row
    return out


def _stack(group: Sequence[Occurrence], vecs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    rows = [vecs[o.uid] for o in group if o.uid in vecs]
    return np.vstack(rows) if rows else None


def _representative(group: Sequence[Occurrence], matrix: np.ndarray | None) -> Quote | None:
    """The use whose context is nearest the period's centroid (the earliest when no vectors)."""
    if not group:
        return None
    best = group[0]
    if matrix is not None and len(matrix) == len(group):
        sims = matrix @ _centroid(matrix)
        best = group[int(np.argmax(np.round(sims, 6)))]
    return Quote(best.uid, best.sentence)


def _cooccurring(
    group: Sequence[Occurrence], cooccurring: Mapping[str, Sequence[MetaphorRef]], own_id: str
) -> tuple[CoOccurrence, ...]:
    counts: Counter[str] = Counter()
    labels: dict[str, str] = {}
    for conv in sorted({o.conversation_id for o in group}):
        for ref in {r.id: r for r in cooccurring.get(conv, ())}.values():
            if ref.id != own_id:
                counts[ref.id] += 1
                labels[ref.id] = ref.label
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], labels[kv[0]], kv[0]))
    return tuple(CoOccurrence(mid, labels[mid], n) for mid, n in ranked)


__all__ = [
    "DRIFT_AXIS",
    "GRANULARITIES",
    "MAX_WITH",
    "MIN_USES",
    "TOO_FEW",
    "CoOccurrence",
    "FirstUse",
    "MetaphorRef",
    "Occurrence",
    "Period",
    "Quote",
    "Resolution",
    "Timeline",
    "TimelineError",
    "Uptake",
    "build_timeline",
    "centroid_distance",
    "characteristic_terms",
    "content_lemmas",
    "image_spans",
    "mask_surface",
    "period_key",
    "period_range",
    "permutation_p_value",
    "plain_sentence",
    "resolve_phrase",
]


# --- resolving what the user typed ---------------------------------------------------------------


@dataclass(frozen=True)
class Resolution:
    """Which metaphor(s) a phrase names, how it was matched, and the nearest ones when none was."""

    matches: tuple[MetaphorRef, ...]
    how: str
    """``id``, ``label``, ``variant``, ``lemmas``, ``words``, ``text`` (the phrase's own
    occurrences in the turns), ``similarity`` or ``none``."""
    suggestions: tuple[MetaphorRef, ...] = ()

    @property
    def chosen(self) -> MetaphorRef | None:
        return self.matches[0] if self.matches else None

    def to_dict(self) -> dict[str, Any]:
        return {"how": self.how, "matches": [m.to_dict() for m in self.matches],
                "suggestions": [m.to_dict() for m in self.suggestions]}


SIMILARITY_THRESHOLD = 0.89
"""Cosine (query vs label/variant) above which a free phrase counts as naming a metaphor.

Measured on multilingual-e5-small (``embed_queries`` both sides) over the planted vault: unrelated
short phrases score 0.80–0.88 against every label, paraphrases and translations 0.90–0.98
(«карта значений» → карта смысла 0.955, "bridge between two worlds" → мост между мирами 0.896)."""
SIMILARITY_MARGIN = 0.02
"""…and it must beat the runner-up by this much, or every metaphor above the bar is offered."""


def _key(text: str) -> tuple[str, ...]:
    from indexer import textproc

    return tuple(lem for lem in textproc.lemmas(text) if not textproc.is_stop(lem))


def resolve_phrase(
    phrase: str,
    metaphors: Sequence[MetaphorRef],
    *,
    similarity: Callable[[str, list[str]], np.ndarray] | None = None,
    threshold: float = SIMILARITY_THRESHOLD,
    n_suggestions: int = 3,
) -> Resolution:
    """Find the metaphor(s) ``phrase`` names: id, label, variant, lemma key, shared words, then meaning.

    ``metaphors`` should be ordered by importance (most used first): ties resolve to the first.
    ``similarity(phrase, texts)`` returns one cosine per text (an embedder); without it a free
    phrase matches by lemmas only and suggestions come from spelling.
    """
    text = " ".join(phrase.split())
    folded = text.casefold()
    for m in metaphors:
        if m.id == text:
            return Resolution((m,), "id")
    for how, pick in (("label", lambda m: (m.label,)), ("variant", lambda m: m.variants)):
        found = tuple(m for m in metaphors if any(v.casefold() == folded for v in pick(m)))
        if found:
            return Resolution(found, how)
    key = _key(text)
    if key:
        found = tuple(m for m in metaphors if any(_key(v) == key for v in (m.label, *m.variants)))
        if found:
            return Resolution(found, "lemmas")
        words = set(key)
        found = tuple(m for m in metaphors if any(words <= set(_key(v)) for v in (m.label, *m.variants)))
        if found:
            return Resolution(found, "words")
    scores: list[tuple[float, int]] = []
    if similarity is not None and metaphors:
        texts, owner = [], []
        for i, m in enumerate(metaphors):
            for v in dict.fromkeys((m.label, *m.variants)):
                texts.append(v)
                owner.append(i)
        sims = np.asarray(similarity(text, texts), dtype=np.float64)
        best: dict[int, float] = {}
        for i, s in zip(owner, sims, strict=True):
            best[i] = max(best.get(i, -1.0), float(s))
        scores = sorted(((s, i) for i, s in best.items()), key=lambda t: (-t[0], t[1]))
        hits = tuple(metaphors[i] for s, i in scores if s >= threshold)
        if hits and (len(scores) == 1 or scores[0][0] - scores[1][0] >= SIMILARITY_MARGIN):
            return Resolution(hits[:1], "similarity")
        if hits:
            return Resolution(hits, "similarity")
    if scores:
        suggestions = tuple(metaphors[i] for _, i in scores[:n_suggestions])
    else:
        import difflib

        ranked = sorted(
            range(len(metaphors)),
            key=lambda i: (-max(difflib.SequenceMatcher(None, folded, v.casefold()).ratio()
                                for v in (metaphors[i].label, *metaphors[i].variants)), i),
        )
        suggestions = tuple(metaphors[i] for i in ranked[:n_suggestions])
    return Resolution((), "none", suggestions)


# --- reading the index ---------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


def context_window(text: str, start: int, end: int, *, neighbours: int = 1) -> str:
    """The sentence holding ``text[start:end]`` with ``neighbours`` sentences either side."""
    bounds, pos = [], 0
    for m in _SENTENCE_END.finditer(text):
        bounds.append((pos, m.start()))
        pos = m.end()
    bounds.append((pos, len(text)))
    bounds = [(a, b) for a, b in bounds if text[a:b].strip()]
    if not bounds:
        return text.strip()
    idx = next((i for i, (a, b) in enumerate(bounds) if a <= start < max(b, a + 1)), None)
    if idx is None:
        idx = min(range(len(bounds)), key=lambda i: abs(bounds[i][0] - start))
    lo, hi = max(0, idx - neighbours), min(len(bounds), idx + neighbours + 1)
    return " ".join(text[a:b].strip() for a, b in bounds[lo:hi])


#: Id prefix of a timeline built from a phrase's occurrences in the text (not an engine metaphor).
TEXT_PREFIX = "text:"


class IndexSource:
    """Timelines' view of an open index, through the metaphor engine's read API (``queries.metaphors``).

    Adds what timelines need on top: each occurrence's context (its sentence ± one, from the
    turn text), which metaphors share a conversation, and the index's own embedder.
    """

    def __init__(self, index: Any, vault: Any, *, embedder: Any = None, show_all: bool = False) -> None:
        self.index = index
        self.vault = vault
        self._embedder: Any = embedder
        """The index's embedder, loaded on first use unless given (a server keeps one)."""
        self.show_all = show_all
        """Also phrases judged literal or of one conversation (``--all``): in reports and "With" lists."""
        self._summaries: list[Any] | None = None
        self._conv: dict[str, list[MetaphorRef]] | None = None
        self._unsaved: set[str] = set()
        """Words of this source's contexts that the disk cache of content lemmas lacks."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.save_lemmas()
        self.index.close()

    def _lemma_cache(self) -> Any:
        folder = getattr(self.index, "dir", None)
        if folder is None:
            return None
        from queries.contexts import LemmaCache

        return LemmaCache(folder, LEMMA_VERSION)

    def load_lemmas(self, texts: Iterable[str]) -> None:
        """Read the content lemmas of ``texts``' words from the disk cache (``LEMMA_MEMO``); the
        words it lacks are added by :meth:`save_lemmas` once a timeline resolved them."""
        from indexer import textproc

        cache = self._lemma_cache()
        if cache is None:
            return
        words = {w.lower().replace("ё", "е") for t in texts for w, _, _ in textproc.tokenize(t)}
        words = {w for w in words if len(w) >= 3 and not w.isdigit()}
        known = cache.get(sorted(words))
        LEMMA_MEMO.update(known)
        self._unsaved.update(words - known.keys())

    def save_lemmas(self) -> None:
        """Add the content lemmas resolved since (of words the disk cache lacked) to the disk cache."""
        found = {w: LEMMA_SEEN[w] for w in self._unsaved if w in LEMMA_SEEN}
        cache = self._lemma_cache() if found else None
        if cache is not None:
            cache.put(found)
        self._unsaved.difference_update(found)

    @staticmethod
    def ref(summary: Any) -> MetaphorRef:
        variants = dict.fromkeys((summary.label, *summary.variants))
        return MetaphorRef(summary.id, summary.label, tuple(variants))

    def summaries(self) -> list[Any]:
        """Recurring images (``queries.metaphors.list_metaphors``), best first; with ``show_all``
        every candidate metaphor but the rejected ones."""
        if self._summaries is None:
            from queries.metaphors import list_metaphors

            if self.show_all:
                self._summaries = list_metaphors(self.index, min_conversations=1, include_literal=True)
            else:
                self._summaries = list_metaphors(self.index)
        return self._summaries

    def occurrences(self, metaphor_id: str) -> list[Occurrence]:
        """The uses of a metaphor, or (id ``text:PHRASE``) every place the turns hold the phrase."""
        from queries.metaphors import get_metaphor, phrase_occurrences

        if metaphor_id.startswith(TEXT_PREFIX):
            occs = phrase_occurrences(self.index, metaphor_id[len(TEXT_PREFIX):])
        else:
            occs = get_metaphor(self.index, metaphor_id).occurrences
        texts = self._turn_texts({o.turn_id for o in occs})
        out = [
            Occurrence(o.uid, o.conversation_id, o.note, o.conversation_title, o.role, o.time, plain_sentence(o.sentence),
                       context=context_window(texts.get(o.turn_id, o.sentence), o.start, o.end), surface=o.surface)
            for o in occs
        ]
        self.load_lemmas([o.context or o.sentence for o in out])
        return out

    def _turn_texts(self, turn_ids: set[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        ids = sorted(turn_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            sql = f"SELECT id, text FROM turns WHERE id IN ({','.join('?' * len(chunk))})"
            out.update(self.index.db.execute(sql, chunk).fetchall())
        return out

    def conversation_metaphors(self) -> dict[str, list[MetaphorRef]]:
        """conversation id → the listed metaphors (images) used in it (for per-period co-occurrence)."""
        if self._conv is None:
            from queries.metaphors import conversation_metaphors

            refs = {s.id: self.ref(s) for s in self.summaries()}
            self._conv = {conv: [refs[m] for m in mids]
                          for conv, mids in conversation_metaphors(self.index, sorted(refs)).items()}
        return self._conv

    def edges(self) -> list[tuple[str, str, int]]:
        from queries.metaphors import cooccurrences

        return cooccurrences(self.index, [s.id for s in self.summaries()])

    def embedder(self) -> Any:
        if self._embedder is None:
            from indexer.embed import embedder_for_index

            self._embedder = embedder_for_index(self.index)
        return self._embedder

    def timeline(self, metaphor: MetaphorRef, *, by: str = "month", drift: bool = True) -> Timeline:
        """The timeline of ``metaphor`` (``tropegraph timeline``); ``drift=False`` skips the context embeddings."""
        from dataclasses import replace

        tl = build_timeline(metaphor, self.occurrences(metaphor.id), by=by,
                            embed=self.embed_contexts if drift else None,
                            cooccurring=self.conversation_metaphors())
        return replace(tl, source="text") if metaphor.id.startswith(TEXT_PREFIX) else tl

    def has_candidates(self) -> bool:
        from queries.metaphors import list_status

        return list_status(self.index).candidates > 0

    def why_unlisted(self, metaphor_id: str) -> str:
        """Why the default ``tropegraph metaphors`` list leaves a metaphor out, in a few words
        ("" when it lists it: a recurring image, or tracked); the list's own rule
        (``queries.metaphors.hidden_because``)."""
        from queries.metaphors import get_metaphor

        words = {"rejected": "rejected in tropegraph.toml", "one conversation": "used in one conversation only",
                 "one repeated sentence": "one sentence repeated, not a recurring image",
                 "plain notes only": "in plain notes only, never in a conversation"}
        hidden = get_metaphor(self.index, metaphor_id).summary.hidden_because
        return "; ".join(words.get(h) or h.replace("literal ", "judged literal: figurativeness ") for h in hidden)

    def listed(self, metaphor_id: str) -> bool:
        """True when the default ``tropegraph metaphors`` list holds it (a recurring image, or tracked)."""
        return not self.why_unlisted(metaphor_id)

    def describe(self, res: Resolution) -> dict[str, Any]:
        """How a timeline's phrase was matched and whether ``tropegraph metaphors`` lists it: the
        fields every interface adds to the timeline document (CLI ``--json``, ``/api/timeline``,
        the MCP tool) — ``matched_by`` (:attr:`Resolution.how`), ``also_matches``, ``listed`` and
        ``note`` (why it is shown though the list leaves it out; None when listed)."""
        chosen = res.chosen
        assert chosen is not None
        if res.how == "text":
            listed, note = False, (f"«{chosen.label}» is not an extracted metaphor: a timeline of its own "
                                   "occurrences in the text")
        else:
            why = self.why_unlisted(chosen.id)
            listed = not why
            note = None if listed else f"«{chosen.label}» is not in the metaphors list ({why}); showing its uses anyway"
        return {"matched_by": res.how, "also_matches": [m.to_dict() for m in res.matches[1:]], "listed": listed,
                "note": note}

    def no_match(self, phrase: str, res: Resolution, *, every: str = "`tropegraph metaphors --all`") -> str:
        """The error for a phrase that names nothing: the closest images, or why there are none
        (``every``: how this interface lists every candidate)."""
        msg = f"no metaphor matches {' '.join(phrase.split())!r} and the vault's text does not hold it."
        if res.suggestions:
            return msg + " Closest images: " + "; ".join(f"{m.label} [{m.id}]" for m in res.suggestions)
        if not self.has_candidates():
            return msg + " The index has no metaphors yet: run `tropegraph index`."
        return msg + f" The vault has no recurring images yet: {every} lists every candidate."

    def embed_contexts(self, texts: list[str]) -> np.ndarray:
        """Context vectors, from the disk cache next to the index when there (``queries.contexts``):
        the model is loaded only for contexts never embedded before."""
        model = getattr(self.index, "model", None)
        folder = getattr(self.index, "dir", None)
        if not model or folder is None:
            return self.embedder().embed_passages(texts)
        from queries.contexts import ContextCache

        return ContextCache(folder, model).cached(texts, lambda missing: self.embedder().embed_passages(missing))

    def similarity(self, phrase: str, texts: list[str]) -> np.ndarray:
        emb = self.embedder()
        return emb.embed_queries(texts) @ emb.embed_queries([phrase])[0]

    def resolve(self, phrase: str) -> Resolution:
        """The engine's own lookup first (id, label, variant, lemma key of any candidate, listed or
        not), then the listed images by shared words, then the phrase's own occurrences in the
        text, then the listed images by meaning. An empty phrase is a :class:`TimelineError`."""
        from queries.metaphors import MetaphorNotFound, find_metaphor, get_metaphor, phrase_occurrences

        if not phrase.split():
            raise TimelineError("the phrase is empty: give a metaphor id or a phrase, e.g. \"карта смысла\"")
        mid = find_metaphor(self.index, phrase)
        if mid is not None:
            try:
                ref = self.ref(get_metaphor(self.index, mid).summary)
            except MetaphorNotFound:
                ref = None
            if ref is not None:
                text = " ".join(phrase.split()).casefold()
                how = ("id" if phrase.strip() == ref.id else "label" if text == ref.label.casefold()
                       else "variant" if text in {v.casefold() for v in ref.variants} else "lemmas")
                return Resolution((ref,), how)
        refs = [self.ref(s) for s in self.summaries()]
        res = resolve_phrase(phrase, refs, similarity=None)
        if res.chosen is None:
            text = " ".join(phrase.split())
            if phrase_occurrences(self.index, text, limit=1):
                return Resolution((MetaphorRef(TEXT_PREFIX + text, text, (text,)),), "text")
        if res.chosen is None and refs:
            res = resolve_phrase(phrase, refs, similarity=self.similarity)
        return res
