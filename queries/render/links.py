"""Links to source notes that Obsidian, browsers and Markdown tables all read correctly."""
from __future__ import annotations

import re
from urllib.parse import quote

# Characters that break a [[wikilink]] target (formats.md §4.3).
_WIKILINK_UNSAFE = re.compile(r"[#^\[\]|]")
_ALIAS_UNSAFE = re.compile(r"[\[\]|#^]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|<>^=$%~])")
_SPACE = re.compile(r"\s+")


def obsidian_uri(vault_name: str, path: str) -> str:
    """``obsidian://open?vault=…&file=…``: opens the note from a browser."""
    path = path.removesuffix(".md")
    return f"obsidian://open?vault={quote(vault_name, safe='')}&file={quote(path, safe='')}"


def md_text(text: str) -> str:
    """Note text as inert Markdown: one line, no links, tags, HTML, emphasis or table breaks."""
    text = _SPACE.sub(" ", text).strip()
    return _MD_SPECIAL.sub(r"\\\1", text)


def note_link(path: str, title: str, *, in_table: bool = False) -> str:
    """A link to a vault note.

    ``[[path|title]]`` normally; a percent-encoded Markdown link when the path holds ``#``, ``^``,
    ``[``, ``]`` or ``|`` (a wikilink can never reach such a file). In tables ``|`` becomes ``\\|``.
    """
    title = _SPACE.sub(" ", title).strip() or path.rsplit("/", 1)[-1].removesuffix(".md")
    if _WIKILINK_UNSAFE.search(path):
        text = re.sub(r"([\\\[\]|<>])", r"\\\1", title)
        return f"[{text}]({quote(path, safe='/')})"
    target = path.removesuffix(".md")
    # an alias takes no backslash escapes: drop what breaks the link, defuse HTML with look-alikes
    alias = _ALIAS_UNSAFE.sub(" ", title).replace("<", "‹").replace(">", "›").strip() or target
    sep = "\\|" if in_table else "|"
    return f"[[{target}{sep}{alias}]]"


def safe_file_name(name: str, *, limit: int = 80) -> str:
    """A note file name (without ``.md``) that every OS and every Obsidian link accepts."""
    name = re.sub(r'[\\/:*?"<>|#^\[\]\x00-\x1f]', " ", name)
    name = _SPACE.sub(" ", name).strip(" .")
    return name[:limit].rstrip(" .") or "metaphor"
