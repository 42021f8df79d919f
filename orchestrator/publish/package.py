"""Members built into the sdists and wheels a release uploads, reproducibly.

Per member, in dependency order:

1. its sources are copied into a temporary directory (without environments,
   caches, build output and its pylock.toml, which names workspace paths);
2. the copy's pyproject.toml gets version ranges for its workspace
   dependencies (``rewrite.py``);
3. the member's own PEP 517 backend builds the sdist from the copy, in the
   build environment ``build.MemberBuilder`` keeps for that backend, then
   the wheel from the unpacked sdist, as ``python -m build`` does;
4. both archives are re-packed deterministically (``archives.py``) with
   SOURCE_DATE_EPOCH: the environment's if set, else HEAD's commit time,
   else 0 outside git; it is also passed to the backend.

So two runs on the same commit write byte-identical files, whatever the
cache, the temporary directory or the machine's clock.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from orchestrator.atomic import write_bytes
from orchestrator.errors import PublishError
from orchestrator.models import Member, Workspace
from orchestrator.publish.rewrite import Rewrite, rewrite_pyproject

if TYPE_CHECKING:
    from orchestrator.session import Session

ArtifactKind = Literal["sdist", "wheel"]
Note = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Artifact:
    """One built distribution file."""

    member: str
    kind: ArtifactKind
    path: Path
    size: int
    sha256: str

    def as_dict(self) -> dict[str, object]:
        return {"member": self.member, "kind": self.kind, "file": self.path.name,
                "path": str(self.path), "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class PackageResult:
    """A member's release files and the requirements rewritten for them."""

    member: str
    version: str
    artifacts: tuple[Artifact, ...]
    rewrites: tuple[Rewrite, ...]
    source_date_epoch: int

    def as_dict(self) -> dict[str, object]:
        return {"member": self.member, "version": self.version,
                "source_date_epoch": self.source_date_epoch,
                "artifacts": [a.as_dict() for a in self.artifacts],
                "rewrites": [r.as_dict() for r in self.rewrites]}


def source_date_epoch(root: Path) -> int:
    """$SOURCE_DATE_EPOCH when set, else HEAD's commit time, else 0 (outside git)."""
    from orchestrator.vcs import commit_time

    given = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if given.isdigit():
        return int(given)
    return commit_time(root) or 0


def release_members(session: Session, names: Sequence[str], *, since: str | None = None,
                    publishing: bool = False) -> list[Member]:
    """The members to release, in dependency order (libraries before their users).

    Without *names*, the members marked ``publish`` (libraries by default);
    with *since*, only those a change since that ref affects. When
    *publishing*, a named member marked ``publish = false`` is an error, and
    so is a member whose workspace dependency is never published.
    """
    from orchestrator.graph import affected_since, member_order

    ws = session.workspace
    chosen = session.members(names) if names else [m for m in ws.members if m.options.publish]
    if since is not None:
        hit = {a.member.name for a in affected_since(ws, since)}
        chosen = [m for m in chosen if m.name in hit]
    if publishing:
        for member in chosen:
            _check_publishable(ws, member)
    order = {name: i for i, name in enumerate(member_order(ws))}
    return sorted(chosen, key=lambda m: order[m.name])


def _check_publishable(ws: Workspace, member: Member) -> None:
    from orchestrator.graph import requirement_name

    if not member.options.publish:
        raise PublishError(
            f"{member.name} is not published as a package (publish = false"
            f"{', the default for services' if member.kind == 'service' else ''})",
            hint=f"set `publish = true` under [tool.orchestrator] in {member.relpath}/"
            "pyproject.toml to publish it", member=member.name, file=member.pyproject,
            key="tool.orchestrator.publish")
    sections = [member.dependencies, *member.optional.values()]
    for req in (r for reqs in sections for r in reqs):
        dep = ws.find(requirement_name(req))
        if dep is not None and dep.name != member.name and not dep.options.publish:
            raise PublishError(
                f"{member.name} depends on {dep.name}, which is not published as a package "
                "(publish = false), so its users could not install it",
                hint=f"set `publish = true` in {dep.relpath}/pyproject.toml, or drop the "
                f"dependency from {member.name}", member=member.name, package=dep.name,
                file=dep.pyproject)


def package_members(session: Session, members: Sequence[Member], out: Path, *,
                    sdist: bool = True, wheel: bool = True,
                    note: Note | None = None) -> list[PackageResult]:
    """Build each member's release files into *out* (module docstring), in the given order."""
    ws = session.workspace
    epoch = source_date_epoch(ws.root)
    versions = {m.name: m.version for m in ws.members}
    results: list[PackageResult] = []
    for member in members:
        result = package_member(session, member, out, epoch=epoch, versions=versions,
                                sdist=sdist, wheel=wheel, note=note)
        versions[member.name] = result.version  # a dynamic version is known once built
        results.append(result)
    return results


def package_member(session: Session, member: Member, out: Path, *, epoch: int,
                   versions: dict[str, str | None], sdist: bool = True, wheel: bool = True,
                   note: Note | None = None) -> PackageResult:
    """One member's sdist and/or wheel, written into *out*."""
    from orchestrator.build import build_member_sdist, build_wheel_from_sdist
    from orchestrator.publish.archives import repack_sdist, repack_wheel
    from orchestrator.publish.checks import read_core_metadata

    ws = session.workspace
    target = session.host_target()
    env = {"SOURCE_DATE_EPOCH": str(epoch)}
    with tempfile.TemporaryDirectory(prefix="orchestrator-release-") as tmp:
        source = Path(tmp) / "src" / member.path.name
        copy_sources(member.path, source)
        text = (member.path / "pyproject.toml").read_text("utf-8")
        known = _versions_for(member, versions)
        rewritten, rewrites = rewrite_pyproject(text, member, known,
                                                ws.publish.workspace_constraint)
        (source / "pyproject.toml").write_text(rewritten, "utf-8")
        if note is not None:
            for change in rewrites:
                note(f"{member.name}: {change.key}: {change.before!r} -> "
                     f"{change.after or '(dropped)'!r}")
            note(f"{member.name}: building the sdist")
        built_sdist = build_member_sdist(session.member_builder, source, Path(tmp) / "sdist",
                                         target, env)
        repack_sdist(built_sdist, epoch)
        files: list[tuple[ArtifactKind, Path]] = [("sdist", built_sdist)] if sdist else []
        if wheel:
            if note is not None:
                note(f"{member.name}: building the wheel from the sdist")
            built_wheel = build_wheel_from_sdist(session.member_builder, built_sdist,
                                                 Path(tmp) / "wheel", target, env)
            repack_wheel(built_wheel, epoch)
            files.append(("wheel", built_wheel))
        version = _built_version(read_core_metadata(built_sdist), member)
        artifacts = tuple(_deliver(member.name, kind, path, out) for kind, path in files)
    return PackageResult(member.name, version, artifacts, rewrites, epoch)


def _versions_for(member: Member, versions: dict[str, str | None]) -> dict[str, str]:
    """The versions of the members *member* names; a member without one is an error."""
    from orchestrator.graph import requirement_name

    sections = [member.dependencies, *member.optional.values(), *member.groups.values()]
    for req in (r for reqs in sections for r in reqs):
        name = requirement_name(req)
        if name in versions and name != member.name and versions[name] is None:
            raise PublishError(
                f"{member.name} depends on workspace member {name}, whose version is not "
                "known before it is built (a dynamic version)",
                hint=f"package {name} in the same run (name both members), so its built "
                "version gives the range", member=member.name, package=name)
    return {name: version for name, version in versions.items() if version is not None}


def _built_version(metadata: bytes | None, member: Member) -> str:
    from orchestrator.models import CoreMetadata

    meta = CoreMetadata.parse(metadata) if metadata is not None else None
    if meta is None:
        raise PublishError(f"{member.name}: the sdist its backend built has no PKG-INFO with "
                           "a Name and Version", hint="fix the member's build configuration",
                           member=member.name)
    return meta.version


def _deliver(member: str, kind: ArtifactKind, built: Path, out: Path) -> Artifact:
    data = built.read_bytes()
    path = out / built.name
    write_bytes(path, data)
    return Artifact(member, kind, path, len(data), hashlib.sha256(data).hexdigest())


def copy_sources(src: Path, dest: Path) -> None:
    """Copy a member's directory without environments, caches, build output or its lock."""
    from orchestrator.build import SKIP_DIRS
    from orchestrator.models import LOCK_FILENAME

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in SKIP_DIRS or n.endswith((".egg-info", ".pyc"))}
        if Path(directory) == src and LOCK_FILENAME in names:
            skipped.add(LOCK_FILENAME)  # names workspace paths; a release pins by range
        return skipped

    shutil.copytree(src, dest, ignore=ignore, symlinks=True)
