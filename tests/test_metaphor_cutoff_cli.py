"""The figurative cut-off, ``metaphors explain`` and timelines that agree with the list, through the
CLI (CliRunner), on a small Nexus vault written here. Fast: FakeEmbedder for passages and grouping,
and a fake figurativeness model (``FakeScorer``) that calls «карта смысла» and «мост между мирами»
images and everything else literal."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_metaphor_support import FakeScorer

from indexer.embed import FakeEmbedder
from indexer.metaphors import engine
from interfaces.cli import cli

IMAGES = ("карта смысл", "мост между мир")

# (title, [(role, "DD.MM.YYYY at HH:MM", text)])
CONVERSATIONS = [
    ("Карта", [
        ("user", "05.01.2025 at 10:00", "Эта карта смысла помогает мне думать. Нейронная сеть обучалась всю ночь."),
        ("assistant", "05.01.2025 at 10:08", "Карта смысла растёт, когда ты пишешь. Река времени уносит всё."),
    ]),
    ("Записи", [
        ("user", "01.02.2025 at 09:00", "Я снова вижу карту смысла в записях. Нейронная сеть ошибается."),
        ("assistant", "01.02.2025 at 09:01", "Запиши это в дневник."),
    ]),
    ("Мост", [
        ("assistant", "03.03.2025 at 12:00", "Каждая нейронная сеть упрямо ошибается. Мост между мирами строится медленно."),
        ("user", "06.03.2025 at 12:00", "Мост между мирами держится. Река времени снова шумит."),
    ]),
    ("Ещё мост", [
        ("user", "20.03.2025 at 08:00", "Мост между двумя мирами снова нужен. Карта смысла, опять карта смысла."),
    ]),
]


def write_nexus(vault: Path, n: int, title: str, turns: list[tuple[str, str, str]]) -> None:
    lines = ["---", "nexus: nexus-ai-chat-importer", 'plugin_version: "1.2.0"', "provider: chatgpt",
             f'aliases: "{title}"', f"conversation_id: conv-{n}", f"create_time: {turns[0][1]}",
             f"update_time: {turns[-1][1]}", "---", "", f"# Title: {title}", ""]
    for k, (role, when, text) in enumerate(turns):
        who = "nexus_user] **User**" if role == "user" else "nexus_agent] **Assistant**"
        lines += [f">[!{who} - {when}", f"> {text}", f"<!-- UID: u{n}-{k} -->", ""]
    path = vault / "Nexus" / f"{n:02d} {title}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


@pytest.fixture
def fake_model(monkeypatch):
    """The engine groups with FakeEmbedder and scores with FakeScorer, in this process (CliRunner)."""
    scorer = FakeScorer(images=IMAGES)
    monkeypatch.setattr(engine, "default_scorer", lambda *a, **k: scorer)
    monkeypatch.setattr(engine, "_embedder", lambda index: FakeEmbedder())
    engine._FIG_MEMORY.clear()
    return scorer


@pytest.fixture
def small(tmp_path, fake_model):
    vault, index_dir = tmp_path / "vault", tmp_path / "index"
    (vault / ".obsidian").mkdir(parents=True)
    for n, (title, turns) in enumerate(CONVERSATIONS):
        write_nexus(vault, n, title, turns)
    result = CliRunner().invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(index_dir),
                                      "--engine", "fake"])
    assert result.exit_code == 0, result.output
    return vault, index_dir


def run(small, *args):
    vault, index_dir = small
    return CliRunner().invoke(cli, [*args, "--vault", str(vault), "--index-dir", str(index_dir)])


def test_list_shows_images_and_says_what_it_hides(small):
    r = run(small, "metaphors")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    items = [line for line in lines if re.match(r"\s+\d+\. ", line)]
    assert [re.match(r"\s+\d+\. (\S+ \S+(?: \S+)?)  ", i).group(1) for i in items] == ["карта смысла", "мост между мирами"]
    # uses are turns: «карта смысла» in 4 turns (one of them says it twice) of 3 conversations
    assert lines[1].startswith("     4 uses in 3 conversations; first 2025-01-05T10:00:00 by user;")
    assert lines[-1] == ("(A use is one turn (a message of a conversation, or a section of a plain note) that uses the "
                         "image; a turn repeating it counts once; times are local, as the notes show them. "
                         "Not shown: 1 judged literal; "
                         "`tropegraph metaphors --all` lists them.)")
    assert "нейронная сеть" not in r.stdout


def test_all_lists_the_literal_ones_marked(small):
    r = run(small, "metaphors", "--all")
    assert r.exit_code == 0
    net = next(line for line in r.stdout.splitlines() if "нейронная сеть" in line)
    assert "[literal 0.20 < 0.50]" in net
    assert r.stdout.splitlines()[-1] == ("(A use is one turn (a message of a conversation, or a section of a plain "
                                         "note) that uses the image; a turn repeating it counts once; times are "
                                         "local, as the notes show them.)")


def test_json_says_what_is_hidden(small):
    data = json.loads(run(small, "metaphors", "--json").stdout)
    assert [m["label"] for m in data["metaphors"]] == ["карта смысла", "мост между мирами"]
    assert all(m["image"] and m["figurative"] == 0.9 for m in data["metaphors"])
    assert data["hidden"]["literal"] == 1 and data["threshold"] == 0.5
    assert data["use"].startswith("a use is one turn")


def test_a_vault_without_images_says_why(small, fake_model):
    fake_model.images.clear()
    fake_model.model_id = "test-fig-none"  # a new model: the next index run rescores everything
    assert run(small, "index", "--engine", "fake").exit_code == 0
    r = run(small, "metaphors")
    assert r.exit_code == 0
    assert r.stdout == (
        "No recurring images in this vault.\n"
        "  3 phrases recur in 2+ conversations, but the figurativeness model judges them literal "
        "(an image needs 0.50; the closest, «карта смысла», scores 0.20).\n"
        "  See every candidate with `tropegraph metaphors --all`; always list a phrase you consider an image "
        'with `tropegraph metaphors track "PHRASE"`.\n'
    )
    assert json.loads(run(small, "metaphors", "--json").stdout)["message"].startswith("No recurring images")


def test_explain_an_image(small):
    r = run(small, "metaphors", "explain", "карту смысла")
    assert r.exit_code == 0, r.output
    out = r.stdout.splitlines()
    assert re.fullmatch(r"карта смысла  \[m[0-9a-f]{8}\]", out[0])
    assert out[1] == ("listed: yes — figurative: 0.90 ≥ 0.50 (the model's cut-off); "
                      "recurring: 3 conversations ≥ 2")
    assert out[4] == "Figurativeness: 0.90 overall = mean over 4 distinct sentences (cut-off 0.50)"
    assert sum(1 for line in out if line.startswith("  0.90  ")) == 4
    assert any(line.startswith("Recurrence ") and "4 uses in 3 conversations over 3 months" in line for line in out)
    assert "Group: 1 lemma key" in out
    data = json.loads(run(small, "metaphors", "explain", "карта смысла", "--json").stdout)
    assert data["listed"] is True and data["figurative"]["overall"] == 0.9
    assert len(data["uses"]) == 5 and data["recurrence"]["uses"] == 4
    assert [k["key"] for k in data["keys"]] == ["карта смысл"]


def test_explain_a_literal_phrase(small):
    r = run(small, "metaphors", "explain", "нейронная сеть")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[1] == ("listed: no — judged literal: 0.20 < 0.50; "
                                        "recurring: 3 conversations ≥ 2")


def test_explain_errors(small):
    r = run(small, "metaphors", "explain", "совсем другое")
    assert r.exit_code == 1
    assert r.output == ("Error: no metaphor or candidate phrase matches 'совсем другое' in this vault; "
                        "`tropegraph metaphors score 'совсем другое' --context \"SENTENCE\"` scores any phrase\n")
    r = run(small, "metaphors", "explain", " ")
    assert r.exit_code == 2
    assert "Error: give a metaphor id or a phrase" in r.output


def test_graph_export_has_images_only_unless_all(small, tmp_path):
    from queries.graph import read_graph

    out = tmp_path / "g.json"
    assert run(small, "graph", "export", str(out)).exit_code == 0
    labels = {d["label"] for _, d in read_graph(out).nodes(data=True) if d.get("type") == "metaphor"}
    assert labels == {"карта смысла", "мост между мирами"}
    assert run(small, "graph", "export", str(out), "--all").exit_code == 0
    labels = {d["label"] for _, d in read_graph(out).nodes(data=True) if d.get("type") == "metaphor"}
    assert "нейронная сеть" in labels


def test_report_claims_only_images(small):
    vault, _ = small
    r = run(small, "report", "--no-drift")
    assert r.exit_code == 0, r.output
    index_note = (vault / "Tropegraph" / "Metaphors.md").read_text(encoding="utf-8")
    assert "2 recurring images (phrases the figurativeness model judges figurative" in index_note
    assert "нейронная сеть" not in index_note
    assert not (vault / "Tropegraph" / "нейронная сеть.md").exists()
    html = (vault / "Tropegraph" / "graph.html").read_text(encoding="utf-8")
    table = html[html.index('<table id="metaphors">'):]
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([\d.]+)</td>", table)
    assert [label for label, _ in rows] == ["карта смысла", "мост между мирами"]
    assert [float(s) for _, s in rows] == sorted((float(s) for _, s in rows), reverse=True)
    assert "нейронная сеть" not in html


def test_report_of_a_vault_without_images(small, fake_model):
    vault, _ = small
    fake_model.images.clear()
    fake_model.model_id = "test-fig-none"
    assert run(small, "index", "--engine", "fake").exit_code == 0
    assert run(small, "report", "--no-drift").exit_code == 0
    index_note = (vault / "Tropegraph" / "Metaphors.md").read_text(encoding="utf-8")
    assert "No recurring images in this vault." in index_note
    assert "recurring images (phrases" not in index_note


# --- timelines agree with the list ---------------------------------------------------------------


def test_timeline_uses_match_the_list(small):
    listed = {m["label"]: m for m in json.loads(run(small, "metaphors", "--json").stdout)["metaphors"]}
    for label, m in listed.items():
        tl = json.loads(run(small, "timeline", label, "--json", "--no-drift").stdout)
        assert len(tl["occurrences"]) == m["occurrences"]
        assert sum(p["count"] for p in tl["periods"]) == m["occurrences"]
        assert tl["use"].startswith("a use is one turn")


def test_timeline_role_filters_the_period_table(small):
    both = json.loads(run(small, "timeline", "карта смысла", "--json", "--no-drift").stdout)
    user = json.loads(run(small, "timeline", "карта смысла", "--json", "--no-drift", "--role", "user").stdout)
    assert {o["role"] for o in user["occurrences"]} == {"user"}
    assert [(p["period"], p["count"], p["assistant"]) for p in user["periods"]] == [
        ("2025-01", 1, 0), ("2025-02", 1, 0), ("2025-03", 1, 0)]
    assert sum(p["count"] for p in both["periods"]) == 4
    assert user["first"] == both["first"] and user["uptake"] == both["uptake"] and user["role"] == "user"
    text = run(small, "timeline", "карта смысла", "--no-drift", "--role", "assistant").stdout
    assert "uses: 1 (user 0, assistant 1; only the assistant's uses)" in text


def test_timeline_lags_in_human_units(small):
    r = run(small, "timeline", "карта смысла", "--no-drift")
    assert "  uptake: assistant on 2025-01-05, 8 min later in \"Карта\"" in r.stdout
    data = json.loads(run(small, "timeline", "мост между мирами", "--json", "--no-drift").stdout)
    assert (data["uptake"]["lag"], data["uptake"]["lag_days"]) == ("3 days", 3.0)


def test_timeline_of_an_empty_phrase_is_an_error(small):
    r = run(small, "timeline", "  ")
    assert r.exit_code == 1
    assert r.output == ('Error: the phrase is empty: give a metaphor id or a phrase, e.g. '
                        'tropegraph timeline "карта смысла"\n')


def test_timeline_of_a_phrase_found_only_in_the_text(small):
    r = run(small, "timeline", "река времени", "--json", "--no-drift")
    assert r.exit_code == 0, r.output
    assert "Phrase: река времени (not an extracted metaphor; timeline of its own occurrences in the text)" in r.stderr
    data = json.loads(r.stdout)
    assert data["source"] == "text"
    assert [(o["role"], o["time"][:10]) for o in data["occurrences"]] == [
        ("assistant", "2025-01-05"), ("user", "2025-03-06")]
    assert data["uptake"]["lag"] == "2 months"  # 60 days and 2 hours


def test_timeline_of_a_literal_candidate_says_it_is_not_listed(small):
    r = run(small, "timeline", "нейронная сеть", "--no-drift")
    assert r.exit_code == 0
    assert ("note: «нейронная сеть» is not in the metaphors list (judged literal: figurativeness 0.20 < 0.50); "
            "showing its uses anyway") in r.stderr


def test_closest_suggestions_are_images(small):
    r = run(small, "timeline", "совсем другое", "--no-drift")
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: no metaphor matches 'совсем другое' and the vault's text does not hold it.")
    closest = r.stderr.split("Closest images: ", 1)[1]
    assert "карта смысла" in closest and "мост между мирами" in closest and "нейронная сеть" not in closest


def test_with_lists_hold_images_only(small):
    data = json.loads(run(small, "timeline", "мост между мирами", "--json", "--no-drift").stdout)
    withs = {c["label"] for p in data["periods"] for c in p["co_occurring"]}
    assert withs == {"карта смысла"}
    data = json.loads(run(small, "timeline", "мост между мирами", "--json", "--no-drift", "--all").stdout)
    assert "нейронная сеть" in {c["label"] for p in data["periods"] for c in p["co_occurring"]}


def test_an_index_from_before_per_use_scores_says_to_reindex(small):
    """A reader meeting metaphor tables older than m007 (no per-key counts) gets the fix, not a traceback."""
    import sqlite3

    _, index_dir = small
    db = sqlite3.connect(index_dir / "index.db")
    db.execute("DROP TABLE metaphor_counts")
    db.commit()
    db.close()
    r = run(small, "metaphors")
    assert r.exit_code == 1
    assert r.output == ("Error: this index was built by an older tropegraph; run `tropegraph index` to update "
                        "its metaphors (nothing is re-embedded)\n")


def test_graph_html_and_export_of_a_vault_without_images_say_why(small, fake_model, tmp_path):
    vault, _ = small
    fake_model.images.clear()
    fake_model.model_id = "test-fig-none"
    assert run(small, "index", "--engine", "fake").exit_code == 0
    r = run(small, "report", "--no-drift")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[2] == "No recurring images in this vault."
    html = (vault / "Tropegraph" / "graph.html").read_text(encoding="utf-8")
    assert '<div id="empty"><p>No recurring images in this vault.</p><p>3 phrases recur in 2+ conversations' in html
    assert '<table id="metaphors">' not in html
    data = json.loads(run(small, "report", "--no-drift", "--json").stdout)
    assert data["metaphors"] == 0 and data["message"].startswith("No recurring images in this vault.")
    out = tmp_path / "g.json"
    r = run(small, "graph", "export", str(out))
    assert r.exit_code == 0
    first, *rest = r.stdout.splitlines()
    assert first.endswith(f"to {out} (0 metaphor nodes: recurring images).")
    assert rest[0] == "No recurring images in this vault."


def test_graph_html_with_all_names_what_its_table_holds(small):
    vault, _ = small
    assert run(small, "report", "--no-drift", "--all").exit_code == 0
    html = (vault / "Tropegraph" / "graph.html").read_text(encoding="utf-8")
    assert "<h2>Every candidate phrase, images and literal ones, by score</h2>" in html
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([\d.]+)</td>", html[html.index('<table id="metaphors">'):])
    assert "нейронная сеть" in {label for label, _ in rows}
    assert [float(s) for _, s in rows] == sorted((float(s) for _, s in rows), reverse=True)
    assert run(small, "report", "--no-drift").exit_code == 0
    html = (vault / "Tropegraph" / "graph.html").read_text(encoding="utf-8")
    assert "<h2>All images, by score</h2>" in html and "нейронная сеть" not in html


def test_timeline_role_filters_the_chart_too(small, monkeypatch, tmp_path):
    from queries.render import chart

    drawn = []
    monkeypatch.setattr(chart, "write_png", lambda tl, path, **kw: drawn.append(tl))
    r = run(small, "timeline", "карта смысла", "--no-drift", "--role", "user", "--png", str(tmp_path / "c.png"))
    assert r.exit_code == 0, r.output
    assert [(p.period, p.user, p.assistant) for p in drawn[0].periods] == [
        ("2025-01", 1, 0), ("2025-02", 1, 0), ("2025-03", 1, 0)]


def test_a_role_without_images_is_told_the_other_speaker_has_them(tmp_path, fake_model):
    vault, index_dir = tmp_path / "vault", tmp_path / "index"
    (vault / ".obsidian").mkdir(parents=True)
    for n, day in enumerate(("05.01.2025", "07.02.2025")):
        write_nexus(vault, n, f"Разговор {n}", [("user", f"{day} at 10:00", "Расскажи что-нибудь."),
                                                ("assistant", f"{day} at 10:01", f"Карта смысла растёт, день {n}.")])
    small = (vault, index_dir)
    assert run(small, "index", "--engine", "fake").exit_code == 0
    assert [m["label"] for m in json.loads(run(small, "metaphors", "--json").stdout)["metaphors"]] == ["карта смысла"]
    r = run(small, "metaphors", "--role", "user")
    assert r.exit_code == 0
    assert r.stdout == ("No recurring image used by the user in this vault: its one recurring image is the other "
                        "speaker's. `tropegraph metaphors` without --role lists them.\n")
    data = json.loads(run(small, "metaphors", "--role", "user", "--json").stdout)
    assert data["metaphors"] == [] and data["message"] == r.stdout.strip()


def test_graph_counts_a_use_as_a_turn(small, tmp_path):
    """«Карта смысла, опять карта смысла.» is one use: graph export draws one turn → metaphor edge for
    it, and the explorer's graph (/api/graph) sizes the node by turns, as `metaphors` counts."""
    from serve_helpers import get_json, running_server

    from queries.graph import read_graph

    listed = {m["id"]: m for m in json.loads(run(small, "metaphors", "--json").stdout)["metaphors"]}
    card = next(m for m in listed.values() if m["label"] == "карта смысла")
    assert card["occurrences"] == 4  # 5 occurrences in 4 turns
    out = tmp_path / "g.json"
    r = run(small, "graph", "export", str(out))
    assert r.exit_code == 0, r.output
    g = read_graph(out)
    for mid, m in listed.items():
        into = [a for a, _, d in g.in_edges(f"metaphor:{mid}", data=True) if d["type"] == "uses"]
        assert len(into) == len(set(into)) == m["occurrences"], m["label"]
    vault, index_dir = small
    with running_server(vault, index_dir) as (url, _):
        graph = get_json(f"{url}/api/graph?kinds=conversation")
    nodes = {n["id"]: n for n in graph["nodes"]}
    for mid, m in listed.items():
        node = nodes[f"metaphor:{mid}"]
        assert (node["uses"], node["user"], node["assistant"]) == (
            m["occurrences"], m["uses_by_role"].get("user", 0), m["uses_by_role"].get("assistant", 0))
    conv = next(n for n in graph["nodes"] if n["type"] == "conversation" and n["title"] == "Ещё мост")
    assert conv["uses"] == 2  # one turn: «мост между двумя мирами» once, «карта смысла» twice = 2 uses


def test_timeline_documents_say_whether_the_list_holds_it(small):
    """CLI --json and /api/timeline carry the same match fields (queries.timeline.IndexSource.describe),
    and an unmatched phrase gets the same message from both (IndexSource.no_match)."""
    from urllib.parse import quote

    from serve_helpers import get, get_json, running_server

    literal = json.loads(run(small, "timeline", "нейронная сеть", "--json", "--no-drift").stdout)
    assert (literal["matched_by"], literal["listed"], literal["also_matches"]) == ("label", False, [])
    assert literal["note"] == ("«нейронная сеть» is not in the metaphors list (judged literal: figurativeness "
                               "0.20 < 0.50); showing its uses anyway")
    text = json.loads(run(small, "timeline", "реки времени", "--json", "--no-drift").stdout)
    assert (text["source"], text["matched_by"], text["listed"]) == ("text", "text", False)
    assert text["note"] == "«реки времени» is not an extracted metaphor: a timeline of its own occurrences in the text"
    image = json.loads(run(small, "timeline", "карту смысла", "--json", "--no-drift").stdout)
    assert (image["matched_by"], image["listed"], image["note"]) == ("variant", True, None)
    missing = run(small, "timeline", "совсем другое", "--no-drift")
    assert missing.exit_code == 1
    vault, index_dir = small
    with running_server(vault, index_dir) as (url, _):
        api = get_json(f"{url}/api/timeline?drift=0&phrase=" + quote("нейронная сеть"))
        status, _, body = get(f"{url}/api/timeline?phrase=" + quote("совсем другое"))
    assert {k: api[k] for k in ("matched_by", "listed", "note")} == {
        k: literal[k] for k in ("matched_by", "listed", "note")}
    assert status == 404
    assert "Error: " + json.loads(body)["error"] + "\n" == missing.stderr


def test_explorer_graph_of_a_vault_without_images_says_why(small, fake_model):
    from serve_helpers import get_json, running_server

    fake_model.images.clear()
    fake_model.model_id = "test-fig-none"
    assert run(small, "index", "--engine", "fake").exit_code == 0
    listed = json.loads(run(small, "metaphors", "--json").stdout)
    vault, index_dir = small
    with running_server(vault, index_dir) as (url, _):
        graph = get_json(f"{url}/api/graph")
        every = get_json(f"{url}/api/graph?all=1")
    assert graph["nodes"] == [] and graph["graph"]["message"] == listed["message"]
    assert graph["graph"]["message"].startswith("No recurring images in this vault.")
    assert every["nodes"] and "message" not in every["graph"]


def test_all_counts_read_as_english(small, fake_model):
    """--all lists phrases of one conversation: "1 use in 1 conversation", not "1 uses in 1 conversations";
    the default list's footer names both reasons a figurative phrase is left out."""
    r = run(small, "metaphors", "--all")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    ones = [lines[i + 1] for i, line in enumerate(lines) if "one conversation]" in line]
    assert ones and all(re.match(r"     1 use in 1 conversation; first ", line) for line in ones), ones
    assert "     3 uses in 2 conversations; first 2025-03-03T12:00:00 by assistant;" in r.stdout
    fake_model.images.add("смысл в запись")  # a figurative phrase of one conversation: hidden by default
    fake_model.model_id = "test-fig-more"
    assert run(small, "index", "--engine", "fake").exit_code == 0
    r = run(small, "metaphors")
    assert r.stdout.splitlines()[-1] == (
        "(A use is one turn (a message of a conversation, or a section of a plain note) that uses the image; a turn "
        "repeating it counts once; times are local, as the notes show them. Not shown: 1 judged "
        "literal, 1 in one conversation or one repeated sentence; `tropegraph metaphors --all` lists them.)")


def test_every_list_says_why_a_phrase_is_hidden(small):
    """--json (also /api/metaphors and the MCP tool) carries the list's own reason per phrase, the one
    --all prints in brackets and the timeline's note words (queries.metaphors.hidden_because)."""
    every = {m["label"]: m for m in json.loads(run(small, "metaphors", "--all", "--json").stdout)["metaphors"]}
    assert every["карта смысла"]["hidden_because"] == []
    assert every["нейронная сеть"]["hidden_because"] == ["literal 0.20 < 0.50"]
    assert every["смысл в записях"]["hidden_because"] == ["literal 0.20 < 0.50", "one conversation"]
    text = run(small, "metaphors", "--all").stdout
    assert re.search(r"  4\. смысл в записях \[literal 0\.20 < 0\.50; one conversation\]  \(m[0-9a-f]{8}\)", text)
    # a speaker's view keeps the list's judgement: the assistant said «карта смысла» in one conversation
    # only, but the image recurs (3 conversations) and stays listed, with nothing to hide
    card = next(m for m in json.loads(run(small, "metaphors", "--role", "assistant", "--json").stdout)["metaphors"]
                if m["label"] == "карта смысла")
    assert card["conversations"] == 1 and card["hidden_because"] == []


def test_timeline_in_a_vault_without_images_says_so(small, fake_model):
    fake_model.images.clear()
    fake_model.model_id = "test-fig-none"
    assert run(small, "index", "--engine", "fake").exit_code == 0
    r = run(small, "timeline", "совсем другое", "--no-drift")
    assert r.exit_code == 1
    assert r.stderr == ("Error: no metaphor matches 'совсем другое' and the vault's text does not hold it. The vault "
                        "has no recurring images yet: `tropegraph metaphors --all` lists every candidate.\n")


def test_plain_notes_read_as_undated_notes_not_question_marks(tmp_path, fake_model):
    """Plain notes (no message times, role `note`): the list says "undated … in a plain note", the
    timeline counts their uses and says why its period table is empty."""
    vault, index_dir = tmp_path / "vault", tmp_path / "index"
    (vault / ".obsidian").mkdir(parents=True)
    (vault / "Идеи.md").write_text("# Идеи\n\nКарта смысла помогает мне думать.\n", encoding="utf-8")
    (vault / "Дневник.md").write_text("# Дневник\n\nЯ снова рисую карту смысла по вечерам.\n", encoding="utf-8")
    small = (vault, index_dir)
    assert run(small, "index", "--engine", "fake").exit_code == 0
    r = run(small, "metaphors")  # a phrase of plain notes only is not one of the person's images (IN_CHATS)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("No recurring images: this vault holds no chat conversations, only plain notes")
    assert "1 phrase judged figurative recurs in plain notes only" in r.stdout
    r = run(small, "metaphors", "--all")
    assert r.exit_code == 0, r.output
    assert "[plain notes only]" in r.stdout.splitlines()[0]
    assert r.stdout.splitlines()[1] == "     2 uses in 2 plain notes; first undated in a plain note; last undated"
    r = run(small, "timeline", "карта смысла", "--no-drift")
    assert r.exit_code == 0, r.output
    out = r.stdout.splitlines()
    assert out[2] == ("  uses: 2 (user 0, assistant 0, plain notes 2) — a use is one turn (a message of a "
                      "conversation, or a section of a plain note) that uses the image; a turn repeating it counts once")
    assert re.fullmatch(r'  first use: \(undated\) in the plain note "(Идеи|Дневник)"', out[3])
    assert "(no dated uses: plain notes carry no message times, so nothing is counted per period)" in out


def test_explain_names_the_images_it_appears_with(small):
    """explain's "With" list holds recurring images only (the cut-off of every co-occurrence list)."""
    r = run(small, "metaphors", "explain", "нейронная сеть")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[-1] == ("With: карта смысла (2), мост между мирами (1)  (the recurring images "
                                         "used in its conversations, and in how many)")
    data = json.loads(run(small, "metaphors", "explain", "карта смысла", "--json").stdout)
    assert [(c["label"], c["count"]) for c in data["co_occurring"]] == [("мост между мирами", 1)]
