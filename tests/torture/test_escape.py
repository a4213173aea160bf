"""Property tests: every vault string passes one escaping function per output format and comes
out inert (issue #17, finding 4: a newline in a file name injected a ```dataviewjs block).

Strings are drawn from a hostile alphabet (newlines, backticks, ``]]``, ``|``, ``<``, control and
bidi characters, lone surrogates as ``os.fsdecode`` makes them) plus arbitrary Unicode.
"""
from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser
from urllib.parse import unquote

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from queries.render.escape import (
    file_name,
    html_text,
    md_text,
    mermaid_label,
    note_link,
    one_line,
    terminal_chars,
    terminal_text,
    yaml_scalar,
)
from queries.render.markdown import frontmatter

TOKENS = [
    "a", "Б", "ё", " ", "  ", "\n", "\r\n", "\r", "\t", "`", "```", "```dataviewjs", "[[", "]]", "[", "]", "|",
    "<", ">", "<img src=x onerror=alert(1)>", "<script>", "#", "#tag", "^", "^block", "*", "_", "~~", "==", "$",
    "%%", "&lt;", "&", "!", "\\", "/", '"', "'", ":", "-", "+", "1.", "2)", "(", ")", "{", "}", ".", "..",
    "\x00", "\x01", "\x1b[31m", "\x1b]0;x\x07", "\x7f", "\x85", "\x9b", "\u2028", "\u2029", "\u202e", "\u2066",
    "\ufeff", "\u200b", "\udcff", "CON", "nul", "---", "> [!note]", "http://x.y/", "javascript:alert(1)",
]
hostile = st.lists(st.sampled_from(TOKENS), max_size=12).map("".join)
texts = st.one_of(hostile, st.text(max_size=40), st.text(alphabet=st.characters(codec=None), max_size=20))

MD = MarkdownIt("commonmark").enable("table")
_ESCAPABLE = r"\\`*_\[\]#|<>^=$%~&"


def inline_children(src: str) -> list:
    tokens = MD.parse(src)
    inline = [t for t in tokens if t.type == "inline"]
    assert len(inline) <= 1, src
    return inline[0].children if inline else []


def no_controls(s: str) -> bool:
    """No control character and nothing a UTF-8 file or terminal cannot hold."""
    s.encode("utf-8")
    return not any(unicodedata.category(c) == "Cc" for c in s)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_md_text_renders_as_exactly_the_text(s: str) -> None:
    out = md_text(s)
    assert "\n" not in out and "\r" not in out and no_controls(out)
    children = inline_children(out)
    assert all(c.type == "text" for c in children), (s, out, [c.type for c in children])
    assert "".join(c.content for c in children) == one_line(s)
    # Obsidian syntax markdown-it does not know ([[, #tag, ==, %%, $, ^): every special
    # character is backslash-escaped (preceded by an odd run of backslashes)
    assert re.fullmatch(rf"(?:\\.|[^{_ESCAPABLE}])*", out), out


@settings(max_examples=300, deadline=None)
@given(texts)
def test_md_text_stays_in_its_table_cell(s: str) -> None:
    tokens = MD.parse(f"| a | b |\n|---|---|\n| x | {md_text(s)} |\n")
    cells = [t for t in tokens if t.type == "td_open"]
    assert len(cells) == 2
    row = [t for t in tokens if t.type == "inline"][-1]
    assert all(c.type == "text" for c in row.children)


paths = st.builds(
    lambda folders, stem: "/".join([*folders, stem + ".md"]),
    st.lists(hostile.filter(lambda x: x and "/" not in x), max_size=2),
    hostile.filter(lambda x: "/" not in x),
)


@settings(max_examples=400, deadline=None)
@given(paths, texts, st.booleans())
def test_note_link_reaches_exactly_the_note(path: str, title: str, in_table: bool) -> None:
    link = note_link(path, title, in_table=in_table)
    assert "\n" not in link and "\r" not in link and no_controls(link)
    if link.startswith("[["):
        sep = r"\\\|" if in_table else r"\|"
        m = re.fullmatch(rf"\[\[([^\[\]|#^`<>]+){sep}([^\[\]|#^`<>]+)\]\]", link)
        assert m, link
        assert m.group(1) + ".md" == path
    else:
        links = [c for c in inline_children(link) if c.type == "link_open"]
        assert len(links) == 1, link
        href = links[0].attrs["href"]
        assert not re.search(r"\s", href)
        assert unquote(href, errors="surrogateescape") == path
        kinds = {c.type for c in inline_children(link)}
        assert kinds <= {"link_open", "text", "link_close"}, kinds


@settings(max_examples=400, deadline=None)
@given(texts, st.integers(min_value=1, max_value=120))
def test_file_name_is_safe_everywhere(s: str, limit: int) -> None:
    name = file_name(s, limit=limit)
    assert name and len(name) <= max(limit, len("metaphor")) + 1
    assert not re.search(r'[\\/:*?"<>|#^\[\]`$%]', name)
    assert no_controls(name) and "\u202e" not in name
    assert name == name.strip(" .")
    assert not re.fullmatch(r"(?i)(con|prn|aux|nul|com\d|lpt\d)(\..*)?", name)
    assert file_name(name, limit=max(limit, len(name))) == name  # idempotent


@settings(max_examples=400, deadline=None)
@given(texts)
def test_yaml_scalar_loads_back_equal(s: str) -> None:
    out = yaml_scalar(s)
    assert "\n" not in out and "\r" not in out and "\x85" not in out and "\u2028" not in out
    assert yaml.safe_load(f"k: {out}\n") == {"k": s}
    # and inside a whole frontmatter block, as report notes write it
    fm = frontmatter({"tropegraph": "report", "label": s, "variants": [s, "x"]})
    assert fm.count("\n---\n") == 1 and fm.startswith("---\n")
    assert yaml.safe_load(fm.strip().strip("-")) == {"tropegraph": "report", "label": s, "variants": [s, "x"]}


@settings(max_examples=300, deadline=None)
@given(texts)
def test_mermaid_label_is_one_quoted_token(s: str) -> None:
    out = mermaid_label(s)
    assert out.startswith('"') and out.endswith('"') and out.count('"') == 2
    assert not re.search(r"[\n\r`<>#;]", out) and no_controls(out)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list]] = []
        self.data: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    def handle_comment(self, data: str) -> None:
        self.tags.append(("!--", [data]))


@settings(max_examples=300, deadline=None)
@given(texts)
def test_html_text_is_text_in_content_and_attributes(s: str) -> None:
    p = _Collect()
    p.feed(f'<p title="{html_text(s)}" data-x=\'{html_text(s)}\'>{html_text(s)}</p>')
    p.close()
    expected = re.sub("[\ud800-\udfff]", "\ufffd", re.sub("[\x00-\x08\x0b\x0e-\x1f\x7f]", "", s))
    assert [t for t, _ in p.tags] == ["p"]
    attrs = dict(p.tags[0][1])
    # the HTML parser normalises CR/NUL like a browser; what matters is that nothing escaped
    norm = lambda x: x.replace("\r\n", "\n").replace("\r", "\n")
    assert norm(attrs["title"]) == norm(expected) and norm(attrs["data-x"]) == norm(expected)
    assert norm("".join(p.data)) == norm(expected)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_terminal_text_has_no_escape_sequences(s: str) -> None:
    out = terminal_text(s)
    assert no_controls(out) and "\n" not in out and "\u202e" not in out


@settings(max_examples=300, deadline=None)
@given(texts)
def test_terminal_chars_keeps_offsets_and_drops_escape_sequences(s: str) -> None:
    out = terminal_chars(s)
    assert len(out) == len(s)  # highlight offsets into s still point at the same characters
    assert no_controls(out) and "\n" not in out and "\u202e" not in out
    assert " ".join(out.split()) == terminal_text(s)
