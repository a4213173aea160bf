"""Reading files from a vault without ever hanging or reading without end.

A vault can hold things that are not notes but have a note's name: a FIFO called ``x.md`` (a
read blocks until someone writes), a symlink to ``/dev/zero`` or ``/dev/urandom`` (a read never
ends), a socket, a device, or a symlinked file that leads out of the vault (``/etc/passwd``).
Every read of a vault file goes through this module: only **regular files** are read, they are
opened non-blocking and checked with ``fstat`` on the open descriptor (no race with a swap),
and no read goes past a size cap.

Symlinked *folders* are part of the vault (Obsidian follows them); a symlinked *file* whose
target lies outside both the vault and the folder holding the link is refused.
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

#: Default cap of one read (the parser's note cap is the same).
MAX_READ_BYTES = 64 * 1024 * 1024
_BLOCK = 1 << 20


class NotRegularFile(OSError):
    """The path is a FIFO, socket, device or folder: never read (it could block or never end)."""

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        super().__init__(f"not a regular file but {kind}")
        self.strerror = f"not a regular file but {kind}"
        self.filename = str(path)
        self.kind = kind


class OutsideLink(OSError):
    """A symlinked file whose target is outside the vault."""

    def __init__(self, path: str | os.PathLike[str], target: str) -> None:
        message = f"a symbolic link to {target}, outside the vault"
        super().__init__(message)
        self.strerror = message
        self.filename = str(path)
        self.target = target


class TooLarge(OSError):
    """The file is larger than the cap of the read that was asked for."""

    def __init__(self, path: str | os.PathLike[str], size: int, cap: int) -> None:
        message = f"{size / 1e6:.1f} MB, over the {cap / 1e6:.0f} MB limit"
        super().__init__(message)
        self.strerror = message
        self.filename = str(path)
        self.size = size
        self.cap = cap


def kind_of_mode(mode: int) -> str:
    """What a non-regular file is, in words (for warnings)."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a plain file"


def check_regular(path: str | os.PathLike[str], st: os.stat_result) -> None:
    """Raise :class:`NotRegularFile` unless ``st`` (of ``path``) is a regular file."""
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(path, kind_of_mode(st.st_mode))


def outside_link(root: Path, relpath: str) -> str | None:
    """The target of ``root/relpath`` when it is a symlinked file leading outside the vault
    (and outside the folder that holds the link), else None. Folders are never checked here:
    a symlinked folder is part of the vault, as in Obsidian."""
    full = Path(root) / relpath
    try:
        if not full.is_symlink():
            return None
        target = os.path.realpath(full)
        real_root = os.path.realpath(root)
        real_parent = os.path.realpath(full.parent)
    except (OSError, ValueError):
        return None
    for base in (real_root, real_parent):
        if target == base or target.startswith(base.rstrip(os.sep) + os.sep):
            return None
    return target


def open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """Open a regular file for reading without blocking: ``(fd, fstat)``; the caller closes ``fd``.

    The path is ``stat``-ed first, so a device is never even opened; ``O_NONBLOCK`` makes an open
    of a FIFO swapped in meanwhile return at once, and ``fstat`` on the descriptor decides."""
    check_regular(path, os.stat(path))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        check_regular(path, st)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_bytes(path: str | os.PathLike[str], *, max_bytes: int = MAX_READ_BYTES) -> bytes:
    """The content of a regular file; :class:`TooLarge` past ``max_bytes`` (never reads more)."""
    fd, st = open_regular(path)
    try:
        if st.st_size > max_bytes:
            raise TooLarge(path, st.st_size, max_bytes)
        chunks = []
        total = 0
        while True:
            block = os.read(fd, min(_BLOCK, max_bytes + 1 - total))
            if not block:
                break
            chunks.append(block)
            total += len(block)
            if total > max_bytes:  # grew while being read
                raise TooLarge(path, total, max_bytes)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], *, max_bytes: int = MAX_READ_BYTES, errors: str = "strict") -> str:
    """:func:`read_bytes` decoded as UTF-8."""
    return read_bytes(path, max_bytes=max_bytes).decode("utf-8", errors)


def read_head(path: str | os.PathLike[str], n: int) -> bytes:
    """At most the first ``n`` bytes of a regular file."""
    fd, _ = open_regular(path)
    try:
        return os.read(fd, n)
    finally:
        os.close(fd)


def sha256(path: str | os.PathLike[str], *, max_bytes: int = MAX_READ_BYTES) -> str:
    """sha256 of a regular file's bytes. A file over ``max_bytes`` is not read at all: its
    fingerprint is its size and mtime (it is skipped as too large anyway)."""
    fd, st = open_regular(path)
    try:
        if st.st_size > max_bytes:
            return f"size:{st.st_size}:mtime:{st.st_mtime_ns}"
        h = hashlib.sha256()
        total = 0
        while total <= max_bytes:
            block = os.read(fd, _BLOCK)
            if not block:
                break
            h.update(block)
            total += len(block)
        return h.hexdigest()
    finally:
        os.close(fd)
