"""Options and error handling shared by every command."""
from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


_VERBOSE = [False]  # this invocation's -v; read from any thread (a search leg loads the vector cache)


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if ctx.parent is None:  # the group's option runs first on every invocation: start from it
        _VERBOSE[0] = value
    elif value:
        _VERBOSE[0] = True
    return value


def verbose_option(f: F) -> F:
    """``-v/--verbose``: also print routine maintenance (vector-cache repairs) on stderr."""
    return click.option("-v", "--verbose", is_flag=True, expose_value=False, is_eager=True,
                        callback=_set_verbose,
                        help="Also print routine maintenance (vector cache brought up to date) on stderr.")(f)


def say(msg: str) -> None:
    """A ``tropegraph: …`` line on stderr: something the user should know."""
    click.echo(f"tropegraph: {msg}", err=True)


def maintenance(msg: str) -> None:
    """Routine index maintenance: printed like :func:`say` only with ``-v``, otherwise dropped."""
    if _VERBOSE[0]:
        say(msg)


def vault_options(f: F) -> F:
    """Add ``--vault`` and ``--index-dir`` (with their environment variables) and ``-v``."""
    f = verbose_option(f)
    f = click.option(
        "--index-dir",
        type=click.Path(file_okay=False, path_type=str),
        envvar="TROPEGRAPH_INDEX_DIR",
        default=None,
        help="Where the index lives [env TROPEGRAPH_INDEX_DIR; default: per-vault folder in the user data dir].",
    )(f)
    f = click.option(
        "--vault",
        type=click.Path(file_okay=False, path_type=str),
        envvar="TROPEGRAPH_VAULT",
        default=None,
        help="The Obsidian vault [env TROPEGRAPH_VAULT; default: the folder holding .obsidian/ above the current one].",
    )(f)
    return f


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def friendly_errors(f: F) -> F:
    """Turn tropegraph's own exceptions into one-line ``Error: …`` messages (exit 1).

    ``TROPEGRAPH_RAISE_ERRORS=1`` re-raises, for debugging.
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vault_schema.errors import VaultError

        try:
            return f(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except VaultError as exc:
            if os.environ.get("TROPEGRAPH_RAISE_ERRORS"):
                raise
            raise click.ClickException(_with_command(exc, kwargs)) from exc
        except Exception as exc:
            # a full disk, a read-only folder, a damaged database or FAISS file (OSError,
            # sqlite3.Error, faiss' RuntimeError): one line naming the file and the fix
            error = _explained(exc)
            if error is exc:
                raise
            raise error from exc

    return wrapper  # type: ignore[return-value]


def _explained(exc: Exception) -> BaseException:
    """``exc`` as a ``ClickException`` when it is a failure the user can fix (see
    ``indexer.errors.explain``); otherwise ``exc`` itself, so a bug still shows its traceback."""
    ours = isinstance(exc, OSError | RuntimeError) or type(exc).__module__ == "sqlite3"
    if os.environ.get("TROPEGRAPH_RAISE_ERRORS") or not ours:
        return exc
    from indexer.errors import explain
    from indexer.store import last_opened

    error = explain(exc, last_opened())
    return click.ClickException(str(error)) if error is not None else exc


def _with_command(exc: Exception, options: dict[str, Any]) -> str:
    """The error text; for a missing index, with the exact ``tropegraph index`` command that builds it
    (the vault and index folder this command was pointed at)."""
    from indexer.errors import IndexNotFound

    if not isinstance(exc, IndexNotFound):
        return str(exc)
    return str(IndexNotFound(exc.index_dir, index_command(options.get("vault"), options.get("index_dir"))))


def index_command(vault: Any, index_dir: Any) -> str:
    """``tropegraph index --vault V [--index-dir D]`` for these options (see :func:`vault_command`)."""
    return vault_command("index", vault, index_dir)


def vault_command(name: str, vault: Any, index_dir: Any) -> str:
    """``tropegraph NAME --vault V [--index-dir D]``: the exact command for the vault these options
    point at, quoted for a POSIX shell; ``PATH/TO/VAULT`` when no vault is given or found."""
    import shlex
    from pathlib import Path

    from indexer.config import find_vault
    from vault_schema.errors import VaultError

    try:
        where = shlex.quote(str(find_vault(None if vault is None else str(vault))))
    except VaultError:
        where = "PATH/TO/VAULT"
    cmd = f"tropegraph {name} --vault {where}"
    if index_dir:
        cmd += f" --index-dir {shlex.quote(str(Path(index_dir).expanduser().resolve()))}"
    return cmd
