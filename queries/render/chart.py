"""Uses per period by role, with drift on a second axis: as inline SVG (HTML pages) or PNG (matplotlib)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queries.render.escape import html_text as escape
from queries.timeline import DRIFT_AXIS, Timeline, period_range  # DRIFT_AXIS: also imported from here

USER_COLOUR = "#4c72b0"
ASSISTANT_COLOUR = "#dd8452"
NOTE_COLOUR = "#8c8c8c"
DRIFT_COLOUR = "#c44e52"
SIGNIFICANT = 0.05
"""A drift point with a permutation p-value below this is drawn filled; others hollow."""


def drift_axis_max(drifts: list[float | None]) -> float:
    top = max((d for d in drifts if d is not None), default=0.0)
    return max(DRIFT_AXIS, math.ceil(round(top * 10, 6)) / 10)


@dataclass(frozen=True)
class Series:
    """The chart's data with empty periods filled in, so the time axis is honest."""

    periods: list[str]
    user: list[int]
    assistant: list[int]
    note: list[int]
    drift: list[float | None]
    p_value: list[float | None]


def series(tl: Timeline) -> Series:
    if not tl.periods:
        return Series([], [], [], [], [], [])
    keys = period_range(tl.periods[0].period, tl.periods[-1].period, tl.by)
    by_key = {p.period: p for p in tl.periods}
    s = Series(keys, [], [], [], [], [])
    for k in keys:
        p = by_key.get(k)
        s.user.append(p.user if p else 0)
        s.assistant.append(p.assistant if p else 0)
        s.note.append(p.note if p else 0)
        s.drift.append(p.drift if p else None)
        s.p_value.append(p.p_value if p else None)
    return s


def chart_svg(tl: Timeline, *, width: int = 760, height: int = 280) -> str:
    """A stacked bar chart (user, assistant, note uses) with the drift line; plain SVG, no script."""
    s = series(tl)
    left, right, top, bottom = 44, 60, 24, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(s.periods), 1)
    totals = [u + a + o for u, a, o in zip(s.user, s.assistant, s.note, strict=True)] or [0]
    y_max = max(max(totals), 1)
    d_max = drift_axis_max(s.drift)
    slot = plot_w / n
    bar_w = max(min(slot * 0.7, 48), 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / y_max

    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" id="chart" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
        ),
        f"<title>{escape(tl.metaphor.label)}: uses per {escape(tl.by)} by role, and drift</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444"/>',
    ]
    for tick in _ticks(y_max):
        parts.append(
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>'
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + plot_w}" y2="{y(tick):.1f}" stroke="#eee"/>'
        )
    parts.append(
        f'<text x="12" y="{top + plot_h / 2:.1f}" transform="rotate(-90 12 {top + plot_h / 2:.1f})" '
        f'text-anchor="middle">uses</text>'
    )
    label_every = max(1, round(n / 14))
    for i, key in enumerate(s.periods):
        x = left + slot * i + (slot - bar_w) / 2
        base = 0
        for count, colour, role in (
            (s.user[i], USER_COLOUR, "user"),
            (s.assistant[i], ASSISTANT_COLOUR, "assistant"),
            (s.note[i], NOTE_COLOUR, "note"),
        ):
            if count:
                parts.append(
                    f'<rect class="bar {role}" x="{x:.1f}" y="{y(base + count):.1f}" width="{bar_w:.1f}" '
                    f'height="{y(base) - y(base + count):.1f}" fill="{colour}">'
                    f"<title>{escape(key)}: {count} {role}</title></rect>"
                )
                base += count
        if i % label_every == 0:
            cx = left + slot * i + slot / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{top + plot_h + 14}" text-anchor="end" '
                f'transform="rotate(-35 {cx:.1f} {top + plot_h + 14})">{escape(key)}</text>'
            )
    points = [
        (left + slot * i + slot / 2, top + plot_h - plot_h * d / d_max, pv)
        for i, (d, pv) in enumerate(zip(s.drift, s.p_value, strict=True))
        if d is not None
    ]
    if points:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in points)
        parts.append(f'<polyline class="drift" points="{path}" fill="none" stroke="{DRIFT_COLOUR}" stroke-width="2"/>')
        parts.extend(
            f'<circle class="drift-point{" significant" if pv is not None and pv < SIGNIFICANT else ""}" '
            f'cx="{px:.1f}" cy="{py:.1f}" r="3.5" stroke="{DRIFT_COLOUR}" stroke-width="1.5" '
            f'fill="{DRIFT_COLOUR if pv is not None and pv < SIGNIFICANT else "#fff"}"/>'
            for px, py, pv in points
        )
        for tick in (0.0, d_max / 3, 2 * d_max / 3, d_max):
            ty = top + plot_h - plot_h * tick / d_max
            parts.append(f'<text x="{left + plot_w + 6}" y="{ty + 4:.1f}" fill="{DRIFT_COLOUR}">{tick:.2f}</text>')
        parts.append(
            f'<text x="{left + plot_w + 40}" y="{top + plot_h / 2:.1f}" fill="{DRIFT_COLOUR}" '
            f'transform="rotate(90 {left + plot_w + 40} {top + plot_h / 2:.1f})" text-anchor="middle">drift</text>'
        )
    legend_y = height - 8
    for j, (name, colour) in enumerate(
        (("user", USER_COLOUR), ("assistant", ASSISTANT_COLOUR), ("note", NOTE_COLOUR),
         ("drift (filled: p < 0.05)", DRIFT_COLOUR))
    ):
        lx = left + j * 100
        parts.append(
            f'<rect x="{lx}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{legend_y}">{name}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _ticks(y_max: int) -> list[int]:
    step = max(1, -(-y_max // 5))
    return list(range(0, y_max + 1, step))


def write_png(tl: Timeline, path: str | Path, *, dpi: int = 110) -> None:
    """Save the chart as PNG with matplotlib's Agg backend (imported here: it is slow to load)."""
    import matplotlib.pyplot as plt

    fig = chart_figure(tl)
    try:
        fig.savefig(path, dpi=dpi, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)


def chart_figure(tl: Timeline) -> Any:
    """The PNG chart as a matplotlib figure (close it with ``plt.close``): stacked bars by role,
    drift on a second axis with a fixed scale, the legend under the plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = series(tl)
    x = list(range(len(s.periods)))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(x) + 2), 4.0))
    try:
        ax.bar(x, s.user, color=USER_COLOUR, label="user")
        ax.bar(x, s.assistant, bottom=s.user, color=ASSISTANT_COLOUR, label="assistant")
        if any(s.note):
            bottom = [u + a for u, a in zip(s.user, s.assistant, strict=True)]
            ax.bar(x, s.note, bottom=bottom, color=NOTE_COLOUR, label="note")
        ax.set_ylabel("uses")
        ax.set_xticks(x, s.periods, rotation=35, ha="right", fontsize=8)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_title(f"{tl.metaphor.label}: uses per {tl.by}")
        pts = [(i, d, pv) for i, (d, pv) in enumerate(zip(s.drift, s.p_value, strict=True)) if d is not None]
        handles, labels = ax.get_legend_handles_labels()
        if pts:
            ax2 = ax.twinx()
            (line,) = ax2.plot([p[0] for p in pts], [p[1] for p in pts], color=DRIFT_COLOUR, label="drift")
            sig = [p for p in pts if p[2] is not None and p[2] < SIGNIFICANT]
            rest = [p for p in pts if not (p[2] is not None and p[2] < SIGNIFICANT)]
            ax2.scatter([p[0] for p in rest], [p[1] for p in rest], s=28, facecolors="white",
                        edgecolors=DRIFT_COLOUR, zorder=3)
            if sig:
                ax2.scatter([p[0] for p in sig], [p[1] for p in sig], s=28, color=DRIFT_COLOUR, zorder=3)
            ax2.set_ylabel("drift (cosine distance)")
            ax2.set_ylim(0, drift_axis_max(s.drift))  # fixed scale: noise must not look dramatic
            handles.append(line)
            labels.append("drift (filled: p < 0.05)")
        # the legend sits under the chart, never over a bar
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
    except BaseException:
        plt.close(fig)
        raise
    return fig
