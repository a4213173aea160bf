"""The ``tropegraph`` command: one click group; each command lives in ``interfaces/commands/``.

Commands import heavy modules (faiss, the embedder, networkx, matplotlib) inside their
functions, so ``tropegraph --help`` stays instant.
"""
from __future__ import annotations

import click

from interfaces.commands import COMMANDS
from interfaces.commands._common import verbose_option


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tropegraph")
@verbose_option
def cli() -> None:
    """tropegraph: a searchable graph of the recurring metaphors in your AI chat vault.

    Index an Obsidian vault of Nexus AI Chat Importer notes, search it in Russian or English,
    and follow how an image was born, who introduced it and how its meaning drifted.
    """


for _command in COMMANDS:
    cli.add_command(_command)
