"""An on-disk HTTP cache for index pages, and the atomic write every cache bucket uses.

The index these machines reach sends no Cache-Control, ETag or Last-Modified
headers, so freshness is our own policy: a page is fresh for a TTL after it
was fetched (or for the server's ``max-age`` when it sends one), then it is
revalidated with the server's validators when there are any, or re-fetched.

One entry is one file: a single JSON header line, a newline, then the body.
The header carries the body's sha256, which keys what is derived from a page
(``load_derived``/``store_derived``: e.g. its files pre-parsed into a compact
form, so a warm run need not parse megabytes of JSON again). Entries are
written to a temporary file in the same directory and renamed into place, so
two processes can share the cache and a reader never sees a half-written
entry; anything unreadable is treated as a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

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
        try:
            header = json.loads(header_line)
            page = CachedPage(
                url=header["url"],
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
                header_line.endswith(b"\n") and int(header["size"]) == size and page.url == url
            )
        except (ValueError, KeyError, TypeError):
            return None
        return page if intact else None

    def store(self, page: CachedPage) -> None:
        if page.body is None:
            raise ValueError(f"cannot store the page of {page.url} without its body")
        header = {
            "url": page.url,
            "status": page.status,
            "content_type": page.content_type,
            "fetched_at": page.fetched_at,
            "etag": page.etag,
            "last_modified": page.last_modified,
            "max_age": page.cache_control.max_age,
            "no_cache": page.cache_control.no_cache,
            "size": len(page.body),
            "sha256": page.digest(),
        }
        write_bytes(self.path_for(page.url), json.dumps(header).encode() + b"\n" + page.body)

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
        try:
            header = json.loads(header_line)
            intact = (
                header_line.endswith(b"\n")
                and header["url"] == url
                and header["kind"] == kind
                and header["page_sha256"] == page_sha256
                and int(header["size"]) == len(data)
                and int(header["crc32"]) == zlib.crc32(data)
            )
        except (ValueError, KeyError, TypeError):
            return None
        return data if intact else None

    def store_derived(self, url: str, kind: str, page_sha256: str, data: bytes) -> None:
        """Store *data* derived from the page of *url* with body hash *page_sha256*."""
        header = {
            "url": url,
            "kind": kind,
            "page_sha256": page_sha256,
            "size": len(data),
            "crc32": zlib.crc32(data),
        }
        write_bytes(self.derived_path(url, kind), json.dumps(header).encode() + b"\n" + data)
