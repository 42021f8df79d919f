"""An on-disk HTTP cache for index pages, and the atomic write every cache bucket uses.

The index these machines reach sends no Cache-Control, ETag or Last-Modified
headers, so freshness is our own policy: a page is fresh for a TTL after it
was fetched (or for the server's ``max-age`` when it sends one), then it is
revalidated with the server's validators when there are any, or re-fetched.

One entry is one file: a single JSON header line, a newline, then the body.
The header carries the body's sha256, which keys what is derived from a page
(``load_derived``/``store_derived``: e.g. its files pre-parsed into a compact
form, so a warm run need not parse megabytes of JSON again; ``store_parts`` and
``load_parts`` keep such data as separately checked parts, read one at a time). Entries are
written to a temporary file in the same directory and renamed into place, so
two processes can share the cache and a reader never sees a half-written
entry; anything unreadable is treated as a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from orchestrator.atomic import write_bytes

PAGES_BUCKET = "http-v1"


@dataclass(frozen=True, slots=True)
class CacheControl:
    """The parts of a ``Cache-Control`` response header a client cache uses."""

    max_age: float | None = None
    no_cache: bool = False
    no_store: bool = False

    @classmethod
    def parse(cls, header: str | None) -> CacheControl:
        max_age: float | None = None
        no_cache = no_store = False
        for directive in (header or "").split(","):
            key, _, value = directive.strip().partition("=")
            key = key.lower()
            if key == "max-age":
                with contextlib.suppress(ValueError):
                    max_age = max(float(value.strip('"')), 0.0)
            elif key == "no-cache":
                no_cache = True
            elif key == "no-store":
                no_store = True
        return cls(max_age, no_cache, no_store)


@dataclass(frozen=True, slots=True)
class CachedPage:
    """A stored response to GET *url*: a page (200) or a known absence (404)."""

    url: str
    status: int
    content_type: str
    body: bytes | None  # None: only the header was read (PageCache.load(body=False))
    fetched_at: float  # time.time() of the last fetch or successful revalidation
    etag: str | None = None
    last_modified: str | None = None
    cache_control: CacheControl = CacheControl()
    body_sha256: str | None = None  # as stored with the entry; None: not computed yet

    def digest(self) -> str | None:
        """The body's sha256 (hex), which keys what is derived from this page.

        None for an entry stored without it whose body was not read.
        """
        if self.body_sha256:
            return self.body_sha256
        return None if self.body is None else hashlib.sha256(self.body).hexdigest()

    def is_fresh(self, ttl: float, now: float) -> bool:
        """Whether the page may be used without asking the server.

        The server's ``max-age`` wins over our TTL; ``no-cache`` means always ask.
        """
        if self.cache_control.no_cache:
            return False
        lifetime = self.cache_control.max_age if self.cache_control.max_age is not None else ttl
        return 0 <= now - self.fetched_at < lifetime

    def validators(self) -> dict[str, str]:
        """Conditional request headers for revalidating this page."""
        headers: dict[str, str] = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def revalidated(self, now: float, cache_control: CacheControl) -> CachedPage:
        return replace(self, fetched_at=now, cache_control=cache_control)


_SECRET_QUERY_KEY = re.compile(
    r"(?i).*(token|key|secret|passw|pwd|auth|sig|credential|session).*"
)
_MIN_SECRET = 4  # shorter parts are no secret worth hiding, and too common to look for
_FILLER = ord("*")


@lru_cache(maxsize=4096)  # every page load and store asks, a warm lock hundreds of times
def url_secrets(url: str) -> tuple[bytes, ...]:
    """The parts of *url* that may be secrets, longest first, as they may appear in a page.

    The userinfo's user name and password, every path segment the lock's
    masking calls a token (``auth.secret_prefix``), and each query value whose
    key names a secret (``token``, ``api_key``, ``sig``…) or that looks like a
    token itself; both as written and percent-decoded.
    """
    from orchestrator.index.auth import secret_prefix  # orchestrator.index imports this module

    parts = urlsplit(url)
    found: list[str] = []
    for value in (parts.username, parts.password):
        if value:
            found += [value, unquote(value)]
    prefix = secret_prefix(url)
    if prefix is not None:
        real, masked = (urlsplit(u).path.split("/") for u in prefix)
        found += [seg for seg, hidden in zip(real, masked, strict=True) if seg != hidden]
        found += [unquote(seg) for seg, hidden in zip(real, masked, strict=True) if seg != hidden]
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        looks = secret_prefix(f"http://h/{quote(value, safe='')}") is not None
        if value and (_SECRET_QUERY_KEY.fullmatch(key) or looks):
            found += [value, quote(value, safe=""), quote(value, safe="/")]
    unique = {s.encode("utf-8", "surrogateescape") for s in found if len(s) >= _MIN_SECRET}
    return tuple(sorted(unique, key=lambda s: (-len(s), s)))


def mask_secrets(data: bytes, secrets: Sequence[bytes]) -> tuple[bytes, list[list[int]]]:
    """*data* with each occurrence of a secret overwritten by ``*``, and where they were.

    ``holes[i]`` lists the offsets of ``secrets[i]``; the length is kept, so
    the offsets (and any length prefix in *data*) stay valid.
    """
    if not secrets:
        return data, []
    pattern = re.compile(b"|".join(re.escape(s) for s in secrets))  # longest first
    number = {s: i for i, s in enumerate(secrets)}
    holes: list[list[int]] = [[] for _ in secrets]
    buffer: bytearray | None = None
    for match in pattern.finditer(data):
        if buffer is None:
            buffer = bytearray(data)
        start, end = match.span()
        holes[number[match.group()]].append(start)
        buffer[start:end] = bytes((_FILLER,)) * (end - start)
    if buffer is None:
        return data, []
    return bytes(buffer), holes


def restore_secrets(data: bytes, secrets: Sequence[bytes], holes: object) -> bytes | None:
    """``mask_secrets`` undone, or None when the holes do not fit *data* and *secrets*."""
    if not holes:
        return data
    if not isinstance(holes, list) or len(holes) > len(secrets):
        return None
    buffer = bytearray(data)
    for secret, offsets in zip(secrets, holes, strict=False):
        if not isinstance(offsets, list):
            return None
        filler = bytes((_FILLER,)) * len(secret)
        for offset in offsets:
            if not isinstance(offset, int) or buffer[offset:offset + len(secret)] != filler:
                return None
            buffer[offset:offset + len(secret)] = secret
    return bytes(buffer)


def mask_url(url: str, secrets: Sequence[bytes]) -> str:
    """*url* as its stored entries name it: its secrets overwritten with ``*``."""
    if not secrets:
        return url
    masked, _holes = mask_secrets(url.encode("utf-8", "surrogateescape"), secrets)
    return masked.decode("utf-8", "surrogateescape")


class PageCache:
    """Index pages stored under ``<cache>/http-v1/``, keyed by URL."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = cache_dir / PAGES_BUCKET

    def path_for(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.page"

    def load(self, url: str, *, body: bool = True) -> CachedPage | None:
        """The stored page for *url*, or None when absent or unreadable.

        With *body* False only the header is read (the page's ``body`` is
        None): enough to judge freshness, and all a warm run needs when what
        it derives from the page is cached too.
        """
        try:
            with self.path_for(url).open("rb") as handle:
                header_line = handle.readline()
                data = handle.read() if body else None
                size = len(data) if data is not None else (
                    os.fstat(handle.fileno()).st_size - len(header_line)
                )
        except OSError:
            return None
        secrets = url_secrets(url)
        try:
            header = json.loads(header_line)
            if data is not None:
                data = restore_secrets(data, secrets, header.get("holes"))
                if data is None:
                    return None
            page = CachedPage(
                url=url,
                status=int(header["status"]),
                content_type=str(header["content_type"]),
                body=data,
                fetched_at=float(header["fetched_at"]),
                etag=header.get("etag"),
                last_modified=header.get("last_modified"),
                cache_control=CacheControl(
                    header.get("max_age"), bool(header.get("no_cache")), False
                ),
                body_sha256=header.get("sha256") or None,
            )
            intact = (
                header_line.endswith(b"\n")
                and int(header["size"]) == size
                and header["url"] == mask_url(url, secrets)
            )
        except (ValueError, KeyError, TypeError):
            return None
        return page if intact else None

    def store(self, page: CachedPage) -> None:
        if page.body is None:
            raise ValueError("cannot store a page without its body")
        secrets = url_secrets(page.url)
        body, holes = mask_secrets(page.body, secrets)
        header = {
            "url": mask_url(page.url, secrets),
            "status": page.status,
            "content_type": page.content_type,
            "fetched_at": page.fetched_at,
            "etag": page.etag,
            "last_modified": page.last_modified,
            "max_age": page.cache_control.max_age,
            "no_cache": page.cache_control.no_cache,
            "size": len(page.body),
            "sha256": page.digest(),  # of the real body, which keys what is derived from it
        }
        if holes:
            header["holes"] = holes
        write_bytes(self.path_for(page.url), json.dumps(header).encode() + b"\n" + body)

    def derived_path(self, url: str, kind: str) -> Path:
        return self.path_for(url).with_suffix(f".{kind}")

    def load_derived(self, url: str, kind: str, page_sha256: str) -> bytes | None:
        """What was stored as *kind* for the page of *url* whose body hashes to *page_sha256*.

        None when there is none, when it was derived from another version of
        the page, or when it is damaged (its size or CRC-32 does not match).
        """
        try:
            with self.derived_path(url, kind).open("rb") as handle:
                header_line = handle.readline()  # no copy of the (megabytes of) data
                data = handle.read()
        except OSError:
            return None
        secrets = url_secrets(url)
        try:
            header = json.loads(header_line)
            intact = (
                header_line.endswith(b"\n")
                and header["url"] == mask_url(url, secrets)
                and header["kind"] == kind
                and header["page_sha256"] == page_sha256
                and int(header["size"]) == len(data)
                and int(header["crc32"]) == zlib.crc32(data)
            )
        except (ValueError, KeyError, TypeError):
            return None
        return restore_secrets(data, secrets, header.get("holes")) if intact else None

    def load_parts(self, url: str, kind: str, page_sha256: str) -> DerivedParts | None:
        """What ``store_parts`` stored as *kind* for the page of *url* with body hash
        *page_sha256*, its parts read when asked for; None as for ``load_derived``
        (another page version, a header or size that does not match)."""
        return _load_parts(self, url, kind, page_sha256)

    def store_parts(self, url: str, kind: str, page_sha256: str, parts: Sequence[bytes]) -> None:
        """Store *parts* derived from the page of *url*, each part masked and checked alone."""
        _store_parts(self, url, kind, page_sha256, parts)

    def store_derived(self, url: str, kind: str, page_sha256: str, data: bytes) -> None:
        """Store *data* derived from the page of *url* with body hash *page_sha256*."""
        secrets = url_secrets(url)
        data, holes = mask_secrets(data, secrets)
        header: dict[str, object] = {
            "url": mask_url(url, secrets),
            "kind": kind,
            "page_sha256": page_sha256,
            "size": len(data),
            "crc32": zlib.crc32(data),
        }
        if holes:
            header["holes"] = holes
        write_bytes(self.derived_path(url, kind), json.dumps(header).encode() + b"\n" + data)


class DerivedParts:
    """A derived entry stored as parts (``PageCache.store_parts``), each read on first use.

    The header (URL, kind, page hash, every part's size and CRC-32) was checked
    when the entry was opened and the file's size matched it; each part is read
    with ``os.pread`` from the file as it was opened (a later replacement by
    another process is not seen), CRC-checked and its secrets restored. ``part``
    returns None for a part that fails that: the caller treats the entry as a miss.
    Small entries are read whole at once; big ones keep their file open until
    this object is gone.
    """

    __slots__ = (
        "__weakref__",
        "_crcs",
        "_data",
        "_fd",
        "_holes",
        "_offsets",
        "_secrets",
        "_sizes",
    )

    def __init__(self, fd: int | None, data: bytes | None, base: int, sizes: Sequence[int],
                 crcs: Sequence[int], holes: dict[int, object], secrets: Sequence[bytes]) -> None:
        self._fd = fd
        self._data = data  # the whole body, when small; then fd is None
        self._sizes = tuple(sizes)
        self._crcs = tuple(crcs)
        offsets, at = [], base
        for size in sizes:
            offsets.append(at)
            at += size
        self._offsets = tuple(offsets)
        self._holes = holes
        self._secrets = secrets
        if fd is not None:
            import weakref

            weakref.finalize(self, os.close, fd)

    def __len__(self) -> int:
        return len(self._sizes)

    def part(self, number: int) -> bytes | None:
        """Part *number*'s bytes, or None when it is damaged (or there is no such part)."""
        if not 0 <= number < len(self._sizes):
            return None
        size, offset = self._sizes[number], self._offsets[number]
        if self._data is not None:
            data = self._data[offset:offset + size]
        else:
            assert self._fd is not None
            try:
                data = os.pread(self._fd, size, offset)
            except OSError:
                return None
        if len(data) != size or zlib.crc32(data) != self._crcs[number]:
            return None
        return restore_secrets(data, self._secrets, self._holes.get(number))


# Entries up to this size are read whole when opened (one read, no open file kept).
_SMALL_PARTS = 256 * 1024


def _load_parts(cache: PageCache, url: str, kind: str, page_sha256: str) -> DerivedParts | None:
    path = cache.derived_path(url, kind)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    keep = False
    try:
        size = os.fstat(fd).st_size
        head = _read_at(fd, min(size, 64 * 1024), 0)
        newline = head.find(b"\n")
        if newline < 0 and len(head) < size:  # a long header: a project with many releases
            head = _read_at(fd, size, 0)
            newline = head.find(b"\n")
        if newline < 0:
            return None
        secrets = url_secrets(url)
        try:
            header = json.loads(head[:newline])
            parts = header["parts"]
            sizes = [int(item[0]) for item in parts]
            crcs = [int(item[1]) for item in parts]
            holes = {int(k): v for k, v in dict(header.get("holes") or {}).items()}
            intact = (
                header["url"] == mask_url(url, secrets)
                and header["kind"] == kind
                and header["page_sha256"] == page_sha256
                and min(sizes, default=0) >= 0
                and sum(sizes) == size - newline - 1
            )
        except (ValueError, KeyError, TypeError, IndexError):
            return None
        if not intact:
            return None
        base = newline + 1
        if size <= _SMALL_PARTS or not hasattr(os, "pread"):  # (no pread: Windows)
            data = head if len(head) == size else _read_at(fd, size, 0)
            if len(data) != size:
                return None
            return DerivedParts(None, data, base, sizes, crcs, holes, secrets)
        keep = True
        return DerivedParts(fd, None, base, sizes, crcs, holes, secrets)
    except OSError:
        return None
    finally:
        if not keep:
            os.close(fd)


def _read_at(fd: int, size: int, offset: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def _store_parts(cache: PageCache, url: str, kind: str, page_sha256: str,
                 parts: Sequence[bytes]) -> None:
    secrets = url_secrets(url)
    masked: list[bytes] = []
    holes: dict[str, list[list[int]]] = {}
    for number, part in enumerate(parts):
        data, found = mask_secrets(part, secrets)
        masked.append(data)
        if found:
            holes[str(number)] = found
    header: dict[str, object] = {
        "url": mask_url(url, secrets),
        "kind": kind,
        "page_sha256": page_sha256,
        "parts": [[len(data), zlib.crc32(data)] for data in masked],
    }
    if holes:
        header["holes"] = holes
    write_bytes(cache.derived_path(url, kind),
                json.dumps(header, separators=(",", ":")).encode() + b"\n" + b"".join(masked))
