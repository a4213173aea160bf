"""Where the vault and its index are: flag, then environment, then a sensible default.

The index never lives inside the vault by default: Obsidian Sync and git would copy a
database that is rebuilt locally anyway.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vault_schema.errors import VaultNotFound

APP_NAME = "tropegraph"


def find_vault(vault: str | os.PathLike[str] | None = None, *, cwd: Path | None = None) -> Path:
    """The vault folder: ``vault`` if given, else ``TROPEGRAPH_VAULT``, else the nearest folder
    at or above ``cwd`` that holds ``.obsidian/``."""
    given = vault if vault else os.environ.get("TROPEGRAPH_VAULT") or None
    if given:
        path = Path(given).expanduser()
        if not path.exists():
            raise VaultNotFound(f"vault folder {path} does not exist; check --vault / TROPEGRAPH_VAULT")
        if not path.is_dir():
            raise VaultNotFound(f"{path} is not a folder; --vault takes the vault's top folder")
        if not os.access(path, os.R_OK | os.X_OK):
            raise VaultNotFound(f"vault folder {path} is not readable; check its permissions")
        return path.resolve()
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".obsidian").is_dir():
            return folder
    raise VaultNotFound(
        f"no Obsidian vault (a folder holding .obsidian/) at or above {start}; "
        "pass --vault PATH or set TROPEGRAPH_VAULT"
    )


def default_index_dir(vault: Path) -> Path:
    """``<user data dir>/tropegraph/<vault name>-<8 hex of its absolute path>``: one index per vault."""
    import platformdirs

    absolute = str(Path(vault).resolve())
    short = hashlib.sha256(absolute.encode("utf-8")).hexdigest()[:8]
    base = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return base / f"{Path(absolute).name or 'vault'}-{short}"


def resolve_index_dir(vault: Path, index_dir: str | os.PathLike[str] | None = None) -> Path:
    """``index_dir`` if given, else ``TROPEGRAPH_INDEX_DIR``, else ``default_index_dir(vault)``."""
    given = index_dir if index_dir else os.environ.get("TROPEGRAPH_INDEX_DIR") or None
    if given:
        return Path(given).expanduser().resolve()
    return default_index_dir(vault)
