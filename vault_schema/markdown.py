"""Links, tags, headings and block ids of Markdown text, via markdown-it-py plus an Obsidian plugin.

A real Markdown parser (not regexes over raw text) is what keeps ``[[x]]`` and ``#tag`` inside
code spans and fenced blocks from counting as links and tags.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote

from vault_schema.models import Heading, Link, Tag

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline

_TAG_RE = re.compile(r"#([\w\-/\u2600-\u27BF\U0001F300-\U0001FAFF\uFE0F\u200D]+)")
_DIGITS_ONLY = re.compile(r"[\d_\-/]*")
_BLOCK_ID_RE = re.compile(r"(?:^|\s)\^([A-Za-z0-9-]+)[ \t]*$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
# A cheap test for "could this text hold a link, tag, heading or block id at all?"
_INTERESTING_RE = re.compile(r"\[|#|\^|^.*\n[=\-]+[ \t]*$", re.MULTILINE)


@dataclass
class Scan:
    links: list[Link] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    headings: list[Heading] = field(default_factory=list)
    block_ids: list[str] = field(default_factory=list)


def split_wikilink(inner: str) -> tuple[str, str | None, str | None, str | None]:
    """``Note#Heading|alias`` → (target, heading, block, alias); ``\\|`` (inside tables) also splits."""
    alias = None
    m = re.search(r"\\?\|", inner)
    if m:
        inner, alias = inner[: m.start()], inner[m.end() :].strip() or None
    target, _, frag = inner.partition("#")
    heading = block = None
    if frag.startswith("^"):
        block = frag[1:].strip() or None
    elif frag:
        heading = frag.strip() or None
    return target.strip(), heading, block, alias


def _wikilink_rule(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    embed = src.startswith("![[", pos)
    start = pos + 3 if embed else pos + 2
    if not (embed or src.startswith("[[", pos)):
        return False
    end = src.find("]]", start)
    if end < 0 or end == start:
        return False
    inner = src[start:end]
    if "\n" in inner or "[[" in inner:
        return False
    if not silent:
        token = state.push("obsidian_wikilink", "", 0)
        token.content = inner
        token.meta = {"embed": embed}
    state.pos = end + 2
    return True


def _tag_rule(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if src[pos] != "#" or (pos > 0 and not src[pos - 1].isspace()):
        return False
    m = _TAG_RE.match(src, pos)
    if not m:
        return False
    name = m.group(1).rstrip("/")
    if not name or _DIGITS_ONLY.fullmatch(name):
        return False
    if not silent:
        token = state.push("obsidian_tag", "", 0)
        token.content = name
    state.pos = m.end()
    return True


@cache
def _md() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"maxNesting": 40}).enable("table")
    md.inline.ruler.before("link", "obsidian_wikilink", _wikilink_rule)
    md.inline.ruler.before("link", "obsidian_tag", _tag_rule)
    return md


def _markdown_link(href: str, embed: bool, line: int | None) -> Link | None:
    href = href.strip()
    if not href or _SCHEME_RE.match(href):
        return None
    path, _, frag = unquote(href).partition("#")
    heading = block = None
    if frag.startswith("^"):
        block = frag[1:] or None
    elif frag:
        heading = frag
    return Link(target=path, heading=heading, block=block, embed=embed, kind="markdown", line=line)


def scan(text: str, first_line: int, tag_source: Literal["body", "turn"] = "body") -> Scan:
    """Links, tags, headings and block ids of ``text``; ``first_line`` is the file line of its line 1."""
    out = Scan()
    if not _INTERESTING_RE.search(text):
        return out
    tokens = _md().parse(text)
    base = 0
    heading_level: int | None = None
    for tok in tokens:
        if tok.map is not None:
            base = tok.map[0]
        if tok.type == "heading_open":
            heading_level = int(tok.tag[1:])
            continue
        if tok.type != "inline":
            continue
        line0 = first_line + base
        if heading_level is not None:
            out.headings.append(Heading(level=heading_level, text=tok.content.strip(), line=line0))
            heading_level = None
        if "^" in tok.content:
            for ln in tok.content.split("\n"):
                m = _BLOCK_ID_RE.search(ln)
                if m:
                    out.block_ids.append(m.group(1))
        offset = 0
        for child in tok.children or ():
            kind = child.type
            if kind in ("softbreak", "hardbreak"):
                offset += 1
            elif kind == "obsidian_wikilink":
                target, heading, block, alias = split_wikilink(child.content)
                out.links.append(
                    Link(target=target, heading=heading, block=block, alias=alias,
                         embed=bool(child.meta.get("embed")), line=line0 + offset)
                )
            elif kind == "obsidian_tag":
                out.tags.append(Tag(name=child.content, source=tag_source, line=line0 + offset))
            elif kind == "link_open":
                link = _markdown_link(str(child.attrGet("href") or ""), False, line0 + offset)
                if link:
                    out.links.append(link)
            elif kind == "image":
                link = _markdown_link(str(child.attrGet("src") or ""), True, line0 + offset)
                if link:
                    out.links.append(link)
    return out
