"""A disk cache of context embeddings, so a timeline or report answers without re-embedding.

Drift compares the contexts an image was used in, embedded with the index's model. Embedding
them is the whole cost of ``tropegraph timeline`` and ``report`` (measured: 231 contexts of one
metaphor, 65 s of a 67 s timeline on a busy 2-core machine), and the same contexts come back on
every call. Vectors are kept by (model, sha256 of the exact text embedded) in ``contexts.db``,
next to the index (not in it: the index database stays the writer's; this file is a disposable
cache any reader may fill, and deleting it only costs re-embedding). When the folder cannot be
written (a read-only index), the cache is simply not used.
"""
from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

CACHE_NAME = "contexts.db"

_LOCK = threading.Lock()


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_CONTEXTS = ("CREATE TABLE IF NOT EXISTS contexts (model TEXT NOT NULL, hash TEXT NOT NULL, "
             "vector BLOB NOT NULL, PRIMARY KEY (model, hash)) WITHOUT ROWID")
_LEMMAS = ("CREATE TABLE IF NOT EXISTS content_lemmas (version TEXT NOT NULL, word TEXT NOT NULL, "
           "lemma TEXT, PRIMARY KEY (version, word)) WITHOUT ROWID")


def _read(path: Path, select: str, scope: str, keys: Sequence[str]) -> list[tuple]:
    """Rows of ``select`` (``… WHERE scope-column = ? AND key IN ({})``) for ``keys``, 500 at a time,
    read-only; nothing when the file, its table or the folder cannot be read (a cache miss)."""
    wanted = list(dict.fromkeys(keys))
    if not wanted or not path.exists():
        return []
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
    except (sqlite3.Error, OSError, ValueError):
        return []
    out: list[tuple] = []
    try:
        for i in range(0, len(wanted), 500):
            part = wanted[i : i + 500]
            out += db.execute(select.format(",".join("?" * len(part))), [scope, *part]).fetchall()
    except sqlite3.Error:  # an older file without the table, or a damaged one: recompute
        return []
    finally:
        db.close()
    return out


def _write(path: Path, create: str, insert: str, rows: list[tuple]) -> None:
    """Add ``rows`` in one transaction (first writer wins); a folder that cannot be written, or a
    busy/damaged file, just leaves them uncached."""
    if not rows:
        return
    with _LOCK:
        try:
            db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        except (sqlite3.Error, OSError):
            return
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(create)
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert, rows)
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
        finally:
            db.close()


class ContextCache:
    """``cached(texts, embed)``: rows for ``texts``, embedding only those not cached for ``model``."""

    def __init__(self, index_dir: Path, model: str) -> None:
        self.path = Path(index_dir) / CACHE_NAME
        self.model = model

    def get(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        rows = _read(self.path, "SELECT hash, vector FROM contexts WHERE model = ? AND hash IN ({})", self.model, hashes)
        return {h: np.frombuffer(v, dtype=np.float32) for h, v in rows}

    def put(self, items: dict[str, np.ndarray]) -> None:
        _write(self.path, _CONTEXTS, "INSERT OR IGNORE INTO contexts (model, hash, vector) VALUES (?, ?, ?)",
               [(self.model, h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in items.items()])

    def cached(self, texts: Sequence[str], embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Rows for ``texts`` in order: from the cache, the rest from ``embed`` (then stored)."""
        keys = [_key(t) for t in texts]
        have = self.get(keys)
        missing = list(dict.fromkeys(k for k in keys if k not in have))
        if missing:
            text_of = dict(zip(keys, texts, strict=True))
            rows = np.asarray(embed([text_of[k] for k in missing]), dtype=np.float32)
            fresh = dict(zip(missing, rows, strict=True))
            self.put(fresh)
            have.update(fresh)
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack([have[k] for k in keys])


class LemmaCache:
    """Content lemmas of words (``queries.timeline``'s characteristic terms) in the same disposable
    file, keyed by ``version``: a timeline asked again needs no lemmatiser (loading pymorphy3's and
    simplemma's dictionaries was about half of its time). ``None`` (a function word) is stored too."""

    def __init__(self, index_dir: Path, version: str) -> None:
        self.path = Path(index_dir) / CACHE_NAME
        self.version = version

    def get(self, words: Sequence[str]) -> dict[str, str | None]:
        return dict(_read(self.path, "SELECT word, lemma FROM content_lemmas WHERE version = ? AND word IN ({})",
                          self.version, words))

    def put(self, items: dict[str, str | None]) -> None:
        _write(self.path, _LEMMAS, "INSERT OR IGNORE INTO content_lemmas (version, word, lemma) VALUES (?, ?, ?)",
               [(self.version, w, lem) for w, lem in items.items()])
