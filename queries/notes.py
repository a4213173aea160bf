"""Read one note of the vault as text, a page at a time, without ever leaving the vault.

Used where a path comes from outside (an assistant through MCP, a browser): only Markdown notes,
only below the vault folder (no ``..``, no absolute paths, no symlinked file that leads out, no
hidden folders such as ``.obsidian``), only regular files (``vault_schema.files``: a FIFO or
device named ``x.md`` is refused, never read), decoded as tropegraph reads notes (invalid bytes
replaced, mojibake repaired). Read-only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from queries.render.links import obsidian_uri
from vault_schema.errors import NoteReadError
from vault_schema.files import outside_link

#: Default page size: a long conversation note is read in several calls.
PAGE_CHARS = 20_000
#: Notes above this size are refused (the indexer skips them too).
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class NoteText:
    """A page of a note's text: ``text`` = the note's characters ``offset`` … ``offset + len(text)``."""

    path: str
    """Vault-relative POSIX path."""
    title: str
    text: str
    offset: int
    chars: int
    """Length of the whole note, in characters."""
    uri: str
    repaired: bool = False
    """True when mojibake (UTF-8 read as Mac Roman/cp1252) was repaired."""

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.text)
        return end if end < self.chars else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "title": self.title,
            "uri": self.uri,
            "chars": self.chars,
            "offset": self.offset,
            "next_offset": self.next_offset,
            "truncated": self.next_offset is not None or self.offset > 0,
            "repaired": self.repaired,
            "text": self.text,
        }


def note_path(vault: Path, path: str) -> tuple[str, Path]:
    """``(vault-relative POSIX path, file)`` of the note ``path`` names, or ``NoteReadError``.

    Accepts ``Folder/Note.md``, ``Folder/Note`` (Obsidian's link form) and Windows separators.
    """
    raw = (path or "").strip().replace("\\", "/")
    if not raw:
        raise NoteReadError("(empty)", "give the note's vault-relative path, e.g. Folder/Note.md")
    if "\x00" in raw:
        raise NoteReadError(repr(raw), "a path cannot contain NUL characters")
    pure = PurePosixPath(raw)
    if pure.is_absolute() or raw.startswith("~") or (len(raw) > 1 and raw[1] == ":"):
        raise NoteReadError(raw, "give a path relative to the vault folder (e.g. Folder/Note.md), not an absolute one")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if ".." in parts:
        raise NoteReadError(raw, "the path leaves the vault ('..'); give a path inside the vault")
    if any(p.startswith(".") for p in parts):
        raise NoteReadError(raw, "hidden folders and files (.obsidian, .trash, …) are not notes; give a note's path")
    if not parts:
        raise NoteReadError(raw, "give the note's vault-relative path, e.g. Folder/Note.md")
    rel = "/".join(parts)
    if not rel.lower().endswith(".md"):
        if (vault / (rel + ".md")).is_file():
            rel += ".md"
        else:
            raise NoteReadError(rel, "only Markdown notes (.md) can be read")
    target = outside_link(vault, rel)
    if target is not None:
        raise NoteReadError(rel, f"is a symbolic link to {target}, outside the vault; give a note inside the vault")
    full = vault / rel
    return rel, full


def read_note(vault: Path | str, path: str, *, offset: int = 0, max_chars: int = PAGE_CHARS) -> NoteText:
    """A page of the note ``path`` (vault-relative): at most ``max_chars`` characters from ``offset``.

    Raises ``NoteReadError`` (a ``VaultError`` whose message says what to do) for paths outside
    the vault or not a note, and for files that are missing, unreadable, binary or too large.
    """
    from vault_schema.files import NotRegularFile, TooLarge, read_bytes
    from vault_schema.mojibake import repair

    vault = Path(vault)
    rel, full = note_path(vault, path)
    if offset < 0:
        raise NoteReadError(rel, f"offset must be 0 or more (got {offset})")
    if max_chars < 1:
        raise NoteReadError(rel, f"max_chars must be at least 1 (got {max_chars})")
    try:
        data = read_bytes(full, max_bytes=MAX_BYTES)
    except FileNotFoundError as exc:
        raise NoteReadError(rel, "no such note in the vault (moved or deleted?); search to find its path") from exc
    except PermissionError as exc:
        raise NoteReadError(rel, "permission denied; check the file's read permissions") from exc
    except NotRegularFile as exc:
        raise NoteReadError(rel, f"is {exc.kind}, not a note file") from exc
    except TooLarge as exc:
        raise NoteReadError(rel, f"is {exc.strerror} for a note") from exc
    except OSError as exc:
        raise NoteReadError(rel, f"cannot be read ({exc.strerror or exc})") from exc
    if b"\x00" in data and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise NoteReadError(rel, "is a binary file, not a text note")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", "replace")
    else:
        text = data.decode("utf-8-sig", "replace")
    text, fixed, _ = repair(text)
    if offset > len(text):
        raise NoteReadError(rel, f"offset {offset} is past the end of the note ({len(text)} characters)")
    page = text[offset : offset + max_chars]
    return NoteText(
        path=rel,
        title=PurePosixPath(rel).stem,
        text=page,
        offset=offset,
        chars=len(text),
        uri=obsidian_uri(vault.name, rel),
        repaired=bool(fixed),
    )
