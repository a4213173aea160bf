"""The terminal view of a timeline: summary, per-period table, every occurrence in time order."""
from __future__ import annotations

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
    lines.append(f"  uses: {c['total']} (user {c['user']}, assistant {c['assistant']})")
    if tl.first:
        o = tl.occurrence(tl.first.uid)
        where = f' in "{_t(o.title)}"' if o else ""
        lines.append(f"  first use: {_day(tl.first.time)} by {tl.first.role}{where}")
    if tl.uptake:
        o = tl.occurrence(tl.uptake.uid)
        where = f' in "{_t(o.title)}"' if o else ""
        lag = f", {tl.uptake.lag_days:g} days later" if tl.uptake.lag_days is not None else ""
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
    if any(p.p_value is None and p.drift for p in tl.periods):
        lines.append(f"(p-values need at least 3 uses in both periods; '{TOO_FEW}' otherwise)")
    lines.append("")
    lines.append("occurrences:")
    for o in tl.occurrences:
        lines.append(f"  {_day(o.time)}  {o.role:<9} {_t(o.title)}  ({_t(o.note)})")
        lines.append(f"              {_one_line(o.sentence)}")
    return "\n".join(lines)
