"""``tropegraph service install|uninstall|status``: unit files written into a temporary HOME.

Nothing here runs systemctl or launchctl: an autouse guard makes any subprocess fail the test.
"""
from __future__ import annotations

import plistlib
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.lock import WriterLock
from indexer.service import LAUNCHD, SYSTEMD, Service, _systemd_quote, vault_slug, watch_command
from interfaces.cli import cli


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME; no service manager is ever called."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "TROPEGRAPH_INDEX_DIR", "TROPEGRAPH_VAULT"):
        monkeypatch.delenv(var, raising=False)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a test tried to run a process: {args}")

    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    return home


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    v = tmp_path / "My Vault"
    (v / ".obsidian").mkdir(parents=True)
    return v.resolve()


def _exe() -> list[str]:
    python = Path(sys.executable).absolute()
    script = python.parent / "tropegraph"
    return [str(script)] if script.is_file() else [str(python), "-m", "interfaces"]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


# --------------------------------------------------------------------------- library


def test_slug_is_stable_distinct_and_ascii(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "Заметки", tmp_path / "b" / "Заметки"
    assert vault_slug(a) == vault_slug(a)
    assert vault_slug(a) != vault_slug(b)
    assert vault_slug(tmp_path / "My Vault").startswith("my-vault-")
    assert vault_slug(a).isascii() and vault_slug(a).startswith("vault-")


def test_watch_command_has_absolute_paths(vault: Path) -> None:
    argv = watch_command(vault, index_dir=Path("rel/idx"), debounce=0.25, reconcile_interval=60)
    assert argv[: len(_exe())] == _exe()
    assert all(Path(a).is_absolute() for a in _exe())
    assert argv[len(_exe()) :] == [
        "watch", "--vault", str(vault), "--index-dir", str(Path("rel/idx").resolve()),
        "--debounce", "0.25", "--reconcile-interval", "60",
    ]


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("/home/u/My Vault", '"/home/u/My Vault"'),
        ("/home/u/100%", "/home/u/100%%"),
        ("/home/u/$HOME", '"/home/u/$$HOME"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
    ],
)
def test_systemd_quoting(arg: str, quoted: str) -> None:
    assert _systemd_quote(arg) == quoted


# --------------------------------------------------------------------------- install


def test_install_systemd(vault: Path, home: Path) -> None:
    code, out, err = run("service", "install", "--vault", str(vault), "--platform", "systemd")
    assert (code, err) == (0, "")
    svc = Service(vault=vault, argv=watch_command(vault), platform=SYSTEMD, home=home)
    unit = home / ".config" / "systemd" / "user" / f"tropegraph-{vault_slug(vault)}.service"
    assert svc.path == unit
    assert out == (
        f"Wrote {unit}\n"
        "Start it now and at every login with:\n"
        f"  systemctl --user daemon-reload && systemctl --user enable --now {unit.name}\n"
        "Check on it with:\n"
        f"  systemctl --user status {unit.name}; journalctl --user -u {unit.name} -n 20\n"
    )
    text = unit.read_text(encoding="utf-8")
    exec_start = " ".join(_systemd_quote(a) for a in [*_exe(), "watch", "--vault", str(vault)])
    assert f"\nExecStart={exec_start}\n" in text
    assert f'\nWorkingDirectory="{vault}"\n' in text
    assert "\nRestart=on-failure\n" in text
    assert "\nKillSignal=SIGTERM\n" in text
    assert text.endswith("[Install]\nWantedBy=default.target\n")

    code, out, _ = run("service", "install", "--vault", str(vault), "--platform", "systemd")
    assert code == 0 and out.startswith(f"Updated {unit}\n")


def test_install_respects_xdg_config_home(vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    code, _, _ = run("service", "install", "--vault", str(vault), "--platform", "systemd")
    assert code == 0
    assert (tmp_path / "xdg" / "systemd" / "user" / f"tropegraph-{vault_slug(vault)}.service").is_file()


def test_install_launchd(vault: Path, home: Path, tmp_path: Path) -> None:
    index_dir = tmp_path / "idx"
    code, out, err = run(
        "service", "install", "--vault", str(vault), "--platform", "launchd",
        "--index-dir", str(index_dir), "--debounce", "1",
    )
    assert (code, err) == (0, "")
    label = f"io.tropegraph.watch.{vault_slug(vault)}"
    plist_path = home / "Library" / "LaunchAgents" / f"{label}.plist"
    assert out.splitlines()[0] == f"Wrote {plist_path}"
    assert out.splitlines()[2] == f"  launchctl bootstrap gui/$(id -u) {shlex.quote(str(plist_path))}"
    plist = plistlib.loads(plist_path.read_bytes())
    assert plist["Label"] == label
    assert plist["ProgramArguments"] == [
        *_exe(), "watch", "--vault", str(vault), "--index-dir", str(index_dir), "--debounce", "1",
    ]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardErrorPath"] == str(home / "Library" / "Logs" / f"tropegraph-{vault_slug(vault)}.log")
    assert (home / "Library" / "Logs").is_dir()


def test_index_dir_from_environment_goes_into_the_unit(
    vault: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service does not inherit the shell's environment, so the unit spells it out."""
    monkeypatch.setenv("TROPEGRAPH_INDEX_DIR", str(tmp_path / "envidx"))
    code, out, _ = run("service", "install", "--vault", str(vault), "--platform", "systemd", "--print")
    assert code == 0
    assert f"--index-dir {tmp_path / 'envidx'}" in out or f'--index-dir "{tmp_path / "envidx"}"' in out


@pytest.mark.parametrize("flag", ["--dry-run", "--print"])
def test_dry_run_prints_and_writes_nothing(vault: Path, home: Path, flag: str) -> None:
    code, out, _ = run("service", "install", "--vault", str(vault), "--platform", "systemd", flag)
    svc = Service(vault=vault, argv=watch_command(vault), platform=SYSTEMD, home=home)
    assert code == 0
    assert out == f"# {svc.path}\n{svc.render()}"
    assert not svc.path.exists()
    assert not (home / ".config").exists()


def test_missing_vault_is_a_one_line_error(tmp_path: Path) -> None:
    code, _, err = run("service", "install", "--vault", str(tmp_path / "nope"))
    assert code == 1
    assert err == f"Error: vault folder {tmp_path / 'nope'} does not exist; check --vault / TROPEGRAPH_VAULT\n"


# --------------------------------------------------------------------------- uninstall / status


def test_uninstall_removes_unit_and_wants_link(vault: Path, home: Path) -> None:
    run("service", "install", "--vault", str(vault), "--platform", "systemd")
    svc = Service(vault=vault, argv=watch_command(vault), platform=SYSTEMD, home=home)
    wants = svc.path.parent / "default.target.wants"
    wants.mkdir()
    (wants / svc.path.name).symlink_to(svc.path)  # what `systemctl --user enable` makes

    code, out, _ = run("service", "uninstall", "--vault", str(vault), "--platform", "systemd")
    assert code == 0
    assert out == (
        f"Removed {svc.path}\nRemoved {wants / svc.path.name}\n"
        "If it is still running, stop it with:\n"
        f"  systemctl --user disable --now {svc.name}.service; systemctl --user daemon-reload\n"
    )
    assert not svc.path.exists() and not (wants / svc.path.name).is_symlink()

    code, out, _ = run("service", "uninstall", "--vault", str(vault), "--platform", "systemd")
    assert (code, out) == (0, f"No service installed for {vault} (looked for {svc.path}).\n")


def test_status_json(vault: Path, home: Path, tmp_path: Path) -> None:
    import json

    index_dir = tmp_path / "idx"
    index_dir.mkdir()
    args = ["service", "status", "--vault", str(vault), "--index-dir", str(index_dir), "--platform", "systemd"]
    code, out, _ = run(*args, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["installed"] is False and data["watcher"] is None and data["enabled"] is False

    code, _, _ = run("service", "install", "--vault", str(vault), "--index-dir", str(index_dir), "--platform", "systemd")
    with WriterLock(index_dir, command="tropegraph watch"):
        data = json.loads(run(*args, "--json")[1])
        human = run(*args)[1]
    assert data["installed"] is True and data["up_to_date"] is True
    assert data["path"].endswith(f"tropegraph-{vault_slug(vault)}.service")
    import os

    assert data["watcher"].startswith(f"pid {os.getpid()} (tropegraph watch)")
    assert human.splitlines()[0] == f"tropegraph-{vault_slug(vault)}: not enabled, {data['path']}"
    assert human.splitlines()[1].startswith(f"watcher: pid {os.getpid()} (tropegraph watch)")


def test_launchd_status_has_no_enabled_flag(vault: Path) -> None:
    run("service", "install", "--vault", str(vault), "--platform", LAUNCHD)
    svc = Service(vault=vault, argv=watch_command(vault), platform=LAUNCHD, home=Path.home())
    code, out, _ = run("service", "status", "--vault", str(vault), "--platform", LAUNCHD)
    assert code == 0
    assert out.splitlines()[0] == f"{svc.label}: installed, {svc.path}"


def test_help_mentions_every_subcommand() -> None:
    code, out, _ = run("service", "--help")
    assert code == 0
    for name in ("install", "uninstall", "status"):
        assert f"  {name} " in out
