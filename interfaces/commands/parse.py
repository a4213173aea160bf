"""``tropegraph parse NOTE``: show how tropegraph reads one note (turns, links, tags, warnings)."""
from __future__ import annotations

from pathlib import Path

import click

from interfaces.commands._common import friendly_errors, json_option, print_json


def _vault_root(note: Path) -> Path:
    """The folder holding ``.obsidian/`` above the note (so paths are vault-relative), else its folder."""
    for folder in note.resolve().parents:
        if (folder / ".obsidian").is_dir():
            return folder
    return note.resolve().parent


def _one_line(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command()
@click.argument("note", type=click.Path(dir_okay=True, path_type=Path))
@json_option
@friendly_errors
def parse(note: Path, as_json: bool) -> None:
    """Print how NOTE is parsed: kind, conversation, turns, links, tags and warnings.

    Useful to check that a chat export is read right before indexing a vault.
    """
    from vault_schema.errors import NoteReadError
    from vault_schema.parse import load_note

    if not note.exists():
        raise click.ClickException(f"{note}: no such file. Pass the path of a Markdown note.")
    try:
        root = _vault_root(note)
        parsed = load_note(root, note.resolve().relative_to(root).as_posix())
    except NoteReadError as exc:
        raise click.ClickException(f"{note}: {exc.reason}") from exc
    if as_json:
        print_json(parsed.to_dict())
        return
    conv = parsed.conversation
    click.echo(f"{parsed.path}: {parsed.kind} — {parsed.title}")
    if conv:
        click.echo(f"  conversation {conv.conversation_id}{' (derived)' if conv.id_derived else ''}"
                   f"  provider={conv.provider or '-'}  plugin={conv.plugin_version or '-'}"
                   f"  created={conv.created.isoformat(timespec='seconds') if conv.created else '-'}")
        click.echo(f"  {len(conv.turns)} turns")
        for t in conv.turns:
            when = t.time.isoformat(sep=" ", timespec="seconds") if t.time else "?"
            who = t.role + (f" ({t.model})" if t.model else "")
            click.echo(f"  [{t.position}] {when}  {who:<10} {t.uid}{' (derived)' if t.uid_derived else ''}")
            click.echo(f"       {_one_line(t.text) or '(empty)'}")
            for a in t.attachments:
                click.echo(f"       + {a.kind}: {_one_line(a.title, 80)}")
    if parsed.aliases:
        click.echo(f"  aliases: {', '.join(parsed.aliases)}")
    if parsed.tags:
        click.echo(f"  tags: {' '.join('#' + t.name for t in parsed.tags)}")
    if parsed.links:
        click.echo(f"  links ({len(parsed.links)}):")
        for link in parsed.links[:20]:
            frag = f"#{link.heading}" if link.heading else f"#^{link.block}" if link.block else ""
            click.echo(f"    {'!' if link.embed else ''}{link.target}{frag}  (line {link.line})")
        if len(parsed.links) > 20:
            click.echo(f"    … {len(parsed.links) - 20} more")
    if parsed.headings:
        click.echo(f"  headings: {len(parsed.headings)}")
    if parsed.mojibake_repaired:
        click.echo("  mojibake repaired")
    for w in parsed.warnings:
        click.echo(f"  warning: {w}")
