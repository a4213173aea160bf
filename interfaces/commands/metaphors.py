"""``tropegraph metaphors …`` (list and curate recurring images) and ``tropegraph graph export``.

Imported at CLI start: nothing heavy at top level. Importing it also registers the metaphor
engine's hooks (lazily: the engine is imported, and registers itself, when the first batch commits).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from indexer import hooks
from interfaces.commands._common import friendly_errors, json_option, maintenance, print_json, vault_options


def _after_batch(index: Any, added: list[int], removed: list[int]) -> None:
    # Importing the engine registers its own hooks, appended after this one, so they run next in
    # this same loop and on every later batch: this stand-in only spares the CLI the import at
    # start (calling the engine here too would update twice per batch).
    import indexer.metaphors  # noqa: F401


if _after_batch not in hooks.AFTER_BATCH:
    hooks.AFTER_BATCH.append(_after_batch)


def _paths(vault: str | None, index_dir: str | None) -> tuple[Path, Path]:
    from indexer.config import find_vault, resolve_index_dir

    vault_path = find_vault(vault)
    return vault_path, resolve_index_dir(vault_path, index_dir)


def _mark(m: Any, show_all: bool) -> str:
    if m.status == "tracked":
        return " [tracked]"
    return f" [{'; '.join(m.hidden_because)}]" if show_all and m.hidden_because else ""


def _n(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _print_table(items: list[Any], status: Any, show_all: bool, role: str | None = None) -> None:
    from queries.metaphors import USE
    from queries.render.escape import terminal_text as _t

    if not items:
        click.echo(status.message(role))
        return
    for i, m in enumerate(items, 1):
        click.echo(f"{i:>3}. {_t(m.label)}{_mark(m, show_all)}  ({_t(m.id)})  "
                   f"score {m.score:.2f} = figurative {m.figurative:.2f} × recurrence {m.recurrence:.2f}")
        click.echo(f"     {_n(m.occurrences, 'use')} in {m.places()}; first {m.first_use()}; "
                   f"last {m.last_seen or 'undated'}")
        others = [v for v in m.variants if v != m.label.lower()]
        if others:
            click.echo(f"     variants: {_t(', '.join(others[:8]))}")
    hidden = [] if show_all else [
        f"{n} {what}" for n, what in ((status.literal, "judged literal"),
                                      (status.single, "in one conversation or one repeated sentence"),
                                      (status.notes_only, "in plain notes only")) if n]
    use = f"({USE[0].upper()}{USE[1:]}; times are local, as the notes show them."
    click.echo(f"{use} Not shown: {', '.join(hidden)}; `tropegraph metaphors --all` lists them.)" if hidden
               else f"{use})")


@click.group("metaphors", invoke_without_command=True)
@vault_options
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many to list.")
@click.option("--role", type=click.Choice(["user", "assistant"]), default=None, help="Only uses by this role.")
@click.option("--all", "show_all", is_flag=True,
              help="Also list phrases judged literal, seen in one conversation only, or rejected.")
@json_option
@click.pass_context
@friendly_errors
def metaphors(ctx: click.Context, vault: str | None, index_dir: str | None, limit: int, role: str | None,
              show_all: bool, as_json: bool) -> None:
    """List the recurring images of the vault by score (or curate them with a subcommand).

    Only phrases the figurativeness model judges figurative and that recur in 2+ conversations
    are listed (tracked ones always); `--all` shows the rest. Score = figurativeness ×
    recurrence; a use is one turn (a message, or a section of a plain note) that uses the image.

    Curation lives in `tropegraph.toml` at the vault root: your file, which tropegraph only
    appends to through `track`, `reject`, `merge` and `split`. It survives `index --full`.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(vault=vault, index_dir=index_dir)
    if ctx.invoked_subcommand is not None:
        return
    from indexer.metaphors import curation
    from indexer.store import open_index
    from queries.metaphors import list_metaphors, list_status, metaphors_result

    vault_path, idx_dir = _paths(vault, index_dir)
    c = curation.load(vault_path)
    for w in c.warnings:
        click.echo(f"warning: {w}", err=True)
    with open_index(idx_dir, readonly=True, notify=lambda m: None, log=maintenance) as idx:
        applied = idx.get_meta("metaphors_curation")
    if applied is not None and applied != c.fingerprint():
        # tropegraph.toml was edited by hand since the last indexing run: apply it now
        note = _apply(vault_path, idx_dir)
        if note != "applied to the index":
            click.echo(f"note: tropegraph.toml changed; {note}", err=True)
    with open_index(idx_dir, readonly=True, notify=lambda m: None, log=maintenance) as idx:
        items = list_metaphors(idx, limit=limit, role=role,  # type: ignore[arg-type]
                               min_conversations=1 if show_all else 2, include_rejected=show_all,
                               include_literal=show_all)
        status = list_status(idx)
    if as_json:
        print_json(metaphors_result(items, status, role))
    else:
        _print_table(items, status, show_all, role)


def _apply(vault_path: Path, idx_dir: Path) -> str:
    from interfaces.curation import apply_curation

    return apply_curation(vault_path, idx_dir)


def _override(ctx: click.Context, vault: str | None, index_dir: str | None) -> None:
    """``--vault``/``--index-dir`` may be given before or after the subcommand name."""
    ctx.ensure_object(dict)
    if vault:
        ctx.obj["vault"] = vault
    if index_dir:
        ctx.obj["index_dir"] = index_dir


def _curate(ctx: click.Context, vault: str | None, index_dir: str | None, action: str, *args: Any) -> None:
    """Run one of the shared curation actions (``interfaces.curation``) and print what it did."""
    from interfaces import curation

    _override(ctx, vault, index_dir)
    vault_path, idx_dir = _paths(ctx.obj.get("vault"), ctx.obj.get("index_dir"))
    result = getattr(curation, action)(vault_path, idx_dir, *args)
    click.echo(result.message)


@metaphors.command("track")
@vault_options
@click.argument("phrase")
@click.option("--alias", "aliases", multiple=True, help="Another form or a translation of it (repeatable).")
@click.pass_context
@friendly_errors
def track(ctx: click.Context, vault: str | None, index_dir: str | None, phrase: str, aliases: tuple[str, ...]) -> None:
    """Always list PHRASE as a metaphor (with its aliases merged into it)."""
    _curate(ctx, vault, index_dir, "track", phrase, aliases)


@metaphors.command("reject")
@vault_options
@click.argument("ref", metavar="ID")
@click.pass_context
@friendly_errors
def reject(ctx: click.Context, vault: str | None, index_dir: str | None, ref: str) -> None:
    """Hide a metaphor (ID or phrase): it is not an image."""
    _curate(ctx, vault, index_dir, "reject", ref)


@metaphors.command("merge")
@vault_options
@click.argument("refs", metavar="ID ID", nargs=-1, required=True)
@click.pass_context
@friendly_errors
def merge(ctx: click.Context, vault: str | None, index_dir: str | None, refs: tuple[str, ...]) -> None:
    """Make two or more metaphors (ids or phrases) one."""
    if len(refs) < 2:
        raise click.UsageError("merge needs at least two metaphor ids")
    _curate(ctx, vault, index_dir, "merge", refs)


@metaphors.command("split")
@vault_options
@click.argument("ref", metavar="ID")
@click.pass_context
@friendly_errors
def split(ctx: click.Context, vault: str | None, index_dir: str | None, ref: str) -> None:
    """Undo the automatic grouping of a metaphor: each lemma key becomes its own metaphor."""
    _curate(ctx, vault, index_dir, "split", ref)


@metaphors.command("score")
@click.argument("phrase", required=False)
@click.option("--context", "sentence", metavar="SENTENCE", default=None,
              help="The sentence the phrase is used in (without it the phrase is scored on its own).")
@click.option("--lang", type=click.Choice(["ru", "en"]), default=None, help="Language (default: guessed).")
@click.option("--jsonl", is_flag=True,
              help='Read JSON lines {"phrase", "sentence", "lang"?} from stdin; write one JSON line per input.')
@json_option
@friendly_errors
def score(phrase: str | None, sentence: str | None, lang: str | None, jsonl: bool, as_json: bool) -> None:
    """How figurative PHRASE is in its sentence: 0..1 and image/literal.

    \b
    tropegraph metaphors score "карта смысла" --context "Мне нужна карта смысла для этих заметок."
    echo '{"phrase": "search engine", "sentence": "Which search engine is best?"}' | tropegraph metaphors score --jsonl
    """
    if jsonl:
        if phrase is not None or sentence is not None:
            raise click.UsageError("--jsonl reads phrases from stdin; give no PHRASE or --context with it")
        _score_jsonl(lang)
        return
    if phrase is None or not phrase.strip():
        raise click.UsageError("give a PHRASE to score (or --jsonl to read JSON lines from stdin)")
    wrong = _wrong_lang(phrase, lang)
    if wrong:
        raise click.UsageError(f"--lang {lang} cannot read {phrase.strip()!r} (no {wrong[0]} letters); "
                               f"use --lang {wrong[1]} or leave --lang out (the language is then guessed)")
    from indexer.metaphors.figurative import score_phrase

    r = score_phrase(phrase, sentence, lang)
    if as_json:
        print_json(r.to_dict())
        return
    click.echo(f"{r.phrase}: {r.label} (figurative {r.figurative:.2f})")
    if r.construction:
        click.echo(f"  construction {r.construction}: head «{r.head}», dependent «{r.dependent}» ({r.lang})")
    if r.warning:
        click.echo(f"  warning: {r.warning}")


def _wrong_lang(phrase: str, lang: str | None) -> tuple[str, str] | None:
    """(the script ``lang`` needs, the other language) when ``lang`` cannot read ``phrase`` (a
    Russian phrase with --lang en, or the reverse), else None."""
    import re

    if lang not in ("ru", "en"):
        return None
    letters, name = (r"[а-яё]", "Cyrillic") if lang == "ru" else (r"[a-z]", "Latin")
    return None if re.search(letters, phrase, re.IGNORECASE) else (name, "en" if lang == "ru" else "ru")


def _score_jsonl(default_lang: str | None) -> None:
    """One output line per input line, in order; a bad line gets ``{"error": …}`` on its line."""
    import json
    import sys

    from indexer.metaphors.figurative import score_phrase

    for n, line in enumerate(sys.stdin, 1):
        try:
            if not line.strip():
                raise ValueError("empty line")
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"not a JSON line ({exc})") from exc
            if not isinstance(obj, dict):
                raise ValueError("expected a JSON object")  # noqa: TRY004 (reported like a parse error)
            phrase, sentence, lang = obj.get("phrase"), obj.get("sentence"), obj.get("lang", default_lang)
            if not isinstance(phrase, str) or not phrase.strip():
                raise ValueError('"phrase" must be a non-empty string')
            if sentence is not None and not isinstance(sentence, str):
                raise ValueError('"sentence" must be a string')
            if lang is not None and lang not in ("ru", "en"):
                raise ValueError('"lang" must be "ru" or "en"')
            wrong = _wrong_lang(phrase, lang)
            if wrong:
                raise ValueError(f'"lang": "{lang}" cannot read {phrase.strip()!r} (no {wrong[0]} letters); '
                                 f'use "{wrong[1]}" or leave "lang" out')
            out = score_phrase(phrase, sentence, lang).to_dict()
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            out = {"error": f"line {n}: {exc}"}
        click.echo(json.dumps(out, ensure_ascii=False))


@metaphors.command("explain")
@vault_options
@click.argument("ref", metavar="ID|PHRASE")
@json_option
@click.pass_context
@friendly_errors
def explain(ctx: click.Context, vault: str | None, index_dir: str | None, ref: str, as_json: bool) -> None:
    """Why a metaphor is listed (or not): figurativeness per use and overall, recurrence, its
    group and variants and why they were grouped."""
    _override(ctx, vault, index_dir)
    from indexer.store import open_index
    from queries.metaphors import MetaphorNotFound, explain_metaphor

    if not ref.strip():
        raise click.UsageError("give a metaphor id or a phrase, e.g. tropegraph metaphors explain \"карта смысла\"")
    _, idx_dir = _paths(ctx.obj.get("vault"), ctx.obj.get("index_dir"))
    with open_index(idx_dir, readonly=True, notify=lambda m: None) as idx:
        try:
            ex = explain_metaphor(idx, ref)
        except MetaphorNotFound as exc:
            raise click.ClickException(
                f"no metaphor or candidate phrase matches {ref!r} in this vault; "
                f'`tropegraph metaphors score {ref!r} --context "SENTENCE"` scores any phrase') from exc
    if as_json:
        print_json(ex.to_dict())
        return
    from queries.render.text import explanation_lines

    click.echo("\n".join(explanation_lines(ex)))


@click.group("graph")
def graph() -> None:
    """The knowledge graph (notes, conversations, turns, metaphors, tags, months)."""


@graph.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@vault_options
@click.option("--echo-threshold", type=float, default=None,
              help="Cosine above which two turns of different conversations are linked as an echo.")
@click.option("--all", "show_all", is_flag=True,
              help="Also phrases judged literal and those of one conversation (default: recurring images only).")
@friendly_errors
def export(file: Path, vault: str | None, index_dir: str | None, echo_threshold: float | None,
           show_all: bool) -> None:
    """Write the graph to FILE: .graphml, .gexf or .json (node-link), chosen by extension.

    Metaphor nodes are the recurring images `tropegraph metaphors` lists (`--all`: every candidate).
    """
    from indexer.store import open_index
    from queries.graph import FORMATS, build_graph, write_graph

    if file.suffix.lower() not in FORMATS:
        raise click.ClickException(
            f"unknown graph format {file.suffix or '(none)'!r}; use a file name ending in "
            + ", ".join(FORMATS))
    vault_path, idx_dir = _paths(vault, index_dir)
    with open_index(idx_dir, readonly=True, notify=lambda m: None, log=maintenance) as idx:
        kwargs: dict[str, Any] = {} if echo_threshold is None else {"echo_threshold": echo_threshold}
        if show_all:
            kwargs.update(min_conversations=1, include_literal=True)
        g = build_graph(idx, vault=vault_path, **kwargs)
        images = sum(1 for _, d in g.nodes(data=True) if d.get("type") == "metaphor")
        empty = None
        if not images:
            from queries.metaphors import list_status

            empty = list_status(idx).message()
    write_graph(g, file)
    what = "phrases" if show_all else "recurring images"
    click.echo(f"Wrote {g.number_of_nodes()} nodes and {g.number_of_edges()} edges to {file} "
               f"({images} metaphor nodes: {what}).")
    if empty:
        click.echo(empty)
