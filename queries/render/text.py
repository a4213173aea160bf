"""The terminal view of a timeline: summary, per-period table, every occurrence in time order."""
from __future__ import annotations

from typing import Any

from queries.metaphors import USE
from queries.render.escape import terminal_text as _t
from queries.timeline import MAX_WITH, TOO_FEW, Timeline


def _one_line(text: str, limit: int = 160) -> str:
    text = _t(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _day(time: str | None) -> str:
    return time[:10] if time else "(undated)"


def summary_lines(tl: Timeline) -> list[str]:
    c = tl.counts
    lines = [f"{_t(tl.metaphor.label)}  [{_t(tl.metaphor.id)}]"]
    others = [v for v in tl.metaphor.variants if v != tl.metaphor.label]
    if others:
        lines.append(f"  variants: {_t(', '.join(others))}")
    who = f"; only the {tl.role}'s uses" if tl.role else ""
    what = "occurrences in the text" if tl.source == "text" else "uses"
    notes = c["total"] - c["user"] - c["assistant"]
    in_notes = f", plain notes {notes}" if notes else ""
    lines.append(f"  {what}: {c['total']} (user {c['user']}, assistant {c['assistant']}{in_notes}{who}) — {USE}")
    if tl.first:
        o = tl.occurrence(tl.first.uid)
        where = f' "{_t(o.title)}"' if o else ""
        who_first = f"in the plain note{where}" if tl.first.role == "note" else f"by {tl.first.role}" + (
            f" in{where}" if where else "")
        lines.append(f"  first use: {_day(tl.first.time)} {who_first}")
    if tl.uptake:
        o = tl.occurrence(tl.uptake.uid)
        where = f' in "{_t(o.title)}"' if o else ""
        lag = f", {tl.uptake.lag} later" if tl.uptake.lag is not None else ""
        lines.append(f"  uptake: {tl.uptake.role} on {_day(tl.uptake.time)}{lag}{where}")
    elif tl.first and tl.first.role in ("user", "assistant"):
        other = "assistant" if tl.first.role == "user" else "user"
        lines.append(f"  uptake: the {other} never used it")
    return lines


def render_text(tl: Timeline) -> str:
    lines = summary_lines(tl)
    lines.append("")
    lines.append(f"{'period':<9} {'uses':>4} {'user':>4} {'asst':>4}  {'drift':<22} terms")
    for p in tl.periods:
        drift = "—" if p.drift is None else p.drift_note
        lines.append(f"{p.period:<9} {p.count:>4} {p.user:>4} {p.assistant:>4}  {drift:<22} {_t(', '.join(p.terms))}")
        if p.quote:
            lines.append(f"{'':<9} quote: «{_one_line(p.quote.text, 120)}»")
        if p.co_occurring:
            co = ", ".join(f"{_t(c.label)} ({c.count})" for c in p.co_occurring[:MAX_WITH])
            if len(p.co_occurring) > MAX_WITH:
                co += f" +{len(p.co_occurring) - MAX_WITH} more"
            lines.append(f"{'':<9} with: {co}")
    if tl.occurrences and not tl.periods:
        lines.append("(no dated uses: plain notes carry no message times, so nothing is counted per period)")
    if any(p.p_value is None and p.drift for p in tl.periods):
        lines.append(f"(p-values need at least 3 uses in both periods; '{TOO_FEW}' otherwise)")
    lines.append("")
    lines.append("occurrences (local times, as the notes show them):")
    for o in tl.occurrences:
        lines.append(f"  {_day(o.time)}  {o.role:<9} {_t(o.title)}  ({_t(o.note)})")
        lines.append(f"              {_one_line(o.sentence)}")
    return "\n".join(lines)


def explanation_lines(ex: Any) -> list[str]:
    """``tropegraph metaphors explain``: why a metaphor is (not) listed (``queries.metaphors.Explanation``)."""
    s = ex.summary
    lines = [f"{_t(s.label)}  [{_t(s.id)}]"]
    lines.append(f"listed: {'yes' if ex.listed else 'no'} — " + "; ".join(ex.reasons))
    lines.append(f"score {s.score:.2f} = figurative {s.figurative:.2f} × recurrence {s.recurrence:.2f}"
                 + (f"  (model {ex.model})" if ex.model else ""))
    lines.append("")
    lines.append(f"Figurativeness: {s.figurative:.2f} overall = mean over {len(ex.sentences)} distinct sentence"
                 f"{'s' if len(ex.sentences) != 1 else ''} (cut-off {ex.threshold:.2f})")
    for sc in ex.sentences:
        uses = f" ×{sc.uses}" if sc.uses > 1 else ""
        lines.append(f"  {sc.figurative:.2f}  {_day(sc.first_time)} {sc.role:<9} «{_one_line(sc.sentence, 120)}»"
                     f"{uses}  ({_t(sc.conversation_title)})")
    roles = ", ".join(f"{r} {n}" for r, n in sorted(s.uses_by_role.items()))
    lines.append("")
    lines.append(f"Recurrence {s.recurrence:.2f}: {s.occurrences} use{'s' if s.occurrences != 1 else ''} in "
                 f"{s.places()} over {s.months} "
                 f"month{'s' if s.months != 1 else ''}; {s.sentences} distinct sentence"
                 f"{'s' if s.sentences != 1 else ''}; {roles}; languages {', '.join(s.languages)}")
    lines.append(f"  ({USE}; conversations and months count up to the number of distinct sentences)")
    lines.append("")
    lines.append(f"Group: {len(ex.keys)} lemma key{'s' if len(ex.keys) != 1 else ''}")
    for k in ex.keys:
        how = "founding key" if k.source == "lemma" else k.source
        over = f", literal by {k.override} in tropegraph.toml" if k.override else ""
        lines.append(f"  {_t(k.key)}  ({k.lang} {k.construction})  {k.uses} use{'s' if k.uses != 1 else ''}, "
                     f"figurative {k.figurative:.2f}{over} — {how}")
    for link in ex.links:
        lines.append(f"    {_t(link.a)} + {_t(link.b)}: {_t(link.reason)}")
    if ex.variants:
        lines.append("Variants: " + ", ".join(f"{_t(v)} ({n})" for v, n in ex.variants.items()))
    if ex.co_occurring:
        shown = ", ".join(f"{_t(label)} ({n})" for _, label, n in ex.co_occurring[:MAX_WITH])
        more = f" +{len(ex.co_occurring) - MAX_WITH} more" if len(ex.co_occurring) > MAX_WITH else ""
        lines.append(f"With: {shown}{more}  (the recurring images used in its conversations, and in how many)")
    return lines
