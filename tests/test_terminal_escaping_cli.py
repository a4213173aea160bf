"""A note can hold terminal escape sequences (``\\x1b[2J`` clears the screen) in its title, its
text and its file name; no CLI command prints them raw. Note-derived text reaches the terminal
only through ``queries.render.escape`` (``terminal_text`` / ``terminal_chars``), which shows each
control character as ``�``."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from interfaces.cli import cli

CLEAR = "\x1b[2J"
SHOWN = "\ufffd[2J"  # what the terminal gets instead
UID_USER = "019c8d21-5a3e-7b40-8f12-3d6e9a0c4b61"
UID_ASSISTANT = "019c8d21-5a3e-7b40-8f12-3d6e9a0c4b62"
NOTE = f"""---
nexus: nexus-ai-chat-importer
plugin_version: "1.6.8"
provider: claude
aliases: Untitled
conversation_id: 4c1e2b7a-9d3f-4e21-8a5b-2f6c0d9e1a77
create_time: 2026-03-14T13:05:09.000Z
update_time: 2026-03-14T13:05:41.000Z
---
# Title: Экран {CLEAR} погас

Created: 2026/03/14 at 16:05:09
Last Updated: 2026/03/14 at 16:05:41
Chat URL: https://claude.ai/chat/4c1e2b7a-9d3f-4e21-8a5b-2f6c0d9e1a77


>[!nexus_user] **User** - 2026/03/14 at 16:05:09
> Маяк в тумане {CLEAR} светит кораблям, а терминал\x07 звенит.
<!-- UID: {UID_USER} -->
>[!nexus_agent] **Assistant** - 2026/03/14 at 16:05:41
> Маяк в тумане — хороший образ\x1b]0;owned\x07 для ориентира.
<!-- UID: {UID_ASSISTANT} -->
"""
NAME = f"Экран{CLEAR}.md"


@pytest.fixture
def vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("TROPEGRAPH_ENGINE", "fake")
    for var in ("TROPEGRAPH_MODEL", "TROPEGRAPH_VAULT", "TROPEGRAPH_INDEX_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "vault"
    (root / ".obsidian").mkdir(parents=True)
    (root / NAME).write_text(NOTE, encoding="utf-8")
    ix = tmp_path / "ix"
    res = CliRunner().invoke(cli, ["index", "--vault", str(root), "--index-dir", str(ix)])
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.stdout + res.stderr
    return root, ix


def _run(vault: tuple[Path, Path], *args: str) -> tuple[str, str]:
    root, ix = vault
    res = CliRunner().invoke(cli, [*args, "--vault", str(root), "--index-dir", str(ix)])
    assert res.exit_code == 0, (res.stdout, res.stderr)
    for stream in (res.stdout, res.stderr):
        assert not any(c in stream for c in "\x1b\x07\x9b"), repr(stream)
    return res.stdout, res.stderr


def test_search_prints_titles_paths_and_snippets_without_escape_sequences(vault) -> None:
    out, _ = _run(vault, "search", "маяк", "--mode", "keyword", "--role", "user")
    lines = out.splitlines()
    assert lines[0].startswith(f" 1. Экран {SHOWN} погас  user · 2026-03-14 16:05  score ")
    assert lines[1] == f"    Экран{SHOWN}.md  uid {UID_USER}"
    assert lines[2] == f"    Маяк в тумане {SHOWN} светит кораблям, а терминал\ufffd звенит."


def test_similar_prints_the_same_escaping(vault) -> None:
    out, _ = _run(vault, "similar", UID_USER, "-k", "1")
    lines = out.splitlines()
    assert lines[0].startswith(f" 1. Экран {SHOWN} погас  assistant · 2026-03-14 16:05  score ")
    assert lines[2] == "    Маяк в тумане — хороший образ\ufffd]0;owned\ufffd для ориентира."


def test_parse_prints_title_path_and_text_without_escape_sequences(vault) -> None:
    root, _ = vault
    res = CliRunner().invoke(cli, ["parse", NAME, "--vault", str(root)])
    assert res.exit_code == 0, res.output
    assert "\x1b" not in res.output and "\x07" not in res.output
    lines = res.stdout.splitlines()
    assert lines[0] == f"Экран{SHOWN}.md: conversation — Экран {SHOWN} погас"
    assert lines[4] == f"       Маяк в тумане {SHOWN} светит кораблям, а терминал\ufffd звенит."


def test_timeline_of_a_phrase_prints_titles_and_sentences_escaped(vault) -> None:
    out, err = _run(vault, "timeline", "маяк в тумане")
    # «маяк в тумане» is an extracted candidate since the extractor reads Russian «в» (noun + в + noun),
    # judged literal here (one conversation); either way its header names the phrase.
    assert err.startswith(("Phrase: маяк в тумане (not an extracted metaphor", "Metaphor: маяк в тумане ["))
    assert f"  2026-03-14  user      Экран {SHOWN} погас  (Экран{SHOWN}.md)\n" in out
    assert f"Маяк в тумане {SHOWN} светит кораблям" in out


def test_watch_log_lines_name_notes_without_escape_sequences() -> None:
    import logging

    from interfaces.commands.watch import _TerminalFormatter

    record = logging.LogRecord("tropegraph.watch", logging.INFO, __file__, 1, "%s: looks half-written; will retry",
                               (NAME,), None)
    line = _TerminalFormatter("%(levelname)s %(message)s").format(record)
    assert line == f"INFO Экран{SHOWN}.md: looks half-written; will retry"
