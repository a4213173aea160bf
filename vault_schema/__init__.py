"""tropegraph's data model and parsers: pure data and parsing, no index, no models, no watcher."""
from vault_schema.errors import NoteReadError, VaultError, VaultNotFound
from vault_schema.models import (
    Attachment,
    Conversation,
    Heading,
    Link,
    Note,
    ParseWarning,
    Tag,
    Turn,
)

__all__ = [
    "Attachment",
    "Conversation",
    "Heading",
    "Link",
    "Note",
    "NoteReadError",
    "ParseWarning",
    "Tag",
    "Turn",
    "VaultError",
    "VaultNotFound",
]
