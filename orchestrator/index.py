"""The Simple Repository API client: project pages, core metadata, downloads.

What it speaks: PEP 691 JSON (preferred through the Accept header) with a
PEP 503 HTML fallback, PEP 592 yanking, PEP 700 fields, PEP 658/714 metadata
files, and -- because the index these machines reach serves no PEP 658 files
-- a wheel's METADATA read through two or three HTTP Range requests (the
zip's tail, then the entry) instead of downloading the wheel.

How it is shaped for the resolver: one thread-safe ``IndexClient`` per run.
``prefetch_projects``/``prefetch_metadata`` start fetches in a thread pool;
``files``/``metadata`` wait for an in-flight fetch instead of repeating it,
and remember every answer for the client's lifetime.  Core metadata is
immutable, so it is cached on disk by the file's sha256 and a second run asks
the network nothing; pages are cached on disk with a TTL (see httpcache.py).

Security: the first index that has a project wins, so a later index can never
shadow it (dependency confusion) unless ``sources`` pins the project to that
index; credentials go only to their index's origin and never into a URL,
message or log.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import marshal
import netrc
import os
import re
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar, overload
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from packaging.utils import InvalidWheelFilename, canonicalize_version, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from orchestrator.atomic import write_bytes
from orchestrator.errors import HashMismatchError, IndexError_
from orchestrator.httpcache import CacheControl, CachedPage, PageCache
from orchestrator.models import CoreMetadata, DistFile, IndexSpec
from orchestrator.names import normalize

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
# PEP 691: prefer JSON, accept either HTML flavour from older servers.
ACCEPT = f"{JSON_TYPE}, {HTML_TYPE};q=0.2, text/html;q=0.01"
METADATA_BUCKET = "metadata-v1"
SDIST_BUCKET = "sdists-v1"

# How much of a wheel's end the first ranged read fetches.  Most wheels keep
# *.dist-info last, so 64 KiB usually holds the central directory *and*
# METADATA, and one request is enough.
TAIL_BYTES = 64 * 1024
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRIES = 3  # attempts after the first
BACKOFF = 0.25  # seconds before the first retry; doubles each time
MAX_RETRY_AFTER = 10.0
CHUNK = 256 * 1024

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProjectPage:
    """A project as one index lists it."""

    name: str  # normalized
    index: str  # IndexSpec.name of the index that answered
    files: Sequence[DistFile]  # a tuple, or ProjectFiles from IndexClient
    versions: tuple[str, ...] = ()  # PEP 700; empty when the index sent HTML


# ---------------------------------------------------------------------------
# Project files, grouped and built lazily

# A DistFile without its index, in a form marshal stores: filename, url,
# sha256, size, requires_python, yanked, upload_time, metadata_sha256,
# has_metadata.
_Row = tuple[str, str, str | None, int | None, str | None, str | None, str | None, str | None,
             bool]
# What IndexClient derives from a page and keeps beside it in the page cache;
# bump the suffix when the encoding changes. marshal, because it loads plain
# tuples of strings several times faster than json or pickle; it never runs
# code, the cache is as trusted as __pycache__ (which is marshal too), and
# every entry is size-, CRC- and shape-checked before use.
LISTING_KIND = "files-v3"
_MARSHAL_VERSION = 4  # fixed, so every Python 3 that shares the cache reads it


def _dist_file(row: _Row, index: str) -> DistFile:
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

    def __init__(self, index: str, groups: Mapping[str, Sequence[_Row] | bytes]) -> None:
        self._index = index
        self._groups = groups
        # Filled from several resolver threads; a race builds the same tuple twice.
        self._built: dict[str, tuple[DistFile, ...]] = {}

    @classmethod
    def from_rows(cls, index: str, rows: Iterable[_Row]) -> ProjectFiles:
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
            built = self._built[version_text] = tuple(_dist_file(r, self._index) for r in rows)
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


def _decode_rows(data: bytes) -> tuple[_Row, ...]:
    """One group's rows from a cached listing.

    The listing's CRC-32 was checked when it was loaded, so a shape error here
    means a bug or a tampered cache; the error says what to delete.
    """
    try:
        rows = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        rows = None
    if type(rows) is not tuple or not all(type(r) is tuple and len(r) == 9 for r in rows):
        raise IndexError_(
            "A cached index listing is damaged.",
            hint="Delete the http-v1 directory in the orchestrator cache and retry.",
        )
    return rows


# ---------------------------------------------------------------------------
# Indexes and credentials


@dataclass(frozen=True, slots=True)
class _Index:
    """An IndexSpec with credentials split off its URL."""

    name: str
    url: str  # no credentials, no trailing slash
    origin: tuple[str, str]  # (scheme, host:port) that may receive `auth`
    auth: tuple[str, str] | None

    def describe(self) -> str:
        return f"'{self.name}' ({self.url})"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, f"{parts.hostname or ''}:{parts.port or default}"


def _strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def env_prefix(index_name: str) -> str:
    """``ORCHESTRATOR_INDEX_<NAME>``: the name upper-cased, non-alphanumerics as ``_``."""
    return "ORCHESTRATOR_INDEX_" + re.sub(r"[^A-Za-z0-9]", "_", index_name).upper()


def _netrc_auth(host: str) -> tuple[str, str] | None:
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        entry = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None  # a missing or broken netrc is not ours to complain about
    if entry is None:
        return None
    login, _account, password = entry
    return login or "", password or ""


def _resolve_index(spec: IndexSpec) -> _Index:
    """Credentials from the environment, then the URL, then ~/.netrc."""
    prefix = env_prefix(spec.name)
    user = os.environ.get(f"{prefix}_USERNAME")
    password = os.environ.get(f"{prefix}_PASSWORD")
    parts = urlsplit(spec.url)
    auth: tuple[str, str] | None
    if user is not None or password is not None:
        auth = (user or "", password or "")
    elif parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    else:
        auth = _netrc_auth(parts.hostname or "")
    url = _strip_credentials(spec.url).rstrip("/")
    return _Index(spec.name, url, _origin(url), auth)


# ---------------------------------------------------------------------------
# Parsing project pages


def _absolute_url(href: str, base: str) -> tuple[str, str | None]:
    """(absolute URL without credentials or fragment, sha256 from a ``#sha256=`` fragment)."""
    # Indexes usually link absolute URLs; skipping urljoin/urlsplit for them
    # makes parsing numpy's 10^4-file page several times faster.
    absolute = href if href.startswith(("https://", "http://")) else urljoin(base, href)
    url, _, fragment = absolute.partition("#")
    parts = url.split("/", 3)
    if len(parts) > 2 and "@" in parts[2]:
        url = _strip_credentials(url)
    algo, _, digest = fragment.partition("=")
    return url, (digest.lower() if algo == "sha256" and digest else None)


def _filename_of(url: str) -> str:
    return unquote(url.split("?", 1)[0].rsplit("/", 1)[-1])


def _metadata_flag(value: object) -> tuple[bool, str | None]:
    """(has_metadata, sha256 or "") from a PEP 691 core-metadata value."""
    if isinstance(value, dict):
        return True, str(value.get("sha256", "")).lower()
    if value is True:
        return True, ""
    return False, None


def parse_json_page(body: bytes, page_url: str, index: str) -> ProjectPage:
    """A PEP 691 project page (with PEP 700 and PEP 714 fields)."""
    name, rows, versions = _json_rows(body, page_url)
    return ProjectPage(normalize(name), index, tuple(_dist_file(r, index) for r in rows), versions)


def _json_rows(body: bytes, page_url: str) -> tuple[str, list[_Row], tuple[str, ...]]:
    """(name, file rows, PEP 700 versions) of a PEP 691 page."""
    data = json.loads(body)
    rows: list[_Row] = []
    for entry in data.get("files", ()):
        url, fragment_sha = _absolute_url(entry["url"], page_url)
        hashes = entry.get("hashes") or {}
        meta = entry.get("core-metadata", entry.get("dist-info-metadata", False))
        has_metadata, metadata_sha = _metadata_flag(meta)
        yanked = entry.get("yanked", False)
        size = entry.get("size")
        rows.append((
            str(entry["filename"]),
            url,
            hashes.get("sha256") or fragment_sha or None,
            size if isinstance(size, int) else None,
            entry.get("requires-python") or None,
            yanked if isinstance(yanked, str) else "" if yanked else None,
            entry.get("upload-time"),
            metadata_sha,
            has_metadata,
        ))
    versions = tuple(str(v) for v in data.get("versions", ()))
    return str(data.get("name", "")), rows, versions


def _parse_links(text: str) -> tuple[list[dict[str, str | None]], str | None]:
    """The attributes of every ``<a>``, and the first ``<base href>``, of an HTML page."""
    # Imported here: most indexes answer in JSON, and start-up time counts.
    from html.parser import HTMLParser

    links: list[dict[str, str | None]] = []
    base: list[str | None] = []

    class LinkParser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                links.append(dict(attrs))
            elif tag == "base" and not base:
                base.append(dict(attrs).get("href"))

    parser = LinkParser(convert_charrefs=True)
    parser.feed(text)
    parser.close()
    return links, (base[0] if base else None)


def _html_metadata_flag(attrs: Mapping[str, str | None]) -> tuple[bool, str | None]:
    for key in ("data-core-metadata", "data-dist-info-metadata"):
        if key in attrs:
            value = (attrs[key] or "").strip()
            if value.lower() == "false":
                return False, None
            algo, _, digest = value.partition("=")
            return True, digest.lower() if algo == "sha256" else ""
    return False, None


def parse_html_page(body: bytes, page_url: str, index: str, name: str) -> ProjectPage:
    """A PEP 503 project page with PEP 592/658/714 ``data-*`` attributes."""
    return ProjectPage(name, index, tuple(_dist_file(r, index) for r in _html_rows(body, page_url)))


def _html_rows(body: bytes, page_url: str) -> list[_Row]:
    links, base = _parse_links(body.decode("utf-8", errors="replace"))
    base_url = urljoin(page_url, base) if base else page_url
    rows: list[_Row] = []
    for attrs in links:
        href = attrs.get("href")
        if not href:
            continue
        url, sha = _absolute_url(href, base_url)
        has_metadata, metadata_sha = _html_metadata_flag(attrs)
        yanked = (attrs.get("data-yanked") or "") if "data-yanked" in attrs else None
        requires_python = attrs.get("data-requires-python") or None
        rows.append((_filename_of(url), url, sha, None, requires_python, yanked, None,
                     metadata_sha, has_metadata))
    return rows


# ---------------------------------------------------------------------------
# Core metadata


def parse_core_metadata(data: bytes, source: str) -> CoreMetadata:
    """The resolver's view of a METADATA/PKG-INFO file; *source* names it in errors."""
    meta = CoreMetadata.parse(data)
    if meta is None:
        raise IndexError_(
            f"The core metadata of {source} has no Name or Version field.",
            hint="The distribution is malformed; pin another version of it.",
        )
    return meta


def _check_metadata_matches(meta: CoreMetadata, file: DistFile) -> None:
    """Guard against an index serving another release's metadata for a wheel."""
    try:
        name, version, _build, _tags = parse_wheel_filename(file.filename)
    except InvalidWheelFilename:
        return
    same_version = canonicalize_version(meta.version) == canonicalize_version(version)
    if normalize(meta.name) != name or not same_version:
        raise IndexError_(
            f"The metadata served for {file.filename} (index '{file.index}') describes "
            f"{meta.name} {meta.version}, not the wheel's project and version.",
            hint="The index is serving inconsistent files; report it to its maintainers.",
        )


def _metadata_to_json(meta: CoreMetadata) -> bytes:
    return json.dumps(asdict(meta), sort_keys=True).encode()


def _metadata_from_json(raw: bytes) -> CoreMetadata | None:
    try:
        data = json.loads(raw)
        return CoreMetadata(
            name=str(data["name"]),
            version=str(data["version"]),
            requires_dist=tuple(str(r) for r in data["requires_dist"]),
            requires_python=data["requires_python"],
            provides_extra=tuple(str(e) for e in data["provides_extra"]),
        )
    except (ValueError, KeyError, TypeError):
        return None  # corrupt entry: fetch again


def _file_key(file: DistFile) -> str:
    """Cache key of an immutable file: its sha256, else a digest of its URL."""
    if file.sha256:
        return f"sha256-{file.sha256}"
    return "url-" + hashlib.sha256(file.url.encode()).hexdigest()


# ---------------------------------------------------------------------------
# Reading METADATA out of a remote wheel's zip


class _DownloadInterruptedError(Exception):
    """A download broke off mid-body (internal; the caller may restart it)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _ZipError(Exception):
    """The bytes we read are not the zip we expected (internal; triggers a fallback)."""


@dataclass(frozen=True, slots=True)
class _ZipEntry:
    name: str
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int


_EOCD = struct.Struct("<4s4H2LH")  # end of central directory, 22 bytes
_ZIP_STORED, _ZIP_DEFLATED = 0, 8  # zipfile's method numbers, without importing it
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header, 46 bytes
_LOCAL = struct.Struct("<4s5H3L2H")  # 30 bytes


class _RemoteFile:
    """Random access to a remote file: serves reads from known bytes, else a Range GET."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, tail: bytes) -> None:
        self._fetch = fetch  # (start, end exclusive) -> bytes
        self.size = size
        self._known_start = size - len(tail)
        self._known = tail

    def read(self, start: int, length: int) -> bytes:
        end = start + length
        if start < 0 or end > self.size:
            raise _ZipError(f"read {start}..{end} outside a {self.size}-byte file")
        if start >= self._known_start:
            return self._known[start - self._known_start : end - self._known_start]
        data = self._fetch(start, min(end, self._known_start))
        if end > self._known_start:
            data += self._known[: end - self._known_start]
        return data


def _find_directory(remote: _RemoteFile, tail: bytes) -> tuple[int, int]:
    """(offset, size) of the central directory, from the EOCD in *tail* (zip64 too)."""
    pos = tail.rfind(b"PK\x05\x06", 0, max(len(tail) - _EOCD.size + 4, 0))
    if pos < 0:
        raise _ZipError("no end-of-central-directory record in the file's tail")
    _sig, _disk, _cd_disk, _n_here, count, cd_size, cd_offset, _comment = _EOCD.unpack_from(
        tail, pos
    )
    if count != 0xFFFF and cd_size != 0xFFFFFFFF and cd_offset != 0xFFFFFFFF:
        return cd_offset, cd_size
    eocd_offset = remote.size - len(tail) + pos
    locator = remote.read(eocd_offset - _ZIP64_LOCATOR.size, _ZIP64_LOCATOR.size)
    sig, _disk, zip64_offset, _disks = _ZIP64_LOCATOR.unpack(locator)
    if sig != b"PK\x06\x07":
        raise _ZipError("zip64 end-of-central-directory locator missing")
    record = remote.read(zip64_offset, _ZIP64_EOCD.size)
    fields = _ZIP64_EOCD.unpack(record)
    if fields[0] != b"PK\x06\x06":
        raise _ZipError("zip64 end-of-central-directory record missing")
    return fields[9], fields[8]  # central directory offset, size


def _zip64_values(extra: bytes, wanted: list[bool]) -> list[int]:
    """The zip64 extra field's values for the 32-bit fields that overflowed."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 0x0001:
            count = sum(wanted)
            return list(struct.unpack_from(f"<{count}Q", extra, pos + 4))
        pos += 4 + length
    raise _ZipError("zip64 sizes missing from a central directory entry")


def _directory_entries(directory: bytes) -> Iterator[_ZipEntry]:
    pos = 0
    while pos + _CENTRAL.size <= len(directory):
        fields = _CENTRAL.unpack_from(directory, pos)
        if fields[0] != b"PK\x01\x02":
            raise _ZipError("corrupt central directory")
        method, crc, csize, size = fields[4], fields[7], fields[8], fields[9]
        name_len, extra_len, comment_len, offset = fields[10], fields[11], fields[12], fields[16]
        start = pos + _CENTRAL.size
        name = directory[start : start + name_len].decode("utf-8", errors="replace")
        extra = directory[start + name_len : start + name_len + extra_len]
        big = [size == 0xFFFFFFFF, csize == 0xFFFFFFFF, offset == 0xFFFFFFFF]
        if any(big):
            values = iter(_zip64_values(extra, big))
            size = next(values) if big[0] else size
            csize = next(values) if big[1] else csize
            offset = next(values) if big[2] else offset
        yield _ZipEntry(name, method, crc, csize, size, offset)
        pos = start + name_len + extra_len + comment_len


def _pick_metadata_name(names: Iterable[str], filename: str) -> str:
    """The top-level ``*.dist-info/METADATA``; by the wheel's name if there are several."""
    found = [n for n in names if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
    if len(found) > 1:
        project = normalize(filename.split("-", 1)[0])
        found = [n for n in found if normalize(n.split("-", 1)[0]) == project]
    if len(found) != 1:
        raise _ZipError("no single *.dist-info/METADATA entry in the wheel")
    return found[0]


def _read_entry(remote: _RemoteFile, entry: _ZipEntry) -> bytes:
    """Read one entry's bytes: local header, then its stored or deflated data."""
    # One read covers the local header with a generous guess at its extra field.
    guess = _LOCAL.size + len(entry.name.encode()) + 256 + entry.compressed_size
    chunk = remote.read(entry.header_offset, min(guess, remote.size - entry.header_offset))
    fields = _LOCAL.unpack_from(chunk)
    if fields[0] != b"PK\x03\x04":
        raise _ZipError("bad local file header")
    data_start = _LOCAL.size + fields[9] + fields[10]
    if data_start + entry.compressed_size <= len(chunk):
        compressed = chunk[data_start : data_start + entry.compressed_size]
    else:
        compressed = remote.read(entry.header_offset + data_start, entry.compressed_size)
    if entry.method == _ZIP_STORED:
        data = compressed
    elif entry.method == _ZIP_DEFLATED:
        data = zlib.decompressobj(-15).decompress(compressed)
    else:
        raise _ZipError(f"unsupported compression method {entry.method}")
    if zlib.crc32(data) != entry.crc or len(data) != entry.size:
        raise _ZipError("CRC or size mismatch in METADATA")
    return data


def metadata_from_zip(path_or_file: Path | IO[bytes], filename: str) -> bytes:
    """METADATA from a complete local wheel (the fallback when Range is not honoured)."""
    import zipfile

    try:
        with zipfile.ZipFile(path_or_file) as zf:
            return zf.read(_pick_metadata_name(zf.namelist(), filename))
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise _ZipError(str(exc)) from exc


# ---------------------------------------------------------------------------
# The client


class IndexClient:
    """A thread-safe client for the configured indexes, with on-disk caches.

    *sources* pins normalized project names to index names.  *refresh* ignores
    page freshness (pages are revalidated or re-fetched; metadata, which is
    immutable, stays cached).  *offline* serves only from the caches.
    *sdist_metadata* turns a downloaded sdist into its core metadata (by
    building it); without it, sdist metadata raises IndexError_.
    """

    def __init__(
        self,
        indexes: Sequence[IndexSpec],
        cache_dir: Path,
        *,
        sources: Mapping[str, str] = {},
        refresh: bool = False,
        offline: bool = False,
        page_ttl: float = 600,
        max_workers: int = 16,
        sdist_metadata: Callable[[Path], CoreMetadata] | None = None,
    ) -> None:
        if not indexes:
            raise IndexError_(
                "No package index is configured.",
                hint="Add at least one entry under `indexes:` in workspace.yaml.",
            )
        self._indexes = tuple(_resolve_index(spec) for spec in indexes)
        self._by_name = {index.name: index for index in self._indexes}
        self._sources = {normalize(k): v for k, v in sources.items()}
        self._cache_dir = cache_dir
        self._pages = PageCache(cache_dir)
        self._refresh = refresh
        self._offline = offline
        self._page_ttl = page_ttl
        self._sdist_metadata = sdist_metadata
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="index")
        self._inflight: dict[tuple[str, str], Future[Any]] = {}
        self._lock = threading.Lock()
        self._closed = False
        # Built on the first request: a warm run may make none, and building
        # it (httpx, httpcore and an SSL context) costs more than the run.
        self._max_workers = max_workers
        self._http_client: httpx.Client | None = None
        self._http_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._http_lock:
            if self._http_client is not None:
                self._http_client.close()

    @property
    def _http(self) -> httpx.Client:
        with self._http_lock:
            if self._http_client is None:
                self._http_client = _make_http_client(self._max_workers)
            return self._http_client

    def __enter__(self) -> IndexClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public API ----------------------------------------------------------

    def project(self, name: str) -> ProjectPage:
        """The project's page from the first index that has it (or its pinned index)."""
        key = normalize(name)
        return self._once(("project", key), lambda: self._fetch_project(key))

    def files(self, name: str) -> Sequence[DistFile]:
        """The project's files, as ``project(name).files``."""
        return self.project(name).files

    def metadata(self, file: DistFile) -> CoreMetadata:
        """The file's core metadata: from the disk cache, PEP 658, a ranged read, or a build."""
        return self._once(("metadata", _file_key(file)), lambda: self._fetch_metadata(file))

    def prefetch_projects(self, names: Iterable[str]) -> None:
        """Start fetching these projects' pages in the background."""
        for name in names:
            key = normalize(name)
            self._submit(("project", key), partial(self._fetch_project, key))

    def prefetch_metadata(self, files: Iterable[DistFile]) -> None:
        """Start fetching these files' core metadata in the background.

        Files whose metadata is on disk are skipped: ``metadata`` reads those
        sooner than a pool thread could start.
        """
        for file in files:
            if not self._metadata_path(file).is_file():
                self._submit(("metadata", _file_key(file)), partial(self._fetch_metadata, file))

    def download(self, file: DistFile, dest: BinaryIO | Path) -> None:
        """Stream *file* into *dest*, checking its sha256 when the index gave one.

        A Path destination is written atomically (temporary sibling + rename)
        and only after the hash matched.  A stream destination receives bytes
        as they arrive; on a mismatch the caller must discard what it got.
        """
        self._require_online(f"download {file.filename}")
        index = self._index_named(file.index)
        if isinstance(dest, Path):
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    self._stream_to(index, file, handle)
                Path(tmp).replace(dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        else:
            self._stream_to(index, file, dest)

    # -- in-flight bookkeeping -------------------------------------------------

    def _once(self, key: tuple[str, str], work: Callable[[], T]) -> T:
        """Run *work* once per key: later and concurrent callers share its result.

        The first caller runs it in its own thread (not the pool), so callers
        that are themselves pool threads can never starve the pool.
        """
        with self._lock:
            future = self._inflight.get(key)
            owner = future is None
            if future is None:
                if self._closed:
                    raise _closed_error(key)
                future = self._inflight[key] = Future()
        if owner:
            self._run(key, future, work)
        result: T = future.result()
        return result

    def _submit(self, key: tuple[str, str], work: Callable[[], Any]) -> None:
        with self._lock:
            if key in self._inflight or self._closed:
                return
            future: Future[Any] = Future()
            self._inflight[key] = future
        task = self._pool.submit(self._run, key, future, work)
        # close() cancels queued tasks; their waiters must not hang forever.
        task.add_done_callback(lambda t: self._abandon(key, future) if t.cancelled() else None)

    def _abandon(self, key: tuple[str, str], future: Future[Any]) -> None:
        with self._lock:
            self._inflight.pop(key, None)
        if not future.done():
            future.set_exception(_closed_error(key))

    def _run(self, key: tuple[str, str], future: Future[Any], work: Callable[[], Any]) -> None:
        try:
            future.set_result(work())
        except BaseException as exc:
            # Forget failures so a later call tries again; current waiters see this one.
            with self._lock:
                self._inflight.pop(key, None)
            future.set_exception(exc)

    # -- projects ---------------------------------------------------------------

    def _candidate_indexes(self, name: str) -> tuple[_Index, ...]:
        pinned = self._sources.get(name)
        if pinned is None:
            return self._indexes
        if pinned not in self._by_name:
            configured = ", ".join(i.name for i in self._indexes)
            raise IndexError_(
                f"Package '{name}' is pinned to index '{pinned}', which is not configured "
                f"(configured: {configured}).",
                hint="Fix the pin in [tool.orchestrator] sources, or add the index to "
                "`indexes:` in workspace.yaml.",
            )
        return (self._by_name[pinned],)

    def _fetch_project(self, name: str) -> ProjectPage:
        candidates = self._candidate_indexes(name)
        for index in candidates:
            page_url = f"{index.url}/{name}/"
            page = self._page(index, page_url, name)
            if page.status == 404:
                continue  # absent here; a later index may have it
            return self._parse_page(index, page, name)
        raise _not_found(name, candidates, pinned=name in self._sources)

    def _parse_page(self, index: _Index, page: CachedPage, name: str) -> ProjectPage:
        """The page's files, from the listing derived from it earlier when there is one.

        Parsing pydantic-core's 5 MB of JSON into 15,000 files takes longer than
        resolving a whole member, so each page's files are kept pre-grouped
        beside it in the cache, keyed by the page body's hash.
        """
        digest = page.digest()
        if digest is not None:
            derived = self._pages.load_derived(page.url, LISTING_KIND, digest)
            loaded = None if derived is None else _decode_listing(derived, index.name)
            if loaded is not None:
                return ProjectPage(name, index.name, *loaded)
        if page.body is None:
            page = self._full_page(index, page, name)
        files, versions = self._parse_body(index, page, name)
        digest = page.digest()
        if digest is not None:  # always, now that the body is there
            with contextlib.suppress(OSError):  # the listing only saves time
                listing = _encode_listing(files, versions)
                self._pages.store_derived(page.url, LISTING_KIND, digest, listing)
        return ProjectPage(name, index.name, files, versions)

    def _full_page(self, index: _Index, page: CachedPage, name: str) -> CachedPage:
        """*page* with its body, read from the cache again."""
        full = self._pages.load(page.url)
        if full is None or full.status != page.status:  # replaced or removed meanwhile
            raise IndexError_(
                f"The cached page of '{name}' from index {index.describe()} changed while "
                "it was read.",
                hint="Retry; if it persists, use --refresh.",
            )
        return full

    def _parse_body(
        self, index: _Index, page: CachedPage, name: str
    ) -> tuple[ProjectFiles, tuple[str, ...]]:
        body = page.body or b""
        try:
            if page.content_type.endswith("json"):  # v1+json, or a server's plain JSON
                _name, rows, versions = _json_rows(body, page.url)
            else:
                rows, versions = _html_rows(body, page.url), ()
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IndexError_(
                f"Index {index.describe()} sent an unreadable page for '{name}': {exc}.",
                hint="Retry with --refresh; if it persists, the index is misbehaving.",
            ) from None
        return ProjectFiles.from_rows(index.name, rows), versions

    def _page(self, index: _Index, url: str, name: str) -> CachedPage:
        """The page for *url* from the cache when fresh, else from the index.

        A page served from the cache may come without its body (read only its
        header); ``_parse_page`` reads the body if it needs it.
        """
        cached = self._pages.load(url, body=False)
        if cached is not None and cached.digest() is None:  # stored without its hash
            cached = self._pages.load(url)
        if self._offline:
            if cached is None:
                raise IndexError_(
                    f"Package '{name}' is not in the cache for index {index.describe()}, "
                    "and offline mode forbids network access.",
                    hint="Run once without --offline to fill the cache.",
                )
            return cached
        now = time.time()
        if cached is not None and not self._refresh and cached.is_fresh(self._page_ttl, now):
            return cached
        if cached is not None and cached.body is None:  # a 304 answer keeps the stored body
            cached = self._pages.load(url)
        headers = {"Accept": ACCEPT}
        if cached is not None:
            headers.update(cached.validators())
        response = self._get(index, url, headers)
        with contextlib.closing(response):
            control = CacheControl.parse(response.headers.get("Cache-Control"))
            if response.status_code == 304 and cached is not None:
                page = cached.revalidated(now, control)
            elif response.status_code in (200, 404):
                body = response.read() if response.status_code == 200 else b""
                page = CachedPage(
                    url=url,
                    status=response.status_code,
                    content_type=_content_type(response),
                    body=body,
                    fetched_at=now,
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                    cache_control=control,
                    body_sha256=hashlib.sha256(body).hexdigest(),  # hashed once, not per use
                )
            else:
                raise _status_error(index, url, response.status_code)
        if not control.no_store:
            self._pages.store(page)
        return page

    # -- metadata -----------------------------------------------------------------

    def _metadata_path(self, file: DistFile) -> Path:
        key = _file_key(file)
        shard = key.partition("-")[2][:2]
        return self._cache_dir / METADATA_BUCKET / shard / f"{key}.json"

    def _fetch_metadata(self, file: DistFile) -> CoreMetadata:
        path = self._metadata_path(file)
        with contextlib.suppress(OSError):
            cached = _metadata_from_json(path.read_bytes())
            if cached is not None:
                return cached
        self._require_online(f"read the metadata of {file.filename}")
        index = self._index_named(file.index)
        if file.is_wheel:
            meta = parse_core_metadata(self._wheel_metadata(index, file), file.filename)
            _check_metadata_matches(meta, file)
        else:
            meta = self._sdist_core_metadata(index, file)
        write_bytes(path, _metadata_to_json(meta))
        return meta

    def _wheel_metadata(self, index: _Index, file: DistFile) -> bytes:
        if file.has_metadata:
            data = self._pep658_metadata(index, file)
            if data is not None:
                return data
        return self._ranged_metadata(index, file)

    def _pep658_metadata(self, index: _Index, file: DistFile) -> bytes | None:
        url = file.url + ".metadata"
        response = self._get(index, url, {})
        with contextlib.closing(response):
            if response.status_code == 404:
                return None  # the page promised more than the index serves
            if response.status_code != 200:
                raise _status_error(index, url, response.status_code)
            data = response.read()
        if file.metadata_sha256:
            actual = hashlib.sha256(data).hexdigest()
            if actual != file.metadata_sha256:
                raise HashMismatchError(
                    f"The metadata file of {file.filename} from index {index.describe()} has "
                    f"sha256 {actual}, but the index lists {file.metadata_sha256}.",
                    hint="Retry with --refresh; if it persists, report it to the index.",
                )
        return data

    def _ranged_metadata(self, index: _Index, file: DistFile) -> bytes:
        """METADATA via Range requests: the tail, maybe the directory, maybe the entry."""
        response = self._get(index, file.url, {"Range": f"bytes=-{TAIL_BYTES}"})
        with contextlib.closing(response):
            if response.status_code == 200:  # Range ignored: we get the whole wheel
                return self._metadata_from_body(index, file, response)
            if response.status_code != 206:
                raise _status_error(index, file.url, response.status_code)
            tail = response.read()
            size = _content_range_total(response.headers.get("Content-Range"))
        if size is None:
            size = len(tail)  # no total: assume the suffix covered the whole file
        try:
            remote = _RemoteFile(lambda s, e: self._range(index, file, s, e), size, tail)
            offset, length = _find_directory(remote, tail)
            entries = {e.name: e for e in _directory_entries(remote.read(offset, length))}
            return _read_entry(remote, entries[_pick_metadata_name(entries, file.filename)])
        except (_ZipError, struct.error) as exc:
            log.debug("ranged read of %s failed (%s); downloading it", file.url, exc)
            return self._full_metadata(index, file)

    def _range(self, index: _Index, file: DistFile, start: int, end: int) -> bytes:
        """Bytes [start, end) of a remote file."""
        response = self._get(index, file.url, {"Range": f"bytes={start}-{end - 1}"})
        with contextlib.closing(response):
            if response.status_code == 200:
                return response.read()[start:end]
            if response.status_code != 206:
                raise _status_error(index, file.url, response.status_code)
            got = _content_range_start(response.headers.get("Content-Range"))
            data = response.read()
        if got != start or len(data) != end - start:
            raise _ZipError("the server answered a different range than asked")
        return data

    def _full_metadata(self, index: _Index, file: DistFile) -> bytes:
        response = self._get(index, file.url, {})
        with contextlib.closing(response):
            if response.status_code != 200:
                raise _status_error(index, file.url, response.status_code)
            return self._metadata_from_body(index, file, response)

    def _metadata_from_body(self, index: _Index, file: DistFile, response: httpx.Response) -> bytes:
        with tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024) as spool:
            for chunk in response.iter_bytes(CHUNK):
                spool.write(chunk)
            spool.seek(0)
            try:
                return metadata_from_zip(spool, file.filename)
            except _ZipError as exc:
                raise IndexError_(
                    f"Cannot read METADATA from {file.filename} on index "
                    f"{index.describe()}: {exc}.",
                    hint="The wheel is malformed; pin another version of it.",
                ) from None

    def _sdist_core_metadata(self, index: _Index, file: DistFile) -> CoreMetadata:
        if self._sdist_metadata is None:
            raise IndexError_(
                f"Cannot read the metadata of {file.filename} from index {index.describe()}: "
                "it is a source distribution, and building sdists is not enabled here.",
                hint="Pin a version that ships a wheel, or enable sdist builds.",
            )
        key = _file_key(file)
        target = self._cache_dir / SDIST_BUCKET / key / file.filename
        if not target.is_file():
            self.download(file, target)
        return self._sdist_metadata(target)

    # -- downloads ------------------------------------------------------------------

    def _stream_to(self, index: _Index, file: DistFile, out: IO[bytes]) -> None:
        """Copy the file into *out*; a dropped connection restarts it if *out* can rewind."""
        seekable = getattr(out, "seekable", None)  # a bare writer can't rewind
        start = out.tell() if seekable is not None and seekable() else None
        for attempt in range(RETRIES + 1):
            try:
                actual = self._copy(index, file, out)
                break
            except _DownloadInterruptedError as exc:
                if start is None or attempt == RETRIES:
                    raise _unreachable(index, file.url, exc.cause) from None
                out.seek(start)
                out.truncate()
                _sleep_before_retry(attempt, None)
        if file.sha256 and actual != file.sha256:
            raise HashMismatchError(
                f"Downloaded {file.filename} from index {index.describe()} has sha256 "
                f"{actual}, but the index lists {file.sha256}.",
                hint="The file was corrupted in transit or changed on the index; retry, "
                "and report it to the index maintainers if it persists.",
            )

    def _copy(self, index: _Index, file: DistFile, out: IO[bytes]) -> str:
        """One download attempt; returns the sha256 of what was written."""
        import httpx

        response = self._get(index, file.url, {})
        with contextlib.closing(response):
            if response.status_code != 200:
                raise _status_error(index, file.url, response.status_code)
            digest = hashlib.sha256()
            try:
                for chunk in response.iter_bytes(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            except httpx.TransportError as exc:
                raise _DownloadInterruptedError(exc) from exc
        return digest.hexdigest()

    # -- HTTP -------------------------------------------------------------------------

    def _index_named(self, name: str) -> _Index:
        try:
            return self._by_name[name]
        except KeyError:
            raise IndexError_(
                f"The file comes from index '{name}', which is not configured.",
                hint="Re-lock, or add the index back to `indexes:` in workspace.yaml.",
            ) from None

    def _require_online(self, action: str) -> None:
        if self._offline:
            raise IndexError_(
                f"Cannot {action}: it is not cached, and offline mode forbids network access.",
                hint="Run once without --offline to fill the cache.",
            )

    def _get(self, index: _Index, url: str, headers: Mapping[str, str]) -> httpx.Response:
        """A streamed GET with retries; the caller closes the response.

        Credentials go only to the index's own origin.  Connection errors and
        5xx/429 answers are retried with exponential backoff.
        """
        import httpx

        sent = dict(headers)
        if index.auth is not None and _origin(url) == index.origin:
            sent["Authorization"] = _basic_auth(*index.auth)
        request = self._http.build_request("GET", url, headers=sent)
        for attempt in range(RETRIES + 1):
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt == RETRIES:
                    raise _unreachable(index, url, exc) from None
                _sleep_before_retry(attempt, None)
                continue
            if response.status_code in RETRY_STATUSES and attempt < RETRIES:
                response.close()
                _sleep_before_retry(attempt, response.headers.get("Retry-After"))
                continue
            log.debug("GET %s -> %s", url, response.status_code)
            return response
        raise AssertionError("unreachable")  # the loop returns or raises


def _encode_listing(files: ProjectFiles, versions: tuple[str, ...]) -> bytes:
    return marshal.dumps((versions, files.encoded_groups()), _MARSHAL_VERSION)


def _decode_listing(data: bytes, index: str) -> tuple[ProjectFiles, tuple[str, ...]] | None:
    """``_encode_listing``'s input again, or None when *data* is not its output."""
    try:
        versions, groups = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None
    if type(versions) is not tuple or not all(type(v) is str for v in versions):
        return None
    files = ProjectFiles.from_encoded(index, groups)
    return None if files is None else (files, versions)


def _make_http_client(max_workers: int) -> httpx.Client:
    import ssl

    import httpx

    # ssl.create_default_context() reads the system trust store (and
    # SSL_CERT_FILE); httpx's default certifi bundle lacks this machine's CA.
    return httpx.Client(
        verify=ssl.create_default_context(),
        timeout=httpx.Timeout(30.0, connect=10.0),
        limits=httpx.Limits(max_connections=max_workers + 4, max_keepalive_connections=max_workers),
        follow_redirects=True,  # httpx drops Authorization on cross-origin redirects
        headers={"User-Agent": "orchestrator"},
    )


def _basic_auth(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _sleep_before_retry(attempt: int, retry_after: str | None) -> None:
    delay = BACKOFF * (2**attempt)
    if retry_after is not None and retry_after.strip().isdigit():
        delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
    time.sleep(delay)


def _content_type(response: httpx.Response) -> str:
    header: str = response.headers.get("Content-Type", "text/html")
    return header.split(";")[0].strip().lower()


def _content_range_total(header: str | None) -> int | None:
    match = re.fullmatch(r"bytes \d+-\d+/(\d+)", (header or "").strip())
    return int(match.group(1)) if match else None


def _content_range_start(header: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (header or "").strip())
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------
# Errors


def _not_found(name: str, indexes: Sequence[_Index], *, pinned: bool) -> IndexError_:
    if pinned:
        return IndexError_(
            f"Package '{name}' was not found on index {indexes[0].describe()}, "
            "where [tool.orchestrator] sources pins it.",
            hint="Check the package name, or change the pin in [tool.orchestrator] sources.",
        )
    where = ", ".join(index.describe() for index in indexes)
    return IndexError_(
        f"Package '{name}' was not found on any configured index: {where}.",
        hint="Check the package name for typos; if it lives on another index, "
        "add that index to `indexes:` in workspace.yaml.",
    )


def _status_error(index: _Index, url: str, status: int) -> IndexError_:
    url = _strip_credentials(url)
    prefix = env_prefix(index.name)
    if status == 401:
        state = "rejected the credentials" if index.auth else "requires credentials"
        return IndexError_(
            f"Index {index.describe()} {state} (HTTP 401) for {url}.",
            hint=f"Set {prefix}_USERNAME and {prefix}_PASSWORD, or add the host to ~/.netrc.",
        )
    if status == 403:
        return IndexError_(
            f"Index {index.describe()} denied access (HTTP 403) to {url}.",
            hint=f"Check that the account in {prefix}_USERNAME (or ~/.netrc) may read this index.",
        )
    if status == 404:
        return IndexError_(
            f"Index {index.describe()} has no file at {url} (HTTP 404), although it listed it.",
            hint="The cached page may be stale; retry with --refresh.",
        )
    return IndexError_(
        f"Index {index.describe()} answered HTTP {status} for {url}.",
        hint="The index may be down or overloaded; try again later, or use --offline "
        "if the cache has what you need.",
    )


def _closed_error(key: tuple[str, str]) -> IndexError_:
    return IndexError_(f"The index client was closed before it fetched {key[1]}.")


def _unreachable(index: _Index, url: str, exc: Exception) -> IndexError_:
    reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    return IndexError_(
        f"Cannot reach index {index.describe()} at {_strip_credentials(url)} "
        f"after {RETRIES + 1} attempts ({reason}).",
        hint="Check the URL in workspace.yaml, your network and proxy settings; "
        "use --offline to work from the cache.",
    )
