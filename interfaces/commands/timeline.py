"""``tropegraph timeline PHRASE`` and ``tropegraph report``: how an image was born and moved.

Heavy modules (numpy, the embedder, matplotlib, networkx) are imported inside the commands.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from interfaces.commands._common import (
    friendly_errors,
    json_option,
    maintenance,
    print_json,
    say,
    vault_options,
)

_BY = click.Choice(["month", "quarter", "week"])


_ALL = click.option("--all", "show_all", is_flag=True,
                    help="Also phrases judged literal or seen in one conversation (default: recurring images only).")


def _open_source(vault: str | None, index_dir: str | None, show_all: bool = False) -> Any:
    from indexer.config import find_vault, resolve_index_dir
    from indexer.store import open_index
    from queries.timeline import IndexSource

    root = find_vault(vault)
    index = open_index(resolve_index_dir(root, index_dir), readonly=True, notify=say, log=maintenance)
    return IndexSource(index, root, show_all=show_all)


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Turn a failed file write into a one-line error naming the file."""
    try:
        yield
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}; choose another path") from exc


def _t(text: str) -> str:
    """A metaphor label as one terminal line without escape sequences (labels come from notes)."""
    from queries.render.escape import terminal_text

    return terminal_text(text)


def _say(msg: str) -> None:
    click.echo(msg, err=True)


@click.command()
@click.argument("phrase")
@click.option("--by", type=_BY, default="month", show_default=True, help="Period length for counts and drift.")
@click.option("--role", type=click.Choice(["user", "assistant"]), default=None,
              help="Only this speaker's uses, in the occurrences and the period table (first use and uptake "
                   "still look at both).")
@json_option
@click.option("--png", "png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save a chart of uses per period (and drift) as PNG.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save a self-contained web page (chart, occurrences, links).")
@click.option("--note", is_flag=True, help="Write or update this metaphor's note in the vault's report folder.")
@click.option("--report-dir", default=None, help="Report folder inside the vault [default: Tropegraph].")
@click.option("--no-drift", is_flag=True, help="Skip context embeddings (faster; drift and quotes by centroid left out).")
@_ALL
@vault_options
@friendly_errors
def timeline(phrase: str, by: str, role: str | None, as_json: bool, png: Path | None, html_out: Path | None,
             note: bool, report_dir: str | None, no_drift: bool, show_all: bool, vault: str | None,
             index_dir: str | None) -> None:
    """How the metaphor PHRASE was born, who introduced and took it up, and how its use drifted.

    PHRASE is a metaphor id, its label, any variant, or a free phrase (matched by lemmas, then by
    its own occurrences in the text, then by meaning). Without a match it names the closest
    images and exits 1. A use is one turn (a message, or a section of a plain note) that uses the image.
    """
    if not phrase.split():
        raise click.ClickException('the phrase is empty: give a metaphor id or a phrase, e.g. '
                                   'tropegraph timeline "карта смысла"')
    with _open_source(vault, index_dir, show_all) as src:
        res = src.resolve(phrase)
        if res.chosen is None:
            click.echo(f"Error: {_t(src.no_match(phrase, res))}", err=True)
            sys.exit(1)
        chosen = res.chosen
        how = {"id": "id", "label": "label", "variant": "variant", "lemmas": "same lemmas",
               "words": "shared words", "similarity": "similar meaning",
               "text": "its own occurrences in the text"}[res.how]
        match = src.describe(res)
        if res.how == "text":
            _say(f"Phrase: {_t(chosen.label)} (not an extracted metaphor; timeline of {how})")
        else:
            _say(f"Metaphor: {_t(chosen.label)} [{_t(chosen.id)}] (matched by {how})")
            if match["note"]:
                _say(f"note: {_t(match['note'])}")
        if len(res.matches) > 1:
            _say("Also matches: " + ", ".join(f"{_t(m.label)} [{_t(m.id)}]" for m in res.matches[1:])
                 + " (give the id to choose)")
        tl = src.timeline(chosen, by=by, drift=not no_drift)
        shown = tl.for_role(role)
        if as_json:
            print_json(shown.to_dict() | match)
        else:
            from queries.render.text import render_text

            click.echo(render_text(shown))
        if png:
            from queries.render.chart import write_png

            with _writing(png):
                write_png(shown, png)
            _say(f"Chart: {png}")
        if html_out:
            from queries.render.html import timeline_html
            from queries.reports import write_if_changed

            with _writing(html_out):
                write_if_changed(html_out, timeline_html(shown, vault_name=src.vault.name))
            _say(f"Page: {html_out}")
        if note:
            from queries.render.markdown import timeline_note
            from queries.reports import find_report_note, note_names, report_root, write_files

            _, rel = report_root(src.vault, report_dir)
            name = find_report_note(src.vault, rel, tl.metaphor.id) or note_names(
                [(tl.metaphor.id, tl.metaphor.label)]
            )[tl.metaphor.id]
            result = write_files(src.vault, rel, {name: timeline_note(tl)})
            what = "written" if result.written else "unchanged"
            _say(f"Note {what}: {(result.written or result.unchanged)[0]}")


@click.command()
@click.option("--top", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many metaphors, best first as `tropegraph metaphors` lists them, get their own note.")
@click.option("--by", type=_BY, default="month", show_default=True, help="Period length in the notes.")
@click.option("--report-dir", default=None, help="Report folder inside the vault [default: Tropegraph].")
@click.option("--no-drift", is_flag=True, help="Skip context embeddings (faster; no drift figures).")
@_ALL
@json_option
@vault_options
@friendly_errors
def report(top: int, by: str, report_dir: str | None, no_drift: bool, show_all: bool, as_json: bool,
           vault: str | None, index_dir: str | None) -> None:
    """Write Obsidian notes for the top metaphors, an index note and graph.html into the report folder.

    Only files whose content changed are rewritten, so re-running over an unchanged index touches
    nothing; such a re-run is recognised from the index note (what the report was made from) and
    recomputes nothing. Old report notes (frontmatter ``tropegraph: report``) of metaphors no longer in the
    top are removed; no other file is ever touched.
    """
    from importlib.metadata import version

    from queries.render.html import GraphEdge, GraphNode, graph_html
    from queries.render.links import obsidian_uri
    from queries.render.markdown import index_note, timeline_data, timeline_note
    from queries.reports import (
        GRAPH_FILE,
        INDEX_NOTE,
        WriteResult,
        inputs_digest,
        note_names,
        report_is_current,
        report_root,
        report_state,
        write_files,
    )
    from queries.timeline import build_timeline

    with _open_source(vault, index_dir, show_all) as src:
        _, rel = report_root(src.vault, report_dir)
        summaries = src.summaries()
        conv_map = src.conversation_metaphors()
        chosen = summaries[:top]
        names = note_names([(s.id, s.label) for s in chosen])
        occurrences = {s.id: src.occurrences(s.id) for s in summaries}
        raw_edges = src.edges()
        # everything the files are computed from: when it and the files are as the last report left
        # them, nothing is recomputed (no context embedding, no timeline): a no-op takes a moment
        inputs = inputs_digest(version("tropegraph"), top, by, no_drift, show_all, rel, src.vault.name,
                               summaries, occurrences, conv_map, raw_edges)
        others = sorted([*names.values(), GRAPH_FILE])
        if summaries and report_is_current(src.vault, rel, INDEX_NOTE, others, inputs):
            result = WriteResult(unchanged=[f"{rel}/{n}" for n in sorted([*others, INDEX_NOTE])])
            current = True
        else:
            current = False
        files: dict[str, str] = {}
        rows: list[dict[str, Any]] = []
        links: dict[str, str] = {}
        nodes = []
        with click.progressbar([] if current else summaries, label="Timelines", file=sys.stderr,
                               show_pos=True, hidden=not sys.stderr.isatty()) as bar:
            for i, s in enumerate(bar):
                embed = None if (no_drift or i >= top) else src.embed_contexts
                tl = build_timeline(src.ref(s), occurrences[s.id], by=by, embed=embed, cooccurring=conv_map)
                rows.append(timeline_data(tl))
                href = ""
                if s.id in names:
                    files[names[s.id]] = timeline_note(tl)
                    links[s.id] = f"{rel}/{names[s.id]}"
                    href = obsidian_uri(src.vault.name, links[s.id])
                c = tl.counts
                nodes.append(GraphNode(s.id, s.label, c["total"], c["user"], c["assistant"], href, s.score,
                                       s.figurative))
        empty = None
        if not summaries:
            from queries.metaphors import list_status

            empty = list_status(src.index).message()
        if not current:
            edges = [GraphEdge(a, b, n) for a, b, n in raw_edges]
            files[GRAPH_FILE] = graph_html(nodes, edges, title=f"Metaphors in {src.vault.name}", empty=empty,
                                           literal_too=show_all)
            files[INDEX_NOTE] = index_note(rows, links=links, report_dir=rel, graph_file=GRAPH_FILE, empty=empty,
                                           literal_too=show_all, state=report_state(inputs, files))
            result = write_files(src.vault, rel, files, prune=True)
    if as_json:
        doc = {"report_dir": rel, "written": result.written, "unchanged": result.unchanged,
               "removed": result.removed, "metaphors": len(summaries), "notes": len(chosen)}
        print_json(doc | ({"message": empty} if empty else {}))
        return
    click.echo(f"Report in {rel}/: {len(chosen)} metaphor notes, index {INDEX_NOTE}, {GRAPH_FILE}")
    click.echo(f"  written {len(result.written)}, unchanged {len(result.unchanged)}, removed {len(result.removed)}")
    if empty:
        click.echo(empty)

