"""Obsidian report notes: one per metaphor and an index, data in frontmatter for Dataview.

Output depends only on the timeline data (no "generated at" stamp), so re-running a report over
an unchanged index produces byte-identical notes and sync tools stay quiet.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from queries.metaphors import USE
from queries.render.escape import md_text, mermaid_label, note_link, yaml_scalar
from queries.timeline import MAX_WITH, TOO_FEW, Period, Timeline, image_spans

REPORT_KEY = "tropegraph"
REPORT_VALUE = "report"


def frontmatter(data: Mapping[str, Any]) -> str:
    lines = ["---"]
    for key, value in data.items():
        if isinstance(value, list | tuple):
            if not value:
                lines.append(f"{key}: []")
                continue
            lines.append(f"{key}:")
            lines.extend(f"  - {yaml_scalar(v)}" for v in value)
        else:
            lines.append(f"{key}: {yaml_scalar(value)}")
    lines.append("---")
    return "\n".join(lines) + "\n"


def timeline_data(tl: Timeline) -> dict[str, Any]:
    """The frontmatter fields of a metaphor note (Dataview reads these)."""
    c = tl.counts
    drifts = [p.drift for p in tl.periods if p.drift is not None]
    return {
        REPORT_KEY: REPORT_VALUE,
        "metaphor_id": tl.metaphor.id,
        "label": tl.metaphor.label,
        "variants": list(tl.metaphor.variants),
        "uses": c["total"],
        "user_uses": c["user"],
        "assistant_uses": c["assistant"],
        "conversations": len({o.conversation_id for o in tl.occurrences}),
        "first_use": tl.first.time if tl.first else None,
        "introduced_by": tl.first.role if tl.first else None,
        "uptake_role": tl.uptake.role if tl.uptake else None,
        "uptake_lag_days": tl.uptake.lag_days if tl.uptake else None,
        "uptake_lag": tl.uptake.lag if tl.uptake else None,
        "last_use": next((o.time for o in reversed(tl.occurrences) if o.time), None),
        "periods": len(tl.periods),
        "max_drift": max(drifts) if drifts else None,
    }


def mermaid_chart(tl: Timeline) -> str:
    """An ``xychart-beta`` of uses per period (bars: all uses, line: the user's)."""
    from queries.render.chart import series

    s = series(tl)
    if not s.periods:
        return ""
    totals = [u + a + n for u, a, n in zip(s.user, s.assistant, s.note, strict=True)]
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'    title "Uses per {tl.by} (bars: all, line: user)"',
            f"    x-axis [{', '.join(mermaid_label(p) for p in s.periods)}]",
            f'    y-axis "uses" 0 --> {max(max(totals), 1)}',
            f"    bar [{', '.join(map(str, totals))}]",
            f"    line [{', '.join(map(str, s.user))}]",
            "```",
        ]
    )


_DRIFT_EXPLAINED = (
    "Distance of each period's contexts from the first period's (cosine distance of context-embedding "
    f"centroids; p from a permutation test, '{TOO_FEW}' below 3 uses in either period)."
)


def _day(time: str | None) -> str:
    return md_text(time[:10]) if time else "undated"


def _piece(text: str) -> str:
    """``md_text`` keeping one space at either edge, so escaped pieces can be joined."""
    if not text.strip():
        return " " if text else ""
    return (" " if text[0].isspace() else "") + md_text(text) + (" " if text[-1].isspace() else "")


def quote_md(tl: Timeline, text: str, uid: str) -> str:
    """A quote as inert Markdown with the image highlighted (``==…==``, Obsidian's highlight):
    the occurrence's own words if found, else any variant of the metaphor."""
    o = tl.occurrence(uid)
    phrases = [o.surface] if o is not None and o.surface and image_spans(text, [o.surface]) else [
        tl.metaphor.label, *tl.metaphor.variants]
    spans = image_spans(text, phrases)
    if not spans:
        return md_text(text)
    out, pos = [], 0
    for a, b in spans:
        out += [_piece(text[pos:a]), "==", md_text(text[a:b]), "=="]
        pos = b
    out.append(_piece(text[pos:]))
    return "".join(out).strip()


def with_md(period: Period) -> str:
    """The co-occurring metaphors of a period, capped at ``MAX_WITH`` ("+N more")."""
    co = ", ".join(f"{md_text(x.label)} ({x.count})" for x in period.co_occurring[:MAX_WITH])
    extra = len(period.co_occurring) - MAX_WITH
    return co + (f" +{extra} more" if extra > 0 else "")


def timeline_note(tl: Timeline) -> str:
    """The Markdown note for one metaphor."""
    m = tl.metaphor
    out = [frontmatter(timeline_data(tl)), f"# {md_text(m.label)}", ""]
    others = [v for v in m.variants if v != m.label]
    if others:
        out += [f"Variants: {', '.join(md_text(v) for v in others)}", ""]
    c = tl.counts
    out.append(f"- **Uses:** {c['total']} (user {c['user']}, assistant {c['assistant']}) "
               f"in {len({o.conversation_id for o in tl.occurrences})} conversations; {USE}")
    if tl.first:
        o = tl.occurrence(tl.first.uid)
        where = f" in {note_link(o.note, o.title)}" if o else ""
        out.append(f"- **First use:** {_day(tl.first.time)} by the {md_text(tl.first.role)}{where}")
        if o:
            out.append(f"  > {quote_md(tl, o.sentence, o.uid)}")
    if tl.uptake:
        o = tl.occurrence(tl.uptake.uid)
        where = f" in {note_link(o.note, o.title)}" if o else ""
        lag = f" ({tl.uptake.lag} later)" if tl.uptake.lag is not None else ""
        out.append(f"- **Uptake:** the {md_text(tl.uptake.role)} on {_day(tl.uptake.time)}{lag}{where}")
    elif tl.first and tl.first.role in ("user", "assistant"):
        other = "assistant" if tl.first.role == "user" else "user"
        out.append(f"- **Uptake:** the {other} has not used it")
    chart = mermaid_chart(tl)
    if chart:
        out += ["", "## Uses over time", "", chart]
    out += ["", "## Drift", "",
            _DRIFT_EXPLAINED, "",
            "| Period | Uses | User | Assistant | Drift | p | Characteristic words | Quote | With |",
            "|---|---:|---:|---:|---:|---:|---|---|---|"]
    for p in tl.periods:
        drift = "—" if p.drift is None else f"{p.drift:.3f}"
        pv = f"{p.p_value:.3f}" if p.p_value is not None else (TOO_FEW if p.drift else "—")
        quote = ""
        if p.quote:
            o = tl.occurrence(p.quote.uid)
            quote = quote_md(tl, p.quote.text, p.quote.uid) + (
                f" ({note_link(o.note, o.title, in_table=True)})" if o else "")
        co = with_md(p)
        out.append(f"| {md_text(p.period)} | {p.count} | {p.user} | {p.assistant} | {drift} | {pv} | "
                   f"{md_text(', '.join(p.terms))} | {quote} | {co} |")
    out += ["", "## Occurrences", ""]
    for o in tl.occurrences:
        out.append(f"- {_day(o.time)} · {md_text(o.role)} · {note_link(o.note, o.title)}")
        out.append(f"  > {quote_md(tl, o.sentence, o.uid)}")
    return "\n".join(out) + "\n"


def index_note(
    rows: Sequence[Mapping[str, Any]], *, links: Mapping[str, str], report_dir: str, graph_file: str = "graph.html",
    empty: str | None = None, literal_too: bool = False, state: str | None = None,
) -> str:
    """The index of all metaphors: a static table plus a Dataview query over the notes' frontmatter.

    ``rows`` are :func:`timeline_data`-like dicts (``metaphor_id``, ``label``, ``uses``, …) sorted
    as they should appear; ``links`` maps a metaphor id to its note's vault path, when it has one.
    ``empty`` says why there is nothing to list (no recurring images, and what to do);
    ``literal_too``: the rows also hold phrases judged literal (``report --all``).
    """
    fm = {
        REPORT_KEY: REPORT_VALUE,
        "report_kind": "index",
        "metaphors": len(rows),
        "notes": len(links),
        "top": [r["label"] for r in rows if r["metaphor_id"] in links],
    }
    if state:  # what the report was made from (queries.reports.report_state): unchanged → not recomputed
        fm["report_state"] = state
    out = [frontmatter(fm), "# Metaphors", ""]
    if not rows:
        out.append(md_text(empty or "No recurring images in this vault."))
        out.append("")
        out.append(f"Graph overview: [{graph_file}]({graph_file}) (open in a browser).")
        return "\n".join(out) + "\n"
    what = ("candidate phrases, images and literal ones alike (report --all)" if literal_too else
            "recurring images (phrases the figurativeness model judges figurative, used in 2+ conversations, "
            "or tracked)")
    out.append(f"{len(rows)} {what}, best first; the top {len(links)} have their own note. {USE[0].upper()}{USE[1:]}. "
               f"Graph overview: [{graph_file}]({graph_file}) (open in a browser).")
    out += ["", "| Metaphor | Uses | User | Assistant | First use | Introduced by | Uptake lag | Max drift |",
            "|---|---:|---:|---:|---|---|---:|---:|"]
    for r in rows:
        path = links.get(r["metaphor_id"])
        name = note_link(path, r["label"], in_table=True) if path else md_text(r["label"])
        lag = r.get("uptake_lag") or ""
        drift = "" if r.get("max_drift") is None else f"{r['max_drift']:.3f}"
        out.append(f"| {name} | {r['uses']} | {r['user_uses']} | {r['assistant_uses']} | "
                   f"{_day(r.get('first_use'))} | {md_text(r.get('introduced_by') or '')} | {lag} | {drift} |")
    folder = report_dir.strip("/").replace('"', '\\"')
    out += ["", "## With Dataview", "", "```dataview",
            "TABLE uses, user_uses, assistant_uses, first_use, introduced_by, uptake_lag_days, max_drift",
            f'FROM "{folder}"',
            'WHERE tropegraph = "report" AND metaphor_id',
            "SORT uses DESC",
            "```"]
    return "\n".join(out) + "\n"
