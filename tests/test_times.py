"""Times are comparable and say what they are (issue #13): a conversation's created/updated are local
like its turn times (the ISO UTC frontmatter is shifted by the offset the note itself shows), the
offset is kept, and outputs say local or UTC."""
from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from pathlib import Path

from click.testing import CliRunner
from index_helpers import run_index

from indexer.embed import FakeEmbedder
from indexer.store import open_index
from interfaces.cli import cli
from vault_schema.parse import utc_offset

CLAUDE = "constructed/claude-1.3.0-artifacts.md"


def _frontmatter_utc(raw: str, key: str) -> dt.datetime:
    value = re.search(rf"^{key}: (\S+)$", raw, re.MULTILINE).group(1)  # type: ignore[union-attr]
    return dt.datetime.fromisoformat(value).replace(tzinfo=None)


def test_parse_gives_local_created_with_its_offset(fixtures_dir: Path) -> None:
    raw = (fixtures_dir / CLAUDE).read_text(encoding="utf-8")
    res = CliRunner().invoke(cli, ["parse", str(fixtures_dir / CLAUDE), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    first = dt.datetime.fromisoformat(data["turns"][0]["time"])
    utc = _frontmatter_utc(raw, "create_time")
    minutes = round((first - utc).total_seconds() / 60)
    sign = "+" if minutes >= 0 else "-"
    zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    assert data["times"] == "local" and data["utc_offset"] == zone
    assert data["created"] == first.isoformat() + zone  # the same moment as the first message
    assert data["created_utc"] == utc.isoformat() + "Z"
    text = CliRunner().invoke(cli, ["parse", str(fixtures_dir / CLAUDE)]).stdout.splitlines()
    assert text[1].endswith(f"  created={first:%Y-%m-%d %H:%M:%S} local")
    assert text[2] == f"  {len(data['turns'])} turns (times are local, UTC{zone})"


def test_notes_without_utc_times_say_the_offset_is_unknown(fixtures_dir: Path) -> None:
    text = CliRunner().invoke(cli, ["parse", str(fixtures_dir / "seed-conversation.md")]).stdout.splitlines()
    assert text[2] == "  2 turns (times are local, UTC offset not in the note)"


def test_utc_offset_needs_one_moment_seen_both_ways() -> None:
    utc = dt.datetime(2025, 7, 24, 11, 45, 12)
    assert utc_offset(utc, dt.datetime(2025, 7, 24, 14, 45, 12)) == 180
    assert utc_offset(utc, dt.datetime(2025, 7, 24, 14, 45)) == 180  # minute-precision header
    assert utc_offset(utc, dt.datetime(2025, 7, 24, 6, 15, 12)) == -330
    assert utc_offset(utc, dt.datetime(2025, 7, 24, 14, 52)) is None  # not the same moment
    assert utc_offset(utc, dt.datetime(2025, 7, 26, 14, 45)) is None  # beyond ±14 h
    assert utc_offset(utc, None) is None


def _conversation_times(index_dir: Path) -> dict[str, tuple[str | None, int | None]]:
    with open_index(index_dir, readonly=True) as idx:
        return {cid: (created, offset) for cid, created, offset in
                idx.db.execute("SELECT id, created, utc_offset FROM conversations")}


def test_the_index_keeps_local_created_and_the_offset(planted_vault: tuple[Path, dict], tmp_path: Path) -> None:
    vault, truth = planted_vault
    ix = tmp_path / "ix"
    run_index(vault, ix, FakeEmbedder())
    got = _conversation_times(ix)
    for conv in truth["conversations"]:
        iso = conv["style"] in ("1.3.0", "1.3.2", "1.6.3")
        assert got[conv["conversation_id"]] == (conv["turns"][0]["time"], conv["utc_offset"] * 60 if iso else None)

    # an index made before this change: UTC created, no utc_offset column. Opening it as a writer
    # migrates it; the next run re-reads the conversation notes (parsing only, nothing re-embedded)
    iso_conv = next(c for c in truth["conversations"] if c["style"] == "1.6.3")
    with sqlite3.connect(ix / "index.db") as db:
        db.execute("ALTER TABLE conversations DROP COLUMN utc_offset")
        db.execute("DELETE FROM _migrations WHERE name = 'm008_conversation_utc_offset'")
        db.execute("UPDATE conversations SET created = '2000-01-01T00:00:00' WHERE id = ?",
                   (iso_conv["conversation_id"],))
    report = run_index(vault, ix, FakeEmbedder())
    assert report.passages_embedded == 0 and report.notes_changed == len(truth["conversations"])
    assert _conversation_times(ix)[iso_conv["conversation_id"]] == (iso_conv["turns"][0]["time"],
                                                                     iso_conv["utc_offset"] * 60)


def test_every_output_says_its_times_are_local(fixtures_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A Claude note (ISO UTC frontmatter, local turn headers): search, similar, timeline, metaphors
    and the graph say their times are local, and the conversation's created is its first turn's time."""
    import networkx as nx

    monkeypatch.setenv("TROPEGRAPH_ENGINE", "fake")
    for var in ("TROPEGRAPH_MODEL", "TROPEGRAPH_VAULT", "TROPEGRAPH_INDEX_DIR"):
        monkeypatch.delenv(var, raising=False)
    vault, ix = tmp_path / "v", tmp_path / "ix"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "claude.md").write_bytes((fixtures_dir / CLAUDE).read_bytes())
    note = json.loads(CliRunner().invoke(cli, ["parse", "claude.md", "--vault", str(vault), "--json"]).stdout)
    first = note["turns"][0]

    def run(*args: str) -> str:
        res = CliRunner().invoke(cli, [*args, "--vault", str(vault), "--index-dir", str(ix)])
        assert res.exit_code == 0, (res.stdout, res.stderr)
        return res.stdout

    run("index")
    word = first["text"].split()[0]
    hits = json.loads(run("search", word, "--mode", "keyword", "--json"))
    assert hits["times"] == "local"
    assert first["time"] in {h["time"] for h in hits["results"]}  # the header's time, not shifted
    text = run("search", word, "--mode", "keyword")
    assert f"{first['time'][:16].replace('T', ' ')}" in text
    assert text.endswith("\n(times are local, as the notes show them)\n")
    assert json.loads(run("similar", first["uid"], "--json"))["times"] == "local"
    assert json.loads(run("timeline", word, "--json"))["times"] == "local"
    assert "\noccurrences (local times, as the notes show them):\n" in run("timeline", word)
    assert json.loads(run("metaphors", "--json"))["times"] == "local"
    assert run("metaphors", "--all").rstrip("\n").endswith("times are local, as the notes show them.)")
    run("graph", "export", str(tmp_path / "g.json"))
    g = nx.node_link_graph(json.loads((tmp_path / "g.json").read_text(encoding="utf-8")))
    assert g.graph["times"] == "local"
    (conv,) = [d for _, d in g.nodes(data=True) if d["type"] == "conversation"]
    assert conv["created"] == first["time"]  # comparable with the turn times beside it
