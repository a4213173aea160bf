"""Obsidian link resolution: which file does ``[[target]]`` point at?

Obsidian matches link text against file paths case-insensitively, with ``.md`` optional,
by the shortest path that ends with the link text; when several files share a name it prefers
the one next to the linking note, then the one closest to the vault root. Aliases from
frontmatter resolve too, after real file names. Relative links (``./x``, ``../x``) resolve
against the linking note's folder.
"""
from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping


def _key(path: str) -> str:
    """Case-folded path without a trailing ``.md``."""
    p = path.strip().replace("\\", "/").lstrip("/").casefold()
    return p.removesuffix(".md")


def _rank(path: str, source_dir: str | None) -> tuple[int, int, int, str]:
    near = 0 if source_dir is not None and posixpath.dirname(path) == source_dir else 1
    return (near, path.count("/"), len(path), path)


class Resolver:
    """Resolve link targets to vault-relative paths.

    ``paths``: every file in the vault (notes and attachments), vault-relative POSIX.
    ``aliases``: note path → its frontmatter aliases.
    """

    def __init__(self, paths: Iterable[str], aliases: Mapping[str, Iterable[str]] | None = None) -> None:
        self._exact: dict[str, list[str]] = defaultdict(list)
        self._by_name: dict[str, list[str]] = defaultdict(list)
        self._alias: dict[str, list[str]] = defaultdict(list)
        self.paths: list[str] = []
        for path in paths:
            self.paths.append(path)
            key = _key(path)
            self._exact[key].append(path)
            self._by_name[key.rsplit("/", 1)[-1]].append(path)
        for path, names in (aliases or {}).items():
            for name in names:
                if name and str(name).strip():
                    self._alias[_key(str(name))].append(path)

    def resolve(self, target: str, source: str | None = None) -> str | None:
        """The path ``target`` links to, or None. ``source`` is the linking note's path."""
        target = target.strip().split("#", 1)[0].strip()
        if not target:
            return source  # [[#Heading]] points at the note itself
        source_dir = posixpath.dirname(source) if source is not None else None
        if target.startswith(("./", "../")) and source_dir is not None:
            joined = posixpath.normpath(posixpath.join(source_dir, target))
            if joined.startswith("../"):
                return None
            target = joined
        key = _key(target)
        if key in self._exact:
            return min(self._exact[key], key=lambda p: _rank(p, source_dir))
        name = key.rsplit("/", 1)[-1]
        suffix = "/" + key
        candidates = [p for p in self._by_name.get(name, ()) if ("/" + _key(p)).endswith(suffix)]
        if candidates:
            return min(candidates, key=lambda p: _rank(p, source_dir))
        if key in self._alias:
            return min(self._alias[key], key=lambda p: _rank(p, source_dir))
        return None

    def link_text(self, path: str) -> str:
        """The shortest link text that resolves to ``path`` from anywhere (``.md`` dropped)."""
        bare = path[:-3] if path.lower().endswith(".md") else path
        parts = bare.split("/")
        for k in range(1, len(parts) + 1):
            text = "/".join(parts[-k:])
            if self.resolve(text) == path:
                return text
        return bare
