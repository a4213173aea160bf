"""The arrows point one way: vault_schema <- indexer <- queries <- interfaces.

Every import in every module (top level or inside a function) is checked, so a lazy import
against the direction fails here too.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ["vault_schema", "indexer", "queries", "interfaces"]


def _imported_packages(path: Path) -> set[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


def _violations(layer: str) -> list[str]:
    higher = set(LAYERS[LAYERS.index(layer) + 1:])
    out = []
    for path in sorted((REPO / layer).rglob("*.py")):
        for package, line in sorted(_imported_packages(path)):
            if package in higher:
                out.append(f"{path.relative_to(REPO)}:{line} imports {package}")
    return out


@pytest.mark.parametrize("layer", LAYERS)
def test_no_import_against_the_direction(layer: str) -> None:
    assert (REPO / layer / "__init__.py").exists()
    assert _violations(layer) == []


def test_the_check_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from queries.search import search\n", encoding="utf-8")
    assert ("queries", 2) in _imported_packages(bad)
