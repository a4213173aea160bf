"""``tropegraph metaphors`` and its curation subcommands, through click's CliRunner."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from test_metaphor_support import build_planted_index, first_occurrence, truth_keys

from interfaces.cli import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def planted_built(planted_source, tmp_path_factory):
    src, truth = planted_source
    base = tmp_path_factory.mktemp("metaphor-cli")
    shutil.copytree(src, base / "vault")
    build_planted_index(base / "vault", base / "index").close()
    return base, truth


@pytest.fixture
def planted(planted_built, tmp_path):
    """A private copy of the indexed vault and its index (tests edit the curation file)."""
    base, truth = planted_built
    shutil.copytree(base / "vault", tmp_path / "vault")
    shutil.copytree(base / "index", tmp_path / "index", ignore=shutil.ignore_patterns("writer.lock"))
    return tmp_path / "vault", tmp_path / "index", truth


def run(vault, index_dir, *args):
    result = CliRunner().invoke(cli, ["metaphors", "--vault", str(vault), "--index-dir", str(index_dir), *args])
    return result


def _find(items, keys):
    return [m for m in items if keys & set(m["keys"])]


def test_json_list_has_the_issue_shape(planted):
    vault, index_dir, truth = planted
    result = run(vault, index_dir, "--json", "--limit", "10")
    assert result.exit_code == 0, result.output
    items = json.loads(result.output)["metaphors"]
    assert len(items) == len(truth["images"])  # the cut-off: only images (conftest's stand-in model knows them)
    for field in ("id", "label", "variants", "occurrences", "conversations", "first_seen", "first_role",
                  "last_seen", "score", "curated"):
        assert field in items[0]
    scores = [m["score"] for m in items]
    assert scores == sorted(scores, reverse=True)
    keys = truth_keys(truth)
    for image in truth["images"]:
        (m,) = _find(items, keys[image])
        assert m["first_role"] == first_occurrence(truth, image)["role"]
        assert m["curated"] is False


def test_role_option(planted):
    vault, index_dir, _ = planted
    result = run(vault, index_dir, "--json", "--role", "assistant")
    assert result.exit_code == 0
    assert all(m["uses_by_role"].keys() == {"assistant"} for m in json.loads(result.output)["metaphors"])
    bad = run(vault, index_dir, "--role", "robot")
    assert bad.exit_code == 2
    assert "Invalid value for '--role'" in bad.output


def test_text_list(planted):
    vault, index_dir, truth = planted
    result = run(vault, index_dir, "--limit", "3")
    assert result.exit_code == 0
    assert result.output.startswith("  1. ")
    assert truth["images"]["I1"]["canonical"] in result.output


def test_reject_track_merge_split_edit_the_file_and_apply(planted):
    vault, index_dir, truth = planted
    keys = truth_keys(truth)
    items = json.loads(run(vault, index_dir, "--json").output)["metaphors"]
    (i1,) = _find(items, keys["I1"])
    (i4,) = _find(items, keys["I4"])

    r = run(vault, index_dir, "reject", i4["id"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"Rejected «{i4['label']}» in {vault / 'tropegraph.toml'}; applied to the index.")
    items = json.loads(run(vault, index_dir, "--json").output)["metaphors"]
    assert not _find(items, keys["I4"])

    r = run(vault, index_dir, "track", "стеклянный колокол")
    assert r.exit_code == 0, r.output
    items = json.loads(run(vault, index_dir, "--json", "--limit", "100").output)["metaphors"]
    (bell,) = [m for m in items if m["label"] == "стеклянный колокол"]
    assert bell["curated"] is True and bell["status"] == "tracked"

    r = run(vault, index_dir, "merge", i1["id"], truth["images"]["I2"]["canonical"])
    assert r.exit_code == 0, r.output
    items = json.loads(run(vault, index_dir, "--json").output)["metaphors"]
    (merged,) = _find(items, keys["I1"])
    assert keys["I2"] & set(merged["keys"]) and merged["curated"] is True

    r = run(vault, index_dir, "split", merged["id"])
    assert r.exit_code == 0, r.output
    items = json.loads(run(vault, index_dir, "--json", "--all").output)["metaphors"]
    assert all(len(m["keys"]) == 1 for m in _find(items, keys["I1"] | keys["I2"]))

    text = (vault / "tropegraph.toml").read_text(encoding="utf-8")
    assert text.count("[[reject]]") == 1 and text.count("[[track]]") == 1 and text.count("[[merge]]") == 1


def test_curation_survives_a_full_reindex(planted):
    from indexer.embed import FakeEmbedder
    from indexer.pipeline import index_vault
    from indexer.store import open_index

    vault, index_dir, truth = planted
    keys = truth_keys(truth)
    i3 = _find(json.loads(run(vault, index_dir, "--json").output)["metaphors"], keys["I3"])[0]
    assert run(vault, index_dir, "reject", i3["id"]).exit_code == 0
    with open_index(index_dir, notify=lambda m: None) as idx:
        index_vault(vault, idx, FakeEmbedder(), full=True)
    items = json.loads(run(vault, index_dir, "--json", "--all").output)["metaphors"]
    assert _find(items, keys["I3"])[0]["status"] == "rejected"


def test_malformed_file_blocks_edits_but_not_listing(planted):
    vault, index_dir, truth = planted
    path = vault / "tropegraph.toml"
    broken = '[[reject]]\nphrase = "x"\n[[track\n'
    path.write_text(broken, encoding="utf-8")
    listed = run(vault, index_dir, "--json")
    assert listed.exit_code == 0
    r = run(vault, index_dir, "reject", truth["images"]["I1"]["canonical"])
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: {path}:3: malformed curation file")
    assert path.read_text(encoding="utf-8") == broken


def test_unknown_metaphor_is_a_one_line_error(planted):
    vault, index_dir, _ = planted
    r = run(vault, index_dir, "reject", "m00000000")
    assert r.exit_code == 1
    assert r.output == "Error: no metaphor matches 'm00000000'; see `tropegraph metaphors` for the list\n"


def test_hand_edited_curation_applies_on_the_next_listing(planted):
    vault, index_dir, truth = planted
    keys = truth_keys(truth)
    label = truth["images"]["I5"]["canonical"]
    (vault / "tropegraph.toml").write_text(f'[[reject]]\nphrase = "{label}"\n', encoding="utf-8")
    items = json.loads(run(vault, index_dir, "--json").output)["metaphors"]
    assert not _find(items, keys["I5"])


def test_vault_options_after_the_subcommand(planted):
    vault, index_dir, truth = planted
    phrase = truth["images"]["I3"]["canonical"]
    r = CliRunner().invoke(cli, ["metaphors", "reject", phrase, "--vault", str(vault), "--index-dir", str(index_dir)])
    assert r.exit_code == 0, r.output
    assert f'phrase = "{phrase}"' in (vault / "tropegraph.toml").read_text(encoding="utf-8")


def test_curation_written_before_the_first_index_run_applies(planted_source, tmp_path):
    src, truth = planted_source
    vault = tmp_path / "vault"
    shutil.copytree(src, vault)
    label = truth["images"]["I1"]["canonical"]
    (vault / "tropegraph.toml").write_text(f'[[reject]]\nphrase = "{label}"\n', encoding="utf-8")
    build_planted_index(vault, tmp_path / "index").close()
    items = json.loads(run(vault, tmp_path / "index", "--json").output)["metaphors"]
    assert not _find(items, truth_keys(truth)["I1"])
