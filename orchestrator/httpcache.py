"""An on-disk HTTP cache for index pages, and the atomic write every cache bucket uses.

The index these machines reach sends no Cache-Control, ETag or Last-Modified
headers, so freshness is our own policy: a page is fresh for a TTL after it
was fetched (or for the server's ``max-age`` when it sends one), then it is
revalidated with the server's validators when there are any, or re-fetched.

One entry is one file: a single JSON header line, a newline, then the body.
Entries are written to a temporary file in the same directory and renamed
into place, so two processes can share the cache and a reader never sees a
half-written entry; anything unreadable is treated as a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

PAGES_BUCKET = "http-v1"


def atomic_write(path: Path, data: bytes) -> None:
    """Write *data* to *path* via a temporary sibling file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    body: bytes
    fetched_at: float  # time.time() of the last fetch or successful revalidation
    etag: str | None = None
    last_modified: str | None = None
    cache_control: CacheControl = CacheControl()

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

    def load(self, url: str) -> CachedPage | None:
        """The stored page for *url*, or None when absent or unreadable."""
        try:
            raw = self.path_for(url).read_bytes()
        except OSError:
            return None
        header_line, sep, body = raw.partition(b"\n")
        try:
            header = json.loads(header_line)
            page = CachedPage(
                url=header["url"],
                status=int(header["status"]),
                content_type=str(header["content_type"]),
                body=body,
                fetched_at=float(header["fetched_at"]),
                etag=header.get("etag"),
                last_modified=header.get("last_modified"),
                cache_control=CacheControl(
                    header.get("max_age"), bool(header.get("no_cache")), False
                ),
            )
            intact = sep and int(header["size"]) == len(body) and page.url == url
        except (ValueError, KeyError, TypeError):
            return None
        return page if intact else None

    def store(self, page: CachedPage) -> None:
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
        }
        atomic_write(self.path_for(page.url), json.dumps(header).encode() + b"\n" + page.body)
