"""Run a check as an unprivileged user when the tests run as root (CI containers do).

Root reads every file whatever its mode, so "permission denied" paths cannot be reached as root.
``as_nobody(fn, *args)`` forks, drops to uid/gid ``nobody`` in the child, runs ``fn`` there and
returns its (picklable) result or re-raises its exception in the caller. The child only runs code
already imported: the interpreter's own files may be unreadable to ``nobody``. Files the child
must reach go under ``shared_dir()`` (world-traversable), not pytest's 0700 ``tmp_path``.
"""
from __future__ import annotations

import os
import pickle
import pwd
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

IS_ROOT = os.geteuid() == 0


def shared_dir(owner_nobody: bool = True) -> Path:
    """A fresh folder anyone can traverse (removed by the caller: ``shutil.rmtree``)."""
    path = Path(tempfile.mkdtemp(prefix="tropegraph-nobody-"))
    path.chmod(0o755)
    if owner_nobody and IS_ROOT:
        give_to_nobody(path)
    return path


def give_to_nobody(path: Path) -> None:
    """chown -R nobody PATH (so the child can write there)."""
    user = pwd.getpwnam("nobody")
    for p in [path, *path.rglob("*")]:
        os.chown(p, user.pw_uid, user.pw_gid, follow_symlinks=False)


def as_nobody(fn: Callable[..., Any], *args: Any) -> Any:
    user = pwd.getpwnam("nobody")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            result: tuple[str, Any] = ("ok", fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the parent
            result = ("error", exc)
        if result[0] == "error":  # exceptions with custom __init__ do not unpickle: send their parts
            exc = result[1]
            result = ("raise", (type(exc).__module__, type(exc).__qualname__, str(exc), dict(vars(exc))))
        try:
            data = pickle.dumps(result)
        except Exception as exc:  # noqa: BLE001
            data = pickle.dumps(("raise", ("builtins", "RuntimeError", f"unpicklable result: {exc}", {})))
        with os.fdopen(write, "wb") as out:
            out.write(data)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "raise":
        import importlib

        module, name, message, attrs = value
        cls = importlib.import_module(module)
        for part in name.split("."):
            cls = getattr(cls, part)
        error = cls.__new__(cls)
        BaseException.__init__(error, message)
        error.__dict__.update(attrs)
        raise error
    return value


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
