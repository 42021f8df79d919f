"""A project's files grouped by version, and the pre-parsed listing cache format.

``IndexClient`` keeps each page's files beside the page in the page cache
(``LISTING_KIND``), so that a warm run never parses a page body again. The
listing is stored as parts (``PageCache.store_parts``): first the versions and
the group names, then one part per group, so that a warm run reads (and
CRC-checks) only the groups the resolver looks at: one or two of pydantic-core's
few hundred, not all of its 5 MB.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar, overload

from packaging.version import InvalidVersion, Version

from orchestrator.errors import PackageIndexError
from orchestrator.models import DistFile

if TYPE_CHECKING:
    from orchestrator.httpcache import DerivedParts

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
LISTING_KIND = "files-v4"
OLD_LISTING_KINDS = ("files-v3",)  # removed beside a page when its listing is stored anew
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
    ``GroupedFiles``). From the page cache, each group stays on disk until it
    is read (``from_parts``); one that fails its check there is a miss:
    *recover* (the page parsed again) supplies every group instead. As a
    plain sequence, it lists every file, group by group.
    """

    __slots__ = ("_built", "_groups", "_index", "_parts", "_recover")

    def __init__(self, index: str, groups: Mapping[str, Sequence[Row] | bytes | int],
                 parts: DerivedParts | None = None,
                 recover: Callable[[], ProjectFiles] | None = None) -> None:
        self._index = index
        self._groups = groups  # an int: that part of *parts*
        self._parts = parts
        self._recover = recover
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
            rows = self._rows(version_text)
            built = self._built[version_text] = tuple(dist_file(r, self._index) for r in rows)
        return built

    def _rows(self, version_text: str) -> Sequence[Row]:
        rows = self._groups.get(version_text, ())
        if isinstance(rows, int):
            data = self._parts.part(rows) if self._parts is not None else None
            decoded = None if data is None else _rows_or_none(data)
            if decoded is not None:
                return decoded
            return self._recovered()._rows(version_text)
        if isinstance(rows, bytes):
            return _decode_rows(rows)
        return rows

    def _recovered(self) -> ProjectFiles:
        """Every group from *recover*, once a part read from the cache failed its check."""
        # Threads that raced here each recover (the same groups); none sees a half swap.
        if self._recover is None:
            raise _damaged()
        self._groups = self._recover()._groups  # rows in memory, no part numbers
        return self

    def encoded_groups(self) -> tuple[tuple[str, bytes], ...]:
        """(version text, marshal data of its rows) per group, for the page cache.

        Each group is encoded on its own, so that loading can stay lazy.
        """
        return tuple(
            (text, marshal.dumps(tuple(self._rows(text)), _MARSHAL_VERSION)
             if not isinstance(r, bytes) else r)
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


def _rows_or_none(data: bytes) -> tuple[Row, ...] | None:
    try:
        rows = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None
    if type(rows) is not tuple or not all(type(r) is tuple and len(r) == 9 for r in rows):
        return None
    return rows


def _damaged() -> PackageIndexError:
    return PackageIndexError(
        "a cached index listing is damaged",
        hint="delete the http-v1 directory in the orchestrator cache and retry",
    )


def _decode_rows(data: bytes) -> tuple[Row, ...]:
    """One group's rows from an in-memory listing (``from_encoded``).

    A shape error here means a bug or a tampered cache; the error says what to delete.
    """
    rows = _rows_or_none(data)
    if rows is None:
        raise _damaged()
    return rows


def encode_listing(files: ProjectFiles, versions: tuple[str, ...]) -> tuple[bytes, ...]:
    """The parts ``PageCache.store_parts`` keeps: (versions, group names), then each group."""
    groups = files.encoded_groups()
    head = marshal.dumps((versions, tuple(text for text, _data in groups)), _MARSHAL_VERSION)
    return (head, *(data for _text, data in groups))


def decode_listing(
    parts: DerivedParts, index: str, recover: Callable[[], ProjectFiles] | None = None
) -> tuple[ProjectFiles, tuple[str, ...]] | None:
    """``encode_listing``'s input again, its groups read on use; None when *parts* is
    not its output. *recover* stands in for a group that turns out damaged."""
    data = parts.part(0)
    if data is None:
        return None
    try:
        versions, texts = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None
    if (type(versions) is not tuple or not all(type(v) is str for v in versions)
            or type(texts) is not tuple or not all(type(t) is str for t in texts)
            or len(texts) != len(parts) - 1):
        return None
    groups = {text: number for number, text in enumerate(texts, start=1)}
    if len(groups) != len(texts):
        return None
    return ProjectFiles(index, groups, parts, recover), versions
