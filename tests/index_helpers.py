"""Helpers shared by the index tests: run the indexer, edit vaults like Nexus does, check consistency."""

from __future__ import annotations

import re
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from indexer.embed import Embedder
from indexer.pipeline import index_vault
from indexer.report import Report
from indexer.store import open_index
from indexer.vectors import FAISS_NAME, SIDECAR_NAME, index_ids, read_vectors

HEADER_RE = re.compile(r"^>\[!nexus_(user|agent)\] \*\*(User|Assistant)\*\* - (.+)$", re.MULTILINE)


def run_index(vault: Path, index_dir: Path, embedder: Embedder, **kwargs: Any) -> Report:
    """One ``tropegraph index`` run in-process."""
    messages: list[str] = []
    with open_index(index_dir, create=True, notify=messages.append) as idx:
        report = index_vault(vault, idx, embedder, **kwargs)
    report.warnings.extend(messages)
    return report


def append_turns(note: Path, k: int) -> list[str]:
    """Append ``k`` new Nexus turns (fresh UIDs, unique text) as a re-import does; return their texts."""
    text = note.read_text(encoding="utf-8")
    when = HEADER_RE.findall(text)[-1][2]
    texts = []
    blocks = []
    for i in range(k):
        role, label = ("user", "User") if i % 2 == 0 else ("agent", "Assistant")
        body = f"Дописанная реплика {i} о новой метафоре {uuid.uuid4().hex[:8]}."
        texts.append(body)
        blocks.append(
            f"\n\n>[!nexus_{role}] **{label}** - {when}\n> {body}\n<!-- UID: {uuid.uuid4()} -->\n\n---\n"
        )
    note.write_text(text.rstrip("\n") + "\n" + "".join(blocks), encoding="utf-8")
    return texts


def rename_every_folder(vault: Path, suffix: str = "-renamed") -> int:
    """Rename every folder holding notes (deepest first), as moving a vault's tree around does."""
    folders = sorted(
        (
            p
            for p in vault.rglob("*")
            if p.is_dir() and not any(part.startswith(".") for part in p.relative_to(vault).parts)
        ),
        key=lambda p: len(p.parts),
        reverse=True,
    )
    for folder in folders:
        folder.rename(folder.with_name(folder.name + suffix))
    return len(folders)


def move_tree(vault: Path, src: str, dst: str) -> None:
    (vault / dst).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(vault / src), str(vault / dst))


def check_consistent(index_dir: Path, *, complete: bool = True) -> dict[str, int]:
    """Assert SQLite and FAISS agree and every passage has a vector or is queued for embedding
    (``complete``: has a vector, nothing queued); return counts (``pending``: queued hashes)."""
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        model, dim = idx.model, idx.dim
        db = idx.db
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        lost = db.execute(
            "SELECT count(*) FROM passages p WHERE NOT EXISTS "
            "(SELECT 1 FROM vectors v WHERE v.model = ? AND v.hash = p.hash) "
            "AND NOT EXISTS (SELECT 1 FROM embed_queue q WHERE q.hash = p.hash)",
            (model,),
        ).fetchone()[0]
        assert lost == 0, f"{lost} passages have no vector and are not queued for embedding"
        embedded_but_queued = db.execute(
            "SELECT count(*) FROM embed_queue q JOIN vectors v ON v.hash = q.hash AND v.model = ?", (model,)
        ).fetchone()[0]
        assert embedded_but_queued == 0, f"{embedded_but_queued} queued passages already have a vector"
        pending = db.execute("SELECT count(*) FROM embed_queue").fetchone()[0]
        if complete:
            assert pending == 0, f"{pending} passages are still queued for embedding"
        fts = db.execute("SELECT count(*) FROM passage_fts").fetchone()[0]
        passages = db.execute("SELECT count(*) FROM passages").fetchone()[0]
        assert fts == passages
        faiss_index = idx.vector_index()
        ids, mat = read_vectors(db, model, dim)
        assert sorted(index_ids(faiss_index).tolist()) == ids.tolist()
        if len(ids):
            got = np.stack([faiss_index.reconstruct(int(i)) for i in ids[:20]])
            assert np.allclose(got, mat[:20])
        return {"passages": passages, "vectors": len(ids), "pending": pending}


def snapshot(index_dir: Path) -> dict[str, Any]:
    """The index's content, independent of row ids: what an incremental run must agree on with a rebuild."""
    with open_index(index_dir, readonly=True, notify=lambda m: None) as idx:
        db = idx.db
        return {
            "notes": sorted(
                db.execute("SELECT path, sha256, kind, title, conversation_id FROM notes").fetchall()
            ),
            "conversations": sorted(
                db.execute(
                    "SELECT c.id, n.path, c.title FROM conversations c JOIN notes n ON n.id = c.note_id"
                ).fetchall()
            ),
            "turns": sorted(
                db.execute(
                    "SELECT t.conversation_id, t.uid, n.path, t.position, t.role, t.text_hash "
                    "FROM turns t JOIN notes n ON n.id = t.note_id"
                ).fetchall()
            ),
            "passages": sorted(
                db.execute(
                    "SELECT t.conversation_id, t.uid, p.seq, p.kind, p.start, p.hash, f.lemmas FROM passages p "
                    "JOIN turns t ON t.id = p.turn_id JOIN passage_fts f ON f.rowid = p.id"
                ).fetchall()
            ),
            "vectors": sorted(r[0] for r in db.execute("SELECT hash FROM vectors")),
            "links": sorted(
                db.execute(
                    "SELECT n.path, l.target, l.line FROM links l JOIN notes n ON n.id = l.note_id"
                ).fetchall()
            ),
            "tags": sorted(
                db.execute(
                    "SELECT n.path, t.name, t.source FROM tags t JOIN notes n ON n.id = t.note_id"
                ).fetchall()
            ),
        }


def read_rows(index_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple]:
    """Rows of a query on the index database, opened read-only and closed again."""
    db = sqlite3.connect(f"{(index_dir / 'index.db').as_uri()}?mode=ro", uri=True)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def damage_cache(vault: Path, index_dir: Path, embedder: Embedder, damage: str) -> None:
    """Leave the FAISS cache of an indexed vault ``missing``, ``corrupt``, ``stale`` (a vector
    removed behind its back) or ``behind`` (killed after a commit, before the cache was saved: a new
    note, so two new vectors: its text and its title)."""
    faiss_file = index_dir / FAISS_NAME
    if damage == "missing":
        faiss_file.unlink()
    elif damage == "corrupt":
        faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    elif damage == "stale":
        db = sqlite3.connect(index_dir / "index.db")
        with db:
            db.execute("DELETE FROM vectors WHERE id = (SELECT min(id) FROM vectors)")
        db.close()
    elif damage == "behind":  # the file and its sidecar as the last save left them
        sidecar = index_dir / SIDECAR_NAME
        saved = faiss_file.read_bytes(), sidecar.read_bytes()
        (vault / "New.md").write_text("A new note about lighthouses.\n")
        run_index(vault, index_dir, embedder)
        faiss_file.write_bytes(saved[0])
        sidecar.write_bytes(saved[1])
    else:
        raise ValueError(damage)
