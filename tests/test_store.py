"""The index folder: locations, opening, the writer lock, and the FAISS cache's self-repair."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from index_helpers import check_consistent, damage_cache, read_rows, run_index

from indexer import lock
from indexer.config import default_index_dir, find_vault, resolve_index_dir
from indexer.embed import FakeEmbedder
from indexer.errors import IndexCorrupt, IndexLocked, IndexNotFound
from indexer.migrations import MIGRATIONS
from indexer.store import open_index
from indexer.vectors import FAISS_NAME, index_ids
from vault_schema.errors import VaultError, VaultNotFound


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    v = tmp_path / "My Vault"
    (v / ".obsidian").mkdir(parents=True)
    (v / "a" / "b").mkdir(parents=True)
    (v / "Note.md").write_text(
        "# Rivers\nA river is a road that moves.\n\n# Maps\nThe map is not the territory.\n"
    )
    (v / "a" / "Other.md").write_text("Bridges connect ideas.\n")
    return v


# -- config -----------------------------------------------------------------------------------
def test_find_vault_prefers_flag_then_env_then_walk_up(vault: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TROPEGRAPH_VAULT", raising=False)
    assert find_vault(str(vault)) == vault.resolve()
    assert find_vault(None, cwd=vault / "a" / "b") == vault.resolve()
    other = tmp_path / "other"
    (other / ".obsidian").mkdir(parents=True)
    monkeypatch.setenv("TROPEGRAPH_VAULT", str(other))
    assert find_vault(None, cwd=vault / "a") == other.resolve()
    assert find_vault(str(vault)) == vault.resolve()


def test_find_vault_errors_say_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TROPEGRAPH_VAULT", raising=False)
    with pytest.raises(VaultNotFound, match=r"pass --vault PATH or set TROPEGRAPH_VAULT"):
        find_vault(None, cwd=tmp_path)
    with pytest.raises(VaultNotFound, match=r"does not exist"):
        find_vault(str(tmp_path / "missing"))
    (tmp_path / "file.md").write_text("x")
    with pytest.raises(VaultNotFound, match=r"is not a folder"):
        find_vault(str(tmp_path / "file.md"))


def test_index_dir_is_outside_the_vault_and_per_vault(vault: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TROPEGRAPH_INDEX_DIR", raising=False)
    default = default_index_dir(vault)
    assert vault.resolve() not in default.parents
    assert default.name.startswith("My Vault-") and len(default.name) == len("My Vault-") + 8
    twin = tmp_path / "elsewhere" / "My Vault"
    twin.mkdir(parents=True)
    assert default_index_dir(twin) != default
    assert resolve_index_dir(vault) == default
    monkeypatch.setenv("TROPEGRAPH_INDEX_DIR", str(tmp_path / "env"))
    assert resolve_index_dir(vault) == (tmp_path / "env").resolve()
    assert resolve_index_dir(vault, tmp_path / "flag") == (tmp_path / "flag").resolve()


# -- open ---------------------------------------------------------------------------------------
def test_open_missing_index_says_run_index_first(tmp_path: Path) -> None:
    for kwargs in ({}, {"readonly": True}):
        with pytest.raises(IndexNotFound) as err:
            open_index(tmp_path / "none", **kwargs)
        assert "run `tropegraph index` first" in str(err.value)
        assert isinstance(err.value, VaultError)


def test_create_applies_migrations_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    with open_index(tmp_path / "ix", create=True) as idx:
        assert idx.schema_version == len(MIGRATIONS)
        assert idx.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert idx.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert idx.model is None and idx.vector_index().ntotal == 0
    with open_index(tmp_path / "ix") as idx:  # reopening applies nothing twice
        assert idx.schema_version == len(MIGRATIONS)


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ix").mkdir()
    (tmp_path / "ix" / "index.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(IndexCorrupt) as exc:
        open_index(tmp_path / "ix")
    assert str(exc.value) == (
        f"the index database {tmp_path / 'ix' / 'index.db'} is damaged (file is not a database); no vector can "
        "be read from it (the vault will be embedded again): run `tropegraph index --repair` to rebuild it from "
        "the vault (the damaged file is kept beside it)"
    )


def test_reader_sees_committed_state_while_a_writer_writes(vault: Path, tmp_path: Path) -> None:
    run_index(vault, tmp_path / "ix", FakeEmbedder())
    with open_index(tmp_path / "ix") as writer:
        writer.db.execute("BEGIN IMMEDIATE")
        writer.db.execute("DELETE FROM notes")
        with open_index(tmp_path / "ix", readonly=True) as reader:
            assert reader.db.execute("SELECT count(*) FROM notes").fetchone()[0] == 2
            with pytest.raises(sqlite3.OperationalError):
                reader.db.execute("DELETE FROM notes")
        writer.db.execute("ROLLBACK")


def test_a_reader_opens_an_index_given_by_a_relative_path(vault: Path, tmp_path: Path, monkeypatch) -> None:
    """The Python API takes the index folder as the user writes it (`open_index(Path("idx"), readonly=True)`
    raised "relative path can't be expressed as a file URI")."""
    run_index(vault, tmp_path / "ix", FakeEmbedder())
    monkeypatch.chdir(tmp_path)
    with open_index(Path("ix"), readonly=True) as reader:
        assert reader.db.execute("SELECT count(*) FROM notes").fetchone()[0] == 2


# -- lock ---------------------------------------------------------------------------------------
def test_second_writer_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    with open_index(tmp_path / "ix", create=True, command="tropegraph watch --vault V"):
        with pytest.raises(IndexLocked) as err:
            open_index(tmp_path / "ix", command="tropegraph index")
        assert f"pid {os.getpid()} (tropegraph watch --vault V)" in str(err.value)
        info = lock.holder(tmp_path / "ix")
        assert info is not None and info.pid == os.getpid() and info.is_watcher
        with open_index(tmp_path / "ix", readonly=True) as reader:  # readers are never blocked
            assert reader.schema_version == len(MIGRATIONS)
    assert lock.holder(tmp_path / "ix") is None
    open_index(tmp_path / "ix").close()  # free again


def test_a_killed_writer_leaves_no_stale_lock(tmp_path: Path) -> None:
    open_index(tmp_path / "ix", create=True).close()
    code = (
        "import os, sys; from indexer.store import open_index; "
        f"open_index({str(tmp_path / 'ix')!r}, command='tropegraph index'); "
        "sys.stdout.write('locked\\n'); sys.stdout.flush(); os.kill(os.getpid(), 9)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout == "locked\n" and proc.returncode == -9
    assert lock.holder(tmp_path / "ix") is None
    open_index(tmp_path / "ix").close()


# -- FAISS cache ----------------------------------------------------------------------------------
def _faiss_ids(index_dir: Path) -> list[int]:
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        return sorted(index_ids(idx.vector_index()).tolist())


def test_faiss_file_is_saved_and_agrees_with_sqlite(vault: Path, tmp_path: Path) -> None:
    run_index(vault, tmp_path / "ix", FakeEmbedder())
    side = json.loads((tmp_path / "ix" / "vectors.json").read_text())
    counts = check_consistent(tmp_path / "ix")
    assert side["count"] == counts["vectors"] > 0 and side["model"] == "fake/default"


@pytest.mark.parametrize("damage", ["missing", "corrupt", "stale", "behind"])
def test_damaged_faiss_cache_is_rebuilt_without_reembedding(vault: Path, tmp_path: Path, damage: str) -> None:
    ix = tmp_path / "ix"
    emb = FakeEmbedder()
    run_index(vault, ix, emb)
    good = _faiss_ids(ix)
    before = len(good)
    damage_cache(vault, ix, emb, damage)
    if damage == "stale":
        good = good[1:]
    elif damage == "behind":
        good = [int(r[0]) for r in read_rows(ix, "SELECT id FROM vectors ORDER BY id")]
    messages: list[str] = []
    calls = len(emb.calls)
    with open_index(ix, readonly=True, notify=messages.append) as idx:
        assert sorted(index_ids(idx.vector_index()).tolist()) == good
    assert len(messages) == 1
    # (the new note's text and its title: 2 vectors)
    expected = {"behind": f"added {len(good) - before} vectors", "stale": "out of date; removed 1, added 0 vectors"}
    assert expected.get(damage, "rebuilding it") in messages[0]
    assert len(emb.calls) == calls  # nothing re-embedded
    if damage != "stale":
        check_consistent(ix)


def test_an_older_cache_is_reconciled_in_place_not_rebuilt(vault: Path, tmp_path: Path) -> None:
    """A file older than SQLite by removals *and* additions (a watcher killed between its saves):
    the reader removes and adds in place, and searches exactly like a fresh rebuild."""
    ix = tmp_path / "ix"
    emb = FakeEmbedder()
    for i in range(8):
        (vault / f"n{i}.md").write_text(f"# N{i}\nNote {i} about harbour number {i} and its cranes.\n")
    run_index(vault, ix, emb)
    saved = (ix / FAISS_NAME).read_bytes(), (ix / "vectors.json").read_bytes()
    old_ids = _faiss_ids(ix)
    for i in range(3):
        (vault / f"n{i}.md").unlink()
    for i in range(2):
        (vault / f"new{i}.md").write_text(f"# New{i}\nA new note {i} about lighthouses and fog.\n")
    run_index(vault, ix, emb)  # removes the deleted notes' vectors (gc), adds the new ones
    (ix / FAISS_NAME).write_bytes(saved[0])
    (ix / "vectors.json").write_bytes(saved[1])
    q = emb.embed_queries(["lighthouses in the fog", "harbour cranes"])
    calls = len(emb.calls)
    db = sqlite3.connect(ix / "index.db")
    db_ids = [r[0] for r in db.execute("SELECT id FROM vectors ORDER BY id")]
    db.close()
    removed, added = set(old_ids) - set(db_ids), set(db_ids) - set(old_ids)
    assert removed and added  # really out of date both ways

    messages: list[str] = []
    with open_index(ix, readonly=True, notify=messages.append) as idx:
        got = idx.vector_index()
        assert sorted(index_ids(got).tolist()) == db_ids
        fresh = idx._cache.rebuild(idx.db, idx.model, idx.dim, "flat").index
        k = len(db_ids)
        (s1, i1), (s2, i2) = got.search(q, k), fresh.search(q, k)
    assert messages == [f"vector cache was out of date; removed {len(removed)}, added {len(added)} vectors"]
    assert len(emb.calls) == calls  # nothing re-embedded
    assert np.allclose(s1, s2)
    for row in range(len(q)):  # same ids at each score (ties may come in another order)
        pairs = [sorted(zip(np.round(s[row], 5), i[row], strict=True)) for s, i in ((s1, i1), (s2, i2))]
        assert pairs[0] == pairs[1]


def test_vector_cache_repair_is_saved_by_a_writer(vault: Path, tmp_path: Path) -> None:
    ix = tmp_path / "ix"
    run_index(vault, ix, FakeEmbedder())
    (ix / FAISS_NAME).unlink()
    report = run_index(vault, ix, FakeEmbedder())
    assert any("missing; rebuilding" in w for w in report.warnings)
    assert (ix / FAISS_NAME).exists()
    messages: list[str] = []
    with open_index(ix, readonly=True, notify=messages.append) as idx:
        idx.vector_index()
    assert messages == []


def test_search_through_faiss_finds_the_passage(vault: Path, tmp_path: Path) -> None:
    emb = FakeEmbedder()
    run_index(vault, tmp_path / "ix", emb)
    with open_index(tmp_path / "ix", readonly=True) as idx:
        q = emb.embed_queries(["The map is not the territory"])
        scores, ids = idx.vector_index().search(q, 1)
        text = idx.db.execute(
            "SELECT p.text FROM vectors v JOIN passages p ON p.hash = v.hash WHERE v.id = ?",
            (int(ids[0][0]),),
        ).fetchone()[0]
    assert "The map is not the territory" in text
    assert scores[0][0] > 0.5


def test_hnsw_kind_can_be_chosen(vault: Path, tmp_path: Path) -> None:
    ix = tmp_path / "ix"
    run_index(vault, ix, FakeEmbedder())
    with open_index(ix) as idx:
        idx.set_meta("faiss_kind", "hnsw")
        n = idx.vector_index().ntotal
        import faiss

        assert isinstance(faiss.downcast_index(idx.vector_index().index), faiss.IndexHNSWFlat)
    assert n == check_consistent(ix)["vectors"]


def test_hnsw_by_environment_and_unknown_kind(vault: Path, tmp_path: Path, monkeypatch) -> None:
    ix = tmp_path / "ix"
    run_index(vault, ix, FakeEmbedder())
    monkeypatch.setenv("TROPEGRAPH_FAISS", "hnsw")
    messages: list[str] = []
    with open_index(ix, readonly=True, notify=messages.append) as idx:
        assert idx.vector_index().ntotal == check_consistent(ix)["vectors"]
    assert "another model or kind; rebuilding it" in messages[0]
    monkeypatch.setenv("TROPEGRAPH_FAISS", "ivf-pq")
    with (
        open_index(ix, readonly=True) as idx,
        pytest.raises(VaultError, match="set TROPEGRAPH_FAISS to one of flat, hnsw"),
    ):
        idx.vector_index()
