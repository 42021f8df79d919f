"""What the resolver knows about projects: releases grouped from index files.

``PackageFinder`` is the resolver's only view of the indexes (the index client
implements it). ``Catalog`` wraps one finder for a whole lock run -- every
member and every target share one grouping of each project's file list and
one metadata read per file -- and is safe to use from several threads.

Grouping is lazy where it matters: a big project lists tens of thousands of
files (pydantic-core about 15,000 wheels, ruff 7,000) and a lock looks at one
or two of its releases, so a release's files are read and their names parsed
only when the resolver first asks for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from orchestrator.errors import PackageIndexError
from orchestrator.index import group_by_version
from orchestrator.models import CoreMetadata, DistFile


class PackageFinder(Protocol):
    """Where releases and their metadata come from (implemented by ``IndexClient``)."""

    def files(self, name: str) -> Sequence[DistFile]:
        """Every file of every release of *name* (normalized), on the index that owns it.

        Raises ``PackageIndexError`` when no index has the project. The answer may
        also be ``GroupedFiles``, which lets the catalog skip unread releases.
        """
        ...

    def metadata(self, file: DistFile) -> CoreMetadata:
        """Core metadata of *file* (a wheel or an sdist)."""
        ...

    def prefetch_metadata(self, files: Sequence[DistFile]) -> None:
        """Hint: start fetching these files' metadata in the background."""
        ...


@runtime_checkable
class GroupedFiles(Protocol):
    """A file listing that knows which files share a version (``IndexClient``'s do).

    ``version_texts`` names each release once, newest first, by the version
    as its filenames spell it (the part ``parse_wheel_filename`` and
    ``parse_sdist_filename`` read; "1.0" and "1.0.0" are one release), and
    leaves out files whose names carry no valid version.
    """

    def version_texts(self) -> Iterable[str]: ...

    def files_of(self, version_text: str) -> Sequence[DistFile]: ...


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    """One file of a release with its parsed wheel tags (empty for an sdist)."""

    file: DistFile
    tags: frozenset[Tag]

    @property
    def is_wheel(self) -> bool:
        return bool(self.tags)


class Release:
    """All files the index lists for one version of a project.

    Not a dataclass: ``version`` is parsed and ``files`` read on first use
    (see the module docstring); a project's releases come newest first from
    its listing, and the resolver rarely looks past the first few. Two
    threads may both fill a field; they compute equal values.
    """

    __slots__ = ("_files", "_listing", "_text", "_version")

    def __init__(self, text: str, listing: GroupedFiles) -> None:
        self._text = text
        self._listing = listing  # where files_of(text) reads this release's files
        self._version: Version | None = None
        self._files: tuple[ReleaseFile, ...] | None = None

    @property
    def version(self) -> Version:
        version = self._version
        if version is None:
            try:
                version = self._version = Version(self._text)
            except InvalidVersion:  # a listing promises valid versions; a damaged cache breaks it
                raise PackageIndexError(
                    f"a cached index listing names the invalid version {self._text!r}",
                    hint="delete the http-v1 directory in the orchestrator cache and retry",
                ) from None
        return version

    @property
    def files(self) -> tuple[ReleaseFile, ...]:
        """The release's files whose names parse to this version, in index order."""
        files = self._files
        if files is None:
            files = self._files = _release_files(self.version,
                                                 self._listing.files_of(self._text))
        return files

    def __repr__(self) -> str:
        return f"Release({self._text})"


class Catalog:
    """Caches project listings and metadata over a finder for one lock run."""

    def __init__(self, finder: PackageFinder) -> None:
        self.finder = finder
        # Plain dicts shared by the resolver threads: each entry is computed
        # from immutable inputs, so a race only repeats work, and setdefault
        # keeps the first answer.
        self._releases: dict[str, tuple[Release, ...] | PackageIndexError] = {}
        self._metadata: dict[str, CoreMetadata] = {}

    def releases(self, name: str) -> tuple[Release, ...]:
        """Releases of *name*, newest first. Raises ``PackageIndexError`` like the finder."""
        cached = self._releases.get(name)
        if cached is None:
            try:
                found: tuple[Release, ...] | PackageIndexError = group_releases(
                    self.finder.files(name)
                )
            except PackageIndexError as error:
                found = error
            cached = self._releases.setdefault(name, found)
        if isinstance(cached, PackageIndexError):
            raise cached
        return cached

    def metadata(self, file: DistFile) -> CoreMetadata:
        key = file.url
        cached = self._metadata.get(key)
        if cached is None:
            cached = self._metadata.setdefault(key, self.finder.metadata(file))
        return cached

    def prefetch(self, files: Sequence[DistFile]) -> None:
        """Ask the finder to fetch the metadata of those *files* not read yet."""
        wanted = [f for f in files if f.url not in self._metadata]
        if wanted:
            self.finder.prefetch_metadata(wanted)


def group_releases(files: Sequence[DistFile]) -> tuple[Release, ...]:
    """Group files by version, newest first; unparsable names are skipped, as pip does."""
    listing = files if isinstance(files, GroupedFiles) else _ListedFiles(files)
    return tuple(Release(text, listing) for text in listing.version_texts())


class _ListedFiles:
    """``GroupedFiles`` over a plain sequence (finders that do not group)."""

    def __init__(self, files: Iterable[DistFile]) -> None:
        self._groups = group_by_version(files, lambda f: f.filename)

    def version_texts(self) -> Iterable[str]:
        return [text for text in self._groups if text]

    def files_of(self, version_text: str) -> Sequence[DistFile]:
        return self._groups.get(version_text, ())


def _release_files(version: Version, files: Iterable[DistFile]) -> tuple[ReleaseFile, ...]:
    found = []
    for file in files:
        parsed = _parse_filename(file)
        if parsed is not None and parsed[0] == version:
            found.append(ReleaseFile(file, parsed[1]))
    return tuple(found)


def _parse_filename(file: DistFile) -> tuple[Version, frozenset[Tag]] | None:
    try:
        if file.is_wheel:
            _, version, _, tags = _parse_wheel_filename(file.filename)
            return version, tags
        _, version = parse_sdist_filename(file.filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return version, frozenset()


# Filenames repeat across the targets and members of a run; parsing a wheel's
# tags is the costly part, so remember the parses of the releases read.
_parse_wheel_filename = lru_cache(maxsize=16384)(parse_wheel_filename)
