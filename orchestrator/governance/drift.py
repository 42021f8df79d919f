"""Venv drift: what a member's .venv holds that its lock does not say ("overriding with pip").

A sync makes the venv match the lock exactly; anything installed since by
another tool shows up here: a distribution the lock does not list at all,
or one at a version the lock does not pin. Fewer packages than the lock
lists is not drift (a sync without dev groups installs fewer). The
workspace's own members are installed editable and are skipped. Read from
the dist-info directories alone: no interpreter is started.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from orchestrator.models import Member, Workspace
from orchestrator.names import normalize

VENV_DIR = ".venv"  # as sync.VENV_DIR, without importing sync


@dataclass(frozen=True, slots=True)
class Drift:
    """One distribution in *venv* that the lock does not account for."""

    venv: Path
    package: str
    installed: str
    locked: tuple[str, ...]  # the versions the lock has of it; empty: not in the lock

    def describe(self) -> str:
        if not self.locked:
            return f"{self.package} {self.installed} is installed but not in the lock"
        return (f"{self.package} is installed at {self.installed}, but the lock pins "
                f"{' / '.join(self.locked)}")


def locked_versions(lockfile: Path) -> dict[str, dict[str, str]] | None:
    """name -> {canonical version: as written} of the lock's packages; None when unreadable."""
    from packaging.utils import canonicalize_version

    try:
        with lockfile.open("rb") as fh:
            packages = tomllib.load(fh).get("packages", [])
    except (OSError, tomllib.TOMLDecodeError):
        return None
    found: dict[str, dict[str, str]] = {}
    for package in packages if isinstance(packages, list) else ():
        if isinstance(package, dict) and isinstance(package.get("name"), str):
            version = package.get("version")
            versions = found.setdefault(normalize(package["name"]), {})
            if isinstance(version, str):
                versions[canonicalize_version(version)] = version
    return found


def site_packages(venv: Path) -> list[Path]:
    return sorted(p for p in (venv / "lib").glob("python3*/site-packages") if p.is_dir())


def venv_drift(workspace: Workspace, member: Member) -> list[Drift]:
    """Every distribution in *member*'s .venv that its lock does not list at that version."""
    from packaging.utils import canonicalize_version

    from orchestrator.installer import installed_dists

    venv = member.path / VENV_DIR
    if not (venv / "pyvenv.cfg").is_file():
        return []
    locked = locked_versions(member.lockfile)
    if locked is None:
        return []  # no lock to compare with; the lock check says so
    members = {m.name for m in workspace.members}
    found = []
    for directory in site_packages(venv):
        for name, dist in sorted(installed_dists(directory).items()):
            if name in members:
                continue  # an editable workspace member, at whatever version it reports
            versions = locked.get(name)
            if versions is None or canonicalize_version(dist.version) not in versions:
                found.append(Drift(venv, name, dist.version,
                                   tuple(sorted((versions or {}).values()))))
    return found
