"""Query centring (``queries.search.centre_query``): what it subtracts, when, and the shipped centroids.

The arithmetic is checked on a small real index (FakeEmbedder vectors, Russian and English notes)
with centroids set by the test; that the shipped ``queries/query_centroids.json`` is what
``bench/query_centroids.py`` computes with the real model is checked in a slow test.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from index_helpers import run_index

import queries.search as search_mod
from indexer.embed import FakeEmbedder
from indexer.passages import CYRILLIC, LATIN
from indexer.store import open_index

REPO = Path(__file__).resolve().parent.parent

RU = [f"Заметка номер {i} о том, как солить огурцы, печь хлеб и гулять по набережной вечером." for i in range(30)]
EN = [f"Note number {i} about pickling cucumbers, baking bread and evening walks by the river." for i in range(30)]


def _index(tmp_path: Path, texts: list[str]) -> Path:
    vault = tmp_path / "vault"
    vault.mkdir()
    for i, text in enumerate(texts):  # (a note's title is a passage too: in its text's language)
        name = "заметка" if text in RU else "note"
        (vault / f"{name} {i:02}.md").write_text(f"{text}\n", encoding="utf-8")
    run_index(vault, tmp_path / "index", FakeEmbedder())
    return tmp_path / "index"


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def centroids(monkeypatch) -> dict[int, np.ndarray]:
    dim = FakeEmbedder().dim
    rng = np.random.default_rng(7)
    mus = {CYRILLIC: 0.8 * _unit(rng, dim), LATIN: 0.8 * _unit(rng, dim)}
    monkeypatch.setitem(search_mod._CENTROIDS, FakeEmbedder().model_id, mus)
    return mus


@pytest.mark.parametrize(("texts", "share_ru"), [(RU, 1.0), (EN, 0.0), (RU + EN, 0.5)])
def test_the_query_loses_more_of_its_centroid_the_less_of_the_index_is_in_its_language(
    tmp_path, centroids, texts, share_ru
) -> None:
    q = _unit(np.random.default_rng(1), FakeEmbedder().dim).reshape(1, -1)
    with open_index(_index(tmp_path, texts), readonly=True, notify=lambda m: None) as idx:
        model = search_mod._index_model(idx)
        centred, offsets = search_mod.centre_query(idx.db, q, FakeEmbedder().model_id, CYRILLIC, model)
    a = search_mod.CENTRING_SAME + (search_mod.CENTRING_CROSS - search_mod.CENTRING_SAME) * (1 - share_ru)
    expected = q.reshape(-1) - a * centroids[CYRILLIC]
    np.testing.assert_allclose(centred.reshape(-1), expected / np.linalg.norm(expected), atol=1e-5)
    assert set(offsets) == {LATIN}  # the query's own script is the reference


def test_offsets_follow_how_much_the_query_prefers_each_scripts_passages(tmp_path, centroids) -> None:
    q = _unit(np.random.default_rng(2), FakeEmbedder().dim).reshape(1, -1)
    with open_index(_index(tmp_path, RU + EN), readonly=True, notify=lambda m: None) as idx:
        model = search_mod._index_model(idx)
        centred, offsets = search_mod.centre_query(idx.db, q, FakeEmbedder().model_id, LATIN, model)
        mean = {
            script: np.mean([np.frombuffer(b, dtype="<f4") for (b,) in idx.db.execute(
                "SELECT v.vector FROM passages p JOIN vectors v ON v.hash = p.hash WHERE p.script = ?", (script,))], axis=0)
            for script in (CYRILLIC, LATIN)
        }
    c = centred.reshape(-1)
    assert offsets[CYRILLIC] == pytest.approx(-search_mod.PASSAGE_CENTRING * float(c @ mean[CYRILLIC] - c @ mean[LATIN]), abs=1e-5)


def test_a_model_without_centroids_is_not_centred(tmp_path) -> None:
    q = _unit(np.random.default_rng(3), FakeEmbedder().dim).reshape(1, -1)
    with open_index(_index(tmp_path, RU), readonly=True, notify=lambda m: None) as idx:
        centred, offsets = search_mod.centre_query(idx.db, q, "nobody/none", CYRILLIC, None)
    assert centred is q
    assert offsets == {LATIN: search_mod.OTHER_SCRIPT}


@pytest.mark.slow
def test_the_shipped_centroids_are_what_the_bench_script_computes(tmp_path, monkeypatch) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    import query_centroids

    shipped = json.loads((REPO / "queries" / "query_centroids.json").read_text(encoding="utf-8"))
    monkeypatch.setattr(query_centroids, "OUT", tmp_path / "centroids.json")
    query_centroids.main()
    fresh = json.loads((tmp_path / "centroids.json").read_text(encoding="utf-8"))
    assert set(fresh) <= set(shipped)
    for model, scripts in fresh.items():
        assert set(scripts) == {str(CYRILLIC), str(LATIN)}
        for script, vec in scripts.items():
            np.testing.assert_allclose(shipped[model][script], vec, atol=1e-4)
