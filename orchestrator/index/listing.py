"""A project's files grouped by version, and the pre-parsed listing cache format.

``IndexClient`` keeps each page's files beside the page in the page cache
(``LISTING_KIND``), so that a warm run never parses a page body again.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar, overload

from packaging.version import InvalidVersion, Version

from orchestrator.errors import PackageIndexError
from orchestrator.models import DistFile

T = TypeVar("T")


# A DistFile without its index, in a form marshal stores: filename, url,
# sha256, size, requires_python, yanked, upload_time, metadata_sha256,
# has_metadata.
Row = tuple[str, str, str | None, int | None, str | None, str | None, str | None, str | None,
             bool]
# What IndexClient derives from a page and keeps beside it in the page cache;
# bump the suffix when the encoding changes. marshal, because it loads plain
# tuples of strings several times faster than json or pickle; it never runs
# code, the cache is as trusted as __pycache__ (which is marshal too), and
# every entry is size-, CRC- and shape-checked before use.
LISTING_KIND = "files-v3"
_MARSHAL_VERSION = 4  # fixed, so every Python 3 that shares the cache reads it


def dist_file(row: Row, index: str) -> DistFile:
    return DistFile(row[0], row[1], index, *row[2:])


def version_text(filename: str) -> str:
    """The version part of a wheel or sdist filename as written, "" when there is none.

    Splits exactly where ``packaging.utils.parse_wheel_filename`` and
    ``parse_sdist_filename`` do, without validating anything.
    """
    if filename.endswith(".whl"):
        stem = filename[:-4]
        return stem.split("-", 2)[1] if stem.count("-") in (4, 5) else ""
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            return filename[: -len(suffix)].rpartition("-")[2]
    return ""


def group_by_version(items: Iterable[T], filename: Callable[[T], str]) -> dict[str, list[T]]:
    """*items* grouped by the version their filenames carry, newest first.

    A group is keyed by the version as its first file spells it ("1.0" and
    "1.0.0" are one group); items whose names carry no valid version come
    last, under "".
    """
    by_text: dict[str, list[T]] = {}
    for item in items:
        by_text.setdefault(version_text(filename(item)), []).append(item)
    by_version: dict[Version, tuple[str, list[T]]] = {}
    invalid: list[T] = []
    for text, group in by_text.items():
        try:
            version = Version(text)
        except InvalidVersion:
            invalid.extend(group)
            continue
        by_version.setdefault(version, (text, []))[1].extend(group)
    newest_first = sorted(by_version.items(), key=lambda item: item[0], reverse=True)
    groups = {text: group for _version, (text, group) in newest_first}
    if invalid:
        groups[""] = invalid
    return groups


class ProjectFiles(Sequence[DistFile]):
    """A project's files grouped by version, newest first; DistFiles built on use.

    Big projects list tens of thousands of files (pydantic-core about 15,000)
    and a lock reads one or two releases of each, so the resolver asks for
    one group at a time (``version_texts``/``files_of``, the resolver's
    ``GroupedFiles``). From the page cache, each group stays marshal-encoded
    until it is read. As a plain sequence, it lists every file, group by group.
    """

    __slots__ = ("_built", "_groups", "_index")

    def __init__(self, index: str, groups: Mapping[str, Sequence[Row] | bytes]) -> None:
        self._index = index
        self._groups = groups
        # Filled from several resolver threads; a race builds the same tuple twice.
        self._built: dict[str, tuple[DistFile, ...]] = {}

    @classmethod
    def from_rows(cls, index: str, rows: Iterable[Row]) -> ProjectFiles:
        # Sorted here, once per page body, so that a warm run parses only the
        # versions the resolver looks at.
        return cls(index, group_by_version(rows, lambda row: row[0]))

    def version_texts(self) -> Iterable[str]:
        """Each release's version text, newest first (see ``group_by_version``)."""
        return [text for text in self._groups if text]

    def files_of(self, version_text: str) -> tuple[DistFile, ...]:
        built = self._built.get(version_text)
        if built is None:
            rows = self._groups.get(version_text, ())
            if isinstance(rows, bytes):
                rows = _decode_rows(rows)
            built = self._built[version_text] = tuple(dist_file(r, self._index) for r in rows)
        return built

    def encoded_groups(self) -> tuple[tuple[str, bytes], ...]:
        """(version text, marshal data of its rows) per group, for the page cache.

        Each group is encoded on its own, so that loading can stay lazy.
        """
        return tuple(
            (text, r if isinstance(r, bytes) else marshal.dumps(tuple(r), _MARSHAL_VERSION))
            for text, r in self._groups.items()
        )

    @classmethod
    def from_encoded(cls, index: str, groups: object) -> ProjectFiles | None:
        """Files from ``encoded_groups()``'s output, or None when *groups* is not in that shape."""
        if type(groups) is not tuple or not all(
            type(g) is tuple and len(g) == 2 and type(g[0]) is str and type(g[1]) is bytes
            for g in groups
        ):
            return None
        return cls(index, dict(groups))

    def _every(self) -> tuple[DistFile, ...]:
        return tuple(f for text in self._groups for f in self.files_of(text))

    def __len__(self) -> int:
        return len(self._every())

    @overload
    def __getitem__(self, position: int) -> DistFile: ...
    @overload
    def __getitem__(self, position: slice) -> tuple[DistFile, ...]: ...
    def __getitem__(self, position: int | slice) -> DistFile | tuple[DistFile, ...]:
        return self._every()[position]

    def __iter__(self) -> Iterator[DistFile]:
        for text in self._groups:
            yield from self.files_of(text)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return self._every() == tuple(other)

    __hash__ = None  # type: ignore[assignment]  # equal to tuples, so not hashable

    def __repr__(self) -> str:
        return f"ProjectFiles({list(self)!r})"


def _decode_rows(data: bytes) -> tuple[Row, ...]:
    """One group's rows from a cached listing.

    The listing's CRC-32 was checked when it was loaded, so a shape error here
    means a bug or a tampered cache; the error says what to delete.
    """
    try:
        rows = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        rows = None
    if type(rows) is not tuple or not all(type(r) is tuple and len(r) == 9 for r in rows):
        raise PackageIndexError(
            "a cached index listing is damaged",
            hint="delete the http-v1 directory in the orchestrator cache and retry",
        )
    return rows


def encode_listing(files: ProjectFiles, versions: tuple[str, ...]) -> bytes:
    return marshal.dumps((versions, files.encoded_groups()), _MARSHAL_VERSION)


def decode_listing(data: bytes, index: str) -> tuple[ProjectFiles, tuple[str, ...]] | None:
    """``encode_listing``'s input again, or None when *data* is not its output."""
    try:
        versions, groups = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None
    if type(versions) is not tuple or not all(type(v) is str for v in versions):
        return None
    files = ProjectFiles.from_encoded(index, groups)
    return None if files is None else (files, versions)
