"""Frontmatter: YAML when it parses, a line-wise ``key: value`` fallback when it does not.

Nexus 1.2.0 writes ``aliases: "<title>"`` unescaped, so a title with a ``"`` breaks the YAML;
users break it too. Obsidian then ignores the properties, but the ids in them still matter to
us, so the fallback recovers flat keys and block lists.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import yaml

_FENCE_RE = re.compile(r"^(?:---|\.\.\.)[ \t]*$")
_KEY_RE = re.compile(r"^([A-Za-z_][\w.\- ]*?)\s*:(?:\s+(.*?))?\s*$")
_ITEM_RE = re.compile(r"^\s+-\s*(.*?)\s*$")
MAX_FRONTMATTER = 256 * 1024


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """Safe loader that keeps timestamps as strings (we parse times ourselves: local vs UTC) and
    notes duplicate keys (PyYAML keeps the last silently; Obsidian rejects the whole block)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line
                if key_node.value in seen:
                    self.duplicates.append((key_node.value, seen[key_node.value], line))
                else:
                    seen[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass
class Frontmatter:
    data: dict[str, Any]
    body_start: int
    """Index into the lines of the first body line (0 when there is no frontmatter)."""
    error: tuple[int, str] | None = None
    """(1-based line, message) when the YAML was broken or unterminated."""
    duplicates: tuple[tuple[str, int, int], ...] = ()
    """``(key, first line, repeated line)`` (1-based file lines) of keys given twice in one mapping."""


def _plain(value: Any, budget: list[int]) -> Any:
    """JSON-friendly copy; ``budget`` caps the size (YAML aliases can expand exponentially)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("frontmatter too large")
    if isinstance(value, dict):
        return {str(k): _plain(v, budget) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v, budget) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _linewise(lines: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    key: str | None = None
    for line in lines:
        item = _ITEM_RE.match(line)
        if item and key is not None:
            if not isinstance(data.get(key), list):
                data[key] = [] if data.get(key) in (None, "") else [data[key]]
            data[key].append(_unquote(item.group(1)))
            continue
        m = _KEY_RE.match(line)
        if m:
            key = m.group(1).strip()
            raw = m.group(2) or ""
            if raw.startswith("[") and raw.endswith("]"):
                data[key] = [_unquote(x.strip()) for x in raw[1:-1].split(",") if x.strip()]
            else:
                data[key] = _unquote(raw)
    return data


def split_frontmatter(lines: list[str]) -> Frontmatter:
    """Find and parse the frontmatter at the top of ``lines`` (already newline-normalised)."""
    if not lines or lines[0].rstrip() != "---":
        return Frontmatter({}, 0)
    end = None
    for i in range(1, len(lines)):
        if _FENCE_RE.match(lines[i]):
            end = i
            break
    if end is None:
        # Obsidian shows an unterminated block as text; so do we.
        return Frontmatter({}, 0, (1, "frontmatter starts with '---' but is never closed; read as text"))
    fm_lines = lines[1:end]
    text = "\n".join(fm_lines)
    if not text.strip():
        return Frontmatter({}, end + 1)
    if len(text) > MAX_FRONTMATTER:
        return Frontmatter(_linewise(fm_lines), end + 1, (1, "frontmatter is too large for YAML; read line by line"))
    try:
        loader = _Loader(text)
        loader.duplicates = []
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
        if not isinstance(data, dict):
            raise yaml.YAMLError("frontmatter is not a mapping")
        dups = tuple((str(k), a + 2, b + 2) for k, a, b in loader.duplicates)  # +1: '---', +1: 1-based
        return Frontmatter(_plain(data, [100_000]), end + 1, duplicates=dups)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 2 if mark is not None else 2
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return Frontmatter(_linewise(fm_lines), end + 1, (line, f"broken YAML frontmatter ({problem}); read line by line"))
