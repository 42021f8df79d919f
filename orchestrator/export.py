"""Export a member's lock for other tools: requirements.txt with hashes, or a PEP 751 subset."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.lock import Selected, archive_hashes, read_lock, render, select
from orchestrator.models import Member, Target, Workspace

if TYPE_CHECKING:
    from packaging.pylock import PackageDirectory, Pylock


def export(
    workspace: Workspace,
    member: Member,
    *,
    fmt: str,
    groups: Collection[str],
    extras: Collection[str] = (),
    workspace_members: bool = True,
    output_dir: Path | None = None,
) -> str:
    """The member's lock as text in *fmt*, for its target environments, *groups* and *extras*.

    *output_dir* is where the text will be written (relative paths of workspace
    members are made relative to it); default: the member's directory.
    """
    lock = read_lock(member.lockfile)
    chosen = select(lock, workspace.targets, groups, extras=extras)
    if not workspace_members:
        chosen = [s for s in chosen if not s.is_member]
    base = output_dir or member.path
    if fmt == "pylock.toml":
        return _pylock(lock, chosen, member, base)
    return _requirements(chosen, workspace.targets, member, base)


def _requirements(chosen: Sequence[Selected], targets: Sequence[Target], member: Member,
                  base: Path) -> str:
    from orchestrator.resolver.merge import targets_marker

    lines = [f"# Exported from {member.name}'s pylock.toml by orchestrator; install with",
             "#   pip install --require-hashes --no-deps -r <this file>"]
    members = [s for s in chosen if s.is_member]
    for item in sorted(chosen, key=lambda s: s.name):
        if item.is_member:
            continue
        marker = targets_marker(item.targets, targets)
        spec = f"{item.name}=={item.package.version}"
        if marker:
            spec += f" ; {marker}"
        hashes = archive_hashes(item.package)
        lines.append(" \\\n    ".join([spec, *(f"--hash=sha256:{h}" for h in hashes)]))
    if members:
        lines.append("# workspace members (unhashed local directories; pip cannot mix them "
                     "with --require-hashes):")
        for item in members:
            if item.package.directory is not None:
                lines.append(f"# {item.name} @ "
                             f"{_member_path(item.package.directory, member, base)}")
    return "\n".join(lines) + "\n"


def _member_path(directory: PackageDirectory, member: Member, base: Path) -> str:
    """A directory entry's path (relative to *member*'s lock) made relative to *base*."""
    return Path(os.path.relpath(member.path / directory.path, base)).as_posix()


def _pylock(lock: Pylock, chosen: Sequence[Selected], member: Member, base: Path) -> str:
    import dataclasses

    from packaging.pylock import PackageDirectory

    keep = []
    for item in chosen:
        pkg = item.package
        if pkg.directory is not None:
            pkg = dataclasses.replace(pkg, directory=PackageDirectory(
                path=_member_path(pkg.directory, member, base), editable=pkg.directory.editable))
        keep.append(pkg)
    subset = dataclasses.replace(lock, packages=keep)
    subset.validate()
    return render(subset)
