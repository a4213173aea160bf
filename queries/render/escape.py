"""The one escaping path per output format for strings that come from the vault.

Note titles, file names, sentences, metaphor labels and paths are the user's data and can hold
anything a file system allows: newlines, backticks, ``]]``, ``|``, ``<``, control characters,
bidi overrides. Whatever reaches a report note, a file name, YAML, a Mermaid chart, an HTML
page or a terminal goes through exactly one function here, so a note named
``x\\n```dataviewjs`` can never become code in Obsidian. Property tests over hostile strings
(``tests/torture/test_escape.py``) hold each function to its contract.

- :func:`md_text` — inline Markdown text: one line, renders as exactly the text it was given.
- :func:`note_link` — a link to a vault note (``[[wikilink]]`` when the path allows one).
- :func:`file_name` — a file name every OS and every Obsidian link accepts.
- :func:`yaml_scalar` — a YAML scalar that loads back to the same string.
- :func:`mermaid_label` — a quoted label inside a Mermaid chart.
- :func:`html_text` — HTML text or attribute value.
- :func:`terminal_text` — one line for a terminal, without escape sequences
  (:func:`terminal_chars`: the same, one character for one, for text with highlight offsets).
"""
from __future__ import annotations

import html as _html
import re
from typing import Any
from urllib.parse import quote

_SPACE = re.compile(r"\s+")
# C0/C1 controls that \s does not already cover, DEL, and the bidi embeddings/overrides/isolates
# that make text display in another order than it is stored.
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u202a-\u202e\u2066-\u2069\ufeff]")
# Lone surrogates: what ``os.fsdecode`` makes of a file name that is not UTF-8. No UTF-8 file or
# terminal can hold them, so text shows U+FFFD instead (URLs keep the original bytes).
_SURROGATE = re.compile("[\ud800-\udfff]")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space, control
    characters removed and lone surrogates shown as U+FFFD: the base of every inline format."""
    return _SURROGATE.sub("\ufffd", _INVISIBLE.sub("", _SPACE.sub(" ", text))).strip()


# --------------------------------------------------------------------------- Markdown

# Backslash-escapable ASCII punctuation that starts Markdown or Obsidian syntax: emphasis,
# code, links and wikilinks, tags, tables, HTML and comments, highlights, math, footnotes,
# block references, strike-through, entities.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|<>^=$%~&])")
_MD_LIST_ITEM = re.compile(r"^(?:([-+])|(\d+)([.)]))")


def md_text(text: str) -> str:
    """Vault text as inert inline Markdown: one line, no links, tags, HTML, code, emphasis,
    math, comments or table breaks; it renders as the text itself (whitespace collapsed)."""
    out = _MD_SPECIAL.sub(r"\\\1", one_line(text))
    # never a list item, even at the start of a line: "\-", "1\."
    return _MD_LIST_ITEM.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", out)


# A wikilink target cannot hold these (formats.md §4.3), and a backtick, `<`, `$` or `%` next to
# it could pair with text after the link (code span, HTML, math, comment): such paths get a
# percent-encoded Markdown link instead, which Obsidian resolves the same way.
_WIKILINK_UNSAFE = re.compile(r"[#^\[\]|`<>$%\\]|[^\S ]")
_ALIAS_DROP = re.compile(r"[\[\]|#^]")


def _alias(title: str) -> str:
    """A wikilink alias: takes no backslash escapes, so what would break the link is dropped
    and what would start HTML or a code span is replaced by a look-alike."""
    alias = _ALIAS_DROP.sub(" ", one_line(title))
    alias = alias.replace("<", "‹").replace(">", "›").replace("`", "ˋ").replace("$", "＄").replace("%", "％")
    return _SPACE.sub(" ", alias).strip()


def note_link(path: str, title: str, *, in_table: bool = False) -> str:
    """A one-line link to the vault note ``path`` (vault-relative, with ``.md``), shown as ``title``.

    ``[[path|title]]`` when the path can be a wikilink target; otherwise a Markdown link with
    the path percent-encoded (``[title](Folder/a%0Ab.md)``). In tables ``|`` is escaped.
    """
    shown = one_line(title) or path.rsplit("/", 1)[-1].removesuffix(".md")
    target = path.removesuffix(".md")
    unsafe = _WIKILINK_UNSAFE.search(path) or _INVISIBLE.search(path) or _SURROGATE.search(path)
    if not target or unsafe or path != path.strip():
        return f"[{md_text(shown) or '…'}]({quote(path, safe='/', errors='surrogateescape')})"
    alias = _alias(shown) or target
    sep = "\\|" if in_table else "|"
    return f"[[{target}{sep}{alias}]]"


# --------------------------------------------------------------------------- file names

_FILE_UNSAFE = re.compile(r'[\\/:*?"<>|#^\[\]`$%]')
_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)


def file_name(name: str, *, limit: int = 80) -> str:
    """A note file name (without ``.md``) that every OS and every Obsidian link accepts: no path
    separators, no characters links or Windows reject, no controls, no leading/trailing dots or
    spaces, not a reserved Windows device name; ``metaphor`` when nothing is left."""
    name = one_line(_FILE_UNSAFE.sub(" ", name))
    name = _SPACE.sub(" ", name).strip(" .")[:limit].rstrip(" .")
    if _RESERVED.match(name):  # CON, NUL.x … are devices on Windows, whatever follows the dot
        name = "_" + name
    return name or "metaphor"


# --------------------------------------------------------------------------- YAML

_YAML_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_YAML_WORDS = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n", "nan", "inf"})
_YAML_NAMED = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\x00": "\\0"}


def _yaml_char(ch: str) -> str:
    if ch in _YAML_NAMED:
        return _YAML_NAMED[ch]
    o = ord(ch)
    # printable per the YAML spec, minus what YAML 1.1 reads as a line break (NEL, LS, PS) and BOM
    if 0x20 <= o <= 0x7E or (0xA0 <= o <= 0xD7FF and o not in (0x2028, 0x2029)) or (
        0xE000 <= o <= 0xFFFD and o != 0xFEFF
    ) or o >= 0x10000:
        return ch
    return f"\\x{o:02x}" if o <= 0xFF else f"\\u{o:04x}"


def yaml_scalar(value: Any) -> str:
    """A YAML scalar for ``value`` (None, bool, number or any string) that loads back equal.

    Strings are plain only when they are a simple word YAML cannot read as anything else;
    otherwise double-quoted with every non-printable character escaped."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _YAML_PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return '"' + "".join(_yaml_char(c) for c in text) + '"'


# --------------------------------------------------------------------------- Mermaid


def mermaid_label(text: str) -> str:
    """A double-quoted Mermaid label: one line, no quote, backtick, HTML or entity syntax."""
    text = one_line(text).replace('"', "'").replace("`", "'").replace("<", "‹").replace(">", "›")
    return '"' + text.replace("#", "＃").replace(";", "；") + '"'


# --------------------------------------------------------------------------- HTML

_HTML_DROP = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f]")


def html_text(text: str) -> str:
    """HTML-escaped text, safe in element content and in double- or single-quoted attributes;
    control characters (parse errors in HTML) are dropped."""
    return _html.escape(_SURROGATE.sub("\ufffd", _HTML_DROP.sub("", text)), quote=True)


# --------------------------------------------------------------------------- terminal

_TERMINAL_DROP = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_text(text: str) -> str:
    """One line for a terminal: whitespace collapsed, escape sequences and other controls
    shown as ``�`` (a title holding ``\\x1b]…`` must not drive the user's terminal)."""
    return _SURROGATE.sub("\ufffd", _TERMINAL_DROP.sub("\ufffd", _SPACE.sub(" ", text))).strip()


_ONE_SPACE = re.compile(r"\s")


def terminal_chars(text: str) -> str:
    """:func:`terminal_text` character for character: each whitespace character one space, each
    control, bidi override or lone surrogate one ``�``, nothing collapsed or stripped, so offsets
    into ``text`` (a snippet's highlighted matches) still point at the same characters."""
    return _SURROGATE.sub("\ufffd", _TERMINAL_DROP.sub("\ufffd", _ONE_SPACE.sub(" ", text)))
