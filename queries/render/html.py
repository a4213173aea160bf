"""Self-contained HTML pages: one timeline, and the metaphor graph overview.

No network: styles and charts are inline, the timeline page runs no script at all, and the graph
page runs one inline script pinned by a Content-Security-Policy hash. Every piece of note text
goes through ``queries.render.escape.html_text``; the CSP is a second lock, so a ``<script>`` that slipped through
would still not run.
"""
from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from queries.metaphors import USE
from queries.render.chart import ASSISTANT_COLOUR, USER_COLOUR, chart_svg
from queries.render.escape import html_text as escape
from queries.render.links import obsidian_uri
from queries.render.text import summary_lines
from queries.timeline import MAX_WITH, TOO_FEW, Timeline, image_spans

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
.role-user{color:#4c72b0}.role-assistant{color:#c0602a}.muted{color:#777}
.summary{white-space:pre-wrap;background:#f6f6f6;padding:.8em;border-radius:4px}
td.period,td.nowrap{white-space:nowrap}mark{background:#fff1a8;color:inherit}
"""


def _page(title: str, body: str, *, script: str = "") -> str:
    if script:
        digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
        csp = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"
        script_tag = f"<script>{script}</script>"
    else:
        csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'none'"
        script_tag = ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="ru"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n{script_tag}</body></html>\n"
    )


def _note_href(vault_name: str | None, path: str) -> str:
    return obsidian_uri(vault_name, path) if vault_name else ""


def _marked(text: str, phrases: Sequence[str]) -> str:
    """``text`` escaped, with the image (any of ``phrases``) in ``<mark>``."""
    out, pos = [], 0
    for a, b in image_spans(text, phrases):
        out += [escape(text[pos:a]), "<mark>", escape(text[a:b]), "</mark>"]
        pos = b
    return "".join(out) + escape(text[pos:])


def _image_in(tl: Timeline, text: str, uid: str) -> str:
    """The quote of occurrence ``uid`` with its image marked (its own surface, else any variant)."""
    o = tl.occurrence(uid)
    if o is not None and o.surface and image_spans(text, [o.surface]):
        return _marked(text, [o.surface])
    return _marked(text, [tl.metaphor.label, *tl.metaphor.variants])


def timeline_html(tl: Timeline, *, vault_name: str | None = None) -> str:
    """The timeline page: summary, chart, per-period table and every occurrence with its link."""
    m = tl.metaphor
    out = [f"<h1>{escape(m.label)}</h1>"]
    out.append(f'<div class="summary" id="summary">{escape(chr(10).join(line.strip() for line in summary_lines(tl)[1:]))}</div>')
    out.append(f'<h2>Uses per {escape(tl.by)}</h2><figure id="chart-box">{chart_svg(tl)}</figure>')
    out.append('<h2>Periods</h2><table id="periods"><thead><tr><th>Period</th><th>Uses</th><th>User</th>'
               "<th>Assistant</th><th>Drift</th><th>p</th><th>Characteristic words</th><th>Quote</th>"
               "<th>With</th></tr></thead><tbody>")
    for p in tl.periods:
        drift = "—" if p.drift is None else f"{p.drift:.3f}"
        pv = f"{p.p_value:.3f}" if p.p_value is not None else (TOO_FEW if p.drift else "—")
        quote = _image_in(tl, p.quote.text, p.quote.uid) if p.quote else ""
        co = ", ".join(f"{escape(c.label)} ({c.count})" for c in p.co_occurring[:MAX_WITH])
        if len(p.co_occurring) > MAX_WITH:
            co += f' <span class="muted">+{len(p.co_occurring) - MAX_WITH} more</span>'
        out.append(
            f'<tr><td class="period">{escape(p.period)}</td><td>{p.count}</td><td>{p.user}</td><td>{p.assistant}</td>'
            f'<td>{drift}</td><td class="nowrap">{escape(pv)}</td><td>{escape(", ".join(p.terms))}</td>'
            f"<td>{quote}</td><td>{co}</td></tr>"
        )
    out.append("</tbody></table>")
    out.append('<h2>Occurrences</h2><table id="occurrences"><thead><tr><th>Date</th><th>Role</th>'
               "<th>Conversation</th><th>Sentence</th></tr></thead><tbody>")
    for o in tl.occurrences:
        href = _note_href(vault_name, o.note)
        title = escape(o.title or o.note)
        link = f'<a href="{escape(href)}" title="{escape(o.note)}">{title}</a>' if href else (
            f'<span title="{escape(o.note)}">{title}</span>'
        )
        out.append(
            f'<tr class="occurrence"><td>{escape(o.time[:16].replace("T", " ") if o.time else "—")}</td>'
            f'<td class="role-{escape(o.role)}">{escape(o.role)}</td><td>{link}<br>'
            f'<span class="muted">{escape(o.note)}</span></td><td>{_image_in(tl, o.sentence, o.uid)}</td></tr>'
        )
    out.append("</tbody></table>")
    variants = ", ".join(escape(v) for v in m.variants)
    out.append(f'<p class="muted">id {escape(m.id)} · variants: {variants}</p>')
    return _page(f"{m.label} — tropegraph timeline", "\n".join(out))


# --- graph overview ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphNode:
    id: str
    label: str
    uses: int
    user: int = 0
    assistant: int = 0
    href: str = ""
    """Where clicking the node goes (the metaphor's report note, relative), or nothing."""
    score: float = 0.0
    """figurativeness × recurrence, as ``tropegraph metaphors`` ranks it."""
    figurative: float = 0.0


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    weight: int
    """Conversations in which both metaphors appear."""


MAX_LABELS = 25
"""Only the most used metaphors (and those with a note) get a visible label; the rest on hover."""

_GRAPH_SCRIPT = """
(function(){
  var svg=document.getElementById('graph');
  var info=document.getElementById('info');
  var nodes=svg.querySelectorAll('.node');
  function show(n,on){
    var id=n.getAttribute('data-id');
    svg.querySelectorAll('.edge').forEach(function(e){
      var hit=e.getAttribute('data-a')===id||e.getAttribute('data-b')===id;
      e.classList.toggle('hi',on&&hit);
    });
    n.classList.toggle('hi',on);
    info.textContent=on?(n.getAttribute('data-label')+' \\u2014 '+n.getAttribute('data-uses')+' uses'):'';
  }
  nodes.forEach(function(n){
    n.addEventListener('mouseenter',function(){show(n,true);});
    n.addEventListener('mouseleave',function(){show(n,false);});
  });
  document.body.setAttribute('data-ready','1');
})();
""".strip()


def graph_html(nodes: Sequence[GraphNode], edges: Sequence[GraphEdge], *, title: str = "Metaphor graph",
               empty: str | None = None, literal_too: bool = False) -> str:
    """Metaphors as circles sized by use, co-occurrence as lines; a hand-made SVG plus a tiny script.

    The table below the drawing lists the nodes by score, best first. ``empty`` says why there
    are no nodes (no recurring images, and what to do); ``literal_too``: the nodes also hold
    phrases judged literal (``report --all``).
    """
    width = 960
    max_uses = max((n.uses for n in nodes), default=1) or 1
    radius = {n.id: 5 + 18 * math.sqrt(n.uses / max_uses) for n in nodes}
    pos, height = _fit(_layout(nodes, edges), radius, width)
    labelled = {n.id for n in sorted(nodes, key=lambda n: (-n.uses, n.label))[:MAX_LABELS]}
    max_w = max((e.weight for e in edges), default=1) or 1
    svg = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'
        )
    ]
    for e in edges:
        if e.source not in pos or e.target not in pos:
            continue
        (x1, y1), (x2, y2) = pos[e.source], pos[e.target]
        svg.append(
            f'<line class="edge" data-a="{escape(e.source)}" data-b="{escape(e.target)}" '
            f'x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke-width="{1 + 5 * e.weight / max_w:.1f}"><title>{e.weight} shared conversations</title></line>'
        )
    for n in nodes:
        x, y = pos[n.id]
        r = radius[n.id]
        share = n.user / n.uses if n.uses else 0.5
        fill = USER_COLOUR if share >= 0.5 else ASSISTANT_COLOUR
        circle = (
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{fill}" fill-opacity="0.8">'
            f"<title>{escape(n.label)}: {n.uses} uses (user {n.user}, assistant {n.assistant})</title></circle>"
        )
        if n.id in labelled or n.href:
            circle += f'<text x="{x:.1f}" y="{y + r + 12:.1f}" text-anchor="middle">{escape(n.label)}</text>'
        attrs = (
            f'class="node" data-id="{escape(n.id)}" data-label="{escape(n.label)}" '
            f'data-uses="{n.uses}"'
        )
        if n.href:
            svg.append(f'<a href="{escape(n.href)}"><g {attrs}>{circle}</g></a>')
        else:
            svg.append(f"<g {attrs}>{circle}</g>")
    svg.append("</svg>")
    style = (
        "<style>.edge{stroke:#aaa;stroke-opacity:.6}.edge.hi{stroke:#c44e52;stroke-opacity:1}"
        ".node.hi circle{stroke:#222;stroke-width:2}#info{min-height:1.4em}</style>"
    )
    legend = (
        f'<p class="muted">{len(nodes)} metaphors, {len(edges)} co-occurrence links. Circle size: uses ({escape(USE)}); '
        f'<span class="role-user">blue</span>: mostly the user, <span class="role-assistant">orange</span>: '
        "mostly the assistant; line width: shared conversations.</p>"
    )
    rows = "".join(
        f"<tr><td>{escape(n.label)}</td><td>{n.score:.2f}</td><td>{n.figurative:.2f}</td><td>{n.uses}</td>"
        f"<td>{n.user}</td><td>{n.assistant}</td></tr>"
        for n in sorted(nodes, key=lambda n: (-n.score, n.label))
    )
    table = (
        '<table id="metaphors"><thead><tr><th>Metaphor</th><th>Score</th><th>Figurative</th><th>Uses</th>'
        f"<th>User</th><th>Assistant</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    if not nodes:
        why = "".join(f"<p>{escape(line.strip())}</p>" for line in
                      (empty or "No recurring images in this vault.").splitlines() if line.strip())
        return _page(title, f'<h1>{escape(title)}</h1><div id="empty">{why}</div>')
    heading = "Every candidate phrase, images and literal ones, by score" if literal_too else "All images, by score"
    body = (f'<h1>{escape(title)}</h1>{style}{legend}<p id="info"></p>{"".join(svg)}'
            f"<h2>{heading}</h2>{table}")
    return _page(title, body, script=_GRAPH_SCRIPT)


def _layout(nodes: Sequence[GraphNode], edges: Sequence[GraphEdge]) -> dict[str, tuple[float, float]]:
    """Deterministic layout: a seeded spring layout per connected component, components packed in rows.

    Laying out components separately keeps a small island from squeezing the main one into a
    line; everything is scaled uniformly into the drawing with a margin for labels.
    """
    if not nodes:
        return {}
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(sorted(n.id for n in nodes))
    ids = set(g.nodes)
    g.add_edges_from((e.source, e.target) for e in edges if {e.source, e.target} <= ids and e.source != e.target)
    comps = sorted((sorted(c) for c in nx.connected_components(g)), key=lambda c: (-len(c), c[0]))
    placed: dict[str, tuple[float, float]] = {}
    row_limit = 2.4 * math.sqrt(len(nodes)) + 2
    x = y = row_h = 0.0
    for comp in comps:
        size = math.sqrt(len(comp)) + 0.6  # side of the square this component gets
        if len(comp) == 1:
            local = {comp[0]: (0.0, 0.0)}
        else:
            pairs = [(a, b) for a, b in g.subgraph(comp).edges()]
            local = _spring(comp, pairs)
        xs = [p[0] for p in local.values()]
        ys = [p[1] for p in local.values()]
        span = max(max(xs) - min(xs), max(ys) - min(ys)) or 1.0
        if x > 0 and x + size > row_limit:
            x, y, row_h = 0.0, y + row_h, 0.0
        for nid, (px, py) in local.items():
            placed[nid] = (x + 0.3 + (px - min(xs)) / span * (size - 0.6), y + 0.3 + (py - min(ys)) / span * (size - 0.6))
        x += size
        row_h = max(row_h, size)
    return placed


def _spring(ids: list[str], pairs: list[tuple[str, str]], *, iterations: int = 150) -> dict[str, tuple[float, float]]:
    """Fruchterman–Reingold, seeded, in plain element-wise numpy.

    networkx's version goes through ``einsum``/BLAS, whose multi-threaded sums differ in the last
    bits from run to run; over 150 chaotic iterations that moved nodes and made graph.html differ
    between two reports of the same index. Element-wise ops and ``sum(axis=…)`` are reproducible.
    """
    import numpy as np

    n = len(ids)
    index = {nid: i for i, nid in enumerate(ids)}
    adj = np.zeros((n, n))
    for a, b in pairs:
        adj[index[a], index[b]] = adj[index[b], index[a]] = 1.0
    pos = np.random.default_rng(7).random((n, 2))
    k = 2.0 / math.sqrt(n)
    t = 0.1
    cool = t / (iterations + 1)
    for _ in range(iterations):
        delta = pos[:, None, :] - pos[None, :, :]
        dist = np.sqrt((delta * delta).sum(axis=2))
        np.clip(dist, 0.01, None, out=dist)
        force = k * k / (dist * dist) - adj * dist / k
        disp = (delta * force[:, :, None]).sum(axis=1)
        length = np.sqrt((disp * disp).sum(axis=1))
        length = np.where(length < 0.01, 0.1, length)
        pos = np.round(pos + disp * (t / length)[:, None], 9)
        t -= cool
    return {nid: (float(pos[i, 0]), float(pos[i, 1])) for nid, i in index.items()}


def _fit(
    placed: dict[str, tuple[float, float]], radius: dict[str, float], width: int
) -> tuple[dict[str, tuple[float, float]], int]:
    """Scale the layout to ``width`` (height follows its aspect), then push overlapping circles apart."""
    import numpy as np

    ids = sorted(placed)
    if not ids:
        return {}, 200
    pts = np.array([placed[i] for i in ids], dtype=np.float64)
    r = np.array([radius[i] for i in ids])
    margin = 60.0
    pts -= pts.min(axis=0)
    span = pts.max(axis=0)
    scale = (width - 2 * margin) / max(span[0], span[1] * 0.8, 1e-9)
    pts = pts * scale + margin
    height = int(min(max(pts[:, 1].max() + margin, 320), 1600))
    need = r[:, None] + r[None, :] + 16.0  # room for a label between neighbours
    for _ in range(80):
        diff = pts[:, None, :] - pts[None, :, :]
        dist = np.sqrt((diff**2).sum(axis=2)) + np.eye(len(ids))
        overlap = np.clip(need - dist, 0, None)
        np.fill_diagonal(overlap, 0)
        if overlap.max() < 0.5:
            break
        push = (diff / dist[:, :, None]) * (overlap[:, :, None] / 2)
        pts += push.sum(axis=1)
        pts[:, 0] = np.clip(pts[:, 0], margin / 2, width - margin / 2)
        pts[:, 1] = np.clip(pts[:, 1], margin / 2, None)
    height = int(min(max(pts[:, 1].max() + margin, 320), 2400))
    return {i: (round(float(x), 1), round(float(y), 1)) for i, (x, y) in zip(ids, pts, strict=True)}, height
