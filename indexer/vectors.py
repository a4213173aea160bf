"""The FAISS cache of the ``vectors`` table: exact search for small vaults, IVF for large ones.

Kinds: ``flat`` (exact inner product), ``ivf`` (``IndexIVFFlat``: k-means lists, a query scans
the ``nprobe`` nearest lists; removes ids natively) and ``hnsw`` (graph; cannot remove, so a
removal rebuilds it). The default setting ``auto`` picks flat below ``AUTO_IVF_AT`` vectors and
IVF above, with hysteresis so a vault hovering near the threshold does not flip-flop.

SQLite is the truth; ``vectors.faiss`` is a cache written atomically (tmp + ``os.replace``)
next to the database with a JSON sidecar (model, kind, count, max id, IVF training size). On
load the ids inside the FAISS file are compared with SQLite's (count, max, sum of ids — ids are
AUTOINCREMENT, never reused); when vectors were only appended since (e.g. a killed run) the new
rows are added. A flat or IVF file that is otherwise out of date (the watcher saves only now and
then, so a kill leaves an older file) is reconciled in place: ids SQLite no longer has are
removed and the missing ones added, reading only their blobs. A missing, corrupt or mismatched
file, or a stale HNSW one (HNSW cannot remove), is rebuilt from the blobs without re-embedding.
The sidecar also holds a CRC-32 of the file, checked before every load: vector bytes garbled on
disk (ids intact, so the id check alone passed them) make it rebuild too (issue #17).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sqlite3
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vault_schema import files

FAISS_NAME = "vectors.faiss"
SIDECAR_NAME = "vectors.json"
TMP_MARK = ".tmp"
"""``vectors.faiss.tmp<pid>``: a save in progress (or cut short by a kill: removed at next start)."""
#: Index kinds a cache file can hold.
KINDS = ("flat", "hnsw", "ivf")
#: What ``TROPEGRAPH_FAISS`` / meta ``faiss_kind`` accept: a kind, or ``auto`` (the default).
SETTINGS = (*KINDS, "auto")
#: ``auto``: IVF from this many vectors (flat search costs ~4 ms per query at 32k, 384-dim) ...
AUTO_IVF_AT = 32_000
#: ... and back to flat only below this many, so removals near the threshold never flip-flop.
AUTO_FLAT_BELOW = 16_000
#: A writer retrains an IVF index once the vault has grown this many times past its training size.
RETRAIN_GROWTH = 4
#: k-means trains on at most this many vectors per list (k-means time is linear in the sample).
TRAIN_PER_LIST = 48
KMEANS_ITER = 10
#: A reader calls the cache damaged when this many looks in a row find the same file (and
#: sidecar) disagreeing; while looks find new files (saves in progress) it goes on up to SAVE_WAIT s.
CHECK_ATTEMPTS = 3
SAVE_WAIT = 5.0


def file_checksum(path: str | os.PathLike[str]) -> str:
    """CRC-32 of a file's bytes, read in 1 MB blocks (~1 GB/s: ~0.25 s for 175k vectors).

    Stored in the sidecar when the cache is saved and checked before it is loaded, so bytes
    garbled on disk (the ids still match SQLite, the vectors do not) are caught and rebuilt."""
    with open(path, "rb") as fh:
        return _checksum_of(fh)


def _checksum_of(fh: Any) -> str:
    crc = 0
    while block := fh.read(1 << 20):
        crc = zlib.crc32(block, crc)
    return f"crc32:{crc:08x}"


def _faiss() -> Any:
    import faiss

    return faiss


def auto_kind(count: int, current: str | None = None) -> str:
    """The kind ``auto`` wants for ``count`` vectors, given the kind in use (hysteresis)."""
    if current == "ivf":
        return "ivf" if count >= AUTO_FLAT_BELOW else "flat"
    return "ivf" if count >= AUTO_IVF_AT else "flat"


def ivf_nlist(count: int) -> int:
    """IVF list count: ~4·sqrt(n) (the usual rule), with at least 39 training vectors per list."""
    return max(1, min(round(4 * math.sqrt(count)), count // 39, 65_536))


def ivf_nprobe(nlist: int) -> int:
    """Lists a query scans: nlist/16, within 16..64.

    Measured (384-dim, top-400, one query): recall@50 against exact search 0.99 at 49k vectors
    (55 lists of 885), 0.996 at 175k (64 of 1673, 1.1 ms), 0.995 at 1M (64 of 4000, 2.9 ms;
    128 would give 0.998 for twice the time). Past 64 lists latency grows, recall hardly.
    """
    return min(nlist, max(16, min(64, nlist // 16)))


def kind_of(index: Any) -> str:
    """The kind of a FAISS index made here: ``flat``, ``hnsw`` or ``ivf``."""
    faiss = _faiss()
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"


def empty_index(dim: int, kind: str = "flat") -> Any:
    """A new, empty index: ``IndexIDMap2`` over flat or HNSW, or an untrained one-list IVF
    (IVF cannot learn lists from nothing; ``build_index`` trains it on real vectors)."""
    faiss = _faiss()
    if kind == "ivf":
        return _ivf(dim, 1)
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = 64
    elif kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    else:
        raise ValueError(f"unknown FAISS kind {kind!r}; expected one of {', '.join(KINDS)}")
    return faiss.IndexIDMap2(inner)


def _ivf(dim: int, nlist: int) -> Any:
    # Not wrapped in IndexIDMap: IVF stores ids itself, and IndexIDMap.remove_ids assumes the
    # inner index renumbers like flat. The hashtable direct map gives O(1) remove/reconstruct.
    faiss = _faiss()
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    index.nprobe = ivf_nprobe(nlist)
    return index


def train_ivf(index: Any, mat: np.ndarray, seed: int = 1234) -> None:
    """Train an empty IVF's lists by spherical k-means on (a sample of) ``mat``."""
    faiss = _faiss()
    if index.nlist == 1:  # one list holds everything: any centroid will do
        index.quantizer.add(np.zeros((1, index.d), dtype=np.float32))
    else:
        km = faiss.Kmeans(
            index.d, index.nlist, niter=KMEANS_ITER, seed=seed, spherical=True,
            max_points_per_centroid=TRAIN_PER_LIST,
        )
        km.train(mat)
        index.quantizer.add(km.centroids)
    index.is_trained = True


def build_index(dim: int, kind: str, ids: np.ndarray, mat: np.ndarray) -> Any:
    """An index of ``kind`` holding ``mat`` under ``ids`` (IVF: lists sized for and trained on them)."""
    if kind == "ivf":
        index = _ivf(dim, ivf_nlist(len(ids)))
        train_ivf(index, mat)
    else:
        index = empty_index(dim, kind)
    if len(ids):
        index.add_with_ids(mat, ids)
    return index


def add_vectors(index: Any, ids: np.ndarray, mat: np.ndarray) -> None:
    """Add vectors; an IVF keeps its lists (new vectors go to the nearest centroid)."""
    if len(ids) == 0:
        return
    if not index.is_trained:  # an IVF built empty: one list, trained on anything
        train_ivf(index, mat)
    index.add_with_ids(mat, ids)


def remove_vectors(index: Any, ids: np.ndarray) -> int:
    """Remove ids in place (flat and IVF; HNSW cannot); return how many were there."""
    return int(index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))


def knn(
    index: Any, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None, excluded: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(similarities, ids)`` of the ``k`` nearest vectors to each query row (ids ``-1`` pad).

    ``allowed`` (vector ids) restricts the search to those ids — exactly, whatever the kind,
    so a selective filter never loses matches to an approximate index (an IVF then scans every
    list but scores only the allowed ids). ``excluded`` (vector ids, or an ``Exclusion`` made of
    them once) skips those ids and searches as usual otherwise (an IVF its ``nprobe`` lists):
    the result is what a deeper search would give with those ids dropped.
    """
    faiss = _faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, index.d)
    if allowed is None and excluded is None:
        return index.search(queries, k)
    ivf = isinstance(index, faiss.IndexIVF)
    if allowed is not None:
        sel, nprobe = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64)), index.nlist if ivf else 0
    else:
        held = excluded if isinstance(excluded, Exclusion) else Exclusion(excluded)
        sel, nprobe = held.selector, index.nprobe if ivf else 0
    params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe) if ivf else faiss.SearchParameters(sel=sel)
    return index.search(queries, k, params=params)


class Exclusion:
    """A FAISS selector of every id but ``ids``, built once and reused by many searches
    (building it hashes every id: ~1 ms per 25k)."""

    def __init__(self, ids: np.ndarray) -> None:
        faiss = _faiss()
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self._batch = faiss.IDSelectorBatch(self.ids)  # (kept alive: the NOT selector only points at it)
        self.selector = faiss.IDSelectorNot(self._batch)

    def __len__(self) -> int:
        return len(self.ids)


def read_vectors(
    db: sqlite3.Connection, model: str, dim: int, *, min_id: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids int64, matrix float32 (n, dim))`` of this model's vectors with ``id > min_id``."""
    rows = db.execute(
        "SELECT id, vector FROM vectors WHERE model = ? AND id > ? ORDER BY id", (model, min_id)
    ).fetchall()
    return _arrays(rows, dim)


def _arrays(rows: list[tuple[int, bytes]], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(id, blob)`` rows as ``(ids int64, matrix float32 (n, dim))``."""
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    mat = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), dim)
    return ids, np.ascontiguousarray(mat, dtype=np.float32)


def read_vectors_by_id(db: sqlite3.Connection, model: str, dim: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, matrix)`` of the given vector ids (one query: the ids travel as a JSON array)."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
    rows = db.execute(
        "SELECT id, vector FROM vectors WHERE model = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id",
        (model, json.dumps(np.asarray(ids, dtype=np.int64).tolist())),
    ).fetchall()
    return _arrays(rows, dim)


def sql_ids(db: sqlite3.Connection, model: str) -> np.ndarray:
    """Every vector id of ``model``, ascending (ids only: ~50 ms at 175k, no blobs read)."""
    rows = db.execute("SELECT id FROM vectors WHERE model = ? ORDER BY id", (model,)).fetchall()
    return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))


def to_blob(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype="<f4").tobytes()


def index_ids(index: Any) -> np.ndarray:
    """The ids held by an index: an ``IndexIDMap2``'s map, or an IVF's inverted lists."""
    faiss = _faiss()
    if not isinstance(index, faiss.IndexIVF):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    lists = index.invlists
    parts = [
        faiss.rev_swig_ptr(lists.get_ids(i), size).copy()
        for i in range(index.nlist)
        if (size := lists.list_size(i))
    ]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


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


@dataclass
class Loaded:
    """A FAISS index in agreement with SQLite, with what a writer needs to keep it that way."""

    index: Any
    kind: str  # flat, hnsw or ivf
    trained: int  # vectors an IVF's lists were trained on (0: other kinds, or an IVF built empty)
    changed: bool  # differs from the file on disk: a writer saves it


class VectorCache:
    """Loads, repairs, updates and saves the FAISS file of one index folder."""

    def __init__(self, index_dir: Path, notify: Callable[[str], None] | None = None) -> None:
        self.path = Path(index_dir) / FAISS_NAME
        self.sidecar = Path(index_dir) / SIDECAR_NAME
        self.notify = notify or (lambda msg: None)

    def _identity(self, fh: Any) -> tuple[int, ...]:
        """The open file's and the sidecar's identity: a save replaces both (new inodes)."""
        st = os.fstat(fh.fileno())
        try:
            side = os.stat(self.sidecar)
            side_id: tuple[int, ...] = (side.st_ino, side.st_mtime_ns, side.st_size)
        except OSError:
            side_id = ()
        return (st.st_ino, st.st_mtime_ns, st.st_size, *side_id)

    def _read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(files.read_text(self.sidecar, max_bytes=1 << 20))  # regular file, capped
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _read_file(self, meta: dict[str, Any], model: str, dim: int, kind: str) -> tuple[Any | None, dict[str, Any]]:
        """The FAISS file if it exists, reads, and matches model/dim/kind; else None (with a message).

        Returns the sidecar it was checked against too: a writer replaces the sidecar, then the
        file, so a reader between the two sees a mismatch that is not damage. It looks again
        (``CHECK_ATTEMPTS``); the checksum and the index come from one open file, so a file
        replaced between checksumming and reading can never be loaded unchecked."""
        if not self.path.exists():
            return None, meta
        faiss = _faiss()
        index = None
        try:
            if meta.get("model") != model or meta.get("kind") != kind:
                self.notify(f"vector cache {self.path} was built for another model or kind; rebuilding it")
                return None, meta
            if not meta.get("checksum"):
                self.notify(f"vector cache {self.path} has no checksum (an older tropegraph wrote it); "
                            "rebuilding it from the database (no re-embedding)")
                return None, meta
            last: tuple[int, ...] | None = None
            same = 0  # consecutive looks that found this very file (and sidecar) mismatching
            deadline = time.monotonic() + SAVE_WAIT
            for attempt in itertools.count(1):
                with open(self.path, "rb") as fh:
                    if _checksum_of(fh) == meta["checksum"]:
                        fh.seek(0)
                        index = faiss.read_index(faiss.PyCallbackIOReader(fh.read))
                        break
                    ident = self._identity(fh)
                # Damage is a mismatch that stays put; a writer saving (even many times over, on
                # a busy machine) shows a new file each look, so keep looking until SAVE_WAIT.
                same = same + 1 if ident == last else 1
                last = ident
                if same >= CHECK_ATTEMPTS or time.monotonic() > deadline:
                    break
                time.sleep(min(0.05 * attempt, 0.2))
                fresh = self._read_meta()
                if fresh.get("model") != model or fresh.get("kind") != kind or not fresh.get("checksum"):
                    return None, fresh
                meta = fresh
            if index is None:
                self.notify(f"vector cache {self.path} is damaged (its checksum does not match); "
                            "rebuilding it from the database (no re-embedding)")
                return None, meta
        except (OSError, ValueError, RuntimeError) as exc:
            self.notify(f"vector cache {self.path} is unreadable ({type(exc).__name__}); rebuilding it")
            return None, meta
        if not isinstance(index, faiss.IndexIVF | faiss.IndexIDMap2):
            index = faiss.downcast_index(index)
        if (
            index.d != dim
            or not (hasattr(index, "id_map") or isinstance(index, faiss.IndexIVF))
            or kind_of(index) != kind
            or not index.is_trained
        ):
            self.notify(f"vector cache {self.path} has the wrong shape; rebuilding it")
            return None, meta
        if kind == "ivf":
            if index.direct_map.type != faiss.DirectMap.Hashtable:
                index.set_direct_map_type(faiss.DirectMap.Hashtable)
            index.nprobe = ivf_nprobe(index.nlist)
        return index, meta

    def load(
        self, db: sqlite3.Connection, model: str, dim: int, setting: str = "flat", *, writer: bool = False
    ) -> Loaded:
        """A FAISS index agreeing with SQLite, of the kind ``setting`` asks for.

        ``auto`` keeps the file's kind (flat or IVF) when there is one; only a writer
        (``settle``) switches kind or retrains. A reader that must rebuild under ``auto`` builds
        exact flat: it could not save a trained IVF, and k-means takes minutes at 1M vectors.
        """
        meta = self._read_meta()
        file_kind = meta.get("kind") if meta.get("model") == model and self.path.exists() else None
        kind = rebuild_kind = setting
        if setting == "auto":
            wanted = auto_kind(sql_stats(db, model).count) if writer else "flat"
            kind = file_kind if file_kind in ("flat", "ivf") else wanted
            rebuild_kind = wanted
        loaded = self._load(meta, db, model, dim, kind, rebuild_kind)
        return self.settle(loaded, db, model, dim, setting) if writer else loaded

    def _load(
        self, meta: dict[str, Any], db: sqlite3.Connection, model: str, dim: int, kind: str, rebuild_kind: str
    ) -> Loaded:
        index, meta = self._read_file(meta, model, dim, kind)
        if index is not None:
            trained = int(meta.get("trained") or 0)
            have = IdStats.of(index_ids(index))
            if have == sql_stats(db, model):
                return Loaded(index, kind, trained, changed=False)
            if have == sql_stats(db, model, max_id=have.max_id):
                added = self.add_new(index, db, model, dim)
                if have.count:
                    self.notify(f"vector cache was behind the database; added {added} vectors")
                return Loaded(index, kind, trained, changed=True)
            if kind in ("flat", "ivf"):
                removed, added = self.reconcile(index, db, model, dim)
                self.notify(f"vector cache was out of date; removed {removed}, added {added} vectors")
                return Loaded(index, kind, trained, changed=True)
            self.notify(
                f"vector cache {self.path} is stale; rebuilding it from the database (no re-embedding)"
            )
        elif not self.path.exists() and sql_stats(db, model).count:
            self.notify(
                f"vector cache {self.path} is missing; rebuilding it from the database (no re-embedding)"
            )
        return self.rebuild(db, model, dim, rebuild_kind)

    def settle(self, loaded: Loaded, db: sqlite3.Connection, model: str, dim: int, setting: str) -> Loaded:
        """What a writer keeps: ``auto`` switches kind across its thresholds, and an IVF is
        retrained once the vault has outgrown its lists (``RETRAIN_GROWTH``)."""
        count = int(loaded.index.ntotal)
        want = auto_kind(count, loaded.kind) if setting == "auto" else loaded.kind
        if want != loaded.kind:
            self.notify(f"{count} vectors: switching the vector cache from {loaded.kind} to {want} search")
            return self.rebuild(db, model, dim, want)
        if (
            want == "ivf"
            and ivf_nlist(count) > loaded.index.nlist
            and count >= RETRAIN_GROWTH * loaded.trained
        ):
            if loaded.trained:
                self.notify(
                    f"the vault grew from {loaded.trained} to {count} vectors since the IVF vector "
                    "cache was trained; retraining it"
                )
            return self.rebuild(db, model, dim, want)
        return loaded

    def rebuild(self, db: sqlite3.Connection, model: str, dim: int, kind: str = "flat") -> Loaded:
        ids, mat = read_vectors(db, model, dim)
        index = build_index(dim, kind, ids, mat)
        return Loaded(index, kind, len(ids) if kind == "ivf" else 0, changed=True)

    @staticmethod
    def add_new(index: Any, db: sqlite3.Connection, model: str, dim: int) -> int:
        """Add the vectors with ids above the index's max id; return how many."""
        ids = index_ids(index)
        ids, mat = read_vectors(db, model, dim, min_id=int(ids.max()) if len(ids) else 0)
        add_vectors(index, ids, mat)
        return len(ids)

    @staticmethod
    def reconcile(index: Any, db: sqlite3.Connection, model: str, dim: int) -> tuple[int, int]:
        """Make a flat or IVF index hold exactly SQLite's ids, in place: remove the ids SQLite no
        longer has, add the missing ones (reading only their blobs). Return ``(removed, added)``.

        Far cheaper than a rebuild, which reads every blob and, for IVF, reruns k-means."""
        want = sql_ids(db, model)
        have = index_ids(index)
        extra = np.setdiff1d(have, want, assume_unique=True)
        missing = np.setdiff1d(want, have, assume_unique=True)
        if len(extra):
            remove_vectors(index, extra)
        ids, mat = read_vectors_by_id(db, model, dim, missing)
        add_vectors(index, ids, mat)
        return len(extra), len(ids)

    def save(self, index: Any, model: str, kind: str, trained: int = 0) -> None:
        """Write the FAISS file and its sidecar atomically (a kill leaves the old or the new file)."""
        faiss = _faiss()
        stats = IdStats.of(index_ids(index))
        tmp = self.path.with_name(self.path.name + f"{TMP_MARK}{os.getpid()}")
        side_tmp = self.sidecar.with_name(self.sidecar.name + f"{TMP_MARK}{os.getpid()}")
        try:
            faiss.write_index(index, str(tmp))
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            side_tmp.write_text(
                json.dumps(
                    {
                        "model": model,
                        "kind": kind,
                        "dim": index.d,
                        "count": stats.count,
                        "max_id": stats.max_id,
                        "id_sum": stats.id_sum,
                        "trained": trained,
                        "checksum": file_checksum(tmp),
                    }
                ),
                encoding="utf-8",
            )
            # a kill between the two leaves a sidecar whose checksum does not match: rebuilt on load
            os.replace(side_tmp, self.sidecar)
            os.replace(tmp, self.path)
        except BaseException:
            for leftover in (tmp, side_tmp):
                leftover.unlink(missing_ok=True)
            raise

    def remove_temporaries(self) -> list[str]:
        """Delete temporary files an interrupted save left (a writer calls this at start, holding
        the writer lock, so no save is in progress); return their names."""
        gone = []
        for path in self.path.parent.glob(f"*{TMP_MARK}*"):
            if path.name.startswith((self.path.name + TMP_MARK, self.sidecar.name + TMP_MARK)):
                path.unlink(missing_ok=True)
                gone.append(path.name)
        return gone
