"""``tropegraph serve``: the local web explorer. Starlette, uvicorn and the index load inside the command."""
from __future__ import annotations

from pathlib import Path

import click

from interfaces.commands._common import friendly_errors, vault_options

LOCAL = ("127.0.0.1", "localhost", "::1")


@click.command("serve")
@vault_options
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="TCP port (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on. Anything but 127.0.0.1/localhost exposes your notes to the network.")
@click.option("--open", "open_browser", is_flag=True, help="Open the explorer in your web browser.")
@friendly_errors
def serve(vault: str | None, index_dir: str | None, port: int, host: str, open_browser: bool) -> None:
    """Explore the index in your browser: search, metaphors (with curation), timelines, graph.

    Local only (127.0.0.1) and read-only towards the index and the notes; curation buttons edit
    tropegraph.toml exactly as `tropegraph metaphors track|reject|merge|split` do. It keeps working
    while `tropegraph watch` writes: new notes show up without a restart. Ctrl-C stops it.
    """
    from indexer.config import find_vault, resolve_index_dir
    from interfaces.serve.app import Explorer, bind
    from interfaces.serve.app import serve as run

    root = find_vault(vault)
    idx_dir = resolve_index_dir(root, index_dir) if index_dir is None else Path(index_dir).expanduser().resolve()
    explorer = Explorer(root, idx_dir)
    try:
        sock = bind(host, port)
    except OSError as exc:
        explorer.close()
        raise click.ClickException(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another port with --port (0 = any free one)"
        ) from exc
    if host not in LOCAL:
        click.echo(f"warning: listening on {host}: anyone who can reach this machine on port {sock.getsockname()[1]} "
                   "can read your notes and edit tropegraph.toml. Use the default 127.0.0.1 unless you mean it.",
                   err=True)

    def ready(url: str) -> None:
        click.echo(f"tropegraph explorer on {url}  (vault {root}; Ctrl-C to stop)")
        if open_browser:
            import webbrowser

            webbrowser.open(url)

    try:
        run(explorer, sock, host=host, ready=ready)
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled: for a server that is a normal stop
        pass
    finally:
        explorer.close()
        sock.close()
