"""An in-memory PackageFinder for resolver tests, and the resolvelib corpus loader.

A project table reads like the index it stands for::

    MemoryFinder({
        "fastapi": {
            "0.110.0": {"dependencies": ["pydantic>=2"], "requires_python": ">=3.8"},
        },
        "numpy": {
            "2.0.0": {"wheels": ["cp311-cp311-manylinux_2_17_x86_64"], "sdist": False},
        },
    })

Per version: ``dependencies`` (PEP 508 strings, default none), ``requires_python``
(default none), ``wheels`` (tags; default ``["py3-none-any"]``), ``sdist``
(default False), ``yanked`` (True or a reason; default not yanked),
``index_requires_python`` (False: only the metadata carries Requires-Python,
as on an index that does not serve ``data-requires-python``). Extras are
read from the ``extra == '...'`` markers of the dependencies.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from orchestrator.errors import PackageIndexError
from orchestrator.models import CoreMetadata, DistFile
from orchestrator.names import normalize

VersionSpec = Mapping[str, Any]
ProjectTable = Mapping[str, Mapping[str, VersionSpec]]

_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


class MemoryFinder:
    """Serves a project table as index files; records what the resolver asked for."""

    def __init__(self, projects: ProjectTable, index: str = "mem") -> None:
        self.index = index
        self._projects = {normalize(name): versions for name, versions in projects.items()}
        self._metadata: dict[str, CoreMetadata] = {}
        self.files_calls: list[str] = []
        self.metadata_calls: list[str] = []
        self.prefetched: list[str] = []

    def files(self, name: str) -> Sequence[DistFile]:
        self.files_calls.append(name)
        versions = self._projects.get(name)
        if versions is None:
            raise PackageIndexError(f"{name} was not found on index {self.index}")
        found: list[DistFile] = []
        for version, spec in versions.items():
            found.extend(self._files_of(name, version, spec))
        return found

    def metadata(self, file: DistFile) -> CoreMetadata:
        self.metadata_calls.append(file.filename)
        return self._metadata[file.url]

    def prefetch_metadata(self, files: Sequence[DistFile]) -> None:
        self.prefetched.extend(file.filename for file in files)

    def _files_of(self, name: str, version: str, spec: VersionSpec) -> list[DistFile]:
        dependencies = tuple(spec.get("dependencies", ()))
        metadata = CoreMetadata(
            name=name,
            version=version,
            requires_dist=dependencies,
            requires_python=spec.get("requires_python"),
            provides_extra=_extras(dependencies),
        )
        yanked = spec.get("yanked")
        stem = f"{name.replace('-', '_')}-{version}"
        filenames = [f"{stem}-{tag}.whl" for tag in spec.get("wheels", ["py3-none-any"])]
        if spec.get("sdist", False):
            filenames.append(f"{stem}.tar.gz")
        files = []
        for filename in filenames:
            file = DistFile(
                filename=filename,
                url=f"https://{self.index}.invalid/files/{filename}",
                index=self.index,
                sha256=hashlib.sha256(filename.encode()).hexdigest(),
                requires_python=(
                    metadata.requires_python if spec.get("index_requires_python", True) else None
                ),
                yanked=("" if yanked is True else yanked) if yanked else None,
            )
            self._metadata[file.url] = metadata
            files.append(file)
        return files


def _extras(dependencies: Sequence[str]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for text in dependencies:
        for extra in _EXTRA.findall(text):
            found[normalize(extra)] = None
    return tuple(found)


def load_corpus_index(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Read a resolvelib-cases index as a project table for ``MemoryFinder``.

    Versions that are not PEP 440 are dropped (no index could serve them),
    and old-style ``name (spec)`` strings become PEP 508 ``name spec``.
    Requirement strings that do not parse are kept as they are: they are real
    metadata, and the resolver must cope with them.
    """
    data = json.loads(path.read_text())
    projects: dict[str, dict[str, dict[str, Any]]] = {}
    for name, versions in data.items():
        if not isinstance(versions, dict):
            continue  # stray flags, not projects
        table = projects.setdefault(normalize(name), {})
        for version, info in versions.items():
            try:
                Version(version)
            except InvalidVersion:
                continue
            table[version] = {"dependencies": [to_pep508(d) for d in info["dependencies"]]}
    return projects


_OLD_STYLE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*\(([^)]*)\)\s*(;.*)?$")


def to_pep508(text: str) -> str:
    """``python-dateutil (>=2.7.3) ; extra == 'x'`` -> ``python-dateutil>=2.7.3; extra == 'x'``."""
    match = _OLD_STYLE.match(text)
    if match is None:
        return text.strip()
    name, extras, spec, marker = match.groups()
    converted = f"{name}{extras or ''}{spec.strip()}"
    if marker:
        converted += f"; {marker[1:].strip()}"
    try:
        Requirement(converted)
    except InvalidRequirement:
        return text.strip()
    return converted
