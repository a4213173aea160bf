"""The ``tropegraph`` command: one click group; each command lives in ``interfaces/commands/``.

Commands import heavy modules (faiss, the embedder, networkx, matplotlib) inside their
functions, so ``tropegraph --help`` stays instant.
"""
from __future__ import annotations

import click

from interfaces.commands import COMMANDS
from interfaces.commands._common import verbose_option


class _Cli(click.Group):
    """The group, plus one hint: a vault given as a bare path (``tropegraph index ~/Vault``) is an
    "unexpected extra argument" to click; say how to give it."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.message += _vault_hint(exc)
            raise


def _vault_hint(exc: click.UsageError) -> str:
    import re
    import shlex
    from pathlib import Path

    cmd = exc.ctx.command if exc.ctx is not None else None
    extra = re.match(r"Got unexpected extra arguments? \((.+)\)$", exc.message)
    unknown = re.match(r"No such command '(.+)'\.$", exc.message)
    if cmd is None or not any(p.name == "vault" for p in cmd.params) or not (extra or unknown):
        return ""
    args = shlex.split(extra.group(1)) if extra else [unknown.group(1)]
    folders = [a for a in args if Path(a).expanduser().is_dir()]
    if len(folders) == 1:
        return f"\nA vault is given with --vault: {exc.ctx.command_path} --vault {shlex.quote(folders[0])}"
    if unknown and isinstance(cmd, click.Group) and "explain" in cmd.commands:
        return f"\nTo see one: {exc.ctx.command_path} explain {shlex.quote(args[0])}"
    return ""


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tropegraph")
@verbose_option
def cli() -> None:
    """tropegraph: a searchable graph of the recurring metaphors in your AI chat vault.

    Index an Obsidian vault of Nexus AI Chat Importer notes, search it in Russian or English,
    and follow how an image was born, who introduced it and how its meaning drifted.
    """


for _command in COMMANDS:
    cli.add_command(_command)
