"""The training script's data rules (``training/train_figurative.py``): the published test split
is left out of training, and the WordNet word classes are read and fitted as documented."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.metaphors import figurative as fig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))
import train_figurative as T


def test_rows_of_the_published_test_split_are_left_out():
    test = T.test_split_phrases()
    rows = T.read_rows()
    dropped = {T.norm(r.phrase) for r, x in zip(rows, T.in_test_split(rows, test), strict=True) if x}
    # the split writes Russian phrases as lemmas («каменный сердце»): ours match by lemma key too
    assert {"острый нож", "теплый прием", "raw meat", "sunny disposition", "каменное сердце",
            "empty promises"} <= dropped
    keys = set()
    for r in T.read_sentences(T.TEST_SPLIT, "test"):
        c = fig.parse_phrase(r.phrase, r.lang)
        keys |= {T.norm(r.phrase), f"{c.lang}:{c.key}"}
    for r in rows:
        c = fig.parse_phrase(r.phrase, r.lang)
        assert (T.norm(r.phrase) in dropped) == (T.norm(r.phrase) in keys or f"{c.lang}:{c.key}" in keys)
    odd = [T.Row("x", "ru", 1, "adj", "Тёплого   приёма", None), T.Row("x", "en", 0, "adj", "Raw meat", None),
           T.Row("x", "ru", 1, "gen", "карта смысла", None)]
    assert T.in_test_split(odd, test).tolist() == [True, True, False]


def test_wordnet_targets_are_distributions_led_by_the_first_sense():
    lemmas, names, targets = T.read_wordnet_nouns()
    assert len(lemmas) == len(targets) > 10_000 and len(set(lemmas)) == len(lemmas)
    assert {"artifact", "cognition", "feeling", "food"} <= set(names)
    assert np.allclose(targets.sum(1), 1.0)
    first = {w: s.split()[0] for w, s in (line.split("\t") for line in
             T.WORDNET_NOUNS.read_text(encoding="utf-8").splitlines()[1:])}
    for i in range(0, len(lemmas), 997):
        assert names[int(targets[i].argmax())] == first[lemmas[i]]


def test_softmax_head_learns_separable_classes_and_ships_in_the_model(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 384))
    V = np.vstack([c + 0.1 * rng.normal(size=(40, 384)) for c in centres])
    Y = np.repeat(np.eye(3), 40, axis=0)
    W, b = T._fit_softmax(V, Y, 1e-4)
    heads = fig.SenseHeads(["a", "b", "c"], W.astype(np.float32), b.astype(np.float32),
                           np.array([1.0, 0.0, 0.0], dtype=np.float32))
    p = heads.probs(V)
    assert (p.argmax(1) == Y.argmax(1)).all()
    f = heads.features(V[:2], V[-2:])  # 3 + 3 probabilities, concreteness of both, difference, product
    assert f.shape == (2, 10) and f[0, 6] > 0.9 and f[0, 7] < 0.1

    m = fig.model()
    k = m.P.shape[1]
    width = fig.Model.design(np.zeros((1, m.mu.shape[0] * 4 + 13)), m.mu, m.P, heads).shape[1]
    with_heads = fig.Model(m.mu, m.P, np.zeros(width, np.float32), np.ones(width, np.float32),
                           np.ones(width, np.float32) * 0.01, 0.0, 0.5, 3, None, heads, test_overlap_dropped=True)
    with_heads.save(tmp_path / "m.npz")
    back = fig.Model.load(tmp_path / "m.npz")
    assert back.senses is not None and back.senses.names == ["a", "b", "c"] and back.test_overlap_dropped
    X = rng.normal(size=(4, 384 * 4 + 13)).astype(np.float32)
    assert np.allclose(back.predict(X), with_heads.predict(X), atol=1e-5)
    assert width == 5 * k + 13 + k + 10
    assert back.digest() != fig.Model(m.mu, m.P, with_heads.mean, with_heads.scale, with_heads.w, 0.0, 0.5).digest()


def test_only_concreteness_when_classes_are_off():
    heads = fig.SenseHeads(["a", "b"], np.eye(384, 2, dtype=np.float32), np.zeros(2, np.float32),
                           np.array([1.0, 0.0], np.float32), with_classes=False)
    V = np.zeros((1, 384), np.float32)
    V[0, 0] = 5.0
    f = heads.features(V, -V)
    assert f.shape == (1, 4) and f[0, 0] > 0.9 and f[0, 1] < 0.1


def test_adjective_only_word_classes_are_zero_outside_adjective_noun():
    rng = np.random.default_rng(1)
    heads = fig.SenseHeads(["a", "b"], rng.normal(size=(384, 2)).astype(np.float32), np.zeros(2, np.float32),
                           np.array([1.0, 0.0], np.float32), adj_only=True)
    m = fig.model()
    X = rng.normal(size=(2, 384 * 4 + 13)).astype(np.float32)
    X[:, 3 * 384 + 3 : 3 * 384 + 7] = 0
    X[0, 3 * 384 + 4] = 1  # adjective + noun
    X[1, 3 * 384 + 3] = 1  # genitive
    Z = fig.Model.design(X, m.mu, m.P, heads)
    assert np.abs(Z[0, -8:]).sum() > 0 and not Z[1, -8:].any()
    assert np.allclose(Z[:, :-8], fig.Model.design(X, m.mu, m.P))


def test_the_shipped_weights_were_trained_without_the_test_split_overlap():
    assert fig.model().test_overlap_dropped


@pytest.mark.parametrize("flag", ["--senses", "--keep-test-overlap", "--check", "--relocate", "--threshold"])
def test_the_recipe_flags_are_documented(flag, capsys):
    with pytest.raises(SystemExit):
        sys.argv = ["train_figurative.py", "--help"]
        T.main()
    assert flag in capsys.readouterr().out


def test_every_training_row_is_frozen_and_none_is_an_evaluated_phrase_or_head():
    """Training reads each row's located span from ``training/data/located.tsv`` (so an extractor
    change does not change the training data); the rows it keeps are no evaluated phrase and, for
    the project's rows, share no head with pairs-dev, the hard cases or the planted pack."""
    rows = T.read_rows()
    located = T.read_located(rows)  # exits with the fix (--relocate) when the data changed
    held = T.evaluation_rows()
    phrases = {T.norm(r.phrase) for r in held}
    heads = {f"{c.lang}:{c.head}" for c in (T.candidate(r)[0] for r in held if r.source != "real-exports")
             if c is not None}
    kept = [(r, x) for r, x in zip(rows, located, strict=True) if not x.left_out]
    assert len(kept) > 3000 and sum(x.found for _, x in kept) > 800
    assert not [r.phrase for r, _ in kept if T.norm(r.phrase) in phrases]
    assert not [r.phrase for r, x in kept if r.source != "tsvetkov-an" and x.group in heads]
    assert {x.left_out for _, x in zip(rows, located, strict=True)} == {"", "eval-phrase", "eval-head", "test-split"}


def test_a_row_missing_from_the_frozen_spans_names_the_fix():
    with pytest.raises(SystemExit, match="--relocate"):
        T.read_located([T.Row("written-ru", "ru", 1, "gen", "новая фраза", "Совсем новая фраза здесь.")])


def test_selection_prefers_the_simplest_setting_and_the_strictest_cut_off_within_one_standard_error():
    results = [(0.815, 0.008, 128, 300.0, 3.0), (0.810, 0.008, 128, 1000.0, 3.0), (0.804, 0.008, 64, 300.0, 3.0)]
    assert T.simplest_within_one_se(results)[2:4] == (128, 1000.0)
    assert T.simplest_within_one_se([(0.815, 0.02, 128, 300.0, 3.0), *results[1:]])[2:4] == (64, 300.0)
    rng = np.random.default_rng(0)
    y = np.repeat([0.0, 1.0], 500)
    groups = [f"g{i}" for i in range(1000)]
    p = np.clip(0.3 + 0.4 * y + 0.15 * rng.normal(size=1000), 0, 1)  # a flat top around 0.5
    best, strict = T.choose_threshold([p, p], y, np.ones(1000), groups)
    assert 0.4 <= best <= 0.6 and best < strict <= best + 0.1


def test_averaged_settings_are_one_linear_model_equal_to_the_mean_logit():
    """``--average``: models on 8 and 16 PCA directions (the first 8 are shared) become one model
    whose logit is the mean of theirs, on inputs it has never seen."""
    rng = np.random.default_rng(1)
    D = fig._D
    X = rng.normal(size=(300, 4 * D + fig._N_SCALARS)).astype(np.float32)
    X[:, 3 * D + 9] = rng.integers(0, 2, 300)  # has-context flag
    y = (X[:, 0] + X[:, D] * X[:, 1] + rng.normal(size=300) > 0).astype(float)
    w = np.ones(300)
    members = [T.fit(X, y, w, l2, *T.pca(X, k)) for k, l2 in ((8, 10.0), (16, 10.0), (16, 100.0))]
    avg = T.average(members)
    assert avg.P.shape[1] == 16
    Xn = rng.normal(size=(50, X.shape[1])).astype(np.float32)
    logits = np.mean([np.log(p / (1 - p)) for p in (m.predict(Xn) for m in members)], axis=0)
    assert np.allclose(avg.predict(Xn), 1 / (1 + np.exp(-logits)), atol=1e-4)
    assert not np.allclose(avg.predict(Xn), members[1].predict(Xn), atol=1e-3)
