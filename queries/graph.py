"""The knowledge graph: a ``networkx.MultiDiGraph`` built from the index, and its export.

Nodes (``type`` attribute; ids are prefixed strings):
``note:<path>``, ``conversation:<id>``, ``turn:<id>``, ``metaphor:<id>``, ``tag:<name>``,
``period:<YYYY-MM>``, ``file:<path>`` (an attachment: any other file of the vault a note links
to or embeds); a wikilink to a file that does not exist gets a ``note:<target>`` node with
``unresolved=True``.

Edges (``type`` attribute, also the multigraph key):
``links_to`` note→note or note→file (wikilinks and embeds, resolved the Obsidian way by
``vault_schema.names`` against every file of the vault, not only notes; ``resolved`` False for a
missing target), ``contains`` note→conversation, ``has_turn``
conversation→turn, ``tagged`` note→tag, ``uses`` turn→metaphor (one per use — a turn repeating the image
has one edge —, with ``role``, ``time`` and the first ``surface``), ``cooccurs`` metaphor↔metaphor (both directions, ``weight`` = conversations
sharing both), ``echo`` turn→turn (cosine of stored turn vectors ≥ ``echo_threshold``
across different conversations, from the earlier turn to the later), ``in_period``
turn→period.

The graph is derived from tables that the indexer and the metaphor engine keep incrementally
up to date, so building it is a read (seconds) and never stale. Every attribute is a str,
int, float or bool (None dropped, lists joined with `` | ``), so GraphML/GEXF can hold it.
"""
from __future__ import annotations

import inspect
import json
import os
from collections import defaultdict
from pathlib import Path, PurePosixPath
from typing import Any

import networkx as nx
import numpy as np

#: e5 cosines are compressed: measured on the dev vault, turn pairs of different conversations
#: have median 0.858, 90th percentile 0.921, 99th 0.962; 0.95 keeps the top ~2 % (shared sentences).
ECHO_THRESHOLD = 0.95
ECHO_MAX_PER_TURN = 5
FORMATS = (".graphml", ".gexf", ".json")


def _node_link_edges() -> str:
    """The key ``nx.node_link_graph`` reads edges from by default: "edges" from networkx 3.6,
    "links" before (3.4-3.5 default to None, meaning "links" with a FutureWarning)."""
    default = inspect.signature(nx.node_link_graph).parameters.get("edges")
    return default.default if default is not None and isinstance(default.default, str) else "links"


NODE_LINK_EDGES = _node_link_edges()


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
        "WHERE p.kind = 0 ORDER BY p.turn_id, p.seq", (model,)):  # body passages: heads are names, not content
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


def vault_files(vault: Path | None) -> list[str]:
    """Every file of the vault that is not a Markdown note (vault-relative POSIX paths): what a
    wikilink or an embed may point at besides notes (images, SVGs, PDFs, canvases…). Dot-folders
    (``.obsidian``, ``.trash``) are left out, as Obsidian does. Empty when the vault is unknown."""
    if vault is None or not vault.is_dir():
        return []
    out = []
    for folder, dirs, files in os.walk(vault):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(folder).relative_to(vault).as_posix()
        for name in sorted(files):
            if not name.startswith(".") and not name.lower().endswith(".md"):
                out.append(name if rel == "." else f"{rel}/{name}")
    return out


def build_graph(index: Any, *, echo_threshold: float = ECHO_THRESHOLD, min_conversations: int = 2,
                vault: Path | None = None, include_literal: bool = False) -> nx.MultiDiGraph:
    """The whole graph from an open index (read-only use). Metaphors listed by
    ``queries.metaphors.list_metaphors(min_conversations=…)`` become nodes (rejected ones don't):
    only images (judged figurative) unless ``include_literal``. ``vault`` (default: the one the
    index was built from) is listed for attachments; it is only read."""
    from queries.metaphors import cooccurrences, has_metaphors, list_metaphors
    from vault_schema.names import Resolver

    db = index.db
    from vault_schema.models import TIMES

    g = nx.MultiDiGraph(times=TIMES)  # every time attribute: local, as the notes show it
    notes = db.execute("SELECT id, path, title, kind, aliases FROM notes ORDER BY path").fetchall()
    path_of = {nid: path for nid, path, *_ in notes}
    aliases = {}
    for _nid, path, title, kind, al in notes:
        _node(g, f"note:{path}", type="note", path=path, title=title, kind=kind, unresolved=False)
        try:
            aliases[path] = [a for a in json.loads(al or "[]") if isinstance(a, str)]
        except json.JSONDecodeError:
            aliases[path] = []
    if vault is None and hasattr(index, "get_meta"):
        stored = index.get_meta("vault")
        vault = Path(stored) if stored else None
    files = set(vault_files(vault))
    resolver = Resolver([*path_of.values(), *sorted(files)], aliases)
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
        elif dst in files:
            node = f"file:{dst}"
            if node not in g:
                _node(g, node, type="attachment", path=dst, ext=PurePosixPath(dst).suffix.lstrip(".").lower())
            _edge(g, f"note:{src}", node, "links_to", resolved=True, embed=bool(embed))
        elif dst != src:
            _edge(g, f"note:{src}", f"note:{dst}", "links_to", resolved=True, embed=bool(embed))
    for nid, name in db.execute("SELECT DISTINCT note_id, name FROM tags ORDER BY name"):
        if nid in path_of:
            _node(g, f"tag:{name}", type="tag", name=name)
            _edge(g, f"note:{path_of[nid]}", f"tag:{name}", "tagged")
    for cid, nid, title, provider, created, offset in db.execute(
            "SELECT id, note_id, title, provider, created, utc_offset FROM conversations ORDER BY id"):
        # times are local, as in the notes (turn times too); utc_offset in minutes when known
        _node(g, f"conversation:{cid}", type="conversation", title=title, provider=provider, created=created,
              utc_offset=offset)
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
        shown = list_metaphors(index, min_conversations=min_conversations, include_literal=include_literal)
        ids = {m.id for m in shown}
        for m in shown:
            _node(g, f"metaphor:{m.id}", type="metaphor", label=m.label, score=float(m.score), status=m.status,
                  figurative=float(m.figurative), image=m.image,
                  curated=m.curated, variants=m.variants, occurrences=m.occurrences,
                  conversations=m.conversations, first_seen=m.first_seen, first_role=m.first_role)
        seen: set[tuple[str, int]] = set()  # one edge per use: a turn repeating the image counts once
        for mid, tid, role, time, surface in db.execute(
                "SELECT mm.metaphor_id, o.turn_id, t.role, t.time, o.surface FROM metaphor_members mm "
                "JOIN metaphor_occurrences o ON o.key = mm.key JOIN turns t ON t.id = o.turn_id ORDER BY o.id"):
            if mid in ids and (mid, tid) not in seen:
                seen.add((mid, tid))
                _edge(g, f"turn:{tid}", f"metaphor:{mid}", "uses", role=role, time=time, surface=surface)
        for a, b, n in cooccurrences(db, sorted(ids)):
            _edge(g, f"metaphor:{a}", f"metaphor:{b}", "cooccurs", weight=float(n))
            _edge(g, f"metaphor:{b}", f"metaphor:{a}", "cooccurs", weight=float(n))
    tids, mat = turn_vectors(index)
    for a, b, w in echo_pairs(tids, mat, conv_of, echo_threshold):
        _edge(g, f"turn:{a}", f"turn:{b}", "echo", weight=w)
    return g


def write_graph(g: nx.MultiDiGraph, path: str | Path) -> None:
    """Write by extension: ``.graphml``, ``.gexf`` or ``.json`` (node-link, with the edge key the
    installed networkx reads by default, so ``nx.node_link_graph(json.load(f))`` works)."""
    path = Path(path)
    ext = path.suffix.lower()
    tmp = path.with_name(f".{path.name}.tmp")
    if ext == ".graphml":
        nx.write_graphml(g, tmp)
    elif ext == ".gexf":
        nx.write_gexf(g, tmp)
    elif ext == ".json":
        data = nx.node_link_data(g, edges=NODE_LINK_EDGES)
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
    return nx.node_link_graph(data, edges=NODE_LINK_EDGES)


def summary(g: nx.MultiDiGraph) -> dict[str, dict[str, int]]:
    """Counts of nodes and edges by type."""
    nodes: dict[str, int] = defaultdict(int)
    edges: dict[str, int] = defaultdict(int)
    for _, d in g.nodes(data=True):
        nodes[d.get("type", "?")] += 1
    for _, _, d in g.edges(data=True):
        edges[d.get("type", "?")] += 1
    return {"nodes": dict(nodes), "edges": dict(edges)}


# --- the explorer's view: the top metaphors of a period, light enough to draw ---------------------

GRAPH_KINDS = ("metaphor", "conversation", "tag")
#: How many metaphors the explorer draws by default (best by score); large vaults show only these.
GRAPH_TOP = 40


def metaphor_graph(index: Any, *, top: int = GRAPH_TOP, since: str | None = None, until: str | None = None,
                   kinds: tuple[str, ...] | list[str] = ("metaphor",), vault_name: str | None = None,
                   show_all: bool = False) -> dict[str, Any]:
    """The ``top`` metaphors by score that were used between ``since`` (inclusive) and ``until``
    (exclusive ISO bounds, see ``queries.search.parse_when``), as node-link JSON with the node ids,
    types and edge types of :func:`build_graph` (``graph export FILE.json``).

    Metaphor nodes carry ``rank`` (0 = best score) and their uses *in the period* by role;
    ``cooccurs`` links count the period's conversations using both. Without a period, undated uses
    (plain notes) count too. ``kinds`` may add
    ``conversation`` nodes (linked by ``uses``, weight = uses) and ``tag`` nodes (``tagged``, weight
    = uses in notes with that tag), each capped at ``top`` by how many shown metaphors they touch.
    Only recurring images are drawn unless ``show_all`` (as ``graph export --all``: literal phrases and
    phrases of one conversation too); when there are none at all, ``graph.message`` says why.
    No networkx and no vectors: it is a few SQL reads, so the explorer can redraw on every filter.
    """
    from queries.metaphors import has_metaphors, list_metaphors
    from queries.render.links import obsidian_uri

    bad = [k for k in kinds if k not in GRAPH_KINDS]
    if bad:
        raise ValueError(f"unknown node kind {bad[0]!r}; use {', '.join(GRAPH_KINDS)}")
    top = max(1, int(top))
    out: dict[str, Any] = {"directed": False, "multigraph": False, "nodes": [], "links": [],
                           "graph": {"since": since, "until": until, "top": top, "kinds": list(kinds),
                                     "all": show_all,
                                     "metaphors_in_period": 0, "first_month": None, "last_month": None}}
    db = index.db
    if not has_metaphors(db):
        return out
    summaries = {s.id: s for s in list_metaphors(index, min_conversations=1 if show_all else 2,
                                                 include_literal=show_all)}
    if not summaries:  # nothing to draw in any period: say why, as `tropegraph metaphors` does
        from queries.metaphors import list_status

        out["graph"]["message"] = list_status(index).message()
    where, args = ["1"], []  # undated uses (plain notes) count unless a period is asked for
    if since:
        where.append("t.time >= ?")
        args.append(since)
    if until:
        where.append("t.time < ?")
        args.append(until)
    rows = db.execute(  # one row per use: a turn repeating the image counts once (queries.metaphors.USE)
        "SELECT DISTINCT mm.metaphor_id, t.conversation_id, t.note_id, t.role, t.id FROM metaphor_members mm "
        "JOIN metaphor_occurrences o ON o.key = mm.key JOIN turns t ON t.id = o.turn_id "
        f"WHERE {' AND '.join(where)} ORDER BY t.time, t.id", args).fetchall()
    span = db.execute("SELECT min(substr(time, 1, 7)), max(substr(time, 1, 7)) FROM turns "
                      "WHERE time IS NOT NULL").fetchone()
    out["graph"].update(first_month=span[0], last_month=span[1])
    used = {mid for mid, *_ in rows if mid in summaries}
    out["graph"]["metaphors_in_period"] = len(used)
    ranked = sorted(used, key=lambda m: (-summaries[m].score, m))[:top]
    rank = {mid: i for i, mid in enumerate(ranked)}
    uses: dict[str, dict[str, int]] = {m: {"uses": 0, "user": 0, "assistant": 0, "note": 0} for m in ranked}
    convs: dict[str, set[str]] = defaultdict(set)      # metaphor -> conversations
    by_conv: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # conversation -> metaphor -> uses
    by_note: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for mid, conv, note_id, role, _turn in rows:
        if mid not in rank:
            continue
        u = uses[mid]
        u["uses"] += 1
        u[role if role in u else "note"] += 1
        convs[mid].add(conv)
        by_conv[conv][mid] += 1
        by_note[note_id][mid] += 1
    for mid in ranked:
        s = summaries[mid]
        out["nodes"].append({"id": f"metaphor:{mid}", "type": "metaphor", "metaphor_id": mid, "label": s.label,
                             "score": s.score, "rank": rank[mid], "status": s.status, "image": s.image,
                             "conversations": len(convs[mid]), "first_seen": s.first_seen,
                             "first_role": s.first_role, "variants": list(s.variants[:6]), **uses[mid]})
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    for mids in by_conv.values():
        ms = sorted(mids)
        for i, a in enumerate(ms):
            for b in ms[i + 1:]:
                pairs[(a, b)] += 1
    for (a, b), n in sorted(pairs.items()):
        out["links"].append({"source": f"metaphor:{a}", "target": f"metaphor:{b}", "type": "cooccurs", "weight": n})
    if "conversation" in kinds and by_conv:
        chosen = sorted(by_conv, key=lambda c: (-len(by_conv[c]), -sum(by_conv[c].values()), c))[:top]
        marks = ",".join("?" * len(chosen))
        info = {r[0]: r[1:] for r in db.execute(
            f"SELECT c.id, c.title, c.provider, c.created, n.path FROM conversations c "
            f"JOIN notes n ON n.id = c.note_id WHERE c.id IN ({marks})", chosen)}
        for conv in chosen:
            title, provider, created, path = info.get(conv, (conv, None, None, None))
            node = {"id": f"conversation:{conv}", "type": "conversation", "title": title or path or conv,
                    "provider": provider, "created": created, "note": path,
                    "uses": sum(by_conv[conv].values())}
            if path and vault_name:
                node["uri"] = obsidian_uri(vault_name, path)
            out["nodes"].append(node)
            for mid, n in sorted(by_conv[conv].items()):
                out["links"].append({"source": f"conversation:{conv}", "target": f"metaphor:{mid}",
                                     "type": "uses", "weight": n})
    if "tag" in kinds and by_note:
        per_tag: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        notes = list(by_note)
        for i in range(0, len(notes), 500):
            chunk = notes[i:i + 500]
            for note_id, name in db.execute(
                    f"SELECT DISTINCT note_id, name FROM tags WHERE note_id IN ({','.join('?' * len(chunk))})", chunk):
                for mid, n in by_note[note_id].items():
                    per_tag[name][mid] += n
        for name in sorted(per_tag, key=lambda t: (-len(per_tag[t]), t))[:top]:
            out["nodes"].append({"id": f"tag:{name}", "type": "tag", "name": name,
                                 "uses": sum(per_tag[name].values())})
            for mid, n in sorted(per_tag[name].items()):
                out["links"].append({"source": f"tag:{name}", "target": f"metaphor:{mid}", "type": "tagged",
                                     "weight": n})
    return out
