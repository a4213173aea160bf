"""Exceptions of the index layer. Each message says what is wrong and how to fix it.

They subclass ``VaultError`` so the CLI's ``friendly_errors`` prints them as one ``Error: …`` line.
"""

from __future__ import annotations

from vault_schema.errors import VaultError


class IndexError_(VaultError):
    """Base class for index problems."""


class IndexNotFound(IndexError_):
    """No index exists in the folder asked for."""

    def __init__(self, index_dir: object) -> None:
        super().__init__(f"no index at {index_dir}; run `tropegraph index` first")
        self.index_dir = index_dir


class ModelMismatch(IndexError_):
    """The index was built with another embedding model; vectors of two models never mix."""

    def __init__(self, index_model: str, asked_model: str) -> None:
        super().__init__(
            f"the index was built with {index_model}, but {asked_model} was asked for; "
            f"run `tropegraph index --full` to re-embed the vault with {asked_model}, "
            f"or drop --engine/--model to keep {index_model}"
        )
        self.index_model = index_model
        self.asked_model = asked_model


class IndexLocked(IndexError_):
    """Another process is writing the index."""

    def __init__(self, index_dir: object, pid: int | None, command: str | None, started: str | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        if command:
            who += f" ({command})"
        if started:
            who += f", since {started}"
        super().__init__(
            f"the index at {index_dir} is being written by {who}; "
            "wait for it to finish or stop it (a running `tropegraph watch` keeps the index up to date)"
        )
        self.pid = pid
        self.command = command


class IndexCorrupt(IndexError_):
    """The SQLite file cannot be read."""


class EngineUnavailable(IndexError_):
    """An embedding engine or model cannot be loaded (missing package or model folder)."""
