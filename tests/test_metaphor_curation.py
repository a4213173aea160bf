"""``tropegraph.toml``: reading, malformed files, append-only edits (no model needed)."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from indexer.metaphors import curation


def test_missing_file_is_empty(tmp_path: Path) -> None:
    c = curation.load(tmp_path)
    assert c.empty and not c.warnings


def test_reads_every_section(tmp_path: Path) -> None:
    (tmp_path / "tropegraph.toml").write_text(
        'stoplist = ["база данных"]\ntechnical = ["батч"]\n\n'
        '[[track]]\nphrase = "карта смысла"\naliases = ["map of meaning"]\n\n'
        '[[reject]]\nphrase = "нейронная сеть"\n\n'
        '[[merge]]\nphrases = ["ткань разговора", "ткань диалога"]\n\n'
        '[[split]]\nphrase = "карта памяти"\n',
        encoding="utf-8",
    )
    c = curation.load(tmp_path)
    assert c.track == (("карта смысла", ("map of meaning",)),)
    assert c.reject == ("нейронная сеть",)
    assert c.merge == (("ткань разговора", "ткань диалога"),)
    assert c.split == ("карта памяти",)
    assert c.stoplist == ("база данных",) and c.technical == ("батч",)


def test_malformed_file_is_a_warning_with_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tropegraph.toml"
    path.write_text('[[reject]]\nphrase = "ok"\n\n[[track]\nphrase = "broken"\n', encoding="utf-8")
    c = curation.load(tmp_path)
    assert c.empty
    assert len(c.warnings) == 1
    assert c.warnings[0].startswith(f"{path}:4: malformed curation file")


def test_edits_refuse_to_write_over_a_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "tropegraph.toml"
    bad = 'phrase = "unterminated\n'
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(curation.CurationError, match=rf"^{path}:1: malformed"):
        curation.append_entry(tmp_path, "reject", phrase="x")
    assert path.read_text(encoding="utf-8") == bad


def test_append_keeps_what_the_user_wrote(tmp_path: Path) -> None:
    path = tmp_path / "tropegraph.toml"
    mine = '# my own notes about images\nstoplist = ["база данных"]  # literal\n'
    path.write_text(mine, encoding="utf-8")
    curation.append_entry(tmp_path, "track", phrase='язык "токенов"', aliases=["language of tokens"])
    curation.append_entry(tmp_path, "reject", phrase="нейронная сеть")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(mine)
    data = tomllib.loads(text)
    assert data["track"] == [{"phrase": 'язык "токенов"', "aliases": ["language of tokens"]}]
    assert data["reject"] == [{"phrase": "нейронная сеть"}]
    assert curation.load(tmp_path).reject == ("нейронная сеть",)


def test_append_refuses_when_the_result_would_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "tropegraph.toml"
    mine = 'reject = ["a plain array, not tables"]\n'
    path.write_text(mine, encoding="utf-8")
    with pytest.raises(curation.CurationError, match="without breaking the file"):
        curation.append_entry(tmp_path, "reject", phrase="x")
    assert path.read_text(encoding="utf-8") == mine


def test_creates_the_file_with_a_header(tmp_path: Path) -> None:
    curation.append_entry(tmp_path, "split", phrase="карта памяти")
    text = (tmp_path / "tropegraph.toml").read_text(encoding="utf-8")
    assert text.startswith("# tropegraph curation")
    assert curation.load(tmp_path).split == ("карта памяти",)
