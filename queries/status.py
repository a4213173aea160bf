"""What an index holds and who writes it: the ``tropegraph status --json`` document.

Shared by the CLI, the MCP server's ``status`` tool and the web explorer, so the three agree.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any


def index_status(index: Any, *, vault: Path | str | None = None) -> dict[str, Any]:
    """The status of an open (read-only) index: vault, location, model, counts, last update
    (local time with its UTC offset), writer, the notes' parse warnings and the last run's outcome.

    ``vault`` is the vault the caller resolved; without it, the vault the index was built from
    (meta ``vault``) is reported as recorded.
    """
    from indexer.derived import pending
    from indexer.lock import holder

    meta = index.meta
    lock = holder(index.dir)
    updated = meta.get("updated_at")
    return {
        "vault": str(vault) if vault else meta.get("vault"),
        "index_dir": str(index.dir),
        "engine": meta.get("engine"),
        "model": meta.get("model"),
        "dim": int(meta["dim"]) if meta.get("dim") else None,
        "schema_version": index.schema_version,
        "counts": index.counts(),
        "last_update": _local(updated),
        "writer": lock.to_dict() if lock else None,
        "watcher": bool(lock and lock.is_watcher),
        # derived data behind the turns (a run killed after its last commit): the next run fixes it
        "pending": [p.to_dict() for p in pending(index.db)],
        "warnings": note_warnings(index.db),
        "last_run": last_run(meta),
    }


def _local(epoch: str | float | None) -> str | None:
    """An epoch as local time with its UTC offset (``2025-07-24T14:45:12+03:00``): unambiguous."""
    if epoch in (None, ""):
        return None
    return dt.datetime.fromtimestamp(float(epoch)).astimezone().isoformat(timespec="seconds")


def note_warnings(db: Any) -> list[dict[str, Any]]:
    """What parsing said about the indexed notes as they are now (mojibake repaired, broken
    frontmatter, ambiguous dates…): one dict per warning, by path. Kept with each note, so every
    run and ``status`` show them until the note changes, not only the run that first read it."""
    out: list[dict[str, Any]] = []
    for path, raw in db.execute("SELECT path, warnings FROM notes WHERE warnings != '[]' ORDER BY path"):
        try:
            items = json.loads(raw)
        except json.JSONDecodeError:
            continue
        for w in items if isinstance(items, list) else []:
            if isinstance(w, dict):
                out.append({"path": path, "line": w.get("line"), "code": w.get("code"), "message": w.get("message")})
    return out


def last_run(meta: dict[str, str]) -> dict[str, Any] | None:
    """The last indexing run's outcome (meta ``last_run``, written by ``indexer.pipeline``): when it
    finished, what it saw, the notes it could not read and the warnings it printed."""
    raw = meta.get("last_run")
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return None
    data["finished"] = _local(data.get("finished"))
    return data
