"""The index folder: ``index.db`` (SQLite, the truth), ``vectors.faiss`` (a cache), ``writer.lock``.

``open_index`` opens it for writing (one writer at a time, migrations applied) or read-only
(never blocked by a writer, thanks to WAL).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from indexer.errors import IndexCorrupt, IndexError_, IndexNotFound, ModelMismatch, explain
from indexer.lock import WriterLock
from indexer.migrations import apply_migrations, schema_version
from indexer.vectors import SETTINGS, Loaded, VectorCache

if TYPE_CHECKING:
    from indexer.embed import Embedder

DB_NAME = "index.db"
BUSY_TIMEOUT_MS = 10_000
#: Memory-map up to this much of the database: queries read FTS doclists and vector rows without
#: a read() per page (measured: vector-id -> turn mapping 7.2 -> 4.3 ms at 175k passages).
MMAP_BYTES = 256 * 1024 * 1024


_OPENED: list[Path] = []


def last_opened() -> Path | None:
    """The index folder this process opened last (the CLI names it in error messages)."""
    return _OPENED[-1] if _OPENED else None


def _stderr(msg: str) -> None:
    print(f"tropegraph: {msg}", file=sys.stderr)


class Index:
    """An open index. ``db`` is a plain ``sqlite3.Connection`` in autocommit mode: writers wrap
    their work in explicit ``BEGIN IMMEDIATE`` … ``COMMIT``."""

    def __init__(
        self,
        index_dir: Path,
        db: sqlite3.Connection,
        *,
        readonly: bool,
        lock: WriterLock | None,
        notify: Callable[[str], None],
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.dir = index_dir
        self.db = db
        self.readonly = readonly
        self.notify = notify
        self.log = log or notify
        self._lock = lock
        self._cache = VectorCache(index_dir, self.log)
        self._faiss: Loaded | None = None
        self._faiss_key: tuple[str, int, str] | None = None  # (model, dim, FAISS setting)
        self._reader: sqlite3.Connection | None = None
        self.immutable = False
        """Opened ``immutable`` (a read-only folder: nothing can change the file meanwhile)."""

    # -- meta ---------------------------------------------------------------------------------
    @property
    def meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM meta").fetchall())

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: object) -> None:
        """Set one meta value (inside the caller's transaction, if any)."""
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, None if value is None else str(value)),
        )

    @property
    def model(self) -> str | None:
        """The embedding model id every vector in the index was made with (None before the first run)."""
        return self.get_meta("model")

    @property
    def engine(self) -> str | None:
        return self.get_meta("engine")

    @property
    def dim(self) -> int | None:
        value = self.get_meta("dim")
        return int(value) if value else None

    @property
    def schema_version(self) -> int:
        return schema_version(self.db)

    def check_embedder(self, embedder: Embedder) -> None:
        """Raise ``ModelMismatch`` unless ``embedder`` made this index's vectors (or it has none yet)."""
        if self.model and self.model != embedder.model_id:
            raise ModelMismatch(self.model, embedder.model_id)

    # -- vectors ------------------------------------------------------------------------------
    def faiss_setting(self) -> str:
        """The FAISS kind asked for: meta ``faiss_kind``, else ``TROPEGRAPH_FAISS``, else ``auto``."""
        setting = self.get_meta("faiss_kind") or os.environ.get("TROPEGRAPH_FAISS") or "auto"
        if setting not in SETTINGS:
            raise IndexError_(
                f"unknown FAISS kind {setting!r}; set TROPEGRAPH_FAISS to one of {', '.join(SETTINGS)}"
            )
        return setting

    def vector_index(self) -> Any:
        """The FAISS index of this model's vectors (ids = ``vectors.id``), in agreement with SQLite.

        Loaded once and kept; an out-of-date file is reconciled with SQLite in place, a missing
        or corrupt one rebuilt from it (a writer also saves the repaired file). Empty (``ntotal == 0``) before the first indexing run. The kind
        (exact flat, or approximate IVF for large vaults) is chosen by ``auto`` unless set.
        """
        model, dim = self.model, self.dim
        if not model or not dim:
            from indexer.vectors import empty_index

            return empty_index(self.dim or 1)
        setting = self.faiss_setting()
        if self._faiss is None or self._faiss_key != (model, dim, setting):
            self._faiss = self._cache.load(self.db, model, dim, setting, writer=not self.readonly)
            self._faiss_key = (model, dim, setting)
            if self._faiss.changed and not self.readonly:
                self._save_faiss()
        return self._faiss.index

    def refresh_vectors(self, removed_ids: list[int] | None = None) -> None:
        """Bring a loaded FAISS index up to date after a committed write (cheap; no-op if not loaded)."""
        if self._faiss is None or self._faiss_key is None:
            return
        from indexer.vectors import remove_vectors

        model, dim, _ = self._faiss_key
        loaded = self._faiss
        if removed_ids:
            if loaded.kind in ("flat", "ivf"):
                import numpy as np

                remove_vectors(loaded.index, np.asarray(removed_ids, dtype=np.int64))
                loaded.changed = True
            else:  # HNSW cannot remove: rebuild from SQLite
                self._faiss = loaded = self._cache.rebuild(self.db, model, dim, loaded.kind)
        if self._cache.add_new(loaded.index, self.db, model, dim):
            loaded.changed = True

    @property
    def vectors_unsaved(self) -> bool:
        """Whether the loaded FAISS index differs from the file on disk (the watcher saves it
        only now and then; a reader reconciles an older file with SQLite on load)."""
        return self._faiss is not None and self._faiss.changed

    def save_vectors(self) -> None:
        """Write the FAISS file if it changed since it was loaded (writers only); ``auto`` may
        switch kind or retrain an outgrown IVF first (``VectorCache.settle``)."""
        if self.readonly or self._faiss is None or self._faiss_key is None:
            return
        model, dim, setting = self._faiss_key
        self._faiss = self._cache.settle(self._faiss, self.db, model, dim, setting)
        if self._faiss.changed:
            self._save_faiss()

    def _save_faiss(self) -> None:
        loaded, key = self._faiss, self._faiss_key
        assert loaded is not None and key is not None
        self._cache.save(loaded.index, key[0], loaded.kind, loaded.trained)
        loaded.changed = False

    def check_integrity(self) -> None:
        """``PRAGMA quick_check`` (seconds on a large index): ``IndexCorrupt`` naming what can be
        salvaged when the database is damaged. ``index --full`` runs it; other commands meet
        damage only where they read."""
        try:
            rows = self.db.execute("PRAGMA quick_check").fetchall()
            problem = None if rows == [("ok",)] else str(rows[0][0])
        except sqlite3.DatabaseError as exc:
            problem = str(exc)
        if problem is not None:
            from indexer.repair import corrupt_message

            raise IndexCorrupt(corrupt_message(self.dir / DB_NAME, " ".join(problem.split())[:160]))

    def rebuild_vectors(self) -> None:
        """Rebuild the FAISS cache from SQLite now, whatever the file holds (``index --full``);
        the writer saves it at the end of the run."""
        model, dim = self.model, self.dim
        if self.readonly or not model or not dim:
            return
        from indexer.vectors import auto_kind, sql_stats

        setting = self.faiss_setting()
        kind = auto_kind(sql_stats(self.db, model).count) if setting == "auto" else setting
        self._faiss = self._cache.rebuild(self.db, model, dim, kind)
        self._faiss_key = (model, dim, setting)

    def drop_vector_cache(self) -> None:
        self._faiss = None
        self._faiss_key = None

    # -- summary ------------------------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        q = lambda sql: self.db.execute(sql).fetchone()[0]
        roles = dict(self.db.execute("SELECT role, count(*) FROM turns GROUP BY role").fetchall())
        model = self.model
        return {
            "notes": q("SELECT count(*) FROM notes"),
            "conversations": q("SELECT count(*) FROM conversations WHERE id NOT LIKE 'note:%'"),
            "plain_notes": q("SELECT count(*) FROM conversations WHERE id LIKE 'note:%'"),
            "turns": q("SELECT count(*) FROM turns"),
            "turns_by_role": roles,
            "passages": q("SELECT count(*) FROM passages"),
            "vectors": self.db.execute("SELECT count(*) FROM vectors WHERE model = ?", (model,)).fetchone()[
                0
            ],
            "pending_embeddings": self._pending_embeddings(),
        }

    def _pending_embeddings(self) -> int:
        try:
            return int(self.db.execute("SELECT count(*) FROM embed_queue").fetchone()[0])
        except sqlite3.OperationalError:  # an older index a writer has not migrated yet
            return 0

    # -- lifetime -----------------------------------------------------------------------------
    @property
    def holds_lock(self) -> bool:
        return self._lock is not None and self._lock.held

    def reader(self) -> sqlite3.Connection:
        """A second read-only connection, so one query leg can read on another thread while the
        main connection serves the other (one connection serialises its statements)."""
        if self._reader is None:
            self._reader = _connect(self.dir / DB_NAME, readonly=True, immutable=self.immutable)
        return self._reader

    def close(self) -> None:
        try:
            if not self.readonly:
                self.save_vectors()
        finally:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            self.db.close()
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            self.close()
            return
        try:  # already failing: a second failure saving the cache must not hide the first
            self.close()  # (closes the database and releases the lock whatever happens)
        except Exception as second:  # noqa: BLE001 - reported, the first error goes on
            self.notify(f"the vector cache was not saved ({type(second).__name__}: {second}); "
                        "it is brought up to date from the database next time")


def _read_only_folder(index_dir: Path) -> bool:
    """True when no file can be created in ``index_dir`` and no write-ahead log is pending there."""
    import tempfile

    if (index_dir / f"{DB_NAME}-wal").exists():
        return False
    try:
        tempfile.TemporaryFile(dir=index_dir).close()
    except OSError:
        return True
    return False


def _connect(path: Path, readonly: bool, *, immutable: bool = False) -> sqlite3.Connection:
    if readonly:
        flags = "mode=ro&immutable=1" if immutable else "mode=ro"
        db = sqlite3.connect(
            f"{path.absolute().as_uri()}?{flags}", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA foreign_keys = ON")
    db.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    if not readonly:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
    return db


def open_index(
    index_dir: str | Path,
    *,
    create: bool = False,
    readonly: bool = False,
    command: str | None = None,
    notify: Callable[[str], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> Index:
    """Open the index in ``index_dir``.

    Writers take the writer lock (``IndexLocked`` if another process has it) and apply pending
    migrations; ``create=True`` makes the folder and database when missing. Readers open
    ``mode=ro`` and see the last committed state while a writer works. ``notify`` receives
    one-line messages (e.g. a model switch); default: stderr. ``log`` receives routine
    maintenance (the vector cache topped up, reconciled or rebuilt from SQLite, which a reader
    does whenever a watcher wrote since the cache file was saved); default: ``notify``.
    """
    index_dir = Path(index_dir).expanduser()
    path = index_dir / DB_NAME
    notify = notify or _stderr
    if not path.exists() and (readonly or not create):
        raise IndexNotFound(index_dir)
    _OPENED[:] = [index_dir]  # CLI error messages name the index the command was using
    lock: WriterLock | None = None
    db: sqlite3.Connection | None = None
    immutable = False
    try:
        if not path.exists():
            index_dir.mkdir(parents=True, exist_ok=True)
        lock = None if readonly else WriterLock(index_dir, command).acquire()
        db = _connect(path, readonly)
        if not readonly:
            apply_migrations(db)
            if db.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone() is None:
                db.execute("INSERT INTO meta (key, value) VALUES ('created_at', ?)", (str(time.time()),))
        else:
            try:
                db.execute("SELECT count(*) FROM meta").fetchone()
            except sqlite3.OperationalError:
                if not _read_only_folder(index_dir):
                    raise
                # a WAL database in a folder nobody may write (a read-only disk, a backup, another
                # user's index): no writer can exist, so read the file as it is
                db.close()
                db = _connect(path, readonly=True, immutable=True)
                db.execute("SELECT count(*) FROM meta").fetchone()
                immutable = True
    except BaseException as exc:
        if db is not None:
            db.close()
        if lock is not None:
            lock.release()
        if isinstance(exc, sqlite3.DatabaseError):
            if readonly and "no such table" in str(exc):
                raise IndexNotFound(index_dir) from exc
            if "no such table" in str(exc):  # tables a recorded migration made are gone
                from indexer.repair import corrupt_message

                raise IndexCorrupt(corrupt_message(path, str(exc))) from exc
        error = explain(exc, index_dir, writing=not readonly) if isinstance(exc, Exception) else None
        if error is not None and error is not exc:
            raise error from exc
        raise
    index = Index(index_dir, db, readonly=readonly, lock=lock, notify=notify, log=log)
    index.immutable = immutable
    if not readonly:  # we hold the writer lock: no save is in progress, leftovers are a kill's
        gone = index._cache.remove_temporaries()
        if gone:
            index.log(f"removed {', '.join(sorted(gone))} left in {index_dir} by an interrupted save")
    return index
