"""``tropegraph demo``: the whole product on the bundled demo vault, in one command."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import click

from interfaces.commands._common import friendly_errors, json_option, maintenance, print_json
from interfaces.commands._common import say as warn

DEMO_QUERIES = ("мост между мирами", "how does the model think in tokens?")


def bundled_vault() -> Path:
    """The demo vault shipped inside the package (never modified: it is copied first)."""
    return Path(__file__).resolve().parent.parent / "demo_vault"


def default_demo_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("tropegraph", appauthor=False)) / "demo"


@click.command()
@click.option(
    "--dir",
    "demo_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to put the demo vault copy and its index [default: tropegraph's user data folder].",
)
@click.option("--fresh", is_flag=True, help="Start over: delete the demo copy and its index first.")
@json_option
@friendly_errors
def demo(demo_dir: Path | None, fresh: bool, as_json: bool) -> None:
    """Index the bundled demo vault, search it and list its recurring metaphors.

    The demo vault (24 Nexus conversations in Russian and English, plus two plain notes) is copied
    to a folder of its own first, so nothing bundled is ever changed. Run it twice: the second
    run re-embeds nothing.
    """
    from indexer.embed import embedder_for_index
    from indexer.pipeline import index_vault
    from indexer.store import open_index
    from queries.metaphors import list_metaphors
    from queries.render.escape import terminal_text
    from queries.search import search

    base = demo_dir or default_demo_dir()
    vault, index_dir = base / "vault", base / "index"
    if fresh and base.exists():
        shutil.rmtree(base)
    if not vault.exists():
        base.mkdir(parents=True, exist_ok=True)
        shutil.copytree(bundled_vault(), vault)
    say = (lambda msg: None) if as_json else (lambda msg: click.echo(msg))
    say(f"Demo vault: {vault}")
    say(f"Index:      {index_dir}\n")

    with open_index(index_dir, create=True, command="tropegraph demo", notify=warn, log=maintenance) as idx:
        embedder = embedder_for_index(idx, None, None)
        if not as_json and sys.stderr.isatty():
            from interfaces.commands.index import _run_with_bar

            report = _run_with_bar(vault, idx, embedder, False)
        else:
            report = index_vault(vault, idx, embedder)
        say(str(report))
        results: dict[str, Any] = {}
        for query in DEMO_QUERIES:
            hits = search(idx, query, k=3, embedder=embedder)
            results[query] = [h.to_dict() for h in hits]
            say(f"\n$ tropegraph search {_quote(query)} -k 3")
            for n, hit in enumerate(hits, 1):
                who = ", ".join(x for x in (hit.role, (hit.time or "")[:10]) if x)
                say(f"  {n}. [{who}] {terminal_text(hit.title)}")
                say(f"     {_short(hit.snippet)}")
        metaphors = list_metaphors(idx, limit=5)
        say("\n$ tropegraph metaphors --limit 5")
        for n, m in enumerate(metaphors, 1):
            say(f"  {n}. {terminal_text(m.label)}: {m.occurrences} uses in {m.conversations} conversations, "
                f"first by {m.first_role} on {(m.first_seen or '')[:10]}")
        if not metaphors:
            from queries.metaphors import list_status

            say(list_status(idx).message())

    if as_json:
        print_json({
            "vault": str(vault),
            "index_dir": str(index_dir),
            "index": report.to_dict(),
            "searches": results,
            "metaphors": [m.to_dict() for m in metaphors],
        })
        return
    top = metaphors[0].label if metaphors else "карта смысла"
    v = _quote(str(vault))
    say("\nTry next:")
    say(f"  tropegraph search --vault {v} \"карта смысла\" --role user")
    say(f"  tropegraph timeline --vault {v} {_quote(top)}")
    say(f"  tropegraph report --vault {v}      # writes notes into the demo vault's Tropegraph/ folder")
    say(f"  tropegraph watch --vault {v}       # keep the index current while you edit")


def _quote(text: str) -> str:
    return f'"{text}"' if any(c in text for c in " '\"") else text


def _short(text: str, width: int = 110) -> str:
    from queries.render.escape import terminal_text

    text = terminal_text(text)
    return text if len(text) <= width else text[: width - 1] + "…"
