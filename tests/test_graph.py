"""The networkx knowledge graph: node/edge types, wikilinks, echoes, export round-trips."""
from __future__ import annotations

import shutil

import networkx as nx
import numpy as np
import pytest
from click.testing import CliRunner
from test_metaphor_support import build_planted_index, truth_keys

from interfaces.cli import cli
from queries.graph import build_graph, echo_pairs, read_graph, summary, write_graph
from queries.metaphors import list_metaphors

pytestmark = pytest.mark.slow

LINKING_NOTE = """---
tags: [образы]
---
# Указатель

См. [[модель думает]] и [[Несуществующая заметка]]. #карта
"""


@pytest.fixture(scope="module")
def graph_index(planted_source, tmp_path_factory):
    src, truth = planted_source
    base = tmp_path_factory.mktemp("graph")
    vault = base / "vault"
    shutil.copytree(src, vault)
    (vault / "Указатель.md").write_text(LINKING_NOTE, encoding="utf-8")
    idx = build_planted_index(vault, base / "index")
    yield idx, vault, base / "index", truth
    idx.close()


def test_typed_nodes_and_edges(graph_index):
    idx, _, _, truth = graph_index
    g = build_graph(idx)
    assert isinstance(g, nx.MultiDiGraph)
    s = summary(g)
    n_turns = sum(len(c["turns"]) for c in truth["conversations"])
    assert s["nodes"]["conversation"] == len(truth["conversations"]) + 1  # + the plain note's pseudo-conversation
    assert s["nodes"]["turn"] == n_turns + 1  # + the plain note's pseudo-turn
    assert s["edges"]["has_turn"] == s["nodes"]["turn"]
    months = {t["time"][:7] for c in truth["conversations"] for t in c["turns"]}
    assert {d["month"] for _, d in g.nodes(data=True) if d["type"] == "period"} == months
    assert {"uses", "cooccurs", "in_period", "contains", "links_to", "tagged"} <= s["edges"].keys()
    # every planted use is a turn → metaphor edge into that image's one metaphor node
    keys = truth_keys(truth)
    listed = list_metaphors(idx)
    for image in truth["images"]:
        (m,) = [m for m in listed if keys[image] & set(m.keys)]
        into = [d for _, b, d in g.in_edges(f"metaphor:{m.id}", data=True) if d["type"] == "uses"]
        assert len(into) == sum(1 for o in truth["occurrences"] if o["id"] == image)
    uses = [d for _, _, d in g.edges(data=True) if d["type"] == "uses"]
    assert all(d["role"] in ("user", "assistant", "note") and d["time"] for d in uses)
    co = [d["weight"] for _, _, d in g.edges(data=True) if d["type"] == "cooccurs"]
    assert co and all(w >= 1 for w in co)


def test_wikilinks_resolved_and_unresolved(graph_index):
    idx, _, _, truth = graph_index
    g = build_graph(idx)
    links = [(a, b, d) for a, b, d in g.edges(data=True) if d["type"] == "links_to"]
    target = next(c["path"] for c in truth["conversations"] if c["path"].endswith("/модель думает.md"))
    assert ("note:Указатель.md", f"note:{target}") in {(a, b) for a, b, d in links if d["resolved"]}
    missing = [(b, d) for a, b, d in links if not d["resolved"]]
    assert [b for b, _ in missing] == ["note:Несуществующая заметка"]
    assert g.nodes["note:Несуществующая заметка"]["unresolved"] is True
    tags = {b for a, b, d in g.edges(data=True) if d["type"] == "tagged"}
    assert "tag:образы" in tags


def test_attachments_resolve_to_files_of_any_type(graph_index):
    """Embedded images and SVGs that exist in the vault are files, not missing notes (as in Obsidian)."""
    idx, vault, _, truth = graph_index
    g = build_graph(idx)
    path_of = {t["uid"]: c["path"] for c in truth["conversations"] for t in c["turns"]}
    present = [a for a in truth["attachments"] if a["exists"]]
    assert {a["path"].rsplit(".", 1)[-1] for a in present} >= {"png", "svg"}
    for a in present:
        assert (vault / a["path"]).is_file()
        node = f"file:{a['path']}"
        assert g.nodes[node]["type"] == "attachment"
        edges = [d for _, _, d in g.in_edges(node, data=True) if d["type"] == "links_to"]
        assert [(d["resolved"], d["embed"]) for d in edges] == [(True, True)]
        assert (f"note:{path_of[a['uid']]}", node) in {(u, v) for u, v, _ in g.in_edges(node, data=True)}


def test_node_link_json_reads_back_with_networkx_defaults(graph_index, tmp_path):
    """`graph export g.json` is read by the installed networkx's node_link_graph with no arguments."""
    import json

    idx, _, _, _ = graph_index
    g = build_graph(idx)
    path = tmp_path / "g.json"
    write_graph(g, path)
    h = nx.node_link_graph(json.loads(path.read_text(encoding="utf-8")))
    assert isinstance(h, nx.MultiDiGraph)
    assert (h.number_of_nodes(), h.number_of_edges()) == (g.number_of_nodes(), g.number_of_edges())
    assert sorted(map(str, h.edges(keys=True))) == sorted(map(str, g.edges(keys=True)))


def test_echo_pairs_only_across_conversations():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 8)).astype(np.float32)
    mat = np.stack([base[0], base[0] + 0.01, base[1], base[0] * 1.0, base[2]])
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    ids = [10, 11, 12, 13, 14]
    conv = {10: "a", 11: "a", 12: "b", 13: "b", 14: "c"}
    pairs = echo_pairs(ids, mat, conv, 0.95)
    assert {(a, b) for a, b, _ in pairs} == {(10, 13), (11, 13)}
    assert all(w >= 0.95 for *_, w in pairs)


@pytest.mark.parametrize("ext", [".graphml", ".gexf", ".json"])
def test_export_round_trip(graph_index, tmp_path, ext):
    idx, _, _, _ = graph_index
    g = build_graph(idx)
    path = tmp_path / f"graph{ext}"
    write_graph(g, path)
    reader = {".graphml": lambda p: nx.read_graphml(p, force_multigraph=True), ".gexf": nx.read_gexf,
              ".json": read_graph}[ext]
    h = reader(path)
    assert h.number_of_nodes() == g.number_of_nodes()
    assert h.number_of_edges() == g.number_of_edges()
    node = next(n for n, d in g.nodes(data=True) if d["type"] == "metaphor")
    assert h.nodes[node]["label"] == g.nodes[node]["label"]
    assert h.nodes[node]["variants"] == g.nodes[node]["variants"]  # lists are serialised as text


def test_no_none_or_list_values(graph_index):
    idx, _, _, _ = graph_index
    g = build_graph(idx)
    values = [v for _, d in g.nodes(data=True) for v in d.values()]
    values += [v for _, _, d in g.edges(data=True) for v in d.values()]
    assert all(isinstance(v, (str, int, float, bool)) for v in values)


def test_cli_export(graph_index, tmp_path):
    _, vault, index_dir, _ = graph_index
    out = tmp_path / "g.graphml"
    args = ["graph", "export", str(out), "--vault", str(vault), "--index-dir", str(index_dir)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    g = nx.read_graphml(out, force_multigraph=True)
    images = sum(1 for _, d in g.nodes(data=True) if d["type"] == "metaphor")
    assert images > 0
    assert result.output == (f"Wrote {g.number_of_nodes()} nodes and {g.number_of_edges()} edges to {out} "
                             f"({images} metaphor nodes: recurring images).\n")
    bad = CliRunner().invoke(cli, ["graph", "export", str(tmp_path / "g.png"), "--vault", str(vault),
                                   "--index-dir", str(index_dir)])
    assert bad.exit_code == 1
    assert bad.output.startswith("Error: unknown graph format '.png'")


def test_cli_json_export_reads_back_with_networkx_defaults_and_attachments_present(graph_index, tmp_path):
    """What a user does: `graph export g.json`, then `nx.node_link_graph(json.load(f))` on the networkx
    tropegraph installs; files that exist in the vault are attachment nodes (never missing notes); a file
    the export left out is written without a link (Nexus's *(missing)* form), so it is no node at all."""
    import json

    _, vault, index_dir, truth = graph_index
    out = tmp_path / "g.json"
    res = CliRunner().invoke(cli, ["graph", "export", str(out), "--vault", str(vault), "--index-dir", str(index_dir)])
    assert res.exit_code == 0, res.output
    with out.open(encoding="utf-8") as f:
        g = nx.node_link_graph(json.load(f))
    images = sum(1 for _, d in g.nodes(data=True) if d["type"] == "metaphor")
    assert res.output == (f"Wrote {g.number_of_nodes()} nodes and {g.number_of_edges()} edges to {out} "
                          f"({images} metaphor nodes: recurring images).\n")
    assert {a["exists"] for a in truth["attachments"]} == {True, False}
    for a in truth["attachments"]:
        targets = {v: g.nodes[v]["type"] for _, v, d in g.edges(data=True) if d["type"] == "links_to"
                   and v.endswith("/" + a["path"].rsplit("/", 1)[-1])}
        assert targets == ({f"file:{a['path']}": "attachment"} if a["exists"] else {}), a
    assert not any(d.get("kind") == "missing" and "." in d["path"].rsplit("/", 1)[-1]
                   for _, d in g.nodes(data=True) if d["type"] == "note")
