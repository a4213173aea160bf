"""FAISS kinds: IVF (approximate, for large vaults) next to exact flat, and ``auto`` choosing between them.

Real FAISS and real SQLite throughout. Vault-sized behaviour (thousands of vectors) uses the real
``vectors`` table filled with clustered vectors; the indexing pipeline runs on small vaults.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import faiss
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from index_helpers import check_consistent, damage_cache, run_index

from indexer import vectors
from indexer.embed import FakeEmbedder
from indexer.store import open_index
from indexer.vectors import (
    FAISS_NAME,
    SIDECAR_NAME,
    Exclusion,
    build_index,
    index_ids,
    ivf_nlist,
    kind_of,
    knn,
    read_vectors,
    to_blob,
)

MODEL, DIM = "fake/default", 32


def clustered(n: int, *, seed: int, centers: int = 40, spread: float = 0.35) -> np.ndarray:
    """Unit vectors around random centres: the shape real embeddings have (topics)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, DIM)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = c[rng.integers(0, centers, n)] + spread * rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_index(ix: Path, n: int, *, seed: int = 0) -> None:
    """An index folder whose ``vectors`` table holds ``n`` clustered vectors of the fake model."""
    with open_index(ix, create=True, notify=lambda m: None) as idx:
        idx.set_meta("model", MODEL)
        idx.set_meta("dim", DIM)
        idx.set_meta("engine", "fake")
    add_rows(ix, n, seed=seed)


def add_rows(ix: Path, n: int, *, seed: int) -> None:
    db = sqlite3.connect(ix / "index.db")
    with db:
        db.executemany(
            "INSERT INTO vectors (model, hash, vector) VALUES (?, ?, ?)",
            [(MODEL, f"s{seed}-{i}", to_blob(v)) for i, v in enumerate(clustered(n, seed=seed))],
        )
    db.close()


def delete_rows(ix: Path, keep: int) -> list[int]:
    """Delete all but the first ``keep`` vectors; return the deleted ids."""
    db = sqlite3.connect(ix / "index.db")
    with db:
        gone = [r[0] for r in db.execute("DELETE FROM vectors WHERE id NOT IN "
                                         "(SELECT id FROM vectors ORDER BY id LIMIT ?) RETURNING id", (keep,))]
    db.close()
    return gone


def sqlite_ids(ix: Path) -> list[int]:
    db = sqlite3.connect(ix / "index.db")
    ids = [r[0] for r in db.execute("SELECT id FROM vectors WHERE model = ? ORDER BY id", (MODEL,))]
    db.close()
    return ids


def sidecar(ix: Path) -> dict:
    return json.loads((ix / SIDECAR_NAME).read_text())


def open_writer(ix: Path, messages: list[str] | None = None):
    return open_index(ix, notify=(messages.append if messages is not None else lambda m: None))


def save_cache(ix: Path) -> None:
    """What any writer (``tropegraph index``, the watcher) does first: load, repair, save the cache."""
    with open_writer(ix) as idx:
        idx.vector_index()


@pytest.fixture
def small_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` switches at a few thousand vectors instead of tens of thousands."""
    monkeypatch.delenv("TROPEGRAPH_FAISS", raising=False)
    monkeypatch.setattr(vectors, "AUTO_IVF_AT", 2000)
    monkeypatch.setattr(vectors, "AUTO_FLAT_BELOW", 1000)


def recall_at(k: int, exact: tuple[np.ndarray, np.ndarray], got: np.ndarray) -> float:
    """Share of the exact top-``k`` ids found (continuous random data: no ties)."""
    hits = [len(set(row.tolist()) & set(want.tolist())) for row, want in zip(got, exact[1], strict=True)]
    return float(np.mean(hits)) / k


# -- IVF search -------------------------------------------------------------------------------
def test_ivf_recall_at_50_matches_flat_on_clustered_vectors() -> None:
    x = clustered(6000, seed=1)
    ids = np.arange(1, len(x) + 1, dtype=np.int64)
    q = clustered(100, seed=1)[:100]  # same centres, fresh points
    flat, ivf = build_index(DIM, "flat", ids, x), build_index(DIM, "ivf", ids, x)
    assert kind_of(ivf) == "ivf" and ivf.nlist == ivf_nlist(len(x)) > 1
    assert ivf.nprobe < ivf.nlist  # approximate: scans only some lists
    exact = knn(flat, q, 50)
    assert recall_at(50, exact, knn(ivf, q, 50)[1]) >= 0.95
    sims, got = knn(ivf, q, 50)
    assert got.shape == (100, 50) and np.all(np.diff(sims, axis=1) <= 1e-6)


def test_filtered_ivf_search_is_exact_whatever_nprobe() -> None:
    x = clustered(5000, seed=2)
    ids = np.arange(10, len(x) + 10, dtype=np.int64)
    q = clustered(40, seed=3)
    flat, ivf = build_index(DIM, "flat", ids, x), build_index(DIM, "ivf", ids, x)
    ivf.nprobe = 1  # as approximate as it gets
    allowed = np.random.default_rng(4).choice(ids, 400, replace=False)
    want_sims, want = knn(flat, q, 30, allowed=allowed)
    got_sims, got = knn(ivf, q, 30, allowed=allowed)
    assert set(got.ravel().tolist()) <= set(allowed.tolist())
    assert np.allclose(got_sims, want_sims, atol=1e-5)
    assert all(set(a) == set(b) for a, b in zip(got.tolist(), want.tolist(), strict=True))
    # the same search without the filter does lose neighbours at nprobe 1: the exactness is real
    assert recall_at(30, knn(flat, q, 30), knn(ivf, q, 30)[1]) < 0.95
    # fewer allowed ids than k: padded with -1, like flat
    _, few = knn(ivf, q[:1], 10, allowed=allowed[:3])
    assert sorted(few[0][:3].tolist()) == sorted(allowed[:3].tolist()) and few[0][3:].tolist() == [-1] * 7


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_an_excluded_search_is_the_deeper_search_without_those_ids(kind: str) -> None:
    """``excluded`` drops ids inside FAISS: the k results are the first k of a deeper search
    that are not excluded (an IVF keeps its nprobe), so asking again deeper is not needed."""
    x = clustered(3000, seed=5)
    ids = np.arange(1, len(x) + 1, dtype=np.int64)
    q = clustered(20, seed=6)
    index = build_index(DIM, kind, ids, x)
    _, near = knn(index, q, 10)
    drop = Exclusion(np.unique(near[:, :6]))  # the six nearest of every query
    sims, got = knn(index, q, 20, excluded=drop)
    assert not set(got.ravel().tolist()) & set(drop.ids.tolist())
    assert np.all(np.diff(sims, axis=1) <= 1e-6)
    if kind != "hnsw":  # (a graph search walks differently when ids are skipped)
        _, deep = knn(index, q, 20 + len(drop))
        for row, want in zip(got.tolist(), deep.tolist(), strict=True):
            assert row == [v for v in want if v not in set(drop.ids.tolist())][:20]
    assert knn(index, q, 20, excluded=drop.ids)[1].tolist() == got.tolist()  # plain ids do the same


# -- the cache with kind ivf ------------------------------------------------------------------
def test_ivf_removals_are_in_place_without_retraining(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROPEGRAPH_FAISS", "ivf")
    ix = tmp_path / "ix"
    make_index(ix, 3000)
    with open_writer(ix) as idx:
        first = idx.vector_index()
        centroids = first.quantizer.reconstruct_n(0, first.nlist)
        gone = delete_rows(ix, 2000)
        idx.refresh_vectors(removed_ids=gone)
        assert idx.vector_index() is first  # no rebuild
        assert np.array_equal(first.quantizer.reconstruct_n(0, first.nlist), centroids)
        assert sorted(index_ids(first).tolist()) == sqlite_ids(ix)
    assert sidecar(ix)["count"] == 2000 and sidecar(ix)["kind"] == "ivf"
    with open_index(ix, readonly=True, notify=lambda m: None) as idx:
        assert sorted(index_ids(idx.vector_index()).tolist()) == sqlite_ids(ix)


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    """Twenty-four plain notes of random words: ~200 passages."""
    v = tmp_path / "vault"
    (v / ".obsidian").mkdir(parents=True)
    r = random.Random(0)
    words = [f"слово{i}" for i in range(300)]
    for n in range(24):
        paras = [f"# Note {n}"] + [" ".join(r.choice(words) for _ in range(12)) + "." for _ in range(30)]
        (v / f"n{n:02}.md").write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    return v


def test_ivf_through_the_pipeline_adds_removes_and_stays_consistent(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TROPEGRAPH_FAISS", "ivf")
    ix = tmp_path / "ix"
    emb = FakeEmbedder()
    run_index(vault, ix, emb)
    side = sidecar(ix)
    assert side["kind"] == "ivf" and side["trained"] == side["count"] == check_consistent(ix)["vectors"]
    for n in range(5):
        (vault / f"n{n:02}.md").unlink()
    (vault / "new.md").write_text("Маяк светит кораблям.\n\nA lighthouse guides ships home.\n", encoding="utf-8")
    report = run_index(vault, ix, emb)
    assert report.vectors_removed > 0 and report.warnings == []
    counts = check_consistent(ix)  # ids agree with SQLite; reconstruct works on IVF
    assert sidecar(ix)["count"] == counts["vectors"]
    with open_index(ix, readonly=True) as idx:
        q = emb.embed_queries(["A lighthouse guides ships home."])
        _, ids = knn(idx.vector_index(), q, 1)
        text = idx.db.execute(
            "SELECT p.text FROM vectors v JOIN passages p ON p.hash = v.hash WHERE v.id = ?", (int(ids[0][0]),)
        ).fetchone()[0]
    assert "lighthouse" in text


@pytest.mark.parametrize("damage", ["missing", "corrupt", "stale", "behind", "sidecar-kind"])
def test_damaged_ivf_cache_is_repaired_without_reembedding(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    monkeypatch.setenv("TROPEGRAPH_FAISS", "ivf")
    ix = tmp_path / "ix"
    emb = FakeEmbedder()
    run_index(vault, ix, emb)
    faiss_file = ix / FAISS_NAME
    if damage != "sidecar-kind":
        damage_cache(vault, ix, emb, damage)
    elif damage == "sidecar-kind":  # killed between the sidecar and the file replace of a kind switch
        faiss.write_index(build_index(DIM, "flat", np.zeros(0, np.int64), np.zeros((0, DIM), np.float32)),
                          str(faiss_file))
    calls = len(emb.calls)
    messages: list[str] = []
    with open_index(ix, readonly=True, notify=messages.append) as idx:
        got = idx.vector_index()
        db_ids, _ = read_vectors(idx.db, MODEL, DIM)
        assert kind_of(got) == "ivf"
        assert sorted(index_ids(got).tolist()) == db_ids.tolist()
    expected = {
        "missing": "is missing; rebuilding",
        "corrupt": "damaged (its checksum does not match)",
        "stale": "out of date; removed 1, added 0 vectors",
        "behind": "added 2 vectors",  # the new note: its text and its title
        "sidecar-kind": "damaged (its checksum does not match)",
    }[damage]
    assert len(messages) == 1 and expected in messages[0]
    assert len(emb.calls) == calls  # nothing re-embedded
    with open_writer(ix) as idx:  # a writer saves the repair
        idx.vector_index()
    assert sidecar(ix)["count"] == len(sqlite_ids(ix))
    messages.clear()
    with open_index(ix, readonly=True, notify=messages.append) as idx:
        assert kind_of(idx.vector_index()) == "ivf"
    assert messages == []


def test_changing_the_kind_rebuilds_the_saved_file(vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ix = tmp_path / "ix"
    monkeypatch.setenv("TROPEGRAPH_FAISS", "ivf")
    run_index(vault, ix, FakeEmbedder())
    assert sidecar(ix)["kind"] == "ivf"
    monkeypatch.setenv("TROPEGRAPH_FAISS", "flat")
    messages: list[str] = []
    with open_writer(ix, messages) as idx:
        assert kind_of(idx.vector_index()) == "flat"
    assert len(messages) == 1 and "another model or kind; rebuilding it" in messages[0]
    assert sidecar(ix)["kind"] == "flat" and kind_of(faiss.read_index(str(ix / FAISS_NAME))) == "flat"
    check_consistent(ix)


# -- an older file (a watcher saves only now and then) ------------------------------------------
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["flat", "ivf"]), removed=st.integers(1, 300), added=st.integers(0, 300))
def test_an_older_file_is_reconciled_in_place_and_searches_like_a_rebuild(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, kind: str, removed: int, added: int
) -> None:
    monkeypatch.setenv("TROPEGRAPH_FAISS", kind)
    ix = tmp_path_factory.mktemp("old") / "ix"
    make_index(ix, 1000)
    save_cache(ix)
    saved = sidecar(ix)
    db = sqlite3.connect(ix / "index.db")
    with db:
        db.execute("DELETE FROM vectors WHERE id IN (SELECT id FROM vectors ORDER BY random() LIMIT ?)", (removed,))
    db.close()
    add_rows(ix, added, seed=7)
    messages: list[str] = []
    with open_index(ix, readonly=True, notify=messages.append) as idx:
        got = idx.vector_index()
        assert kind_of(got) == kind
        if kind == "ivf":  # the file's lists are kept: no k-means
            assert got.nlist == ivf_nlist(saved["trained"])
        every, mat = read_vectors(idx.db, MODEL, DIM)
        assert sorted(index_ids(got).tolist()) == every.tolist() == sqlite_ids(ix)
        for i in (0, len(every) // 2, len(every) - 1):
            assert np.array_equal(got.reconstruct(int(every[i])), mat[i])
        fresh = build_index(DIM, kind, every, mat)
        q = clustered(4, seed=11)
        (s1, i1), (s2, i2) = knn(got, q, 20, allowed=every), knn(fresh, q, 20, allowed=every)
        if kind == "flat":
            (s1, i1), (s2, i2) = knn(got, q, 20), knn(fresh, q, 20)
        assert np.allclose(s1, s2, atol=1e-5) and np.array_equal(i1, i2)
    assert messages == [f"vector cache was out of date; removed {removed}, added {added} vectors"]
    assert sidecar(ix) == saved  # a reader never writes


def test_a_stale_hnsw_file_is_still_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROPEGRAPH_FAISS", "hnsw")
    ix = tmp_path / "ix"
    make_index(ix, 300)
    save_cache(ix)
    delete_rows(ix, 250)
    messages: list[str] = []
    with open_index(ix, readonly=True, notify=messages.append) as idx:
        assert kind_of(idx.vector_index()) == "hnsw"
        assert sorted(index_ids(idx.vector_index()).tolist()) == sqlite_ids(ix)
    assert len(messages) == 1 and "is stale; rebuilding it" in messages[0]


# -- auto ---------------------------------------------------------------------------------------
def test_auto_switches_to_ivf_and_back_with_hysteresis(tmp_path: Path, small_auto: None) -> None:
    ix = tmp_path / "ix"
    make_index(ix, 1500)
    messages: list[str] = []
    with open_writer(ix, messages) as idx:
        assert kind_of(idx.vector_index()) == "flat"
    assert sidecar(ix)["kind"] == "flat"
    add_rows(ix, 1000, seed=1)  # 2500 >= AUTO_IVF_AT
    with open_writer(ix, messages) as idx:
        assert kind_of(idx.vector_index()) == "ivf"
    assert sidecar(ix)["kind"] == "ivf" and sidecar(ix)["trained"] == 2500
    assert any("switching the vector cache from flat to ivf" in m for m in messages)
    with open_writer(ix) as idx:  # 1500: below the switch-up point, above the switch-down one
        idx.vector_index()
        idx.refresh_vectors(removed_ids=delete_rows(ix, 1500))
    assert sidecar(ix)["kind"] == "ivf" and sidecar(ix)["count"] == 1500
    with open_writer(ix) as idx:
        assert kind_of(idx.vector_index()) == "ivf"
        idx.refresh_vectors(removed_ids=delete_rows(ix, 900))  # below AUTO_FLAT_BELOW
    assert sidecar(ix)["kind"] == "flat" and sidecar(ix)["count"] == 900  # decided on save
    with open_index(ix, readonly=True, notify=lambda m: None) as idx:
        assert kind_of(idx.vector_index()) == "flat"
        assert sorted(index_ids(idx.vector_index()).tolist()) == sqlite_ids(ix)


def test_auto_switch_happens_when_a_writer_saves_after_growing(tmp_path: Path, small_auto: None) -> None:
    ix = tmp_path / "ix"
    make_index(ix, 500)
    with open_writer(ix) as idx:
        assert kind_of(idx.vector_index()) == "flat"
        add_rows(ix, 2000, seed=2)  # e.g. the first indexing run of a large vault
        idx.refresh_vectors()
        assert kind_of(idx.vector_index()) == "flat"  # no training mid-run
        idx.save_vectors()
        assert kind_of(idx.vector_index()) == "ivf"
    side = sidecar(ix)
    assert (side["kind"], side["count"], side["trained"]) == ("ivf", 2500, 2500)


def test_a_reader_never_writes_and_keeps_the_files_kind(tmp_path: Path, small_auto: None) -> None:
    ix = tmp_path / "ix"
    make_index(ix, 1500)
    save_cache(ix)
    assert sidecar(ix)["kind"] == "flat"
    add_rows(ix, 1500, seed=3)  # 3000: auto would want ivf
    before = (ix / FAISS_NAME).read_bytes(), (ix / SIDECAR_NAME).read_bytes()
    messages: list[str] = []
    with open_index(ix, readonly=True, notify=messages.append) as idx:
        assert kind_of(idx.vector_index()) == "flat"  # a switch it could not save is not worth training
        assert idx.vector_index().ntotal == 3000
    assert ((ix / FAISS_NAME).read_bytes(), (ix / SIDECAR_NAME).read_bytes()) == before
    assert messages == ["vector cache was behind the database; added 1500 vectors"]
    save_cache(ix)
    assert sidecar(ix)["kind"] == "ivf"
    delete_rows(ix, 2500)
    with open_index(ix, readonly=True, notify=lambda m: None) as idx:
        # an out-of-date IVF file is reconciled in place: its kind and training are kept
        assert kind_of(idx.vector_index()) == "ivf"
        assert sorted(index_ids(idx.vector_index()).tolist()) == sqlite_ids(ix)
    (ix / FAISS_NAME).unlink()
    with open_index(ix, readonly=True, notify=lambda m: None) as idx:
        # rebuilt as exact flat, in memory only: a reader cannot keep a trained IVF
        assert kind_of(idx.vector_index()) == "flat"
        assert sorted(index_ids(idx.vector_index()).tolist()) == sqlite_ids(ix)
    assert (sidecar(ix)["kind"], sidecar(ix)["count"]) == ("ivf", 3000)  # readers left it alone


def test_ivf_is_retrained_once_the_vault_outgrows_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROPEGRAPH_FAISS", "ivf")
    ix = tmp_path / "ix"
    make_index(ix, 1000)
    save_cache(ix)
    assert sidecar(ix)["trained"] == 1000
    add_rows(ix, 2000, seed=4)  # 3000 < 4 x 1000: new vectors simply join the nearest list
    with open_writer(ix) as idx:
        assert idx.vector_index().nlist == ivf_nlist(1000)
    assert sidecar(ix)["trained"] == 1000 and sidecar(ix)["count"] == 3000
    add_rows(ix, 1500, seed=5)  # 4500 >= 4 x 1000
    with open_index(ix, readonly=True, notify=lambda m: None) as idx:
        assert idx.vector_index().nlist == ivf_nlist(1000)  # readers use what they have
    messages: list[str] = []
    with open_writer(ix, messages) as idx:
        assert idx.vector_index().nlist == ivf_nlist(4500) > ivf_nlist(1000)
    assert sidecar(ix)["trained"] == 4500
    assert any("retraining" in m for m in messages)


# -- incremental == rebuild -------------------------------------------------------------------
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(["add", "remove"]), st.integers(1, 400)), min_size=1, max_size=6))
def test_incremental_ivf_agrees_with_a_fresh_rebuild(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, ops: list[tuple[str, int]]
) -> None:
    monkeypatch.setenv("TROPEGRAPH_FAISS", "ivf")
    ix = tmp_path_factory.mktemp("inc") / "ix"
    make_index(ix, 800)
    with open_writer(ix) as idx:
        live = idx.vector_index()
        for step, (op, n) in enumerate(ops):
            if op == "add":
                add_rows(ix, n, seed=100 + step)
                idx.refresh_vectors()
            else:
                db = sqlite3.connect(ix / "index.db")
                with db:
                    gone = [r[0] for r in db.execute(
                        "DELETE FROM vectors WHERE id IN (SELECT id FROM vectors ORDER BY random() LIMIT ?) "
                        "RETURNING id", (n,))]
                db.close()
                idx.refresh_vectors(removed_ids=gone)
        live = idx.vector_index()
        fresh = idx._cache.rebuild(idx.db, MODEL, DIM, "ivf").index
        assert sorted(index_ids(live).tolist()) == sorted(index_ids(fresh).tolist()) == sqlite_ids(ix)
        if live.ntotal:
            q = clustered(5, seed=9)
            every = np.asarray(sqlite_ids(ix), dtype=np.int64)
            a, b = knn(live, q, 10, allowed=every), knn(fresh, q, 10, allowed=every)
            assert np.allclose(a[0], b[0], atol=1e-5)
            for i in every[:20]:
                assert np.array_equal(live.reconstruct(int(i)), fresh.reconstruct(int(i)))
