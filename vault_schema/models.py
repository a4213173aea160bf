"""The data model every other part of tropegraph stands on.

Plain, typed, frozen dataclasses: a parsed note is a value. Nothing here touches the
file system, SQLite, FAISS or an embedding model.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

#: What every time tropegraph outputs is: the local wall-clock time the note shows (turn headers,
#: ``Created:``), without an offset; a conversation's ``created``/``updated`` too (shifted from the
#: ISO UTC frontmatter by ``utc_offset`` when the note shows both). JSON outputs carry it as ``times``.
TIMES = "local"

Role = Literal["user", "assistant"]
NoteKind = Literal[
    "conversation",  # a Nexus conversation (frontmatter or body-only callouts)
    "note",  # any other Markdown note: searchable by passage
    "artifact",  # a Nexus artifact note (Claude): not a conversation, skipped for turns
    "import-report",  # a Nexus import report
    "tropegraph-report",  # a note tropegraph itself wrote (`tropegraph: report`); never indexed
    "empty",  # empty or unreadable content (binary, blank)
]


@dataclass(frozen=True)
class ParseWarning:
    """Something odd in a note that did not stop parsing."""

    path: str
    """Vault-relative POSIX path of the note."""
    line: int | None
    """1-based line number in the original file, when known."""
    code: str
    """Short machine-readable kind, e.g. ``mojibake-repaired``, ``bad-yaml``, ``binary``."""
    message: str
    """One human sentence."""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class Attachment:
    """A nested ``nexus_attachment`` / ``nexus_artifact`` / ``nexus_prompt`` / ``nexus_canvas`` callout."""

    kind: str
    """``attachment``, ``artifact``, ``prompt`` or ``canvas``."""
    title: str
    """The callout title, e.g. ``**dalle_x.png** (image/png) - 1.6 MB`` without the ``**``."""
    text: str
    """The callout body with its quote markers removed (links, prompt text, extracted content)."""
    line: int | None = None
    """1-based line of the callout header in the file."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "title": self.title, "text": self.text, "line": self.line}


@dataclass(frozen=True)
class Turn:
    """One message of a conversation."""

    uid: str
    """The ``<!-- UID: … -->`` id, or a derived stable id when the note has none (see ``uid_derived``)."""
    role: Role
    """``user`` or ``assistant`` (every non-user Nexus role renders as assistant)."""
    model: str | None
    """Model named in the header (``**Assistant · gpt-4o**``), else None."""
    time: dt.datetime | None
    """Local wall-clock time from the turn header (naive: Nexus writes local time without offset)."""
    text: str
    """Clean message text: one quote level removed, attachments pulled out. This is what gets embedded."""
    attachments: tuple[Attachment, ...] = ()
    """Nested callouts found in the turn, kept out of ``text``."""
    position: int = 0
    """0-based index of the turn in its note."""
    line: int | None = None
    """1-based line of the turn header in the file."""
    uid_derived: bool = False
    """True when the UID was missing and derived from conversation id + position + text hash."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "role": self.role,
            "model": self.model,
            "time": self.time.isoformat(timespec="seconds") if self.time else None,
            "text": self.text,
            "attachments": [a.to_dict() for a in self.attachments],
            "position": self.position,
            "line": self.line,
            "uid_derived": self.uid_derived,
        }


@dataclass(frozen=True)
class Link:
    """A wikilink, embed or internal Markdown link."""

    target: str
    """The note or file named, without heading/block/alias (``""`` for a same-note ``[[#Heading]]``)."""
    heading: str | None = None
    """``Heading`` of ``[[Note#Heading]]``."""
    block: str | None = None
    """``id`` of ``[[Note#^id]]``."""
    alias: str | None = None
    """Display text of ``[[Note|alias]]``."""
    embed: bool = False
    """True for ``![[…]]``."""
    kind: Literal["wikilink", "markdown"] = "wikilink"
    """Which syntax wrote it."""
    line: int | None = None
    """1-based line in the file."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "heading": self.heading,
            "block": self.block,
            "alias": self.alias,
            "embed": self.embed,
            "kind": self.kind,
            "line": self.line,
        }


@dataclass(frozen=True)
class Tag:
    """An Obsidian tag, from frontmatter ``tags:`` or ``#tag`` in the body."""

    name: str
    """Tag without ``#``, case preserved (compare with ``.casefold()``); nested parts keep ``/``."""
    source: Literal["frontmatter", "body", "turn"] = "body"
    """Where it was written: frontmatter, note body, or inside chat content (not note metadata)."""
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "line": self.line}


@dataclass(frozen=True)
class Heading:
    """A Markdown heading."""

    level: int
    text: str
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "text": self.text, "line": self.line}


@dataclass(frozen=True)
class Conversation:
    """The chat-export part of a conversation note."""

    conversation_id: str
    """Frontmatter ``conversation_id`` (or 1.7-dev ``uid``); derived from the path for body-only notes."""
    title: str
    """From ``# Title:``, never from ``aliases`` or the file name (Nexus mangles both)."""
    provider: str | None = None
    plugin_version: str | None = None
    created: dt.datetime | None = None
    """Creation time, naive **local** wall-clock time like ``Turn.time`` (comparable with it): read
    from a locale frontmatter/header, or the ISO UTC frontmatter (≥1.3.0) shifted by ``utc_offset``.
    None when only a UTC time is known and the offset cannot be told."""
    updated: dt.datetime | None = None
    """Last update, local like ``created``."""
    created_utc: dt.datetime | None = None
    """Creation time in UTC (naive): the ISO frontmatter, or ``created`` minus ``utc_offset``."""
    updated_utc: dt.datetime | None = None
    utc_offset: int | None = None
    """Minutes east of UTC of the note's local times, when the note shows one moment both ways
    (ISO frontmatter vs ``Created:`` header or first turn); None when it cannot be told (≤1.2.0)."""
    url: str | None = None
    models: tuple[str, ...] = ()
    turns: tuple[Turn, ...] = ()
    id_derived: bool = False
    """True when no id was in the frontmatter (body-only note)."""


@dataclass(frozen=True)
class Note:
    """A parsed Markdown note. ``parse_note`` always returns one, however bad the input."""

    path: str
    """Vault-relative POSIX path."""
    kind: NoteKind
    title: str
    """Conversation title, or the file name without ``.md``."""
    frontmatter: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    aliases: tuple[str, ...] = ()
    tags: tuple[Tag, ...] = ()
    links: tuple[Link, ...] = ()
    headings: tuple[Heading, ...] = ()
    block_ids: tuple[str, ...] = ()
    body: str = ""
    """Body text without frontmatter (after mojibake repair); for plain notes this is what gets embedded."""
    conversation: Conversation | None = None
    warnings: tuple[ParseWarning, ...] = ()
    mojibake_repaired: bool = False
    """True when the text was mis-decoded UTF-8 and has been repaired."""
    sha256: str = ""
    """Hash of the raw bytes as read."""

    @property
    def turns(self) -> tuple[Turn, ...]:
        return self.conversation.turns if self.conversation else ()

    def to_dict(self) -> dict[str, Any]:
        """The ``tropegraph parse --json`` shape."""
        conv = self.conversation
        return {
            "path": self.path,
            "kind": self.kind,
            "title": self.title,
            "conversation_id": conv.conversation_id if conv else None,
            "provider": conv.provider if conv else None,
            "plugin_version": conv.plugin_version if conv else None,
            "created": _local_iso(conv.created, conv.utc_offset) if conv and conv.created else None,
            "created_utc": conv.created_utc.isoformat(timespec="seconds") + "Z" if conv and conv.created_utc else None,
            "utc_offset": _offset_text(conv.utc_offset) if conv else None,
            "times": TIMES,
            "url": conv.url if conv else None,
            "aliases": list(self.aliases),
            "turns": [t.to_dict() for t in self.turns],
            "links": [link.to_dict() for link in self.links],
            "tags": [t.to_dict() for t in self.tags],
            "headings": [h.to_dict() for h in self.headings],
            "block_ids": list(self.block_ids),
            "mojibake_repaired": self.mojibake_repaired,
            "warnings": [w.to_dict() for w in self.warnings],
        }


def _offset_text(minutes: int | None) -> str | None:
    """``+03:00`` for 180 minutes east of UTC; None when unknown."""
    if minutes is None:
        return None
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _local_iso(value: dt.datetime, minutes: int | None) -> str:
    """A local time in ISO form, with its UTC offset when known (``2025-07-24T14:45:12+03:00``)."""
    return value.isoformat(timespec="seconds") + (_offset_text(minutes) or "")
