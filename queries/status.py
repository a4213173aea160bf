"""What an index holds and who writes it: the ``tropegraph status --json`` document.

Shared by the CLI, the MCP server's ``status`` tool and the web explorer, so the three agree.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any


def index_status(index: Any, *, vault: Path | str | None = None) -> dict[str, Any]:
    """The status of an open (read-only) index: vault, location, model, counts, last update, writer.

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
        "last_update": dt.datetime.fromtimestamp(float(updated)).isoformat(timespec="seconds") if updated else None,
        "writer": lock.to_dict() if lock else None,
        "watcher": bool(lock and lock.is_watcher),
        # derived data behind the turns (a run killed after its last commit): the next run fixes it
        "pending": [p.to_dict() for p in pending(index.db)],
    }
