"""The user's curation file, ``tropegraph.toml`` at the vault root.

It is the user's own config: tropegraph reads it on every metaphor update, and writes it ONLY
through ``tropegraph metaphors track/reject/merge/split``, which *append* a small TOML table
at the end (comments and the user's layout are kept), after checking that the result still
parses. A malformed file is reported as ``path:line: message`` and ignored for the run; the
edit commands refuse to touch it. Phrases, not ids, are stored, so curation survives
``index --full`` and a rebuilt index::

    [[track]]                       # always list this phrase (even if it occurs once)
    phrase = "карта смысла"
    aliases = ["map of meaning"]    # forms/translations that belong to it

    [[reject]]                      # not an image: hide it
    phrase = "нейронная сеть"

    [[merge]]                       # one metaphor, whatever the embeddings say
    phrases = ["ткань разговора", "ткань диалога"]

    [[split]]                       # never group this phrase with others (beats a merge)
    phrase = "карта памяти"

    stoplist = ["база данных"]      # (top level) literal phrases, whatever the model says
    technical = ["батч"]            # (top level) a phrase made of two of these words is literal
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from indexer.fsutil import atomic_write, remove_stale_temps
from vault_schema import files
from vault_schema.errors import VaultError

FILENAME = "tropegraph.toml"
MAX_BYTES = 4 * 1024 * 1024
"""A curation file larger than this is not read (it is hand-written: kilobytes)."""


class CurationError(VaultError):
    """The curation file cannot be read or safely edited (message names path and line)."""


@dataclass(frozen=True)
class Curation:
    track: tuple[tuple[str, tuple[str, ...]], ...] = ()
    reject: tuple[str, ...] = ()
    merge: tuple[tuple[str, ...], ...] = ()
    split: tuple[str, ...] = ()
    stoplist: tuple[str, ...] = ()
    technical: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not (self.track or self.reject or self.merge or self.split or self.stoplist or self.technical)

    def fingerprint(self) -> str:
        return repr((self.track, self.reject, self.merge, self.split, self.stoplist, self.technical))


def _error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    m = re.search(r"line (\d+)", str(exc))
    return int(m.group(1)) if m else None


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str) and v.strip())
    return ()


def parse_text(text: str, path: str = FILENAME) -> Curation:
    """Parse curation TOML; raise ``CurationError("path:line: …")`` when it is not valid TOML."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _error_line(exc)
        where = f"{path}:{line}" if line else path
        raise CurationError(f"{where}: malformed curation file ({exc})") from exc
    warnings: list[str] = []

    def tables(name: str) -> list[dict]:
        value = data.get(name, [])
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            warnings.append(f"{path}: '{name}' should be a list of tables; ignored")
            return []
        out = []
        for item in value:
            if isinstance(item, dict):
                out.append(item)
            elif isinstance(item, str):
                out.append({"phrase": item})
            else:
                warnings.append(f"{path}: an entry of '{name}' is not a table; ignored")
        return out

    track = tuple(
        (t["phrase"].strip(), _strings(t.get("aliases", ()))) for t in tables("track") if isinstance(t.get("phrase"), str)
    )
    reject = tuple(t["phrase"].strip() for t in tables("reject") if isinstance(t.get("phrase"), str))
    split = tuple(t["phrase"].strip() for t in tables("split") if isinstance(t.get("phrase"), str))
    merge = tuple(ps for t in tables("merge") if len(ps := _strings(t.get("phrases", ()))) >= 2)
    return Curation(track, reject, merge, split, _strings(data.get("stoplist", ())),
                    _strings(data.get("technical", ())), tuple(warnings))


def load(vault: Path | None) -> Curation:
    """The vault's curation, or an empty one; a malformed file gives a warning, never an error."""
    if vault is None:
        return Curation()
    path = Path(vault) / FILENAME
    try:
        text = files.read_text(path, max_bytes=MAX_BYTES)  # a regular file, never blocking
    except FileNotFoundError:
        return Curation()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return Curation(warnings=(f"{path}: cannot read curation file ({reason}); ignored",))
    try:
        return parse_text(text, str(path))
    except CurationError as exc:
        return Curation(warnings=(f"{exc}; ignored",))


def _toml_str(s: str) -> str:
    """A TOML basic string for a phrase: whitespace runs (``\\r``, ``\\n``, tabs) become one space,
    other control characters are ``\\uXXXX`` escapes, so the file always parses again."""
    s = re.sub(r"\s+", " ", s).strip()
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m[0]):04x}", s) + '"'


def append_entry(vault: Path, table: str, **fields: str | list[str]) -> Path:
    """Append one ``[[table]]`` entry to the curation file (created if missing), atomically.

    Refuses (``CurationError`` naming path and line) when the existing file is malformed or the
    result would not parse; never rewrites what the user wrote.
    """
    path = Path(vault) / FILENAME
    remove_stale_temps(Path(vault), FILENAME)  # an append a kill cut short
    old = files.read_text(path, max_bytes=MAX_BYTES) if path.exists() else (
        "# tropegraph curation: your file. tropegraph only appends entries here via\n"
        "# `tropegraph metaphors track/reject/merge/split`; edit freely.\n"
    )
    parse_text(old, str(path))  # raises on a malformed file: we never write over it
    lines = [f"[[{table}]]"]
    for name, value in fields.items():
        if isinstance(value, list):
            lines.append(f"{name} = [{', '.join(_toml_str(v) for v in value)}]")
        else:
            lines.append(f"{name} = {_toml_str(value)}")
    new = old + ("" if old.endswith("\n") or not old else "\n") + "\n" + "\n".join(lines) + "\n"
    try:
        parse_text(new, str(path))
    except CurationError as exc:
        raise CurationError(f"{path}: cannot add a [[{table}]] entry without breaking the file ({exc})") from exc
    atomic_write(path, new)
    return path
