"""Static outputs read well: quotes without Markdown leftovers and with the image highlighted,
"With" lists capped, a PNG legend outside the bars and a drift axis on a fixed scale."""
from __future__ import annotations

import numpy as np
import pytest

from queries.render.chart import DRIFT_AXIS, chart_figure, chart_svg, drift_axis_max
from queries.render.html import timeline_html
from queries.render.markdown import timeline_note
from queries.render.text import render_text
from queries.timeline import MAX_WITH, MetaphorRef, Occurrence, build_timeline, image_spans, plain_sentence


@pytest.mark.parametrize(("raw", "plain"), [
    ("- Векторный индекс — это **карта смысла** всего архива.", "Векторный индекс — это карта смысла всего архива."),
    ("**Хорошая метафора переносит структуру", "Хорошая метафора переносит структуру"),
    ("** Понимание приходит после практики", "Понимание приходит после практики"),
    ("## Карта смысла", "Карта смысла"),
    ("> 1. См. [[Язык токенов#Начало|язык]] и [текст](https://x.org/a) `код`", "См. язык и текст код"),
    ("- [ ] *курсив* и ==выделение== и ~~зачёркнуто~~", "курсив и выделение и зачёркнуто"),
    ("__init__ вызывает x**2 и 2*3*4", "__init__ вызывает x**2 и 2*3*4"),  # not Markdown: kept
])
def test_plain_sentence_drops_markdown_syntax_and_keeps_words(raw: str, plain: str) -> None:
    assert plain_sentence(raw) == plain


def test_image_spans_are_whole_words_case_insensitive_and_longest_first() -> None:
    text = "Карта смысла, карту смысла и карта смыслов; картами"
    spans = image_spans(text, ["карта смысла", "карту смысла", "карта"])
    # «карта смыслов» is not the image (its «карта» alone is), «картами» is no whole word
    assert [(a, text[a:b]) for a, b in spans] == [(0, "Карта смысла"), (14, "карту смысла"), (29, "карта")]


def timeline_with(sentences: list[str], *, others: int = 0):
    occs = [Occurrence(f"u{i}", f"c{i}", f"Nexus/{i}.md", f"Chat {i}", "user" if i % 2 else "assistant",
                       f"2025-0{1 + i % 3}-1{i}T10:00:00", s, surface="карту смысла" if "карту" in s else "карта смысла")
            for i, s in enumerate(sentences)]
    co = {f"c{i}": [MetaphorRef(f"m{j}", f"образ {j}") for j in range(others)] for i in range(len(sentences))}
    return build_timeline(MetaphorRef("m", "карта смысла", ("карта смысла", "карту смысла")), occs, cooccurring=co)


def test_markdown_quotes_highlight_the_image_and_have_no_leftovers() -> None:
    tl = timeline_with([plain_sentence("- Я рисую **карту смысла** каждый день."),
                        plain_sentence("Вот карта смысла <b>архива</b>.")])
    note = timeline_note(tl)
    quotes = {line for line in note.splitlines() if line.startswith("  > ")}
    assert quotes == {"  > Вот ==карта смысла== \\<b\\>архива\\</b\\>.", "  > Я рисую ==карту смысла== каждый день."}
    assert "\\*\\*" not in note and "> \\-" not in note
    table = [line for line in note.splitlines() if line.startswith("| 2025-")]
    assert table and all("==карт" in row for row in table)


def test_html_marks_the_image_and_keeps_period_labels_on_one_line() -> None:
    tl = timeline_with(["Я рисую карту смысла <script>x()</script> каждый день.", "Вот карта смысла."])
    page = timeline_html(tl)
    assert "Я рисую <mark>карту смысла</mark> &lt;script&gt;x()&lt;/script&gt; каждый день." in page
    assert '<td class="period">2025-' in page and "td.period,td.nowrap{white-space:nowrap}" in page


def test_with_lists_are_capped_everywhere() -> None:
    tl = timeline_with(["Карта смысла тут.", "И карта смысла там."], others=MAX_WITH + 3)
    assert all(len(p.co_occurring) == MAX_WITH + 3 for p in tl.periods)  # the data keeps them all
    assert "+3 more" in timeline_html(tl) and "+3 more" in timeline_note(tl) and "+3 more" in render_text(tl)
    assert f"образ {MAX_WITH + 2}" not in timeline_note(tl)


def drifting_timeline(drift_scale: float):
    """Three periods whose contexts move by ``drift_scale`` (vectors built so the drift is known)."""
    occs, vectors = [], {}
    for i, month in enumerate(("01", "02", "03")):
        for j in range(3):
            uid = f"u{i}{j}"
            occs.append(Occurrence(uid, f"c{i}", "n.md", "t", "user", f"2025-{month}-0{j + 1}T10:00:00", "карта смысла"))
            v = np.zeros(8, dtype=np.float32)
            v[0] = 1.0
            v[1 + j] = 0.01
            v[5] = drift_scale * i
            vectors[uid] = v / np.linalg.norm(v)
    return build_timeline(MetaphorRef("m", "карта смысла"), occs, vectors=vectors)


def test_drift_axis_is_fixed_unless_a_value_needs_more() -> None:
    small = drifting_timeline(0.2)
    assert 0 < max(p.drift for p in small.periods) < 0.1
    assert drift_axis_max([p.drift for p in small.periods]) == DRIFT_AXIS
    assert drift_axis_max([0.05, 0.42]) == pytest.approx(0.5)
    svg = chart_svg(small)
    assert f">{DRIFT_AXIS:.2f}</text>" in svg  # the top tick is the fixed scale, not the largest value


def test_png_legend_is_outside_the_bars_and_drift_axis_fixed() -> None:
    import matplotlib.pyplot as plt

    tl = drifting_timeline(0.2)
    fig = chart_figure(tl)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax, ax2 = fig.axes[0], fig.axes[1]
        legend = fig.legends[0].get_window_extent(renderer)
        plot = ax.get_window_extent(renderer)
        assert legend.y1 <= plot.y0  # under the plot area: it cannot cover a bar
        assert ax2.get_ylim() == (0.0, DRIFT_AXIS)
        filled = [c for c in ax2.collections if len(c.get_offsets())]
        assert filled  # drift points drawn
    finally:
        plt.close(fig)
