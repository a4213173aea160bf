"""`tropegraph search` / `tropegraph similar` through click: output, --json, exit codes and messages."""
# ruff: noqa: F811  (the search_index fixture is imported from test_search)

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_search import HIT_KEYS, search_index, turns_by_uid  # noqa: F401  (fixture)

from indexer import textproc
from indexer.store import open_index
from interfaces.cli import cli


@pytest.fixture
def run(search_index: tuple[Path, Path, dict], monkeypatch: pytest.MonkeyPatch):
    vault, index_dir, _ = search_index
    for var in ("TROPEGRAPH_ENGINE", "TROPEGRAPH_MODEL", "TROPEGRAPH_VAULT", "TROPEGRAPH_INDEX_DIR"):
        monkeypatch.delenv(var, raising=False)

    def invoke(*args: str, env: dict[str, str] | None = None):
        return CliRunner().invoke(cli, [*args, "--vault", str(vault), "--index-dir", str(index_dir)], env=env)

    return invoke


def test_search_json_shape(run, search_index) -> None:
    res = run("search", "метафору", "-k", "4", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert list(data) == ["query", "mode", "times", "embedding", "results"]
    assert data["times"] == "local"
    assert data["query"] == "метафору" and data["mode"] == "hybrid"
    assert data["embedding"]["complete"] is True and data["embedding"]["missing"] == 0
    assert 0 < len(data["results"]) <= 4
    for hit in data["results"]:
        assert list(hit) == HIT_KEYS
        assert hit["uri"].startswith(f"obsidian://open?vault={search_index[0].name}&file=")


def test_search_words_without_quotes_are_one_query(run) -> None:
    one = json.loads(run("search", "карта смысла", "--json", "--mode", "keyword").output)
    two = json.loads(run("search", "карта", "смысла", "--json", "--mode", "keyword").output)
    assert one["results"] == two["results"] and one["results"]


def test_search_filters_through_the_cli(run) -> None:
    res = run("search", "метафора", "--role", "user", "--since", "2025-03", "--until", "2025-06", "--json",
              "--no-collapse", "-k", "50")
    assert res.exit_code == 0, res.output
    hits = json.loads(res.output)["results"]
    assert hits
    assert all(h["role"] == "user" and "2025-03-01" <= h["time"] < "2025-07-01" for h in hits)


def test_search_human_output(run) -> None:
    res = run("search", "метафору", "-k", "2")
    assert res.exit_code == 0, res.output
    data = json.loads(run("search", "метафору", "-k", "2", "--json").output)["results"]
    for i, hit in enumerate(data, 1):
        assert f"{i:>2}. {hit['title']}" in res.output
        assert hit["uid"] in res.output and hit["note"] in res.output
        assert hit["snippet"][:40] in res.output


def test_limit_is_the_long_name_of_k(run) -> None:
    """`--limit`, as `metaphors --limit`, is the same option as `-k`."""
    short = json.loads(run("search", "метафору", "-k", "3", "--json").output)["results"]
    long = json.loads(run("search", "метафору", "--limit", "3", "--json").output)["results"]
    assert len(long) == 3
    assert [h["uid"] for h in long] == [h["uid"] for h in short]


def test_search_no_results_message(run) -> None:
    res = run("search", "зюзюка", "--mode", "keyword")
    assert res.exit_code == 0
    assert res.output == "No results for 'зюзюка'.\n"


def test_similar_cli(run, search_index) -> None:
    truth = search_index[2]
    conv = truth["conversations"][2]
    uid = conv["turns"][1]["uid"]
    res = run("similar", uid, "-k", "3", "--other-conversations", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["uid"] == uid and len(data["results"]) == 3
    assert all(h["conversation_id"] != conv["conversation_id"] for h in data["results"])
    human = run("similar", uid, "-k", "2")
    assert human.exit_code == 0 and data["results"][0]["uid"] in human.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "   "], 1,
         "Error: the query is empty; give some words to search for, e.g. tropegraph search карта смысла\n"),
        (["search", "x", "--since", "весной"], 1,
         "Error: cannot read the date 'весной'; use YYYY-MM-DD, YYYY-MM, YYYY, DD.MM.YYYY or an age like 7d, 2w, 3m\n"),
        (["search", "x", "--since", "2025-05", "--until", "2025-04"], 1,
         "Error: --since 2025-05 is not before --until 2025-04; nothing can match\n"),
        (["similar", "no-such-uid"], 1,
         "Error: no turn with UID 'no-such-uid' in the index; find UIDs with `tropegraph search QUERY --json`\n"),
        (["search", '"', "--mode", "keyword"], 1,
         "Error: the query has no words to match; give some words (quotes mark exact phrases)\n"),
    ],
)
def test_one_line_errors(run, args: list[str], code: int, message: str) -> None:
    res = run(*args)
    assert res.exit_code == code
    assert res.output == message


def test_unknown_role_is_a_usage_error(run) -> None:
    res = run("search", "x", "--role", "bot")
    assert res.exit_code == 2
    assert "Error: Invalid value for '--role': 'bot' is not one of 'user', 'assistant', 'note'." in res.output
    assert "Traceback" not in res.output


def test_missing_query_is_a_usage_error(run) -> None:
    res = run("search")
    assert res.exit_code == 2
    assert "Error: Missing argument 'QUERY...'." in res.output


def test_search_before_indexing(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    (vault / ".obsidian").mkdir(parents=True)
    res = CliRunner().invoke(cli, ["search", "x", "--vault", str(vault), "--index-dir", str(tmp_path / "idx")])
    assert res.exit_code == 1
    assert res.output == (f"Error: no index at {tmp_path / 'idx'}; run `tropegraph index --vault {vault} "
                          f"--index-dir {tmp_path / 'idx'}` first\n")
    open_index(tmp_path / "idx", create=True).close()  # an index folder that was never filled
    res = CliRunner().invoke(cli, ["search", "x", "--vault", str(vault), "--index-dir", str(tmp_path / "idx")])
    assert res.exit_code == 1
    assert res.output == "Error: nothing is indexed yet; run `tropegraph index` first\n"


def test_index_made_by_another_model(run) -> None:
    res = run("search", "метафора", env={"TROPEGRAPH_ENGINE": "fake", "TROPEGRAPH_MODEL": "other"})
    assert res.exit_code == 1
    assert res.output.startswith("Error: the index was built with fake/default, but fake/other was asked for; ")
    assert res.output.count("\n") == 1
    # keyword search needs no model, so it still works
    ok = run("search", "метафора", "--mode", "keyword", env={"TROPEGRAPH_ENGINE": "fake", "TROPEGRAPH_MODEL": "other"})
    assert ok.exit_code == 0


def test_terminal_output_highlights_matches_and_links_notes(run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    res = run("search", "метафору", "-k", "5", "--mode", "keyword")
    assert res.exit_code == 0, res.output
    monkeypatch.delenv("FORCE_COLOR")
    hits = json.loads(run("search", "метафору", "-k", "5", "--mode", "keyword", "--json").output)["results"]
    assert all(h["uri"] in res.output for h in hits) and "\x1b]8;id=" in res.output  # OSC 8 links to the notes
    # (a hit found by its title alone shows its first passage, which may not hold the word)
    marked = [w for h in hits for w, _, _ in textproc.tokenize(h["snippet"]) if textproc.lemma(w) == "метафора"]
    assert marked and all(f"\x1b[1;33m{w}\x1b[0m" in res.output for w in marked)
