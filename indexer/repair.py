"""A damaged index database: say what can be saved, and rebuild it keeping every readable vector.

The vault is the source of every row of the index except one thing that costs real time: the
embeddings. So ``tropegraph index --repair`` moves the damaged ``index.db`` aside (kept, never
deleted), copies every vector it can still read — row by row around damaged pages, each checked
(length, finite, unit norm) — into a fresh database with the same model settings, drops the FAISS
cache, and re-reads the vault. Vectors are content-addressed, so every passage whose vector was
saved finds it again: only what was lost is embedded.
"""
from __future__ import annotations

import math
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Meta keys carried over (model settings and where the vault is); everything else is rebuilt.
KEPT_META = ("engine", "model", "model_arg", "dim", "max_tokens", "faiss_kind", "vault", "created_at")
_RANGE = 1000
_GIVE_UP_AFTER = 50  # empty id ranges in a row, when the largest id cannot be read


@dataclass
class Salvage:
    """What a damaged database still yields."""

    vectors: int
    """Readable, valid vectors."""
    bad: int
    """Rows that were read but failed the checks (wrong length, NaN, not unit length)."""
    largest_id: int | None
    """The largest vector id it claims (an upper bound of what it held), None if unreadable."""
    total: int | None
    """How many vector rows it holds, when that count can still be read."""

    def describe(self) -> str:
        if self.vectors == 0:
            return "no vector can be read from it (the vault will be embedded again)"
        if self.total is not None and self.vectors == self.total:
            return f"all its {self.vectors} vectors can be salvaged"
        lost = f" of {self.total}" if self.total is not None else ""
        return f"{self.vectors}{lost} vectors can be salvaged (the rest will be embedded again)"


def _connect_damaged(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.Error:
        return sqlite3.connect(path)  # a read-only open can fail on a WAL database without -shm


def _try(db: sqlite3.Connection, sql: str, args: tuple = ()) -> list[tuple] | None:
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.Error:
        return None


def _meta(db: sqlite3.Connection) -> dict[str, str]:
    rows = _try(db, "SELECT key, value FROM meta")
    if rows is not None:
        return {k: v for k, v in rows if v is not None}
    out = {}
    for key in KEPT_META:
        row = _try(db, "SELECT value FROM meta WHERE key = ?", (key,))
        if row and row[0][0] is not None:
            out[key] = row[0][0]
    return out


def _largest_id(db: sqlite3.Connection) -> int | None:
    for sql in ("SELECT max(id) FROM vectors", "SELECT seq FROM sqlite_sequence WHERE name = 'vectors'"):
        rows = _try(db, sql)
        if rows and rows[0][0] is not None:
            return int(rows[0][0])
    return None


def _valid(blob: object, dim: int | None) -> bool:
    if not isinstance(blob, bytes) or len(blob) % 4 or not blob:
        return False
    if dim is not None and len(blob) != 4 * dim:
        return False
    vec = np.frombuffer(blob, dtype="<f4")
    if not np.all(np.isfinite(vec)):
        return False
    norm = float(np.dot(vec.astype(np.float64), vec.astype(np.float64)))
    return math.isfinite(norm) and abs(norm - 1.0) < 1e-3  # every stored vector is L2-normalised


def _rows(db: sqlite3.Connection, largest: int | None) -> Iterator[tuple | None]:
    """Every readable vectors row by id range, one id at a time around damaged pages; yields
    None for a range that had no row at all (the caller's stop signal when ``largest`` is unknown)."""
    sql = "SELECT id, model, hash, vector FROM vectors WHERE id > ? AND id <= ? ORDER BY id"
    lo, empty = 0, 0
    while (largest is not None and lo < largest) or (largest is None and empty < _GIVE_UP_AFTER):
        rows = _try(db, sql, (lo, lo + _RANGE))
        if rows is None:  # a damaged page in this range: read its ids one by one
            rows = []
            for i in range(lo + 1, lo + _RANGE + 1):
                one = _try(db, "SELECT id, model, hash, vector FROM vectors WHERE id = ?", (i,))
                if one:
                    rows.extend(one)
        empty = 0 if rows else empty + 1
        yield from rows
        if not rows:
            yield None
        lo += _RANGE


def readable_vectors(path: Path) -> tuple[Salvage, Iterator[tuple[int, str, str, bytes]]]:
    """Open the damaged database at ``path``; return the salvage summary's skeleton and an
    iterator over its valid ``(id, model, hash, blob)`` rows (the summary's counts are filled
    as the iterator runs)."""
    db = _connect_damaged(path)
    meta = _meta(db)
    dim = int(meta["dim"]) if meta.get("dim", "").isdigit() else None
    largest = _largest_id(db)
    count = _try(db, "SELECT count(*) FROM vectors")
    summary = Salvage(0, 0, largest, int(count[0][0]) if count else None)

    def rows() -> Iterator[tuple[int, str, str, bytes]]:
        try:
            for row in _rows(db, largest):
                if row is None:
                    continue
                vid, model, h, blob = row
                if _valid(blob, dim) and isinstance(h, str) and len(h) == 64 and isinstance(model, str):
                    summary.vectors += 1
                    yield int(vid), model, h, blob
                else:
                    summary.bad += 1
        finally:
            db.close()

    return summary, rows()


def salvageable(path: Path) -> Salvage | None:
    """Count what ``index --repair`` would keep (None when the file cannot be opened at all)."""
    try:
        summary, rows = readable_vectors(path)
        for _ in rows:
            pass
    except (sqlite3.Error, OSError):
        return None
    return summary


def corrupt_message(db: Path, reason: str) -> str:
    """The ``Error:`` line of a damaged database: what is wrong, what can be saved, the fix."""
    s = salvageable(db) if Path(db).exists() else None
    saved = s.describe() if s is not None else "no vector can be read from it (the vault will be embedded again)"
    keeping = " keeping them" if s is not None and s.vectors else ""
    return (
        f"the index database {db} is damaged ({reason}); {saved}: run `tropegraph index --repair` to rebuild "
        f"it from the vault{keeping} (the damaged file is kept beside it)"
    )


@dataclass
class RepairResult:
    kept: int
    bad: int
    largest_id: int | None
    damaged: Path
    """Where the damaged database was moved (kept for the user to delete)."""


def repair_index(index_dir: Path, notify: Callable[[str], None] | None = None) -> RepairResult:
    """Move ``index.db`` aside and start a fresh one holding its model settings and every readable
    vector; the FAISS cache is dropped. The caller then indexes the vault (``--full``), which
    re-reads every note and embeds only what was lost. Takes the writer lock."""
    from indexer.lock import WriterLock
    from indexer.migrations import apply_migrations
    from indexer.vectors import FAISS_NAME, SIDECAR_NAME

    index_dir = Path(index_dir)
    db_path = index_dir / "index.db"
    notify = notify or (lambda msg: None)
    with WriterLock(index_dir, "tropegraph index --repair"):
        damaged = index_dir / f"index.db.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
        for suffix in ("", "-wal", "-shm"):  # SQLite finds "<name>-wal" beside the moved file
            if Path(f"{db_path}{suffix}").exists():
                os.replace(f"{db_path}{suffix}", f"{damaged}{suffix}")
        source = _connect_damaged(damaged)
        meta = {k: v for k, v in _meta(source).items() if k in KEPT_META}
        source.close()
        summary, rows = readable_vectors(damaged)
        fresh = sqlite3.connect(db_path, isolation_level=None)
        try:
            fresh.execute("PRAGMA journal_mode = WAL")
            apply_migrations(fresh)
            fresh.execute("BEGIN IMMEDIATE")
            models: Counter[str] = Counter()
            batch: list[tuple] = []
            for row in rows:
                models[row[1]] += 1
                batch.append(row)
                if len(batch) >= 5000:
                    fresh.executemany("INSERT OR IGNORE INTO vectors (id, model, hash, vector) VALUES (?, ?, ?, ?)", batch)
                    batch.clear()
            fresh.executemany("INSERT OR IGNORE INTO vectors (id, model, hash, vector) VALUES (?, ?, ?, ?)", batch)
            if "model" not in meta and models:  # the meta page was lost: the vectors say which model
                meta["model"] = models.most_common(1)[0][0]
                meta.setdefault("engine", _engine_of(meta["model"]))
            if meta.get("model") and "dim" not in meta:
                blob = fresh.execute("SELECT vector FROM vectors LIMIT 1").fetchone()
                if blob:
                    meta["dim"] = str(len(blob[0]) // 4)
            fresh.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", sorted(meta.items()))
            fresh.execute("COMMIT")
        finally:
            fresh.close()
        for name in (FAISS_NAME, SIDECAR_NAME):
            (index_dir / name).unlink(missing_ok=True)
    notify(
        f"kept {summary.vectors} readable vectors from the damaged database (moved to {damaged}; "
        "delete it once the index works again)"
    )
    return RepairResult(summary.vectors, summary.bad, summary.largest_id, damaged)


def _engine_of(model: str) -> str:
    prefix = model.split("/", 1)[0]
    return {"st": "sentence-transformers"}.get(prefix, prefix)
