"""The knowledge graph: a ``networkx.MultiDiGraph`` built from the index, and its export.

Nodes (``type`` attribute; ids are prefixed strings):
``note:<path>``, ``conversation:<id>``, ``turn:<id>``, ``metaphor:<id>``, ``tag:<name>``,
``period:<YYYY-MM>``; a wikilink to a file that does not exist gets a ``note:<target>``
node with ``unresolved=True``.

Edges (``type`` attribute, also the multigraph key):
``links_to`` note→note (wikilinks, resolved the Obsidian way by ``vault_schema.names``;
``resolved`` False for a missing target), ``contains`` note→conversation, ``has_turn``
conversation→turn, ``tagged`` note→tag, ``uses`` turn→metaphor (``role``, ``time``,
``surface``), ``cooccurs`` metaphor↔metaphor (both directions, ``weight`` = conversations
sharing both), ``echo`` turn→turn (cosine of stored turn vectors ≥ ``echo_threshold``
across different conversations, from the earlier turn to the later), ``in_period``
turn→period.

The graph is derived from tables that the indexer and the metaphor engine keep incrementally
up to date, so building it is a read (seconds) and never stale. Every attribute is a str,
int, float or bool (None dropped, lists joined with `` | ``), so GraphML/GEXF can hold it.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

#: e5 cosines are compressed: measured on the dev vault, turn pairs of different conversations
#: have median 0.858, 90th percentile 0.921, 99th 0.962; 0.95 keeps the top ~2 % (shared sentences).
ECHO_THRESHOLD = 0.95
ECHO_MAX_PER_TURN = 5
FORMATS = (".graphml", ".gexf", ".json")


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, (list, tuple, set)):
            v = " | ".join(str(x) for x in v)
        elif isinstance(v, dict):
            v = json.dumps(v, ensure_ascii=False, sort_keys=True)
        elif isinstance(v, np.generic):
            v = v.item()
        elif not isinstance(v, (str, int, float, bool)):
            v = str(v)
        out[k] = v
    return out


def _node(g: nx.MultiDiGraph, nid: str, **attrs: Any) -> None:
    g.add_node(nid, **_clean(attrs))


def _edge(g: nx.MultiDiGraph, a: str, b: str, kind: str, **attrs: Any) -> None:
    g.add_edge(a, b, key=kind if kind != "uses" else None, type=kind, **_clean(attrs))


def turn_vectors(index: Any) -> tuple[list[int], np.ndarray]:
    """Mean of each turn's stored passage vectors (this index's model), L2-normalised."""
    db = index.db
    model = index.get_meta("model") if hasattr(index, "get_meta") else None
    if not model:
        return [], np.zeros((0, 1), dtype=np.float32)
    sums: dict[int, np.ndarray] = {}
    for tid, blob in db.execute(
        "SELECT p.turn_id, v.vector FROM passages p JOIN vectors v ON v.hash = p.hash AND v.model = ? "
        "ORDER BY p.turn_id, p.seq", (model,)):
        vec = np.frombuffer(blob, dtype="<f4")
        sums[tid] = sums[tid] + vec if tid in sums else vec.astype(np.float32)
    ids = sorted(sums)
    if not ids:
        return [], np.zeros((0, 1), dtype=np.float32)
    mat = np.stack([sums[i] for i in ids])
    mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
    return ids, mat


def echo_pairs(ids: list[int], mat: np.ndarray, conv_of: dict[int, str], threshold: float) -> list[tuple[int, int, float]]:
    """Turn pairs of *different* conversations with cosine ≥ threshold (each turn keeps its top few)."""
    out: dict[tuple[int, int], float] = {}
    conv = np.array([conv_of.get(i, "") for i in ids], dtype=object)
    for s in range(0, len(ids), 1024):
        sims = mat[s : s + 1024] @ mat.T
        for r in range(sims.shape[0]):
            i = s + r
            row = sims[r]
            cand = np.nonzero(row >= threshold)[0]
            cand = [j for j in cand if conv[j] != conv[i]]
            cand.sort(key=lambda j: -row[j])
            for j in cand[:ECHO_MAX_PER_TURN]:
                a, b = (i, j) if i < j else (j, i)
                out[(ids[a], ids[b])] = round(float(row[j]), 4)
    return sorted((a, b, w) for (a, b), w in out.items())


def build_graph(index: Any, *, echo_threshold: float = ECHO_THRESHOLD, min_conversations: int = 2) -> nx.MultiDiGraph:
    """The whole graph from an open index (read-only use). Metaphors listed by
    ``queries.metaphors.list_metaphors(min_conversations=…)`` become nodes (rejected ones don't)."""
    from queries.metaphors import cooccurrences, has_metaphors, list_metaphors
    from vault_schema.names import Resolver

    db = index.db
    g = nx.MultiDiGraph()
    notes = db.execute("SELECT id, path, title, kind, aliases FROM notes ORDER BY path").fetchall()
    path_of = {nid: path for nid, path, *_ in notes}
    aliases = {}
    for _nid, path, title, kind, al in notes:
        _node(g, f"note:{path}", type="note", path=path, title=title, kind=kind, unresolved=False)
        try:
            aliases[path] = [a for a in json.loads(al or "[]") if isinstance(a, str)]
        except json.JSONDecodeError:
            aliases[path] = []
    resolver = Resolver([p for p in path_of.values()], aliases)
    for nid, target, embed in db.execute("SELECT note_id, target, embed FROM links ORDER BY note_id, rowid"):
        src = path_of.get(nid)
        if src is None or not target:
            continue
        dst = resolver.resolve(target, src)
        if dst is None:
            node = f"note:{target}"
            if node not in g:
                _node(g, node, type="note", path=target, title=target, kind="missing", unresolved=True)
            _edge(g, f"note:{src}", node, "links_to", resolved=False, embed=bool(embed))
        elif dst != src:
            _edge(g, f"note:{src}", f"note:{dst}", "links_to", resolved=True, embed=bool(embed))
    for nid, name in db.execute("SELECT DISTINCT note_id, name FROM tags ORDER BY name"):
        if nid in path_of:
            _node(g, f"tag:{name}", type="tag", name=name)
            _edge(g, f"note:{path_of[nid]}", f"tag:{name}", "tagged")
    for cid, nid, title, provider, created in db.execute(
            "SELECT id, note_id, title, provider, created FROM conversations ORDER BY id"):
        _node(g, f"conversation:{cid}", type="conversation", title=title, provider=provider, created=created)
        if nid in path_of:
            _edge(g, f"note:{path_of[nid]}", f"conversation:{cid}", "contains")
    conv_of: dict[int, str] = {}
    for tid, cid, uid, role, time, pos in db.execute(
            "SELECT id, conversation_id, uid, role, time, position FROM turns ORDER BY conversation_id, position"):
        conv_of[tid] = cid
        _node(g, f"turn:{tid}", type="turn", uid=uid, role=role, time=time, conversation=cid, position=pos)
        _edge(g, f"conversation:{cid}", f"turn:{tid}", "has_turn", position=pos)
        if time:
            month = time[:7]
            if f"period:{month}" not in g:
                _node(g, f"period:{month}", type="period", month=month)
            _edge(g, f"turn:{tid}", f"period:{month}", "in_period")
    if has_metaphors(db):
        shown = list_metaphors(index, min_conversations=min_conversations)
        ids = {m.id for m in shown}
        for m in shown:
            _node(g, f"metaphor:{m.id}", type="metaphor", label=m.label, score=float(m.score), status=m.status,
                  curated=m.curated, variants=m.variants, occurrences=m.occurrences,
                  conversations=m.conversations, first_seen=m.first_seen, first_role=m.first_role)
        for mid, tid, role, time, surface in db.execute(
                "SELECT mm.metaphor_id, o.turn_id, t.role, t.time, o.surface FROM metaphor_members mm "
                "JOIN metaphor_occurrences o ON o.key = mm.key JOIN turns t ON t.id = o.turn_id ORDER BY o.id"):
            if mid in ids:
                _edge(g, f"turn:{tid}", f"metaphor:{mid}", "uses", role=role, time=time, surface=surface)
        for a, b, n in cooccurrences(db, sorted(ids)):
            _edge(g, f"metaphor:{a}", f"metaphor:{b}", "cooccurs", weight=float(n))
            _edge(g, f"metaphor:{b}", f"metaphor:{a}", "cooccurs", weight=float(n))
    tids, mat = turn_vectors(index)
    for a, b, w in echo_pairs(tids, mat, conv_of, echo_threshold):
        _edge(g, f"turn:{a}", f"turn:{b}", "echo", weight=w)
    return g


def write_graph(g: nx.MultiDiGraph, path: str | Path) -> None:
    """Write by extension: ``.graphml``, ``.gexf`` or ``.json`` (node-link, ``edges="links"``)."""
    path = Path(path)
    ext = path.suffix.lower()
    tmp = path.with_name(f".{path.name}.tmp")
    if ext == ".graphml":
        nx.write_graphml(g, tmp)
    elif ext == ".gexf":
        nx.write_gexf(g, tmp)
    elif ext == ".json":
        data = nx.node_link_data(g, edges="links")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        raise ValueError(f"unknown graph format {ext!r}; use one of {', '.join(FORMATS)}")
    tmp.replace(path)


def read_graph(path: str | Path) -> nx.MultiDiGraph:
    """Read a file written by :func:`write_graph` back (for tests and scripts)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".graphml":
        return nx.read_graphml(path, force_multigraph=True)
    if ext == ".gexf":
        return nx.read_gexf(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    return nx.node_link_graph(data, directed=True, multigraph=True, edges="links")


def summary(g: nx.MultiDiGraph) -> dict[str, dict[str, int]]:
    """Counts of nodes and edges by type."""
    nodes: dict[str, int] = defaultdict(int)
    edges: dict[str, int] = defaultdict(int)
    for _, d in g.nodes(data=True):
        nodes[d.get("type", "?")] += 1
    for _, _, d in g.edges(data=True):
        edges[d.get("type", "?")] += 1
    return {"nodes": dict(nodes), "edges": dict(edges)}
