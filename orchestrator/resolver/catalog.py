"""What the resolver knows about projects: releases grouped from index files.

``PackageFinder`` is the resolver's only view of the indexes (the index client
implements it). ``Catalog`` wraps one finder for a whole ``resolve()`` call, so
that every target's provider shares one parse of each project's file list and
one metadata read per file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from orchestrator.errors import IndexError_
from orchestrator.models import CoreMetadata, DistFile


class PackageFinder(Protocol):
    """Where releases and their metadata come from (implemented by ``IndexClient``)."""

    def files(self, name: str) -> Sequence[DistFile]:
        """Every file of every release of *name* (normalized), on the index that owns it.

        Raises ``IndexError_`` when no index has the project.
        """
        ...

    def metadata(self, file: DistFile) -> CoreMetadata:
        """Core metadata of *file* (a wheel or an sdist)."""
        ...

    def prefetch_metadata(self, files: Sequence[DistFile]) -> None:
        """Hint: start fetching these files' metadata in the background."""
        ...


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    """One file of a release with its parsed wheel tags (empty for an sdist)."""

    file: DistFile
    tags: frozenset[Tag]

    @property
    def is_wheel(self) -> bool:
        return bool(self.tags)


@dataclass(frozen=True, slots=True)
class Release:
    """All files the index lists for one version of a project."""

    version: Version
    files: tuple[ReleaseFile, ...]


class Catalog:
    """Caches project listings and metadata over a finder for one resolution."""

    def __init__(self, finder: PackageFinder) -> None:
        self.finder = finder
        self._releases: dict[str, tuple[Release, ...] | IndexError_] = {}
        self._metadata: dict[str, CoreMetadata] = {}

    def releases(self, name: str) -> tuple[Release, ...]:
        """Releases of *name*, newest first. Raises ``IndexError_`` like the finder."""
        cached = self._releases.get(name)
        if cached is None:
            try:
                cached = _group_releases(self.finder.files(name))
            except IndexError_ as error:
                cached = error
            self._releases[name] = cached
        if isinstance(cached, IndexError_):
            raise cached
        return cached

    def metadata(self, file: DistFile) -> CoreMetadata:
        key = file.url
        cached = self._metadata.get(key)
        if cached is None:
            cached = self._metadata[key] = self.finder.metadata(file)
        return cached

    def prefetch(self, files: Sequence[DistFile]) -> None:
        """Ask the finder to fetch the metadata of those *files* not read yet."""
        wanted = [f for f in files if f.url not in self._metadata]
        if wanted:
            self.finder.prefetch_metadata(wanted)


def _group_releases(files: Sequence[DistFile]) -> tuple[Release, ...]:
    """Group files by version; files with unparsable names are skipped, as pip does."""
    grouped: dict[Version, list[ReleaseFile]] = {}
    for file in files:
        parsed = _parse_filename(file)
        if parsed is not None:
            version, tags = parsed
            grouped.setdefault(version, []).append(ReleaseFile(file, tags))
    return tuple(
        Release(version, tuple(grouped[version])) for version in sorted(grouped, reverse=True)
    )


def _parse_filename(file: DistFile) -> tuple[Version, frozenset[Tag]] | None:
    try:
        if file.is_wheel:
            _, version, _, tags = parse_wheel_filename(file.filename)
            return version, tags
        _, version = parse_sdist_filename(file.filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return version, frozenset()
