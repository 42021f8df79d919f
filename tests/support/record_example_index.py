"""Record tests/fixtures/example_index/ from the public index (needs the network).

Usage, from the repository root::

    .venv/bin/python -m tests.support.record_example_index

It re-locks a copy of the example workspace (its committed locks kept, so the
pins hold) through ``IndexClient`` while noting which projects the resolver
asks for, checks that the locks come out byte-for-byte as committed, then
writes one fixture file per project: the project's PEP 691 page from pypi.org
cut down to the locked release and the two final releases before it (only
files that fit a workspace target), and those releases' core metadata. Re-run
it after re-locking the example workspace; see tests/support/recorded_index.py
for the format.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from orchestrator.index import IndexClient
from orchestrator.index.transport import make_http_client
from orchestrator.lock import lock_members, pins, read_lock
from orchestrator.models import CoreMetadata, DistFile, Target
from orchestrator.resolver.environment import TargetEnvironment
from orchestrator.workspace import load_workspace
from tests.support.recorded_index import (
    FIXTURE,
    JSON_TYPE,
    SIMPLE,
    RecordedProject,
    copy_example_workspace,
    example_locks,
    metadata_sha256,
)

if TYPE_CHECKING:
    import httpx

OLDER_RELEASES = 2


class RecordingFinder:
    """A PackageFinder over an IndexClient that notes every project asked for."""

    def __init__(self, client: IndexClient) -> None:
        self.client = client
        self.projects: set[str] = set()

    def files(self, name: str) -> Sequence[DistFile]:
        self.projects.add(name)
        return self.client.files(name)

    def metadata(self, file: DistFile) -> CoreMetadata:
        return self.client.metadata(file)

    def prefetch_metadata(self, files: Sequence[DistFile]) -> None:
        self.client.prefetch_metadata(files)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_example_workspace(Path(tmp) / "ws", locks=True)
        workspace = load_workspace(root)
        with IndexClient(workspace.indexes, Path(tmp) / "cache") as client:
            finder = RecordingFinder(client)
            lock_members(workspace, list(workspace.members), finder)
            if example_locks(root) != example_locks():
                print("the re-locked example workspace differs from the committed locks; "
                      "re-lock it (`orchestrator lock`) and commit first", file=sys.stderr)
                return 1
            locked: dict[str, str] = {}
            for member in workspace.members:
                locked.update(pins(read_lock(member.lockfile)))
            FIXTURE.mkdir(parents=True, exist_ok=True)
            for old in FIXTURE.glob("*.json"):
                old.unlink()
            with make_http_client(1) as http:
                for name in sorted(finder.projects):
                    page = _page(http, name)
                    project = record(client, page, locked.get(name), workspace.targets)
                    project.write(FIXTURE / f"{name}.json")
                    print(f"{name}: {', '.join(project.metadata)}")
    return 0


def _page(http: httpx.Client, name: str) -> dict[str, Any]:
    """The project's PEP 691 page as the index sends it."""
    response = http.get(f"{SIMPLE}/{name}/", headers={"Accept": JSON_TYPE})
    response.raise_for_status()
    page: dict[str, Any] = json.loads(response.content)  # JSON, checked by the code using it
    return page


def record(client: IndexClient, page: dict[str, Any], locked: str | None,
           targets: Sequence[Target]) -> RecordedProject:
    """*page* cut down to the *locked* release and the ones before it, with their metadata."""
    entries = [e for e in page["files"] if _fits(str(e["filename"]), targets)]
    releases = _releases(entries, locked)
    kept = [e for e in entries if _version(str(e["filename"])) in releases]
    metadata: dict[str, str] = {}
    for version in releases:
        wheel = next(e for e in kept if e["filename"].endswith(".whl")
                     and _version(e["filename"]) == version)
        metadata[str(version)] = _metadata_text(client.metadata(_dist_file(wheel)))
    for entry in kept:
        if entry["filename"].endswith(".whl"):
            text = metadata[str(_version(entry["filename"]))]
            entry["core-metadata"] = {"sha256": metadata_sha256(text)}
    trimmed = {"meta": {"api-version": page["meta"]["api-version"]}, "name": page["name"],
               "versions": [v for v in page["versions"] if _parse(v) in releases],
               "files": kept}
    return RecordedProject(trimmed, metadata)


def _releases(entries: Sequence[Mapping[str, object]], locked: str | None) -> list[Version]:
    """The locked release (else the newest) and the final releases before it, with a wheel."""
    with_wheels = sorted({v for e in entries if str(e["filename"]).endswith(".whl")
                          and (v := _version(str(e["filename"]))) is not None})
    top = Version(locked) if locked else with_wheels[-1]
    older = [v for v in with_wheels if v < top and not v.is_prerelease][-OLDER_RELEASES:]
    return [*older, top]


def _fits(filename: str, targets: Sequence[Target]) -> bool:
    if not filename.endswith(".whl"):
        return filename.endswith((".tar.gz", ".zip"))
    try:
        tags = parse_wheel_filename(filename)[3]
    except ValueError:  # a name no installer accepts, like pydantic-0.18-py36+-none-any.whl
        return False
    return any(TargetEnvironment.for_target(t).best_rank(tags) is not None for t in targets)


def _version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except ValueError:
        return None


def _parse(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


def _dist_file(entry: Mapping[str, object]) -> DistFile:
    hashes = entry["hashes"]
    assert isinstance(hashes, Mapping)
    return DistFile(filename=str(entry["filename"]), url=str(entry["url"]), index="pypi",
                    sha256=str(hashes["sha256"]))


def _metadata_text(meta: CoreMetadata) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {meta.name}", f"Version: {meta.version}"]
    if meta.requires_python:
        lines.append(f"Requires-Python: {meta.requires_python}")
    lines += [f"Provides-Extra: {extra}" for extra in meta.provides_extra]
    lines += [f"Requires-Dist: {req}" for req in meta.requires_dist]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
