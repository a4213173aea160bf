"""Finding 2: vector bytes garbled inside the FAISS file were never detected.

The ids still matched SQLite, so the cache was trusted: semantic search returned none of the
right results (scores like 4.7e37), and neither ``index`` nor ``index --full`` repaired it. Now
the sidecar carries a CRC-32 of the file, checked before every load: a damaged file is rebuilt
from SQLite (no re-embedding) with identical results, a writer saves the repair, and
``index --full`` rebuilds the cache whatever it holds.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import faiss
import numpy as np
import pytest
from index_helpers import run_index

from indexer.embed import FakeEmbedder
from indexer.store import open_index
from indexer.vectors import FAISS_NAME, SIDECAR_NAME, IdStats, file_checksum, index_ids, knn, sql_stats

QUERIES = ["сад памяти и карта смысла", "lighthouse in the fog", "мост между мирами", "harbour cranes at night"]


def make_vault(root: Path) -> Path:
    vault = root / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    rng = random.Random(7)
    words = ["сад", "память", "карта", "смысл", "мост", "мир", "маяк", "туман", "гавань", "кран", "ночь", "свет", "тень", "язык", "токен"]
    for i in range(300):
        text = " ".join(rng.choice(words) for _ in range(12))
        (vault / f"n{i:03}.md").write_text(f"# Note {i}\n\n{text} {i}.\n", encoding="utf-8")
    return vault


def results(index_dir: Path, emb: FakeEmbedder, messages: list[str] | None = None) -> list[list[tuple]]:
    """Top 10 (id, rounded score) per query through the cache a reader loads."""
    with open_index(index_dir, readonly=True, notify=(messages.append if messages is not None else None)) as idx:
        sims, ids = knn(idx.vector_index(), emb.embed_queries(QUERIES), 10)
    with np.errstate(over="ignore"):  # garbled vectors score like 4.7e37
        return [sorted(zip(ids[r].tolist(), np.round(sims[r], 4).tolist(), strict=True)) for r in range(len(QUERIES))]


def same(a: list[list[tuple]], b: list[list[tuple]]) -> bool:
    """Equal results: the same scores, and the same ids above the last score (ties at the
    cut-off may come in any order; an HNSW graph is built on several threads)."""
    for ra, rb in zip(a, b, strict=True):
        if sorted(s for _, s in ra) != sorted(s for _, s in rb):
            return False
        cut = min(s for _, s in ra)
        if {i for i, s in ra if s > cut} != {i for i, s in rb if s > cut}:
            return False
    return True


def garble_middle(path: Path, seed: int = 1) -> None:
    """Overwrite the middle quarter of the file (vector codes: they fill most of it) with noise."""
    data = bytearray(path.read_bytes())
    n = min(1 << 20, len(data) // 4)
    start = len(data) // 2 - n // 2
    data[start : start + n] = random.Random(seed).randbytes(n)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_garbled_vectors_are_detected_and_rebuilt_with_identical_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.setenv("TROPEGRAPH_FAISS", kind)
    vault, ix, emb = make_vault(tmp_path), tmp_path / "ix", FakeEmbedder()
    run_index(vault, ix, emb)
    clean = results(ix, emb)
    embedded = [c for c in emb.calls if c[0] == "passage"]

    garble_middle(ix / FAISS_NAME)
    if kind == "flat":  # the damage is real, and the id check alone cannot see it
        broken = faiss.read_index(str(ix / FAISS_NAME))
        with open_index(ix, readonly=True) as idx:
            assert IdStats.of(index_ids(broken)) == sql_stats(idx.db, idx.model)
        sims, _ = broken.search(emb.embed_queries(QUERIES), 10)
        assert not np.allclose(np.sort(sims), np.sort(np.array([[s for _, s in r] for r in clean])), atol=1e-3)

    messages: list[str] = []
    assert same(results(ix, emb, messages), clean)
    assert messages == [(f"vector cache {ix / FAISS_NAME} is damaged (its checksum does not match); "
                        "rebuilding it from the database (no re-embedding)")]

    report = run_index(vault, ix, emb)  # a writer repairs the file for good
    assert any("checksum does not match" in w for w in report.warnings)
    side = json.loads((ix / SIDECAR_NAME).read_text())
    assert side["checksum"] == file_checksum(ix / FAISS_NAME)
    messages.clear()
    assert same(results(ix, emb, messages), clean) and messages == []
    assert [c for c in emb.calls if c[0] == "passage"] == embedded  # nothing re-embedded


def test_index_full_rebuilds_the_cache_whatever_it_holds(tmp_path: Path) -> None:
    vault, ix, emb = make_vault(tmp_path), tmp_path / "ix", FakeEmbedder()
    run_index(vault, ix, emb)
    clean = results(ix, emb)
    # bad vectors under a *valid* checksum (as a bug writing the cache would leave them)
    garble_middle(ix / FAISS_NAME)
    side = json.loads((ix / SIDECAR_NAME).read_text())
    side["checksum"] = file_checksum(ix / FAISS_NAME)
    (ix / SIDECAR_NAME).write_text(json.dumps(side))
    assert not same(results(ix, emb), clean)  # trusted: nothing to detect

    run_index(vault, ix, emb, full=True)
    assert same(results(ix, emb), clean)


def test_a_save_cut_short_leaves_no_temporary_behind(tmp_path: Path) -> None:
    """Finding 6: a kill during the FAISS save left a full-size ``vectors.faiss.tmpPID`` forever."""
    vault, ix, emb = make_vault(tmp_path), tmp_path / "ix", FakeEmbedder()
    run_index(vault, ix, emb)
    (ix / f"{FAISS_NAME}.tmp4242").write_bytes((ix / FAISS_NAME).read_bytes())
    (ix / f"{SIDECAR_NAME}.tmp4242").write_text("{")
    (ix / "notes.tmp").write_text("not ours")
    with open_index(ix, readonly=True, notify=lambda m: None):
        pass  # a reader never deletes: a writer may be saving right now
    assert (ix / f"{FAISS_NAME}.tmp4242").exists()
    messages: list[str] = []
    with open_index(ix, notify=messages.append):
        pass
    assert sorted(p.name for p in ix.iterdir() if "tmp" in p.name) == ["notes.tmp"]
    assert messages == [f"removed {FAISS_NAME}.tmp4242, {SIDECAR_NAME}.tmp4242 left in {ix} by an interrupted save"]


def test_a_reader_between_the_two_replaces_of_a_save_waits_instead_of_rebuilding(tmp_path: Path) -> None:
    """A save replaces the sidecar, then the file: a reader in between sees the new checksum and
    the old file. That is a save in progress, not damage: the reader looks again and loads the
    new file (no "damaged" message, no rebuild). The watcher's deferred saves made this race
    show up under load."""
    import threading
    import time

    vault, ix, emb = make_vault(tmp_path), tmp_path / "ix", FakeEmbedder()
    run_index(vault, ix, emb)
    new_file = (ix / FAISS_NAME).read_bytes()
    garble_middle(ix / FAISS_NAME)  # the "old" file the writer has not replaced yet
    (ix / "vectors.faiss.next").write_bytes(new_file)
    replaced = threading.Timer(0.03, lambda: (ix / "vectors.faiss.next").replace(ix / FAISS_NAME))
    messages: list[str] = []
    started = time.monotonic()
    replaced.start()
    try:
        got = results(ix, emb, messages)
    finally:
        replaced.join()
    assert [m for m in messages if "damaged" in m or "rebuild" in m] == []
    assert time.monotonic() - started < 5
    assert same(got, results(ix, emb))


def test_a_reader_that_meets_save_after_save_keeps_looking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a busy machine one load can straddle several saves: every look finds a new (not yet
    matching) file. That is still saving, not damage: the reader looks until the file settles
    (here: six new files, more than CHECK_ATTEMPTS looks) and loads it without a rebuild."""
    from indexer import vectors

    vault, ix, emb = make_vault(tmp_path), tmp_path / "ix", FakeEmbedder()
    run_index(vault, ix, emb)
    clean = results(ix, emb)
    good = (ix / FAISS_NAME).read_bytes()
    garble_middle(ix / FAISS_NAME)
    looks: list[float] = []

    def another_save(seconds: float) -> None:  # the reader's pause: a writer replaces the file
        looks.append(seconds)
        nxt = ix / "vectors.faiss.next"
        nxt.write_bytes(good if len(looks) > 6 else (ix / FAISS_NAME).read_bytes())
        nxt.replace(ix / FAISS_NAME)  # a new inode each time, as a real save

    monkeypatch.setattr(vectors.time, "sleep", another_save)
    messages: list[str] = []
    got = results(ix, emb, messages)
    assert len(looks) == 7 > vectors.CHECK_ATTEMPTS
    assert [m for m in messages if "damaged" in m or "rebuild" in m] == []
    assert same(got, clean)


def test_a_file_that_stays_wrong_is_still_called_damaged(tmp_path: Path) -> None:
    vault, ix, emb = make_vault(tmp_path), tmp_path / "ix", FakeEmbedder()
    run_index(vault, ix, emb)
    clean = results(ix, emb)
    garble_middle(ix / FAISS_NAME)
    messages: list[str] = []
    assert same(results(ix, emb, messages), clean)
    assert any("is damaged (its checksum does not match)" in m for m in messages), messages


def test_a_reader_during_saves_never_sees_a_damaged_cache(tmp_path: Path) -> None:
    """The same race with real, repeated saves on another thread (every ~10 ms, far more often
    than a watcher's): 150 loads, never a "damaged" message, always the full index."""
    import threading
    import time

    from indexer.vectors import VectorCache, build_index

    rng = np.random.default_rng(2)
    mats = [rng.standard_normal((3000, 32), dtype=np.float32) for _ in range(2)]
    versions = [build_index(32, "flat", np.arange(1 + 5000 * i, 3001 + 5000 * i), m) for i, m in enumerate(mats)]
    messages: list[str] = []
    cache = VectorCache(tmp_path, messages.append)
    cache.save(versions[0], "m", "flat")
    stop = threading.Event()

    def saver() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            cache.save(versions[i % 2], "m", "flat")
            time.sleep(0.01)

    thread = threading.Thread(target=saver)
    thread.start()
    try:
        loaded = 0
        for _ in range(150):
            index, _ = cache._read_file(cache._read_meta(), "m", 32, "flat")
            loaded += index is not None and index.ntotal == 3000
    finally:
        stop.set()
        thread.join()
    assert messages == [] and loaded == 150
