"""The one way tropegraph writes a file it owns: atomically, durably, with ordinary permissions.

A crash mid-write must never leave a half-written report note, curation file or service unit:
write a uniquely named temp file in the same folder, fsync it, then ``os.replace`` it over the
target (atomic on POSIX and Windows).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

#: A temporary file of ``atomic_write`` older than this was left by a killed process.
STALE_TEMP_SECONDS = 600.0


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


def remove_stale_temps(folder: Path, name: str | None = None) -> list[str]:
    """Delete the temporary files ``atomic_write`` left in ``folder`` when a kill cut a save
    short (``.<name>.<random>.tmp``, older than ``STALE_TEMP_SECONDS``: a younger one may be
    another process' save in progress); only those of ``name`` when given. Return their names."""
    pattern = f".{name}.*.tmp" if name else ".*.tmp"
    now, gone = time.time(), []
    try:
        candidates = list(Path(folder).glob(pattern))
    except OSError:
        return gone
    for path in candidates:
        try:
            if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                path.unlink()
                gone.append(path.name)
        except OSError:
            continue
    return gone
