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
_MAX_WIKILINK = 1000
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


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
    end = src.find("]]", start, start + _MAX_WIKILINK)  # bounded: no quadratic scans on '[[[[…'
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

    # markdown-it's own link/image rules are quadratic on runs of '[' (minutes for 1 MB of
    # '[[[['), so they are off; Markdown links are found by a bounded regex over the inline
    # text with code spans blanked (see _inline_links).
    md = MarkdownIt("commonmark", {"maxNesting": 40}).enable("table").disable(["link", "image"])
    md.inline.ruler.before("emphasis", "obsidian_wikilink", _wikilink_rule)
    md.inline.ruler.before("emphasis", "obsidian_tag", _tag_rule)
    return md


_MD_LINK_RE = re.compile(
    r"(?P<bang>!?)\[(?P<text>[^\[\]\n]{0,500})\]\(\s*(?:<(?P<angle>[^<>\n]{1,1000})>|(?P<href>[^\s()<>]{1,2000}))"
    r"(?:\s+(?:\"[^\"\n]{0,500}\"|'[^'\n]{0,500}'))?\s*\)"
)
_INLINE_CODE_RE = re.compile(r"`[^`\n]*`")
_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_QUOTE_PREFIX_RE = re.compile(r"^(?: {0,3}>[ \t]?)+")

_FENCE_LINE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*$")


def _closes(line: str, fence: str) -> bool:
    m = _FENCE_LINE_RE.match(line)
    return bool(m) and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)


def strip_quote_markers(text: str) -> str:
    """``text`` without blockquote markers: every run of ``>`` (any depth) at the start of a line
    goes, outside code fences (a ``>`` in code is content). The markers are syntax, not words:
    kept, a 10,000-deep quote made millions of ``>`` tokens to embed (issue #17)."""
    if ">" not in text:
        return text
    out: list[str] = []
    fence: str | None = None
    quoted = False  # the open fence started inside a quote: its lines carry markers too
    for line in text.split("\n"):
        if fence is not None and not quoted:
            out.append(line)
            if _closes(line, fence):
                fence = None
            continue
        m = _QUOTE_PREFIX_RE.match(line)
        body = line[m.end() :] if m else line
        if fence is not None:
            if _closes(body, fence):
                fence = None
        else:
            f = _FENCE_RE.match(body)
            if f:
                fence, quoted = f.group(1), m is not None
        out.append(body)
    return "\n".join(out)


FAST_SCAN_BYTES = 1_000_000
"""Texts larger than this are scanned line by line (linear) instead of by markdown-it (≈0.2–7 MB/s)."""


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


def _inline_links(text: str, line0: int, out: Scan) -> None:
    """Markdown links/images in inline text whose code spans are already blanked."""
    if "](" not in text:
        return
    for m in _MD_LINK_RE.finditer(text):
        href = m.group("angle") or m.group("href") or ""
        link = _markdown_link(href, bool(m.group("bang")), line0 + text.count("\n", 0, m.start()))
        if link:
            out.links.append(link)


def _tag_or_none(match: re.Match[str]) -> str | None:
    name = match.group(1).rstrip("/")
    return None if not name or _DIGITS_ONLY.fullmatch(name) else name


def scan_fast(text: str, first_line: int, tag_source: Literal["body", "turn"] = "body", headings: bool = True) -> Scan:
    """Linear line-by-line scan for huge texts: fences and single-backtick code are skipped."""
    out = Scan()
    fence: str | None = None
    for i, raw in enumerate(text.split("\n")):
        line = _QUOTE_PREFIX_RE.sub("", raw) if raw[:1] in "> " else raw
        fm = _FENCE_RE.match(line)
        if fence is not None:
            if fm and fm.group(1)[0] == fence[0] and len(fm.group(1)) >= len(fence):
                fence = None
            continue
        if fm:
            fence = fm.group(1)
            continue
        if "`" in line:
            line = _INLINE_CODE_RE.sub(" ", line)
        lineno = first_line + i
        if headings and line[:1] in "# ":
            hm = _HEADING_RE.match(line)
            if hm:
                out.headings.append(Heading(level=len(hm.group(1)), text=(hm.group(2) or "").strip(), line=lineno))
        if "[[" in line:
            for m in re.finditer(r"(!?)\[\[([^\[\]\n]{1,1000}?)\]\]", line):
                target, heading, block, alias = split_wikilink(m.group(2))
                out.links.append(Link(target=target, heading=heading, block=block, alias=alias,
                                      embed=bool(m.group(1)), line=lineno))
        _inline_links(line, lineno, out)
        if "#" in line:
            for m in re.finditer(r"(?:^|(?<=\s))" + _TAG_RE.pattern, line):
                name = _tag_or_none(m)
                if name:
                    out.tags.append(Tag(name=name, source=tag_source, line=lineno))
        if "^" in line:
            bm = _BLOCK_ID_RE.search(line)
            if bm:
                out.block_ids.append(bm.group(1))
    return out


def needs_scan(text: str) -> bool:
    """Could ``text`` hold a link, tag or block id? (Cheap test that skips markdown-it for plain prose.)"""
    return "[[" in text or "](" in text or bool(_MAYBE_TAG_RE.search(text)) or bool(_MAYBE_BLOCK_RE.search(text))


_MAYBE_TAG_RE = re.compile(r"(?:^|\s)#[^\s#]")
_MAYBE_BLOCK_RE = re.compile(r"\s\^[A-Za-z0-9-]+[ \t]*$", re.MULTILINE)


def scan(text: str, first_line: int, tag_source: Literal["body", "turn"] = "body", headings: bool = True) -> Scan:
    """Links, tags, headings and block ids of ``text``; ``first_line`` is the file line of its line 1."""
    if len(text) > FAST_SCAN_BYTES or not needs_scan(text):
        # huge, or nothing but (ATX) headings to find: the linear line scanner is enough
        return scan_fast(text, first_line, tag_source, headings)
    out = Scan()
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
            if headings:
                out.headings.append(Heading(level=heading_level, text=tok.content.strip(), line=line0))
            heading_level = None
        if "^" in tok.content:
            for ln in tok.content.split("\n"):
                m = _BLOCK_ID_RE.search(ln)
                if m:
                    out.block_ids.append(m.group(1))
        offset = 0
        plain: list[str] = []
        for child in tok.children or ():
            kind = child.type
            if kind in ("softbreak", "hardbreak"):
                offset += 1
                plain.append("\n")
            elif kind == "obsidian_wikilink":
                target, heading, block, alias = split_wikilink(child.content)
                out.links.append(
                    Link(target=target, heading=heading, block=block, alias=alias,
                         embed=bool(child.meta.get("embed")), line=line0 + offset)
                )
                plain.append(" ")
            elif kind == "obsidian_tag":
                out.tags.append(Tag(name=child.content, source=tag_source, line=line0 + offset))
                plain.append(" ")
            elif kind == "code_inline":
                plain.append(" ")
            elif kind == "text" or kind == "html_inline":
                plain.append(child.content)
            else:
                plain.append(child.markup or "")
        _inline_links("".join(plain), line0, out)
    return out
