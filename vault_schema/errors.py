"""Exceptions of the vault layer. The CLI turns each into a one-line ``Error: …`` with a fix."""
from __future__ import annotations


class VaultError(Exception):
    """Base class for vault problems."""


class NoteReadError(VaultError):
    """A note could not be read from disk (vanished, permission denied, is a directory)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class VaultNotFound(VaultError):
    """No vault folder could be found or it is not readable."""
