"""What `show` reports about a member's lock, as data: packages, tree, why, outdated.

``report.py`` renders these as text; the CLI prints them as JSON with --json.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.models import Member

if TYPE_CHECKING:
    from packaging.pylock import Pylock
    from packaging.version import Version

    from orchestrator.index import IndexClient


@dataclass(frozen=True, slots=True)
class ShownPackage:
    """One lock entry, and how the member's venv holds it."""

    name: str
    version: str | None  # None only for a directory entry without a static version
    workspace: bool  # a workspace member (a PEP 751 directory entry)
    required_by: str | None  # "main" or the group that requires it directly; None: indirect
    installed: str | None  # the venv's version; None: not installed or no venv

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "workspace": self.workspace,
                "direct": self.required_by, "installed": self.installed}


@dataclass(frozen=True, slots=True)
class TreeNode:
    name: str
    version: str | None
    children: tuple[TreeNode, ...]
    repeated: bool  # already shown higher up the same branch: not expanded again

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "repeated": self.repeated,
                "dependencies": [c.as_dict() for c in self.children]}


@dataclass(frozen=True, slots=True)
class Outdated:
    name: str
    current: str
    newest: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "current": self.current, "newest": self.newest}


def direct_names(member: Member) -> dict[str, str]:
    """Direct requirement name -> where it comes from ("main" or the group)."""
    from packaging.requirements import Requirement

    from orchestrator.names import normalize

    out: dict[str, str] = {}
    for req in member.dependencies:
        out.setdefault(normalize(Requirement(req).name), "main")
    for group, reqs in member.groups.items():
        for req in reqs:
            out.setdefault(normalize(Requirement(req).name), group)
    return out


def installed_versions(member: Member) -> dict[str, str] | None:
    """name -> version of what the member's .venv holds; None when it has no venv."""
    from orchestrator.sync import venv_path

    venv_dir = venv_path(member)
    if not venv_dir.exists():
        return None
    from orchestrator.venv import installed

    return {name: dist.version for name, dist in installed(venv_dir).items()}


def packages(member: Member, lock: Pylock,
             installed: dict[str, str] | None) -> list[ShownPackage]:
    """Every lock entry, sorted by name."""
    direct = direct_names(member)
    rows = []
    for pkg in sorted(lock.packages, key=lambda p: str(p.name)):
        name = str(pkg.name)
        rows.append(ShownPackage(name, str(pkg.version) if pkg.version else None,
                                 pkg.directory is not None, direct.get(name),
                                 installed.get(name) if installed is not None else None))
    return rows


def tree(member: Member, lock: Pylock) -> list[TreeNode]:
    """The member's direct requirements, each with what it pulls in."""
    from orchestrator.lock import dependency_graph

    graph = dependency_graph(lock)
    versions = {str(p.name): str(p.version) if p.version else None for p in lock.packages}

    def node(name: str, seen: frozenset[str]) -> TreeNode:
        if name in seen:
            return TreeNode(name, versions.get(name), (), True)
        children = tuple(node(c, seen | {name}) for c in sorted(graph.get(name, [])))
        return TreeNode(name, versions.get(name), children, False)

    return [node(root, frozenset()) for root in sorted(direct_names(member))
            if root in versions]


def why(member: Member, lock: Pylock, package: str) -> list[list[str]]:
    """Every chain from the member's direct requirements to *package*."""
    from orchestrator.lock import dependency_graph

    graph = dependency_graph(lock)
    chains: list[list[str]] = []

    def walk(path: list[str]) -> None:
        node = path[-1]
        if node == package:
            chains.append(path)
            return
        for child in sorted(graph.get(node, [])):
            if child not in path:
                walk([*path, child])

    for root in sorted(direct_names(member)):
        if root in graph:
            walk([root])
    return chains


def outdated(lock: Pylock, index: IndexClient) -> list[Outdated]:
    """Locked index packages with a newer final, unyanked release on the index."""
    names = [str(p.name) for p in lock.packages if p.version and p.directory is None]
    index.prefetch_projects(names)
    rows = []
    for pkg in lock.packages:
        if pkg.directory is not None or pkg.version is None:
            continue
        newest = max(_releases(index, str(pkg.name)), default=pkg.version)
        if newest > pkg.version:
            rows.append(Outdated(str(pkg.name), str(pkg.version), str(newest)))
    return rows


def _releases(index: IndexClient, name: str) -> Sequence[Version]:
    versions = []
    for f in index.files(name):
        parsed = filename_version(f.filename)
        if f.yanked is None and parsed is not None and not parsed.is_prerelease:
            versions.append(parsed)
    return versions


def filename_version(filename: str) -> Version | None:
    """The version in a wheel or sdist filename; None for eggs and other leftovers."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
