"""``tropegraph mcp``: serve the index to an MCP client (an assistant) over stdin/stdout.

Imported at CLI start: the MCP SDK and the server are imported inside the command
(``interfaces.mcp_start`` answers the handshake while they load).
"""
from __future__ import annotations

import contextlib
import sys

import click

from interfaces.commands._common import friendly_errors, vault_options

_NO_SDK = 'the MCP SDK cannot be imported ({}); install it with `pip install "mcp>=2.3,<3"`'


@click.command("mcp")
@vault_options
@friendly_errors
def mcp(vault: str | None, index_dir: str | None) -> None:
    """Serve the vault to an assistant over MCP (stdio): search, turns, notes, metaphors, timelines.

    Read-only. An MCP client starts this command and talks to it over stdin/stdout; register it
    in the client's config (see the README), giving --vault since clients start servers in a
    folder of their own. Runs until the client closes the connection.
    """
    from importlib.util import find_spec

    from interfaces.mcp_start import serve

    if find_spec("mcp") is None:  # checked before serving: the SDK itself loads while serving starts
        raise click.ClickException(_NO_SDK.format("no module named 'mcp'"))
    if sys.stdin.isatty():
        click.echo(
            "tropegraph mcp talks MCP over stdin/stdout: an MCP client starts it (see the README for the "
            "client config). Waiting for a client's messages; Ctrl-C to stop.",
            err=True,
        )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            serve(vault, index_dir)
    except ImportError as exc:
        raise click.ClickException(_NO_SDK.format(exc)) from exc
