"""The FAISS cache of the ``vectors`` table: exact inner product by default, HNSW for huge vaults.

SQLite is the truth; ``vectors.faiss`` is a cache written atomically (tmp + ``os.replace``)
next to the database with a JSON sidecar (model, kind, count, max id). On load the ids inside
the FAISS file are compared with SQLite's (count, max, sum of ids — ids are AUTOINCREMENT, never
reused); when vectors were only appended since (e.g. a killed run) the new rows are added, and a
missing, corrupt or otherwise stale file is rebuilt from the blobs without re-embedding.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FAISS_NAME = "vectors.faiss"
SIDECAR_NAME = "vectors.json"
KINDS = ("flat", "hnsw")


def _faiss() -> Any:
    import faiss

    return faiss


def empty_index(dim: int, kind: str = "flat") -> Any:
    """A new ``IndexIDMap2`` over an exact (``flat``) or HNSW inner-product index."""
    faiss = _faiss()
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = 64
    elif kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    else:
        raise ValueError(f"unknown FAISS kind {kind!r}; expected one of {', '.join(KINDS)}")
    return faiss.IndexIDMap2(inner)


def knn(index: Any, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(similarities, ids)`` of the ``k`` nearest vectors to each query row (ids ``-1`` pad).

    ``allowed`` (vector ids) restricts the search to those ids — exactly, whatever the kind,
    so a selective filter never loses matches to an approximate index.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, index.d)
    if allowed is None:
        return index.search(queries, k)
    params = _faiss().SearchParameters(sel=_faiss().IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
    return index.search(queries, k, params=params)


def read_vectors(
    db: sqlite3.Connection, model: str, dim: int, *, min_id: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids int64, matrix float32 (n, dim))`` of this model's vectors with ``id > min_id``."""
    rows = db.execute(
        "SELECT id, vector FROM vectors WHERE model = ? AND id > ? ORDER BY id", (model, min_id)
    ).fetchall()
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    mat = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
    return ids, np.ascontiguousarray(mat, dtype=np.float32)


def to_blob(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype="<f4").tobytes()


def index_ids(index: Any) -> np.ndarray:
    """The ids held by an ``IndexIDMap2``."""
    return _faiss().vector_to_array(index.id_map).astype(np.int64)


@dataclass(frozen=True)
class IdStats:
    count: int
    max_id: int
    id_sum: int

    @classmethod
    def of(cls, ids: np.ndarray) -> IdStats:
        if len(ids) == 0:
            return cls(0, 0, 0)
        return cls(len(ids), int(ids.max()), int(ids.sum()))


def sql_stats(db: sqlite3.Connection, model: str, *, max_id: int | None = None) -> IdStats:
    sql = "SELECT count(*), coalesce(max(id), 0), coalesce(sum(id), 0) FROM vectors WHERE model = ?"
    args: tuple[Any, ...] = (model,)
    if max_id is not None:
        sql += " AND id <= ?"
        args += (max_id,)
    n, mx, s = db.execute(sql, args).fetchone()
    return IdStats(int(n), int(mx), int(s))


class VectorCache:
    """Loads, repairs, updates and saves the FAISS file of one index folder."""

    def __init__(self, index_dir: Path, notify: Callable[[str], None] | None = None) -> None:
        self.path = Path(index_dir) / FAISS_NAME
        self.sidecar = Path(index_dir) / SIDECAR_NAME
        self.notify = notify or (lambda msg: None)

    def _read_file(self, model: str, dim: int, kind: str) -> Any | None:
        """The FAISS file if it exists, reads, and matches model/dim/kind; else None (with a message)."""
        if not self.path.exists():
            return None
        try:
            meta = json.loads(self.sidecar.read_text(encoding="utf-8"))
            if meta.get("model") != model or meta.get("kind") != kind:
                self.notify(f"vector cache {self.path} was built for another model or kind; rebuilding it")
                return None
            index = _faiss().read_index(str(self.path))
        except (OSError, ValueError, RuntimeError) as exc:
            self.notify(f"vector cache {self.path} is unreadable ({type(exc).__name__}); rebuilding it")
            return None
        if index.d != dim or not hasattr(index, "id_map"):
            self.notify(f"vector cache {self.path} has the wrong shape; rebuilding it")
            return None
        return _faiss().downcast_index(index) if not isinstance(index, _faiss().IndexIDMap2) else index

    def load(self, db: sqlite3.Connection, model: str, dim: int, kind: str = "flat") -> tuple[Any, bool]:
        """A FAISS index agreeing with SQLite; ``changed`` is True when it differs from the file."""
        index = self._read_file(model, dim, kind)
        if index is not None:
            have = IdStats.of(index_ids(index))
            if have == sql_stats(db, model):
                return index, False
            if have == sql_stats(db, model, max_id=have.max_id):
                added = self.add_new(index, db, model, dim)
                if have.count:
                    self.notify(f"vector cache was behind the database; added {added} vectors")
                return index, True
            self.notify(
                f"vector cache {self.path} is stale; rebuilding it from the database (no re-embedding)"
            )
        elif not self.path.exists() and sql_stats(db, model).count:
            self.notify(
                f"vector cache {self.path} is missing; rebuilding it from the database (no re-embedding)"
            )
        return self.rebuild(db, model, dim, kind), True

    def rebuild(self, db: sqlite3.Connection, model: str, dim: int, kind: str = "flat") -> Any:
        index = empty_index(dim, kind)
        ids, mat = read_vectors(db, model, dim)
        if len(ids):
            index.add_with_ids(mat, ids)
        return index

    @staticmethod
    def add_new(index: Any, db: sqlite3.Connection, model: str, dim: int) -> int:
        """Add the vectors with ids above the index's max id; return how many."""
        ids = index_ids(index)
        ids, mat = read_vectors(db, model, dim, min_id=int(ids.max()) if len(ids) else 0)
        if len(ids):
            index.add_with_ids(mat, ids)
        return len(ids)

    def save(self, index: Any, model: str, kind: str) -> None:
        """Write the FAISS file and its sidecar atomically (a kill leaves the old or the new file)."""
        faiss = _faiss()
        stats = IdStats.of(index_ids(index))
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        faiss.write_index(index, str(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        side_tmp = self.sidecar.with_name(self.sidecar.name + f".tmp{os.getpid()}")
        side_tmp.write_text(
            json.dumps(
                {
                    "model": model,
                    "kind": kind,
                    "dim": index.d,
                    "count": stats.count,
                    "max_id": stats.max_id,
                    "id_sum": stats.id_sum,
                }
            ),
            encoding="utf-8",
        )
        os.replace(side_tmp, self.sidecar)
        os.replace(tmp, self.path)
