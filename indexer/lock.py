"""One writer per index: an ``flock`` on ``writer.lock`` in the index folder.

The kernel drops an ``flock`` when its process dies, so a crash or SIGKILL never leaves a
stale lock; the file only carries who holds it (pid, command, start time) for messages and
``tropegraph status``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from indexer.errors import IndexLocked
from vault_schema import files

LOCK_NAME = "writer.lock"


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or last held) the writer lock."""

    pid: int | None
    command: str | None
    started: str | None

    @property
    def is_watcher(self) -> bool:
        return bool(self.command) and " watch" in f" {self.command}"

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "command": self.command, "started": self.started}


def _read_info(path: Path) -> LockInfo:
    try:
        data = json.loads(files.read_text(path, max_bytes=64 * 1024) or "{}")  # never blocks
    except (OSError, ValueError):
        data = {}
    return LockInfo(data.get("pid"), data.get("command"), data.get("started"))


def default_command() -> str:
    """A short description of this process, e.g. ``tropegraph index --full``."""
    args = [os.path.basename(sys.argv[0]) if sys.argv else "python", *sys.argv[1:]]
    return " ".join(args)[:200]


class WriterLock:
    """Holds the writer lock of one index folder until ``release()``."""

    def __init__(self, index_dir: Path, command: str | None = None) -> None:
        self.path = Path(index_dir) / LOCK_NAME
        self.command = command or default_command()
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            info = _read_info(self.path)
            raise IndexLocked(self.path.parent, info.pid, info.command, info.started) from None
        info = {
            "pid": os.getpid(),
            "command": self.command,
            "started": dt.datetime.now().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> Self:
        return self.acquire() if not self.held else self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(index_dir: Path) -> LockInfo | None:
    """Who holds the writer lock right now, or None when nobody writes the index."""
    path = Path(index_dir) / LOCK_NAME
    if not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_info(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
