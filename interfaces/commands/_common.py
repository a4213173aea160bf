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


def vault_options(f: F) -> F:
    """Add ``--vault`` and ``--index-dir`` (with their environment variables)."""
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
            raise click.ClickException(str(exc)) from exc
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
