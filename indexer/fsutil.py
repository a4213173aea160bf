"""The one way tropegraph writes a file it owns: atomically, durably, with ordinary permissions.

A crash mid-write must never leave a half-written report note, curation file or service unit:
write a uniquely named temp file in the same folder, fsync it, then ``os.replace`` it over the
target (atomic on POSIX and Windows).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def file_mode() -> int:
    """The mode a plain new file gets under the current umask (``mkstemp`` would make it 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, content: str | bytes) -> None:
    """Replace ``path`` with ``content`` (str is UTF-8) in one step, creating parent folders."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the folder that refuses, not the random temp name
        raise OSError(exc.errno, exc.strerror, str(path.parent)) from exc
    try:
        os.chmod(tmp, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and not exc.filename:  # say which file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
