"""``tropegraph parse NOTE [--json]``: exact exit codes and messages."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from interfaces.cli import cli

STUB = Path(__file__).parent / "vault-stub"


def test_parse_json_seed(seed_note: Path) -> None:
    result = CliRunner().invoke(cli, ["parse", str(seed_note), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["kind"] == "conversation"
    assert data["path"] == "seed-conversation.md"
    assert data["mojibake_repaired"] is True
    assert [t["uid"] for t in data["turns"]] == [
        "07b60218-f1a0-48f2-b067-1f28d03f5157", "ae506e99-72ba-4910-9334-351ca5f38f19"
    ]
    assert [t["role"] for t in data["turns"]] == ["user", "assistant"]
    assert [t["time"] for t in data["turns"]] == ["2025-07-24T14:45:00"] * 2
    assert data["turns"][0]["text"].startswith("Из этого проистекает")
    assert {"path", "kind", "title", "conversation_id", "provider", "plugin_version", "turns", "links", "tags",
            "warnings"} <= set(data)
    assert data["warnings"][0]["code"] == "mojibake-repaired"


def test_parse_human_summary_and_vault_relative_path(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    shutil.copytree(STUB, vault)
    note = vault / "Nexus/Conversations/chatgpt/v163-model.md"
    result = CliRunner().invoke(cli, ["parse", str(note)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Nexus/Conversations/chatgpt/v163-model.md: conversation — Размышление о смысле жизни"
    assert "2 turns" in result.output
    assert "33333333-0000-4000-8000-000000000002" in result.output
    assert "assistant (gpt-4o)" in result.output
    assert "#идеи/образы" in result.output


def test_parse_shows_warnings(tmp_path: Path) -> None:
    note = tmp_path / "bad.md"
    note.write_bytes(b"ok\n\xff\n")
    result = CliRunner().invoke(cli, ["parse", str(note)])
    assert result.exit_code == 0
    assert "warning: bad.md:2: invalid UTF-8" in result.output


def test_parse_missing_file_is_one_line_error(tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "nope.md"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TROPEGRAPH_VAULT", raising=False)
    result = CliRunner().invoke(cli, ["parse", str(missing)])
    assert result.exit_code == 1
    assert result.output == (f"Error: {missing}: no such note in the current folder. Pass a note's path relative "
                             "to the vault, as `tropegraph search --json` shows it, or to the current folder (or "
                             "give the vault with --vault to use a vault-relative path).\n")


def test_parse_directory_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["parse", str(tmp_path), "--json"])
    assert result.exit_code == 1
    assert result.output == f"Error: {tmp_path}: is a directory, not a note\n"
