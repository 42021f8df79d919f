"""`publish`: package the chosen members, check every file, then upload them in order.

Every file is built and checked before the first upload, so a member whose
metadata would be refused stops the release before any of it reaches the
repository. Uploads go in dependency order (a library before the members
that need it), each member's sdist before its wheel, so an installer never
sees a member whose dependency is not there yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from orchestrator.errors import PublishError
from orchestrator.models import Member, RepositorySpec, Workspace
from orchestrator.publish.checks import CheckResult
from orchestrator.publish.package import Artifact, Note, PackageResult

if TYPE_CHECKING:
    from orchestrator.session import Session

FileStatus = Literal["uploaded", "skipped", "checked"]


@dataclass(frozen=True, slots=True)
class PublishedFile:
    """One file of a release and what became of it."""

    artifact: Artifact
    status: FileStatus  # "checked": --dry-run, nothing was uploaded
    check: CheckResult

    def as_dict(self) -> dict[str, object]:
        return {**self.artifact.as_dict(), "status": self.status, "check": self.check.as_dict()}


@dataclass(frozen=True, slots=True)
class PublishReport:
    """A whole publish run: the repository (None on a dry run without one) and the files."""

    repository: str | None
    packages: tuple[PackageResult, ...]
    files: tuple[PublishedFile, ...]

    def as_dict(self) -> dict[str, object]:
        return {"repository": self.repository,
                "packages": [p.as_dict() for p in self.packages],
                "files": [f.as_dict() for f in self.files]}


def repository_for(workspace: Workspace, name: str | None) -> RepositorySpec:
    """The repository called *name* (the first configured one for None)."""
    found = workspace.publish.repository(name)
    if found is not None:
        return found
    known = ", ".join(r.name for r in workspace.publish.repositories)
    if name is None or not known:
        raise PublishError(
            "workspace.yaml configures no repository to publish to",
            hint="add `publish: {repositories: [{name: pypi, upload-url: "
            "https://upload.pypi.org/legacy/}]}` to workspace.yaml",
            file=workspace.manifest, key="publish.repositories")
    raise PublishError(
        f"no repository named {name!r} in workspace.yaml (known: {known})",
        hint="pass one of those to --repository, or add it under publish.repositories",
        file=workspace.manifest, key="publish.repositories", index=name)


def check_files(workspace: Workspace, packages: Sequence[PackageResult]) -> list[CheckResult]:
    """Check every built file; a PublishError listing the problems if any fails."""
    from orchestrator.publish.checks import check_file

    names = {m.name for m in workspace.members}
    results = [check_file(a.path, names) for p in packages for a in p.artifacts]
    failed = [r for r in results if not r.ok]
    if failed:
        lines = "\n".join(f"  {r.file}: {problem}" for r in failed for problem in r.errors)
        first = failed[0]
        raise PublishError(
            f"{len(failed)} file(s) would be refused by a package index:\n{lines}",
            hint="fix the members' metadata (pyproject.toml [project]) and run again",
            file=Path(first.file), package=first.file.split("-", 1)[0])
    return results


def publish_members(session: Session, members: Sequence[Member], out: Path, *,
                    repository: str | None = None, dry_run: bool = False,
                    skip_existing: bool = False, note: Note | None = None) -> PublishReport:
    """Package *members* into *out*, check the files, and upload them unless *dry_run*."""
    from orchestrator.publish.package import package_members

    ws = session.workspace
    repo = repository_for(ws, repository) if repository is not None or not dry_run else (
        ws.publish.repository(None))
    packages = package_members(session, members, out, note=note)
    checks = check_files(ws, packages)
    artifacts = [a for p in packages for a in p.artifacts]
    if dry_run or repo is None:
        files = [PublishedFile(a, "checked", c) for a, c in zip(artifacts, checks, strict=True)]
        return PublishReport(repo.name if repo else None, tuple(packages), tuple(files))
    return PublishReport(repo.name, tuple(packages),
                         tuple(_upload_all(repo, artifacts, checks, skip_existing, note)))


def _upload_all(repo: RepositorySpec, artifacts: Sequence[Artifact],
                checks: Sequence[CheckResult], skip_existing: bool,
                note: Note | None) -> list[PublishedFile]:
    from orchestrator.publish.credentials import find_credentials
    from orchestrator.publish.upload import Uploader

    uploader = Uploader(repo, find_credentials(repo))
    files: list[PublishedFile] = []
    try:
        for artifact, check in zip(artifacts, checks, strict=True):
            if note is not None:
                note(f"{artifact.member}: uploading {artifact.path.name} to {repo.name}")
            status = uploader.upload(artifact.path, skip_existing=skip_existing)
            files.append(PublishedFile(artifact, status, check))
    finally:
        uploader.close()
    return files
