"""Wikilinks, embeds, Markdown links, tags and block ids (markdown-it plugin) and Obsidian name resolution."""
from __future__ import annotations

from pathlib import Path

import pytest

from vault_schema.markdown import scan, scan_fast, split_wikilink
from vault_schema.names import Resolver
from vault_schema.parse import load_note

STUB = Path(__file__).parent / "vault-stub"

SAMPLE = """# Head

Text [[Note#Heading|alias]] ![[x.png]] [[#^blk]] [[Folder/Deep Note]] #метафора #идеи/образы #1984 #y1984
`#code [[code]]` and [md](Some%20Note.md#Sec) ![i](a.png) [ext](https://example.org) [mail](mailto:a@b.c)
url https://x.org/#frag and a#b are not tags. ^abc-1

```
[[in fence]] #infence
```

    [[indented code]] #indented

> quoted #q [[Q]]

| a | [[T\\|al]] |
|---|---|
| #cell | b |
"""


def _links(s) -> list[tuple]:
    return [(x.target, x.heading, x.block, x.alias, x.embed, x.kind, x.line) for x in s.links]


EXPECTED_LINKS = [
    ("Note", "Heading", None, "alias", False, "wikilink", 3),
    ("x.png", None, None, None, True, "wikilink", 3),
    ("", None, "blk", None, False, "wikilink", 3),
    ("Folder/Deep Note", None, None, None, False, "wikilink", 3),
    ("Some Note.md", "Sec", None, None, False, "markdown", 4),
    ("a.png", None, None, None, True, "markdown", 4),
    ("Q", None, None, None, False, "wikilink", 13),
    ("T", None, None, "al", False, "wikilink", 15),
]
EXPECTED_TAGS = [("метафора", 3), ("идеи/образы", 3), ("y1984", 3), ("q", 13), ("cell", 17)]


def test_markdown_it_scan() -> None:
    s = scan(SAMPLE, 1)
    assert _links(s) == EXPECTED_LINKS
    assert [(t.name, t.line) for t in s.tags] == EXPECTED_TAGS
    assert [(h.level, h.text, h.line) for h in s.headings] == [(1, "Head", 1)]
    assert s.block_ids == ["abc-1"]


def test_fast_scanner_agrees_on_the_common_cases() -> None:
    s = scan_fast(SAMPLE.replace("    [[indented code]] #indented", ""), 1)  # it has no indented code
    assert sorted(_links(s), key=str) == sorted(EXPECTED_LINKS, key=str)
    assert sorted((t.name, t.line) for t in s.tags) == sorted(EXPECTED_TAGS)


def test_tag_source_turn() -> None:
    assert [t.source for t in scan("#a", 1, "turn").tags] == ["turn"]


@pytest.mark.parametrize(
    ("inner", "expected"),
    [
        ("Note", ("Note", None, None, None)),
        ("Note|alias", ("Note", None, None, "alias")),
        ("Note#H|a", ("Note", "H", None, "a")),
        ("Note#^id", ("Note", None, "id", None)),
        ("#^id", ("", None, "id", None)),
        ("path/x.md\\|Title", ("path/x.md", None, None, "Title")),
    ],
)
def test_split_wikilink(inner: str, expected: tuple) -> None:
    assert split_wikilink(inner) == expected


# ----------------------------------------------------------------------------- names


@pytest.fixture
def resolver() -> Resolver:
    paths = ["A/Note.md", "B/C/Note.md", "Note2.md", "Deep/a/b/Note2.md", "img/x.png", "Notes/Карта и территория.md"]
    return Resolver(paths, {"B/C/Note.md": ["Other name"], "Notes/Карта и территория.md": ["map and territory"]})


@pytest.mark.parametrize(
    ("target", "source", "expected"),
    [
        ("Note", None, "A/Note.md"),  # same name twice: closest to the root
        ("note.md", None, "A/Note.md"),  # case-insensitive, .md optional
        ("C/Note", None, "B/C/Note.md"),  # folder suffix
        ("Note", "B/C/other.md", "B/C/Note.md"),  # same folder as the linking note wins
        ("x.png", None, "img/x.png"),  # attachments too
        ("other NAME", None, "B/C/Note.md"),  # alias, case-insensitive
        ("Note2", None, "Note2.md"),
        ("b/note2", None, "Deep/a/b/Note2.md"),
        ("./Note", "B/C/y.md", "B/C/Note.md"),  # relative
        ("../Note", "B/C/D/q.md", "B/C/Note.md"),
        ("../../../x", "a.md", None),
        ("карта и ТЕРРИТОРИЯ", None, "Notes/Карта и территория.md"),
        ("MAP AND TERRITORY", None, "Notes/Карта и территория.md"),
        ("missing", None, None),
        ("#Heading", "A/Note.md", "A/Note.md"),
        ("Note#Heading", None, "A/Note.md"),
    ],
)
def test_resolve(resolver: Resolver, target: str, source: str | None, expected: str | None) -> None:
    assert resolver.resolve(target, source) == expected


def test_link_text_is_shortest_unique(resolver: Resolver) -> None:
    assert resolver.link_text("B/C/Note.md") == "C/Note"
    assert resolver.link_text("A/Note.md") == "Note"
    assert resolver.link_text("Deep/a/b/Note2.md") == "b/Note2"
    for path in resolver.paths:
        assert resolver.resolve(resolver.link_text(path)) == path


def test_stub_vault_links_resolve() -> None:
    paths = [p.relative_to(STUB).as_posix() for p in STUB.rglob("*") if p.is_file() and ".obsidian" not in p.parts]
    notes = {p: load_note(STUB, p) for p in paths if p.endswith(".md")}
    r = Resolver(paths, {p: n.aliases for p, n in notes.items()})
    plain = notes["Notes/plain.md"]
    assert r.resolve(plain.links[0].target, "Notes/plain.md") == "Notes/Карта и территория.md"
    report = notes["Nexus/Reports/import-report.md"]
    assert r.resolve(report.links[0].target) == "Nexus/Conversations/chatgpt/v120-top-level.md"
    trope = notes["Notes/tropegraph-report.md"]
    assert r.resolve(trope.links[0].target) == "Nexus/Conversations/chatgpt/v163-model.md"
