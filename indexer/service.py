"""Run ``tropegraph watch`` in the background: a systemd user unit (Linux) or a launchd agent (macOS).

tropegraph only writes the unit file and prints the command that starts it; it never calls
``systemctl`` or ``launchctl`` itself, so installing is safe to preview and easy to undo.
"""
from __future__ import annotations

import hashlib
import os
import plistlib
import re
import shlex
import sys
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from indexer.fsutil import atomic_write

SYSTEMD = "systemd"
LAUNCHD = "launchd"
PLATFORMS = (SYSTEMD, LAUNCHD)


class ServiceError(Exception):
    """The background service cannot be set up on this system."""


def default_platform() -> str:
    """``launchd`` on macOS, ``systemd`` elsewhere; Windows has neither."""
    if sys.platform == "darwin":
        return LAUNCHD
    if sys.platform.startswith("win"):
        raise ServiceError(
            "background services are supported on Linux (systemd) and macOS (launchd); "
            "on Windows run `tropegraph watch` from Task Scheduler instead."
        )
    return SYSTEMD


def vault_slug(vault: Path) -> str:
    """A short, stable, file-name-safe name for a vault: its folder name plus a hash of its path.

    The hash keeps two vaults that share a folder name (``~/a/Notes``, ``~/b/Notes``) apart.
    """
    vault = Path(vault).resolve()
    ascii_name = unicodedata.normalize("NFKD", vault.name).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40] or "vault"
    digest = hashlib.sha256(str(vault).encode("utf-8")).hexdigest()[:8]
    return f"{name}-{digest}"


def watch_command(
    vault: Path,
    *,
    index_dir: Path | None = None,
    debounce: float | None = None,
    reconcile_interval: float | None = None,
    executable: str | None = None,
) -> list[str]:
    """The argv the service runs, with absolute paths (services get no shell ``PATH``).

    Prefers the ``tropegraph`` script next to the running Python (the same install), else
    ``python -m interfaces``.
    """
    if executable is not None:
        argv = [executable]
    else:
        python = Path(sys.executable).absolute()
        script = python.parent / ("tropegraph.exe" if os.name == "nt" else "tropegraph")
        argv = [str(script)] if script.is_file() else [str(python), "-m", "interfaces"]
    argv += ["watch", "--vault", str(Path(vault).resolve())]
    if index_dir is not None:
        argv += ["--index-dir", str(Path(index_dir).resolve())]
    if debounce is not None:
        argv += ["--debounce", f"{debounce:g}"]
    if reconcile_interval is not None:
        argv += ["--reconcile-interval", f"{reconcile_interval:g}"]
    return argv


@dataclass(frozen=True)
class Service:
    """One vault's background watcher, as a unit file on one platform."""

    vault: Path
    """The vault, absolute."""
    argv: list[str] = field(hash=False)
    """The command the service runs."""
    platform: str = SYSTEMD
    """``systemd`` or ``launchd``."""
    home: Path = field(default_factory=Path.home)
    """The user's home folder (tests point it at a temporary one)."""

    @property
    def name(self) -> str:
        """``tropegraph-<vault-slug>``: the systemd unit name (without ``.service``)."""
        return f"tropegraph-{vault_slug(self.vault)}"

    @property
    def label(self) -> str:
        """The launchd label (reverse-DNS style, as launchd expects)."""
        return f"io.tropegraph.watch.{vault_slug(self.vault)}"

    @property
    def path(self) -> Path:
        """Where the unit file goes."""
        if self.platform == LAUNCHD:
            return self.home / "Library" / "LaunchAgents" / f"{self.label}.plist"
        xdg = os.environ.get("XDG_CONFIG_HOME", "")
        config = Path(xdg) if os.path.isabs(xdg) else self.home / ".config"
        return config / "systemd" / "user" / f"{self.name}.service"

    @property
    def log_path(self) -> Path:
        """launchd has no journal: the agent's output goes here."""
        return self.home / "Library" / "Logs" / f"{self.name}.log"

    def render(self) -> str:
        """The unit file's text."""
        return render_launchd(self) if self.platform == LAUNCHD else render_systemd(self)

    def start_command(self) -> str:
        """The shell command that loads and starts the installed unit."""
        if self.platform == LAUNCHD:
            return f"launchctl bootstrap gui/$(id -u) {shlex.quote(str(self.path))}"
        return f"systemctl --user daemon-reload && systemctl --user enable --now {self.name}.service"

    def stop_command(self) -> str:
        """The shell command that stops a running unit (run it before or after uninstalling)."""
        if self.platform == LAUNCHD:
            return f"launchctl bootout gui/$(id -u)/{self.label}"
        return f"systemctl --user disable --now {self.name}.service; systemctl --user daemon-reload"

    def status_command(self) -> str:
        """The shell command that shows the service manager's view (state, recent log)."""
        if self.platform == LAUNCHD:
            return f"launchctl print gui/$(id -u)/{self.label}"
        return f"systemctl --user status {self.name}.service; journalctl --user -u {self.name}.service -n 20"


def _systemd_quote(arg: str) -> str:
    """Quote one ExecStart argument (systemd.syntax: C-style escapes in double quotes; ``%``
    starts a specifier and ``$`` an environment variable, so both are doubled)."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if arg and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_systemd(service: Service) -> str:
    """A systemd *user* unit that runs the watcher and restarts it if it crashes."""
    exec_start = " ".join(_systemd_quote(a) for a in service.argv)
    return (
        "# Written by `tropegraph service install`; remove with `tropegraph service uninstall`.\n"
        "[Unit]\n"
        f"Description=tropegraph watcher for {_systemd_quote(str(service.vault))}\n"
        "\n"
        "[Service]\n"
        "Type=exec\n"
        f"ExecStart={exec_start}\n"
        f"WorkingDirectory={_systemd_quote(str(service.vault))}\n"
        "Environment=PYTHONUNBUFFERED=1\n"
        # SIGTERM makes the watcher roll back its batch and release the lock: exit 0.
        "KillSignal=SIGTERM\n"
        "TimeoutStopSec=60\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        "Nice=10\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def render_launchd(service: Service) -> str:
    """A launchd agent plist that runs the watcher at login and restarts it if it crashes."""
    plist = {
        "Label": service.label,
        "ProgramArguments": list(service.argv),
        "WorkingDirectory": str(service.vault),
        "EnvironmentVariables": {"PYTHONUNBUFFERED": "1"},
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ProcessType": "Background",
        "StandardOutPath": str(service.log_path),
        "StandardErrorPath": str(service.log_path),
    }
    return plistlib.dumps(plist, sort_keys=False).decode("utf-8")


def install(service: Service) -> Path:
    """Write the unit file atomically (temp file + ``os.replace``); return its path."""
    path = service.path
    path.parent.mkdir(parents=True, exist_ok=True)
    if service.platform == LAUNCHD:
        service.log_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, service.render())
    return path


def _wants_links(service: Service) -> list[Path]:
    """systemd's ``*.wants/<unit>`` links (made by ``systemctl enable``), dangling or not."""
    folder = service.path.parent
    if service.platform != SYSTEMD or not folder.is_dir():
        return []
    links = (d / service.path.name for d in sorted(folder.iterdir()) if d.name.endswith(".wants"))
    return [link for link in links if link.is_symlink() or link.exists()]


def uninstall(service: Service) -> list[Path]:
    """Remove the unit file and systemd's ``*.wants/`` links to it; return what was removed."""
    removed = []
    if service.path.exists() or service.path.is_symlink():
        service.path.unlink()
        removed.append(service.path)
    # what `systemctl --user disable` would remove; left behind they point at nothing
    for link in _wants_links(service):
        link.unlink()
        removed.append(link)
    return removed


@dataclass(frozen=True)
class ServiceStatus:
    """What ``tropegraph service status`` reports."""

    name: str
    platform: str
    path: Path
    installed: bool
    """The unit file exists."""
    enabled: bool | None
    """systemd: a ``*.wants/`` link exists; launchd: None (ask ``launchctl``)."""
    up_to_date: bool
    """The installed file is what ``install`` would write now (same executable and options)."""
    watcher: str | None
    """Who holds the index's writer lock (a running watcher or indexer), if anyone."""

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "platform": self.platform,
            "path": str(self.path),
            "installed": self.installed,
            "enabled": self.enabled,
            "up_to_date": self.up_to_date,
            "watcher": self.watcher,
        }


def status(service: Service, *, watcher: str | None = None) -> ServiceStatus:
    """Describe the installed unit (without asking the service manager)."""
    installed = service.path.is_file()
    enabled: bool | None = None
    if service.platform == SYSTEMD:
        enabled = bool(_wants_links(service))
    current = service.path.read_text(encoding="utf-8") if installed else None
    return ServiceStatus(
        name=service.name if service.platform == SYSTEMD else service.label,
        platform=service.platform,
        path=service.path,
        installed=installed,
        enabled=enabled,
        up_to_date=current == service.render(),
        watcher=watcher,
    )

