"""Writing report files: the only place tropegraph ever writes inside a vault.

Everything goes into the report folder (default ``Tropegraph/``), each file atomically (temporary
file + ``os.replace``) and only when its content changed, so re-running ``report`` over an
unchanged index touches nothing and sync tools stay quiet. Stale notes are removed only when
they carry ``tropegraph: report`` in their frontmatter, so a user's own note is never deleted.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from indexer.fsutil import atomic_write, remove_stale_temps
from vault_schema import files
from vault_schema.errors import VaultError

DEFAULT_REPORT_DIR = "Tropegraph"
INDEX_NOTE = "Metaphors.md"
GRAPH_FILE = "graph.html"
STATE_KEY = "report_state"
"""Frontmatter key of the index note: what the report was made from and what it wrote (see
:func:`report_state`), so a report over an unchanged index is recognised without recomputing it."""
_REPORT_MARK = re.compile(r"\A---\r?\n(?:.*\r?\n)*?tropegraph:\s*[\"']?report[\"']?\s*\r?\n", re.MULTILINE)


class ReportDirError(VaultError):
    """The report folder is outside the vault or not a folder."""


@dataclass
class WriteResult:
    """What a report run did, by vault-relative path."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def report_root(vault: Path, report_dir: str | None) -> tuple[Path, str]:
    """The report folder's absolute path and its vault-relative POSIX name; refuses to leave the vault."""
    raw = (report_dir or DEFAULT_REPORT_DIR).strip().replace("\\", "/")
    rel = raw.strip("/")
    if not rel or raw.startswith("/") or ".." in PurePosixPath(rel).parts or re.match(r"[A-Za-z]:", rel):
        raise ReportDirError(
            f"report folder {report_dir!r} must be a folder inside the vault, e.g. --report-dir {DEFAULT_REPORT_DIR}"
        )
    root = vault / rel
    # A report folder (or a folder above it) that is a symlink to a place outside the vault
    # would make tropegraph write outside the vault; Obsidian-style links inside it are fine.
    real, inside = root.resolve(), Path(vault).resolve()
    if not real.is_relative_to(inside):
        raise ReportDirError(
            f"report folder {root} leads outside the vault (to {real}, through a symbolic link); "
            "tropegraph writes only inside the vault: remove the link or choose another --report-dir"
        )
    if root.exists() and not root.is_dir():
        raise ReportDirError(f"{root} is a file, not a folder: choose another --report-dir")
    return root, rel


def write_if_changed(path: Path, content: str | bytes) -> bool:
    """Atomically write ``content`` unless the file already holds exactly it. True when written."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        if files.read_bytes(path, max_bytes=len(data)) == data:
            return False
    except files.NotRegularFile as exc:
        raise ReportDirError(f"{path} is {exc.strerror.removeprefix('not a regular file but ')}, "
                             "not a report file: remove it or choose another --report-dir") from exc
    except (FileNotFoundError, files.TooLarge):
        pass
    atomic_write(path, data)
    return True


def is_report_note(path: Path) -> bool:
    """True when the note's frontmatter says ``tropegraph: report`` (so tropegraph may replace it)."""
    try:
        head = files.read_head(path, 4096).decode("utf-8", "replace")
    except OSError:
        return False
    return bool(_REPORT_MARK.match(head))


def write_files(
    vault: Path, rel_root: str, files: dict[str, str | bytes], *, prune: bool = False
) -> WriteResult:
    """Write ``files`` (paths relative to the report folder) and, with ``prune``, remove older report notes.

    A file that exists but is not a tropegraph report note is never overwritten: that is the user's
    note in our folder, and we stop with a clear error instead.
    """
    root = vault / rel_root
    result = WriteResult()
    if root.is_dir():
        remove_stale_temps(root)  # what a report run killed mid-save left behind
    for name, content in sorted(files.items()):
        path = root / name
        rel = f"{rel_root}/{name}"
        if path.suffix == ".md" and path.exists() and not is_report_note(path):
            raise ReportDirError(
                f"{rel} exists and is not a tropegraph report (no 'tropegraph: report' in its frontmatter): "
                "move it or choose another --report-dir"
            )
        (result.written if write_if_changed(path, content) else result.unchanged).append(rel)
    if prune and root.is_dir():
        for path in sorted(root.glob("*.md")):
            if path.name not in files and is_report_note(path):
                path.unlink()
                result.removed.append(f"{rel_root}/{path.name}")
    return result


def find_report_note(vault: Path, rel_root: str, metaphor_id: str) -> str | None:
    """The file name of the report note already written for ``metaphor_id``, if any."""
    root = vault / rel_root
    if not root.is_dir():
        return None
    wanted = re.compile(rf"^metaphor_id:\s*[\"']?{re.escape(metaphor_id)}[\"']?\s*$", re.MULTILINE)
    for path in sorted(root.glob("*.md")):
        if is_report_note(path):
            head = files.read_head(path, 4096).decode("utf-8", "replace").split("\n---", 1)[0]
            if wanted.search(head):
                return path.name
    return None


def note_names(items: Sequence[tuple[str, str]]) -> dict[str, str]:
    """A unique, link-safe file name for each ``(metaphor id, label)``; stable for a given input."""
    from queries.render.escape import file_name as safe_file_name

    names: dict[str, str] = {}
    used: set[str] = {INDEX_NOTE.casefold()}
    for mid, label in items:
        base = safe_file_name(label)
        name = f"{base}.md"
        if name.casefold() in used:
            name = f"{base} ({safe_file_name(mid, limit=40)}).md"
        n = 2
        while name.casefold() in used:
            name = f"{base} ({safe_file_name(mid, limit=40)}-{n}).md"
            n += 1
        used.add(name.casefold())
        names[mid] = name
    return names


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def inputs_digest(*parts: Any) -> str:
    """sha256 of everything a report is computed from (options, metaphors, occurrences, …), each
    part as canonical JSON (dataclasses as dicts), hashed part by part to keep memory flat."""
    h = hashlib.sha256()
    for part in parts:
        items = part.items() if isinstance(part, Mapping) else [part]
        for item in sorted(items, key=lambda kv: str(kv[0])) if isinstance(part, Mapping) else items:
            h.update(json.dumps(item, default=_plain, sort_keys=True, ensure_ascii=False).encode("utf-8"))
            h.update(b"\0")
    return h.hexdigest()


def files_digest(files: Mapping[str, str | bytes]) -> str:
    """sha256 over (name, content) of the given report files, by name."""
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        h.update(name.encode("utf-8") + b"\0" + (data.encode("utf-8") if isinstance(data, str) else data) + b"\0")
    return h.hexdigest()


def report_state(inputs: str, files: Mapping[str, str | bytes]) -> str:
    """The index note's ``report_state``: the inputs digest and the digest of the other files."""
    return f"{inputs}:{files_digest(files)}"


def report_is_current(vault: Path, rel_root: str, index_note: str, names: Sequence[str], inputs: str) -> bool:
    """True when the report folder already holds what a report of ``inputs`` writes: the index note
    records these inputs and the digest of ``names``, and those files are there, unchanged. Reading
    a few files is all a report over an unchanged index then costs (no timeline is recomputed)."""
    root = vault / rel_root
    try:
        head = files.read_head(root / index_note, 4096).decode("utf-8", "replace")
    except OSError:
        return False
    m = re.search(rf"^{STATE_KEY}:\s*[\"']?([0-9a-f]{{64}}):([0-9a-f]{{64}})[\"']?\s*$", head.split("\n---", 1)[0],
                  re.MULTILINE)
    if m is None or m.group(1) != inputs:
        return False
    current: dict[str, bytes] = {}
    for name in names:
        try:
            current[name] = files.read_bytes(root / name, max_bytes=256 * 1024 * 1024)
        except (OSError, files.TooLarge):
            return False
    return files_digest(current) == m.group(2)
