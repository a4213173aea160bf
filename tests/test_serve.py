"""``tropegraph serve`` without a browser: the API gives the CLI's ``--json`` documents, the guards hold,
curation through the API edits ``tropegraph.toml`` byte for byte as the CLI does, and notes indexed
while the server runs are found without a restart."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from conftest import copy_served_demo
from serve_helpers import PLANTED_TITLE, get, get_json, post, running_server

from interfaces.cli import cli

pytestmark = pytest.mark.slow  # the index is built with the real embedder


def cli_json(vault: Path, index: Path, *args: str) -> dict:
    res = CliRunner().invoke(cli, [*args, "--json", "--vault", str(vault), "--index-dir", str(index)])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def server(served_demo: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    vault, index = copy_served_demo(served_demo, tmp_path_factory.mktemp("serve-api"))
    with running_server(vault, index) as (url, explorer):
        yield url, explorer, vault, index


def test_api_documents_are_the_cli_json(server) -> None:  # type: ignore[no-untyped-def]
    url, _, vault, index = server
    for q, mode in (("янтарный маяк", "keyword"), ("карта смысла", "hybrid")):
        api = get_json(f"{url}/api/search?q={quote(q)}&mode={mode}&k=10&role=user")
        assert api == cli_json(vault, index, "search", q, "--mode", mode, "-k", "10", "--role", "user")
        assert api["results"]
    assert get_json(f"{url}/api/metaphors?limit=20") == cli_json(vault, index, "metaphors")
    assert get_json(f"{url}/api/metaphors?limit=50&all=1&role=user") == cli_json(
        vault, index, "metaphors", "--limit", "50", "--all", "--role", "user")
    phrase = quote("карта смысла")
    api = get_json(f"{url}/api/timeline?phrase={phrase}&drift=0&by=quarter")
    assert api == cli_json(vault, index, "timeline", "карта смысла", "--no-drift", "--by", "quarter")
    with_drift = get_json(f"{url}/api/timeline?phrase={phrase}")
    assert with_drift == cli_json(vault, index, "timeline", "карта смысла")
    assert any(p["drift"] for p in with_drift["periods"])
    for ref in ("карта смысла", get_json(f"{url}/api/metaphors?all=1&limit=500")["metaphors"][-1]["id"]):
        assert get_json(f"{url}/api/explain?ref={quote(ref)}") == cli_json(vault, index, "metaphors", "explain", ref)
    status = get_json(f"{url}/api/status")
    assert list(status) == list(cli_json(vault, index, "status"))
    assert status["counts"] == cli_json(vault, index, "status")["counts"]


def test_timeline_sentences_read_as_text(server) -> None:  # type: ignore[no-untyped-def]
    """The demo's notes hold "- " list items and "**bold**": quotes show the words only."""
    url, _, vault, _ = server
    raw = "\n".join(p.read_text(encoding="utf-8") for p in vault.rglob("*.md"))
    assert "**Хорошая метафора" in raw and "- Векторный индекс — это карта смысла" in raw
    for phrase in ("хорошая метафора", "карта смысла"):
        tl = get_json(f"{url}/api/timeline?phrase={quote(phrase)}&drift=0")
        sentences = [o["sentence"] for o in tl["occurrences"]] + [p["quote"]["text"] for p in tl["periods"]]
        assert sentences and not [s for s in sentences if "**" in s or s.startswith(("- ", "#", ">"))]
        assert all(o["surface"].lower() in o["sentence"].lower() for o in tl["occurrences"])


def test_api_answers_bad_input_with_json_errors(server) -> None:  # type: ignore[no-untyped-def]
    url = server[0]
    for path, status, words in (
        ("/api/search", 400, "query is empty"),
        ("/api/search?q=x&k=0", 400, "k must be between"),
        ("/api/search?q=x&role=robot", 400, "role must be one of"),
        ("/api/search?q=x&since=yesterday-ish", 400, "cannot read the date"),
        ("/api/timeline?phrase=" + quote("зелёный трамвай счастья"), 404, "no metaphor matches"),
        ("/api/graph?kinds=planet", 400, "kinds takes"),
        ("/api/explain", 400, "give the metaphor: ref="),
        ("/api/explain?ref=" + quote("зелёный трамвай счастья"), 404, "no metaphor or candidate phrase matches"),
        ("/api/nothing", 404, "no such endpoint"),
    ):
        code, headers, body = get(url + path)
        assert code == status, (path, body)
        assert headers["content-type"] == "application/json"
        assert words in json.loads(body)["error"], path
    code, _, body = get(url + "/api/timeline?phrase=" + quote("карта смыслов и морей"))
    assert code in (200, 404)  # a free phrase: matched by meaning, or refused with suggestions
    if code == 404:
        assert json.loads(body)["suggestions"]


def test_graph_api_top_period_and_kinds(server) -> None:  # type: ignore[no-untyped-def]
    url, _, vault, index = server
    listed = cli_json(vault, index, "metaphors", "--limit", "1000")["metaphors"]
    g = get_json(f"{url}/api/graph?top=5")
    metaphors = [n for n in g["nodes"] if n["type"] == "metaphor"]
    assert [n["metaphor_id"] for n in metaphors] == [m["id"] for m in listed[:5]]  # the top by score
    assert {n["type"] for n in g["nodes"]} == {"metaphor"}
    ids = {n["id"] for n in g["nodes"]}
    assert g["links"] and all(link["source"] in ids and link["target"] in ids for link in g["links"])
    early = get_json(f"{url}/api/graph?top=50&until=2024-12")
    assert [n["label"] for n in early["nodes"]] == ["карта смысла"]  # only the planted note is that old
    assert early["nodes"][0]["uses"] == 1 and early["nodes"][0]["user"] == 1
    both = get_json(f"{url}/api/graph?top=5&kinds=conversation,tag")
    kinds = {n["type"] for n in both["nodes"]}
    assert kinds == {"metaphor", "conversation", "tag"}
    convs = [n for n in both["nodes"] if n["type"] == "conversation"]
    assert all(n["uri"].startswith("obsidian://open?vault=vault&file=") for n in convs)


def test_pages_and_static_files_are_locked_down(server) -> None:  # type: ignore[no-untyped-def]
    url, explorer, _, _ = server
    for path in ("/search", "/metaphors", "/timeline", "/graph", "/static/app.css", "/api/status", "/nowhere"):
        code, headers, body = get(url + path)
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        if path in ("/search", "/graph"):
            html = body.decode()
            assert code == 200
            scripts = re.findall(r"<script[^>]*>", html)
            assert scripts and all(' src="/static/' in s for s in scripts)  # no inline script
            assert not re.search(r"<script[^>]*>[^<]", html)
            assert f'content="{explorer.token}"' in html
    assert get(url + "/static/vendor/d3/d3.min.js")[0] == 200
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/pages/search.html",
                 "/static//etc/passwd", "/static/vendor/d3/../../../app.py"):
        code, _, body = get(url + path)
        assert code == 404, path
        assert b"import" not in body
    code, _, _ = get(url + "/api/status", headers={"Host": "evil.example:80"})  # DNS rebinding
    assert code == 400


def test_curation_endpoints_refuse_cross_site_requests(server) -> None:  # type: ignore[no-untyped-def]
    url, explorer, vault, _ = server
    toml = vault / "tropegraph.toml"
    before = toml.read_bytes() if toml.exists() else None
    ok = {"X-Tropegraph-Token": explorer.token}
    body = {"phrase": "янтарный маяк"}
    assert post(f"{url}/api/metaphors/track", body)[0] == 403                                   # no token
    assert post(f"{url}/api/metaphors/track", body, {"X-Tropegraph-Token": "guess"})[0] == 403
    assert post(f"{url}/api/metaphors/track", body, {**ok, "Origin": "http://evil.example"})[0] == 403
    assert post(f"{url}/api/metaphors/track", body, {**ok, "Sec-Fetch-Site": "cross-site"})[0] == 403
    assert post(f"{url}/api/metaphors/track", b"phrase=x", ok,
                content_type="application/x-www-form-urlencoded")[0] == 415                    # a plain form
    assert get(f"{url}/api/metaphors/track")[0] == 405                                           # GET changes nothing
    assert post(f"{url}/api/metaphors/reject", {"id": "m00000000"}, ok) == (
        400, {"error": "no metaphor matches 'm00000000'; see `tropegraph metaphors` for the list"})
    assert post(f"{url}/api/metaphors/merge", {"ids": ["карта смысла"]}, ok)[0] == 400
    assert post(f"{url}/api/metaphors/explode", {"id": "x"}, ok)[0] == 404
    after = toml.read_bytes() if toml.exists() else None
    assert after == before


def test_curation_through_the_api_edits_the_file_as_the_cli_does(served_demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a_vault, a_index = copy_served_demo(served_demo, tmp_path / "api")
    b_vault, b_index = copy_served_demo(served_demo, tmp_path / "cli")
    listed = cli_json(a_vault, a_index, "metaphors", "--limit", "100")["metaphors"]
    splittable = next(m for m in listed if len(m["keys"]) > 1)
    rest = [m for m in listed if m["id"] != splittable["id"]]
    low, pair = rest[-1], rest[-3:-1]
    with running_server(a_vault, a_index) as (url, explorer):
        ok = {"X-Tropegraph-Token": explorer.token, "Origin": url}
        steps = [("track", {"phrase": "янтарный маяк", "aliases": ["amber lighthouse"]}),
                 ("reject", {"id": low["id"]}), ("merge", {"ids": [m["id"] for m in pair]}),
                 ("split", {"id": splittable["id"]})]
        for action, body in steps:
            status, answer = post(f"{url}/api/metaphors/{action}", body, ok)
            assert status == 200, answer
            assert answer["applied"] is True and answer["path"] == str(a_vault / "tropegraph.toml")
        after_api = get_json(f"{url}/api/metaphors?limit=100&all=1")
    runner = CliRunner()
    for args in (["track", "янтарный маяк", "--alias", "amber lighthouse"], ["reject", low["id"]],
                 ["merge", *(m["id"] for m in pair)], ["split", splittable["id"]]):
        res = runner.invoke(cli, ["metaphors", *args, "--vault", str(b_vault), "--index-dir", str(b_index)])
        assert res.exit_code == 0, res.output
    assert (a_vault / "tropegraph.toml").read_bytes() == (b_vault / "tropegraph.toml").read_bytes()
    assert after_api == cli_json(b_vault, b_index, "metaphors", "--limit", "100", "--all")
    labels = {m["label"]: m["status"] for m in after_api["metaphors"]}
    assert labels.get(low["label"]) == "rejected" and labels.get("янтарный маяк") == "tracked"


def test_new_notes_are_found_without_a_restart(served_demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vault, index = copy_served_demo(served_demo, tmp_path)
    with running_server(vault, index) as (url, _):
        before = get_json(f"{url}/api/status")["counts"]["notes"]
        assert get_json(f"{url}/api/search?q={quote('фиолетовый дирижабль')}&mode=keyword")["results"] == []
        get_json(f"{url}/api/search?q={quote('дирижабль')}&mode=hybrid")  # the FAISS index is loaded now
        note = vault / "Заметки" / "Дирижабль.md"
        note.write_text("# Дирижабль\n\nФиолетовый дирижабль висит над библиотекой.\n", encoding="utf-8")
        res = CliRunner().invoke(cli, ["index", "--vault", str(vault), "--index-dir", str(index)])
        assert res.exit_code == 0, res.output
        hits = get_json(f"{url}/api/search?q={quote('фиолетовый дирижабль')}&mode=keyword")["results"]
        assert [h["note"] for h in hits] == ["Заметки/Дирижабль.md"]
        semantic = get_json(f"{url}/api/search?q={quote('фиолетовый дирижабль над библиотекой')}&mode=semantic&k=3")
        assert "Заметки/Дирижабль.md" in [h["note"] for h in semantic["results"]]
        assert get_json(f"{url}/api/status")["counts"]["notes"] == before + 1


def test_the_cli_command_serves_and_stops_cleanly(served_demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    vault, index = copy_served_demo(served_demo, tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # 127.0.0.2 is loopback too, but not the default: the command must warn
    proc = subprocess.Popen([sys.executable, "-m", "interfaces", "serve", "--vault", str(vault), "--index-dir",
                             str(index), "--port", "0", "--host", "127.0.0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        m = re.search(r"http://127\.0\.0\.2:(\d+)/", line)
        assert m, line + proc.stderr.read()  # type: ignore[union-attr]
        status = get_json(f"http://127.0.0.2:{m.group(1)}/api/status")
        assert status["counts"]["notes"] > 20
        code, _, body = get(f"http://127.0.0.2:{m.group(1)}/api/search?q={quote('янтарный маяк')}")
        assert code == 200 and PLANTED_TITLE in json.loads(body)["results"][0]["title"]
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "warning: listening on 127.0.0.2" in err


def test_a_busy_port_is_a_clear_error(served_demo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from interfaces.serve.app import bind

    vault, index = copy_served_demo(served_demo, tmp_path)
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        t0 = time.monotonic()
        res = CliRunner().invoke(cli, ["serve", "--vault", str(vault), "--index-dir", str(index), "--port", str(port)])
    finally:
        sock.close()
    assert res.exit_code == 1
    assert res.output.startswith(f"Error: cannot listen on 127.0.0.1:{port}")
    assert "--port" in res.output and time.monotonic() - t0 < 30


def test_serve_without_an_index_says_how_to_make_one(vault: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["serve", "--vault", str(vault), "--index-dir", str(tmp_path / "none")])
    assert res.exit_code == 1
    assert res.output.endswith(f"; run `tropegraph index --vault {vault.resolve()} --index-dir {tmp_path / 'none'}` "
                               "first\n")
