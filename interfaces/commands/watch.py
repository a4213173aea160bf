"""``tropegraph watch`` and ``tropegraph service install|uninstall|status``.

Imported at CLI start: watchdog, the pipeline and the embedder are imported inside the commands.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from interfaces.commands._common import friendly_errors, json_option, print_json, vault_options

# Keep in step with indexer.watch (not imported here: it pulls in watchdog).
DEFAULT_DEBOUNCE = 0.4
DEFAULT_RECONCILE_INTERVAL = 300.0
#: Seconds between SIGTERM/SIGINT and the watcher's exit, at most, whatever it is doing.
STOP_GRACE = 0.8


def _exit_now(line: bytes) -> None:
    import os

    # no logging, no buffered stream: the main thread may hold their locks right now
    os.write(2, line)
    os._exit(0)


def _watch_options(*, defaults: bool) -> Any:
    """``--debounce`` and ``--reconcile-interval``; without defaults, the service leaves them to `watch`."""
    return lambda f: _add_watch_options(f, defaults)


def _add_watch_options(f: Any, defaults: bool) -> Any:
    f = click.option(
        "--reconcile-interval",
        type=click.FloatRange(min=0),
        default=DEFAULT_RECONCILE_INTERVAL if defaults else None,
        show_default=defaults,
        help="Seconds between full consistency scans that catch changes the file system did not "
        "report (0: never).",
    )(f)
    f = click.option(
        "--debounce",
        type=click.FloatRange(min=0),
        default=DEFAULT_DEBOUNCE if defaults else None,
        show_default=defaults,
        help="Seconds of quiet before a burst of changes is indexed as one batch.",
    )(f)
    return f


class _TerminalFormatter(logging.Formatter):
    """The watcher's human log line with its message through ``queries.render.escape.terminal_text``."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        from queries.render.escape import terminal_text

        record.message = terminal_text(record.message)
        return super().formatMessage(record)


@click.command()
@vault_options
@_watch_options(defaults=True)
@click.option("--json-log", is_flag=True, help="Log one JSON object per line (for log collectors).")
@friendly_errors
def watch(vault: str | None, index_dir: str | None, debounce: float, reconcile_interval: float, json_log: bool) -> None:
    """Keep the index current while the vault changes.

    Catches up with everything changed since the last run, then follows the vault: each burst
    of saves, imports, renames and deletions becomes one batch, logged as one line on stderr.
    Notes are only read, never written. Stop with Ctrl-C or SIGTERM (the current batch is
    rolled back, the index stays consistent, exit code 0).

    Only one process writes an index: a second `watch` or `index` exits at once, naming the
    running one. `search` and `status` keep working while the watcher writes.
    To run it in the background at login, see `tropegraph service install`.
    """
    from indexer.config import find_vault, resolve_index_dir
    from indexer.watch import configure_logging, run_watch, stop_line

    vault_path = find_vault(vault)
    index_path = resolve_index_dir(vault_path, index_dir)
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        if stop.is_set():  # a second Ctrl-C: stop waiting for the batch
            raise KeyboardInterrupt
        stop.set()
        # Whatever the watcher is doing (a long model call, a k-means, a stuck read), it is gone
        # within STOP_GRACE seconds: the open transaction dies with the process (SQLite rolls it
        # back), the writer lock is an flock (released by the kernel), the FAISS cache is
        # checked on load. A clean stop normally comes first and exits 0 on its own.
        timer = threading.Timer(STOP_GRACE, _exit_now, args=(stop_line(json_log=json_log),))
        timer.daemon = True
        timer.start()

    handler = configure_logging(json_log=json_log, stream=sys.stderr)
    if not json_log:  # log lines name notes: no escape sequence from a file name reaches the terminal
        handler.setFormatter(_TerminalFormatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_watch(vault_path, index_path, debounce=debounce, reconcile_interval=reconcile_interval, stop=stop)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        from indexer.watch import log

        log.removeHandler(handler)


# --------------------------------------------------------------------------- service


@click.group()
def service() -> None:
    """Run `tropegraph watch` in the background, started at login.

    Writes a systemd user unit (Linux) or a launchd agent (macOS) for one vault and prints the
    command that starts it. tropegraph never runs systemctl or launchctl itself.
    """


def _platform_option(f: Any) -> Any:
    return click.option(
        "--platform",
        type=click.Choice(["systemd", "launchd"]),
        default=None,
        help="Service manager [default: launchd on macOS, systemd elsewhere].",
    )(f)


def _service(vault: str | None, index_dir: str | None, platform: str | None, **watch_opts: Any) -> Any:
    from indexer.config import find_vault
    from indexer.service import Service, ServiceError, default_platform, watch_command

    vault_path = find_vault(vault)
    try:
        chosen = platform or default_platform()
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc
    argv = watch_command(vault_path, index_dir=Path(index_dir) if index_dir else None, **watch_opts)
    return Service(vault=vault_path, argv=argv, platform=chosen, home=Path.home())


@service.command("install")
@vault_options
@_watch_options(defaults=False)
@_platform_option
@click.option("--dry-run", "--print", "dry_run", is_flag=True, help="Print the unit file instead of writing it.")
@friendly_errors
def service_install(
    vault: str | None,
    index_dir: str | None,
    debounce: float | None,
    reconcile_interval: float | None,
    platform: str | None,
    dry_run: bool,
) -> None:
    """Write the unit file that runs the watcher for this vault, and print how to start it.

    The unit runs this very installation (absolute paths to its Python and tropegraph), so
    re-run install after moving or re-creating your virtual environment.
    """
    from indexer.service import install

    svc = _service(vault, index_dir, platform, debounce=debounce, reconcile_interval=reconcile_interval)
    if dry_run:
        click.echo(f"# {svc.path}")
        click.echo(svc.render(), nl=False)
        return
    existed = svc.path.exists()
    path = install(svc)
    click.echo(f"{'Updated' if existed else 'Wrote'} {path}")
    click.echo("Start it now and at every login with:")
    click.echo(f"  {svc.start_command()}")
    click.echo("Check on it with:")
    click.echo(f"  {svc.status_command()}")


@service.command("uninstall")
@vault_options
@_platform_option
@friendly_errors
def service_uninstall(vault: str | None, index_dir: str | None, platform: str | None) -> None:
    """Remove this vault's unit file (the index is kept)."""
    from indexer.service import uninstall

    svc = _service(vault, index_dir, platform)
    removed = uninstall(svc)
    if not removed:
        click.echo(f"No service installed for {svc.vault} (looked for {svc.path}).")
        return
    for path in removed:
        click.echo(f"Removed {path}")
    click.echo("If it is still running, stop it with:")
    click.echo(f"  {svc.stop_command()}")


@service.command("status")
@vault_options
@_platform_option
@json_option
@friendly_errors
def service_status(vault: str | None, index_dir: str | None, platform: str | None, as_json: bool) -> None:
    """Show whether a unit is installed for this vault and whether a watcher is writing its index."""
    from indexer.config import resolve_index_dir
    from indexer.service import status
    from indexer.watch import lock_holder

    svc = _service(vault, index_dir, platform)
    st = status(svc, watcher=lock_holder(resolve_index_dir(svc.vault, index_dir)))
    if as_json:
        print_json(st.to_dict())
        return
    if st.installed:
        state = "enabled" if st.enabled else ("not enabled" if st.enabled is False else "installed")
        click.echo(f"{st.name}: {state}, {st.path}")
        if not st.up_to_date:
            click.echo("  the unit differs from what `service install` would write now; re-run it to update")
    else:
        click.echo(f"{st.name}: not installed (run `tropegraph service install`)")
    click.echo(f"watcher: {st.watcher or 'not running'}")
    click.echo(f"service manager: {svc.status_command()}")

