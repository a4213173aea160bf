"""Links to source notes that Obsidian, browsers and Markdown tables all read correctly.

The escaping itself lives in :mod:`queries.render.escape` (one path per output format); the
names here are kept for callers that import them from this module.
"""
from __future__ import annotations

from urllib.parse import quote

from queries.render.escape import file_name, md_text, note_link

__all__ = ["md_text", "note_link", "obsidian_uri", "safe_file_name"]


def obsidian_uri(vault_name: str, path: str) -> str:
    """``obsidian://open?vault=…&file=…``: the link Obsidian opens, the vault by name and the note by
    path without ``.md`` (the one definition: search hits, turns, notes, reports and the graph)."""
    path = path.removesuffix(".md")
    return (f"obsidian://open?vault={quote(vault_name, safe='', errors='surrogateescape')}"
            f"&file={quote(path, safe='', errors='surrogateescape')}")


def safe_file_name(name: str, *, limit: int = 80) -> str:
    """A note file name (without ``.md``) that every OS and every Obsidian link accepts."""
    return file_name(name, limit=limit)
