"""Exceptions of the index layer. Each message says what is wrong and how to fix it.

They subclass ``VaultError`` so the CLI's ``friendly_errors`` prints them as one ``Error: …`` line.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from vault_schema.errors import VaultError


class IndexError_(VaultError):
    """Base class for index problems."""


class IndexNotFound(IndexError_):
    """No index exists in the folder asked for."""

    def __init__(self, index_dir: object, command: str = "tropegraph index") -> None:
        super().__init__(f"no index at {index_dir}; run `{command}` first")
        self.index_dir = index_dir
        self.command = command


class ModelMismatch(IndexError_):
    """The index was built with another embedding model; vectors of two models never mix."""

    def __init__(self, index_model: str, asked_model: str) -> None:
        super().__init__(
            f"the index was built with {index_model}, but {asked_model} was asked for; "
            f"run `tropegraph index --full` to re-embed the vault with {asked_model}, "
            f"or drop --engine/--model to keep {index_model}"
        )
        self.index_model = index_model
        self.asked_model = asked_model


class IndexLocked(IndexError_):
    """Another process is writing the index."""

    def __init__(self, index_dir: object, pid: int | None, command: str | None, started: str | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        if command:
            who += f" ({command})"
        if started:
            who += f", since {started}"
        super().__init__(
            f"the index at {index_dir} is being written by {who}; "
            "wait for it to finish or stop it (a running `tropegraph watch` keeps the index up to date)"
        )
        self.pid = pid
        self.command = command


class IndexCorrupt(IndexError_):
    """The SQLite file cannot be read."""


class EngineUnavailable(IndexError_):
    """An embedding engine or model cannot be loaded (missing package or model folder)."""


class DiskFull(IndexError_):
    """A write failed for lack of space (or a file-size limit): nothing committed is lost."""


class IndexNotWritable(IndexError_):
    """The index folder or one of its files cannot be written (permissions, read-only disk)."""


class IndexUnreadable(IndexError_):
    """The index cannot be opened or read (permissions, an I/O error, a missing write-ahead log)."""


# SQLite result codes (primary code = extended code & 0xff)
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 10, 11, 13, 14, 26
_SQLITE_IOERR_WRITES = {778, 1034, 1290, 1546}  # IOERR_WRITE, _FSYNC, _DIR_FSYNC, _TRUNCATE
_SQLITE_IOERR_SHORT_READ = 522
_NO_SPACE = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_NO_WRITE = {errno.EACCES, errno.EPERM, errno.EROFS}

FIX_SPACE = "free some space, then run the command again (everything indexed before is kept)"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _inside(path: object, folder: Path | None) -> bool:
    if folder is None or path is None:
        return False
    try:
        return Path(os.path.abspath(str(path))).is_relative_to(os.path.abspath(folder))
    except (TypeError, ValueError):
        return False


def explain(exc: BaseException, index_dir: Path | None, *, writing: bool = False) -> VaultError | None:
    """The one-line error (what failed, which file, the fix) for an OS, SQLite or FAISS failure
    a user can cause — a full disk, a read-only folder, a damaged database, a deleted write-ahead
    log, denied permissions — or None when ``exc`` is none of those (a bug: let it show).

    ``index_dir`` is the index the failing command opened (None: not known); ``writing`` says
    the command meant to write it (an open that fails is then a permissions problem)."""
    import sqlite3

    if isinstance(exc, VaultError):
        return exc
    index_dir = Path(index_dir) if index_dir is not None else None
    db = index_dir / "index.db" if index_dir is not None else "the index database"
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None) or 0
        primary, reason = code & 0xFF, _one_line(exc)
        if primary == _SQLITE_FULL or code in _SQLITE_IOERR_WRITES:
            return DiskFull(f"cannot write {db} ({reason}): the disk is full or failing; {FIX_SPACE}")
        if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            from indexer.repair import corrupt_message

            return IndexCorrupt(corrupt_message(Path(db), reason))
        if primary in (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_CANTOPEN):
            problem = _access_problem(index_dir, writing or primary != _SQLITE_CANTOPEN)
            if problem is not None:
                return problem
            if primary != _SQLITE_CANTOPEN or writing:
                return IndexNotWritable(_not_writable(index_dir, reason))
            return IndexUnreadable(
                f"cannot open {db} ({reason}); check that you may read {index_dir} and the files in it"
            )
        if primary == _SQLITE_IOERR:
            return IndexUnreadable(_read_failure(index_dir, db, reason, short_read=code == _SQLITE_IOERR_SHORT_READ))
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return IndexUnreadable(
                f"{db} is locked by another program ({reason}); close the program that holds it "
                "(a database browser?) and run the command again"
            )
        return None
    if isinstance(exc, OSError) and exc.errno is not None:
        where = exc.filename or index_dir or "a file"
        reason = _one_line(exc.strerror or exc)
        if exc.errno in _NO_SPACE:
            return DiskFull(f"cannot write {where} ({reason}); {FIX_SPACE}")
        if exc.errno in _NO_WRITE and (_inside(exc.filename, index_dir) or exc.filename is None):
            return _access_problem(index_dir, True) or IndexNotWritable(_not_writable(index_dir, f"{reason}: {where}"))
        if exc.errno in _NO_WRITE:
            return VaultError(f"cannot access {where} ({reason}); check its permissions (or choose another path)")
        if exc.errno == errno.EIO:
            return VaultError(f"cannot read or write {where} ({reason}); the disk may be failing: check it")
        if exc.filename:  # a path that is not what it should be (a file where a folder goes, …)
            return VaultError(f"cannot use {where} ({reason}); check the path and run the command again")
        return None
    if isinstance(exc, RuntimeError) and "faiss" in str(exc):
        # "Error in … at …: Error: '…' failed: write error in PATH: 9955 != 64000 (File too large)"
        text = _one_line(exc)
        detail = text.rsplit("failed: ", 1)[-1][:200]
        cache = index_dir / "vectors.faiss" if index_dir is not None else "the vector cache"
        if "write error" in detail:
            return DiskFull(f"cannot write {cache} ({detail}); {FIX_SPACE}")
        if "for writing" in detail:
            return IndexNotWritable(_not_writable(index_dir, detail))
        return IndexUnreadable(
            f"cannot use {cache} ({detail}); delete it (it is a cache: it is rebuilt from {db}) and "
            "run the command again"
        )
    return None


def _access_problem(index_dir: Path | None, writing: bool) -> VaultError | None:
    """Which index file (or the folder) denies access, found by trying (``os.access`` answers for
    the real uid, which may differ from what the process may really do)."""
    import tempfile

    if index_dir is None or not index_dir.is_dir():
        return None
    if writing:
        try:
            tempfile.TemporaryFile(dir=index_dir).close()
        except OSError as exc:
            return IndexNotWritable(_not_writable(index_dir, _one_line(exc.strerror or exc)))
    for name in ("index.db", "index.db-wal", "index.db-shm", "writer.lock"):
        path = index_dir / name
        if not path.exists():
            continue
        try:
            os.close(os.open(path, os.O_RDWR if writing else os.O_RDONLY))
        except OSError as exc:
            verb, mode = ("write", "u+rw") if writing else ("read", "u+r")
            return (IndexNotWritable if writing else IndexUnreadable)(
                f"cannot {verb} {path} ({_one_line(exc.strerror or exc)}); give yourself access "
                f"(chmod {mode} {path}) and run the command again (the index is unchanged)"
            )
    return None


def _not_writable(index_dir: Path | None, reason: str) -> str:
    where = index_dir if index_dir is not None else "the index folder"
    return (
        f"cannot write the index folder {where} ({reason}); make it writable (chmod u+w {where}) or "
        "choose another with --index-dir (the index is unchanged)"
    )


def _read_failure(index_dir: Path | None, db: object, reason: str, *, short_read: bool) -> str:
    if index_dir is not None and short_read:
        from indexer.lock import holder

        # the shared index says the log holds more than the file does: it was deleted or cut
        # (a reader then finds it missing, or recreates it empty)
        wal = Path(f"{db}-wal")
        who = holder(index_dir)
        if who is not None and (not wal.exists() or wal.stat().st_size == 0):
            name = f"pid {who.pid}" + (f" ({who.command})" if who.command else "")
            return (
                f"cannot read {db} ({reason}): its write-ahead log {wal} was deleted while {name} "
                "writes the index; stop that process (it writes its work back when it exits) and run the "
                "command again"
            )
    return f"cannot read {db} ({reason}); the disk may be failing or the file was changed by another program"
