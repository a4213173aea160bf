"""``tropegraph search`` and ``tropegraph similar``: a thin layer over ``queries.search``.

Imported at CLI start, so the store, FAISS and the embedder are imported inside the commands.
"""

from __future__ import annotations

import sys
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


def _open(vault: str | None, index_dir: str | None) -> Any:
    """Open the index read-only: from ``--index-dir`` alone, or the vault's own index."""
    from indexer.config import find_vault, resolve_index_dir
    from indexer.store import open_index

    if index_dir and not vault:
        idx_dir = Path(index_dir).expanduser().resolve()
    else:
        idx_dir = resolve_index_dir(find_vault(vault), index_dir)
    return open_index(idx_dir, readonly=True, notify=say, log=maintenance)


def _render(hits: list[Any], header: str) -> None:
    """Numbered results; on a terminal with colours, the title links to the note and matches are bold.

    Everything taken from a note (title, path, model, UID, snippet) goes through the terminal
    escaping of ``queries.render.escape``: a note holding ``\\x1b[2J`` cannot clear the screen."""
    from rich.console import Console
    from rich.text import Text

    from queries.render.escape import terminal_chars, terminal_text

    console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
    if not hits:
        console.print(Text(f"No results for {terminal_text(header)}."))
        return
    for i, h in enumerate(hits, 1):
        when = (h.time or "").replace("T", " ")[:16]
        line = Text(f"{i:>2}. ", style="bold")
        line.append(terminal_text(h.title or h.note), style=f"bold link {h.uri}")
        details = " · ".join(terminal_text(x) for x in (h.role, h.model, when) if x)
        line.append(f"  {details}  ", style="cyan")
        line.append(f"score {h.score:.3f}", style="dim")
        console.print(line)
        console.print(Text(f"    {terminal_text(h.note)}  uid {terminal_text(h.uid)}", style="dim"))
        snippet = Text("    " + terminal_chars(h.snippet))  # same length: the highlight offsets hold
        for start, end in h.highlights:
            snippet.stylize("bold yellow", start + 4, end + 4)
        console.print(snippet)
    console.print(Text("(times are local, as the notes show them)", style="dim"))


@click.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "semantic", "keyword"]),
    default="hybrid",
    show_default=True,
    help="semantic: by meaning (FAISS); keyword: words in any inflection, \"quoted phrases\"; hybrid: both.",
)
@click.option("-k", "--limit", "k", type=click.IntRange(min=1), default=10, show_default=True, help="How many turns.")
@click.option("--role", type=click.Choice(["user", "assistant", "note"]), help="Only turns by this speaker.")
@click.option("--since", metavar="DATE", help="From this date: 2025-03-14, 2025-03, 14.03.2025 or an age (30d, 2w).")
@click.option("--until", metavar="DATE", help="Up to and including this date (same forms as --since).")
@click.option("--provider", help="Only conversations from this provider (chatgpt, claude, …).")
@click.option("--conversation", metavar="ID", help="Only this conversation (its conversation_id).")
@click.option("--path", "path_prefix", metavar="PREFIX", help="Only notes whose vault path starts with PREFIX.")
@click.option("--tag", help="Only notes with this tag (nested tags included).")
@click.option(
    "--collapse/--no-collapse",
    default=True,
    show_default=True,
    help="At most 2 results per conversation and 1 per plain note, so one long chat or page cannot fill the list.",
)
@vault_options
@json_option
@friendly_errors
def search(
    query: tuple[str, ...],
    mode: str,
    k: int,
    role: str | None,
    since: str | None,
    until: str | None,
    provider: str | None,
    conversation: str | None,
    path_prefix: str | None,
    tag: str | None,
    collapse: bool,
    vault: str | None,
    index_dir: str | None,
    as_json: bool,
) -> None:
    """Find turns by meaning and by words (Russian and English, any inflection).

    \b
    Examples:
      tropegraph search карта смысла
      tropegraph search '"карта смысла"' --mode keyword     (exact phrase)
      tropegraph search "where I talked about bridges" --role user --since 2025-03
    """
    from queries.search import make_filters
    from queries.search import search as run_search

    text = " ".join(query)
    if not text.strip():
        raise click.ClickException("the query is empty; give some words to search for, e.g. tropegraph search карта смысла")
    # validate the cheap things before loading the index and the model
    make_filters(role=role, since=since, until=until)
    from queries.search import embedding_coverage

    with _open(vault, index_dir) as idx:
        coverage = embedding_coverage(idx)  # before the search: see embedding_coverage
        hits = run_search(
            idx, text, mode=mode, k=k, role=role, since=since, until=until, provider=provider,  # type: ignore[arg-type]
            conversation=conversation, path_prefix=path_prefix, tag=tag, collapse=collapse,
        )
    if as_json:
        from queries.search import search_result

        print_json(search_result(text, mode, hits, coverage))
        return
    if not coverage.complete and mode != "keyword":
        click.echo(f"tropegraph: {coverage.message()}", err=True)
    _render(hits, repr(text))


@click.command("similar")
@click.argument("uid")
@click.option("-k", "--limit", "k", type=click.IntRange(min=1), default=10, show_default=True, help="How many turns.")
@click.option("--other-conversations", is_flag=True, help="Only turns from other conversations.")
@click.option(
    "--collapse/--no-collapse", default=True, show_default=True, help="At most 2 results per conversation."
)
@vault_options
@json_option
@friendly_errors
def similar(
    uid: str, k: int, other_conversations: bool, collapse: bool, vault: str | None, index_dir: str | None, as_json: bool
) -> None:
    """Turns most like the turn UID: where you said something similar before ("echoes").

    UIDs are in `tropegraph search --json` output and in the notes (<!-- UID: … -->).
    """
    from queries.search import similar as run_similar

    with _open(vault, index_dir) as idx:
        hits = run_similar(idx, uid, k=k, other_conversations=other_conversations, collapse=collapse)
    if as_json:
        from queries.search import similar_result

        print_json(similar_result(uid, hits))
        return
    _render(hits, f"turns like {uid}")
