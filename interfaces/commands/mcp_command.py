"""``tropegraph mcp``: serve the index to an MCP client (an assistant) over stdin/stdout.

Imported at CLI start: the MCP SDK and the server are imported inside the command.
"""
from __future__ import annotations

import contextlib
import sys

import click

from interfaces.commands._common import friendly_errors, vault_options


@click.command("mcp")
@vault_options
@friendly_errors
def mcp(vault: str | None, index_dir: str | None) -> None:
    """Serve the vault to an assistant over MCP (stdio): search, turns, notes, metaphors, timelines.

    Read-only. An MCP client starts this command and talks to it over stdin/stdout; register it
    in the client's config (see the README), giving --vault since clients start servers in a
    folder of their own. Runs until the client closes the connection.
    """
    try:
        from interfaces.mcp_server import run_stdio
    except ImportError as exc:
        raise click.ClickException(
            f"the MCP SDK cannot be imported ({exc}); install it with `pip install \"mcp>=2.3,<3\"`"
        ) from exc
    if sys.stdin.isatty():
        click.echo(
            "tropegraph mcp talks MCP over stdin/stdout: an MCP client starts it (see the README for the "
            "client config). Waiting for a client's messages; Ctrl-C to stop.",
            err=True,
        )
    with contextlib.suppress(KeyboardInterrupt):
        run_stdio(vault, index_dir)
