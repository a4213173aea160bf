"""No-ops stay no-ops (issue #13): a timeline asked again embeds nothing, a report over an unchanged
index recomputes nothing, and both still notice a change. Timings are the bench's job
(``bench/noop_bench.py``); these tests check the work that is skipped, not the clock."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_timeline_cli import build_planted_index

from interfaces.cli import cli
from queries.contexts import CACHE_NAME

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh(planted_source: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path):
    """A private copy of the planted vault and of its index (without any context cache)."""
    idx = tmp_path / "index"
    shutil.copytree(build_planted_index(planted_source, tmp_path_factory), idx,
                    ignore=shutil.ignore_patterns(f"{CACHE_NAME}*"))
    vault = tmp_path / "vault"
    shutil.copytree(planted_source[0], vault)
    return vault, idx, planted_source[1]


def _run(vault: Path, idx: Path, *args: str) -> object:
    return CliRunner().invoke(cli, [*args, "--vault", str(vault), "--index-dir", str(idx)])


def test_timeline_again_embeds_nothing_and_answers_the_same(fresh, monkeypatch) -> None:
    vault, idx, truth = fresh
    phrase = truth["images"]["I1"]["canonical"]
    first = _run(vault, idx, "timeline", phrase, "--json")
    assert first.exit_code == 0, first.output
    assert (idx / CACHE_NAME).exists()
    from queries.timeline import IndexSource

    def no_model(self: IndexSource) -> object:
        raise AssertionError("the model was loaded for contexts already embedded")

    monkeypatch.setattr(IndexSource, "embedder", no_model)
    # nor a lemmatiser for the characteristic words: as a fresh process, nothing in memory
    from queries import timeline

    def no_lemmatiser(word: str) -> object:
        raise AssertionError(f"a lemmatiser was loaded for {word!r}, a word of contexts seen before")

    timeline._content_lemma.cache_clear()
    monkeypatch.setattr(timeline, "LEMMA_MEMO", {})
    monkeypatch.setattr(timeline, "_lemmatise_content", no_lemmatiser)
    again = _run(vault, idx, "timeline", phrase, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == json.loads(first.stdout)
    drift = [p["drift"] for p in json.loads(first.stdout)["periods"]]
    assert any(d is not None for d in drift)  # the drift really came from context vectors


def test_report_over_an_unchanged_index_recomputes_nothing(fresh, monkeypatch) -> None:
    vault, idx, _ = fresh
    assert _run(vault, idx, "report", "--top", "3").exit_code == 0
    import queries.timeline

    def no_timeline(*args: object, **kwargs: object) -> object:
        raise AssertionError("a timeline was recomputed for an unchanged index")

    with monkeypatch.context() as m:
        m.setattr(queries.timeline, "build_timeline", no_timeline)
        again = _run(vault, idx, "report", "--top", "3", "--json")
    assert again.exit_code == 0, again.output
    out = json.loads(again.stdout)
    assert out["written"] == [] and len(out["unchanged"]) == 5  # 3 notes, the index note, graph.html
    # a report file changed by hand is noticed: the report is recomputed and the file restored
    note = vault / next(p for p in out["unchanged"] if p.endswith(".md") and not p.endswith("/Metaphors.md"))
    original = note.read_bytes()
    note.write_bytes(original + b"\nmy edit\n")
    fixed = _run(vault, idx, "report", "--top", "3", "--json")
    assert json.loads(fixed.stdout)["written"] == [note.relative_to(vault).as_posix()]
    assert note.read_bytes() == original
    # other options are other inputs: recomputed
    other = _run(vault, idx, "report", "--top", "2", "--json")
    assert json.loads(other.stdout)["written"]
