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


def _zone(minutes: int | None) -> str:
    """``UTC+03:00``, or why it is not known (notes before Nexus 1.3.0 carry no UTC time)."""
    if minutes is None:
        return "UTC offset not in the note"
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _one_line(text: object, width: int = 0) -> str:
    """Note text as one terminal line (``queries.render.escape.terminal_text``: no escape
    sequences reach the terminal), cut at ``width`` characters when given."""
    from queries.render.escape import terminal_text

    text = terminal_text(str(text))
    return text if not width or len(text) <= width else text[: width - 1] + "…"


def _locate(note: Path, vault: str | None) -> tuple[Path, str]:
    """(vault root, vault-relative path) of NOTE: a path from the current folder, or else from the
    vault (``--vault``, ``TROPEGRAPH_VAULT`` or the vault around the current folder), as search
    results and reports name notes."""
    from indexer.config import find_vault
    from vault_schema.errors import VaultError

    try:
        root: Path | None = find_vault(vault)
    except VaultError:
        root = None
    if note.exists():
        full = note.resolve()
        if root is not None and full.is_relative_to(root):
            return root, full.relative_to(root).as_posix()
        top = _vault_root(note)
        return top, full.relative_to(top).as_posix()
    if root is not None and not note.is_absolute() and (root / note).exists():
        return root, note.as_posix()
    where = f"the current folder or the vault {root}" if root is not None else "the current folder"
    hint = "" if root is not None else " (or give the vault with --vault to use a vault-relative path)"
    raise click.ClickException(f"{note}: no such note in {where}. Pass a note's path relative to the vault, "
                               f"as `tropegraph search --json` shows it, or to the current folder{hint}.")


@click.command()
@click.argument("note", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--vault", type=click.Path(file_okay=False, path_type=str), envvar="TROPEGRAPH_VAULT", default=None,
              help="The vault NOTE's path is relative to [env TROPEGRAPH_VAULT; default: the vault around "
              "the current folder]. A path that exists from the current folder is used as it is.")
@json_option
@friendly_errors
def parse(note: Path, vault: str | None, as_json: bool) -> None:
    """Print how NOTE is parsed: kind, conversation, turns, links, tags and warnings.

    NOTE is a path from the current folder or from the vault (as search results show it).
    Useful to check that a chat export is read right before indexing a vault.
    """
    from vault_schema.errors import NoteReadError
    from vault_schema.parse import load_note

    root, rel = _locate(note, vault)
    try:
        parsed = load_note(root, rel)
    except NoteReadError as exc:
        raise click.ClickException(f"{note}: {exc.reason}") from exc
    if as_json:
        print_json(parsed.to_dict())
        return
    _t = _one_line
    conv = parsed.conversation
    click.echo(f"{_t(parsed.path)}: {parsed.kind} — {_t(parsed.title)}")
    if conv:
        zone = _zone(conv.utc_offset)
        created = f"{conv.created:%Y-%m-%d %H:%M:%S} local" if conv.created else "-"
        click.echo(f"  conversation {_t(conv.conversation_id)}{' (derived)' if conv.id_derived else ''}"
                   f"  provider={_t(conv.provider or '-')}  plugin={_t(conv.plugin_version or '-')}"
                   f"  created={created}")
        click.echo(f"  {len(conv.turns)} turns (times are local, {zone})")
        for t in conv.turns:
            when = t.time.isoformat(sep=" ", timespec="seconds") if t.time else "?"
            who = t.role + (f" ({_t(t.model)})" if t.model else "")
            click.echo(f"  [{t.position}] {when}  {who:<10} {_t(t.uid)}{' (derived)' if t.uid_derived else ''}")
            click.echo(f"       {_t(t.text, 100) or '(empty)'}")
            for a in t.attachments:
                click.echo(f"       + {_t(a.kind)}: {_t(a.title, 80)}")
    if parsed.aliases:
        click.echo(f"  aliases: {_t(', '.join(map(str, parsed.aliases)))}")
    if parsed.tags:
        click.echo(f"  tags: {_t(' '.join('#' + t.name for t in parsed.tags))}")
    if parsed.links:
        click.echo(f"  links ({len(parsed.links)}):")
        for link in parsed.links[:20]:
            frag = f"#{link.heading}" if link.heading else f"#^{link.block}" if link.block else ""
            click.echo(f"    {'!' if link.embed else ''}{_t(link.target + frag)}  (line {link.line})")
        if len(parsed.links) > 20:
            click.echo(f"    … {len(parsed.links) - 20} more")
    if parsed.headings:
        click.echo(f"  headings: {len(parsed.headings)}")
    if parsed.mojibake_repaired:
        click.echo("  mojibake repaired")
    for w in parsed.warnings:
        click.echo(f"  warning: {_t(w)}")
