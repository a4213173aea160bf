"""What a note's turns are made of for search: body passages and a few short *head* passages.

A plain note is split into pseudo-turns, one per heading section (``note_sections``). Every turn
is cut into body passages by ``indexer.chunking``. Some turns also get a head passage, so a note
is found by what it is called, not only by what it says (people search for a page by its title or
an alias, often in another language than its text):

- the first turn of a note or conversation: its title, its ``aliases`` and its frontmatter
  ``description`` / ``summary`` (kind ``HEAD_TITLE``);
- every other section of a plain note: its heading path, ``Title › Heading › Subheading``
  (kind ``HEAD_PATH``).

A conversation's title (kind ``HEAD_CONVERSATION``) names what the whole exchange is about, not
its first turn, so search uses it as a prior for every turn of the conversation rather than as a
passage of its own (measured on planted chat vaults: a title matching the query outranked the
turn that answered it). Head passages are indexed like body passages (embedded and
keyword-searchable) but are never shown as a snippet and never stand for a turn's content
(``similar``, graph echoes).

Each passage also records its script (``passages.script``): semantic search corrects the
multilingual model's bias towards passages in the query's own language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from indexer.chunking import Chunker
from vault_schema.models import Note, Turn

BODY, HEAD_TITLE, HEAD_PATH, HEAD_CONVERSATION = 0, 1, 2, 3
"""``passages.kind``: body text, a note's names and description, a section's heading path, a
conversation's title (and aliases, description)."""
TITLE_KINDS = (HEAD_TITLE, HEAD_CONVERSATION)
NO_SCRIPT, CYRILLIC, LATIN = 0, 1, 2
"""``passages.script``: no letters, mostly Cyrillic letters, mostly other (Latin) letters."""
PATH_SEPARATOR = " › "
DESCRIPTION_KEYS = ("description", "summary")
MAX_HEAD_CHARS = 600
"""A head passage is short: a long description is cut (at a word) to about this many characters."""

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
_LETTER = re.compile(r"[^\W\d_]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")


@dataclass(frozen=True)
class Passage:
    kind: int
    start: int
    """Character offset in the turn text (0 for head passages, which are not part of it)."""
    text: str


def script_of(text: str) -> int:
    """``CYRILLIC`` when at least half the letters of ``text`` are Cyrillic, ``LATIN`` when fewer
    are, ``NO_SCRIPT`` without letters."""
    letters = len(_LETTER.findall(text))
    if not letters:
        return NO_SCRIPT
    return CYRILLIC if 2 * len(_CYRILLIC.findall(text)) >= letters else LATIN


def _sections(note: Note) -> list[tuple[str, tuple[str, ...], list[str]]]:
    """``(heading, heading path, lines)`` per section; a section holding only its heading is
    dropped (its heading lives on in its subsections' paths)."""
    sections: list[tuple[str, tuple[str, ...], list[str]]] = [("", (), [])]
    stack: list[tuple[int, str]] = []
    in_fence = False
    for line in note.body.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m:
            level, title = len(m.group(1)), m.group(2).strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            sections.append((title, tuple(t for _, t in stack), [line]))
        else:
            sections[-1][2].append(line)
    out = []
    for heading, path, lines in sections:
        text = "\n".join(lines).strip()
        if not text or (heading and len([x for x in lines if x.strip()]) == 1):
            continue
        out.append((heading, path, lines))
    return out


def note_turns(note: Note) -> list[tuple[Turn, tuple[str, ...]]]:
    """A plain note as pseudo-turns (role ``note``), one per heading section, uid = heading +
    ordinal, each with its heading path."""
    turns: list[tuple[Turn, tuple[str, ...]]] = []
    seen: dict[str, int] = {}
    for heading, path, lines in _sections(note):
        n = seen.get(heading, 0)
        seen[heading] = n + 1
        uid = f"{heading or '(top)'}#{n}"
        role: Any = "note"  # plain-note sections: not a chat role
        text = "\n".join(lines).strip()
        turns.append((Turn(uid=uid, role=role, model=None, time=None, text=text, position=len(turns)), path))
    return turns


def note_sections(note: Note) -> list[Turn]:
    """A plain note as pseudo-turns (see ``note_turns``), without their heading paths."""
    return [t for t, _ in note_turns(note)]


def _key(text: str) -> str:
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def _short(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_HEAD_CHARS:
        return text
    return text[:MAX_HEAD_CHARS].rsplit(" ", 1)[0]


def title_head(note: Note, title: str) -> str:
    """The head passage of a note's first turn: title, aliases and description, one per line,
    without repeats (Nexus writes the title again as an alias)."""
    lines: list[str] = []
    seen: set[str] = set()
    candidates = [title, *note.aliases]
    for key in DESCRIPTION_KEYS:
        value = note.frontmatter.get(key) if isinstance(note.frontmatter, dict) else None
        if isinstance(value, str):
            candidates.append(value)
    for text in candidates:
        if not isinstance(text, str):
            continue
        text = _short(text)
        k = _key(text)
        if k and k not in seen:
            seen.add(k)
            lines.append(text)
    return "\n".join(lines)


def heads(note: Note, turns: list[Turn], paths: list[tuple[str, ...]] | None = None) -> list[tuple[int, str]]:
    """The head passage ``(kind, text)`` of each turn (text '' for none), in order."""
    conv = note.conversation
    title = conv.title if conv is not None and conv.title else note.title
    out = [(BODY, "")] * len(turns)
    if not turns:
        return out
    first = title_head(note, title)
    paths = paths or []
    for i, path in enumerate(paths[: len(turns)]):
        if not path:
            continue
        if i == 0:  # a note opening with a heading: its path joins the names
            if _key(path[-1]) != _key(title):
                first = "\n".join([first, PATH_SEPARATOR.join([title, *path])])
        else:
            out[i] = (HEAD_PATH, PATH_SEPARATOR.join([title, *path]))
    out[0] = (HEAD_CONVERSATION if conv is not None else HEAD_TITLE, first)
    return out


def head_passages(head: tuple[int, str]) -> list[Passage]:
    """The passages of a head: all of it, and each of its lines on its own when it has several.

    A title head reads "Ежедневные заметки / Daily notes / <description>": embedded as one text,
    an English alias is drowned by the Russian around it, so each name is also a passage (measured
    on the help vault's Russian pages, English questions ranked by title heads alone: right page
    in the top 3 for 42% with whole heads, 49% with whole heads and their lines; Russian questions
    unchanged)."""
    text = head[1].strip()
    if not text:
        return []
    out = [Passage(head[0], 0, text)]
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) > 1:
        out += [Passage(head[0], 0, line) for line in dict.fromkeys(lines)]
    return out


def turn_passages(chunker: Chunker, text: str, head: tuple[int, str] = (BODY, "")) -> list[Passage]:
    """Body passages of ``text`` (see ``indexer.chunking``), then its head passages (``head_passages``)."""
    out = [Passage(BODY, c.start, c.text) for c in chunker.split(text)]
    return out + head_passages(head)
