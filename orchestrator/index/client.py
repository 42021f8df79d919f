"""``IndexClient``: first-index-wins lookups, in-flight dedup, caches, downloads."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from orchestrator.atomic import write_bytes
from orchestrator.errors import HashMismatchError, PackageIndexError
from orchestrator.httpcache import CacheControl, CachedPage, PageCache
from orchestrator.index.auth import ResolvedIndex, redact_url, resolve_index
from orchestrator.index.listing import (
    LISTING_KIND,
    OLD_LISTING_KINDS,
    ProjectFiles,
    decode_listing,
    encode_listing,
)
from orchestrator.index.metadata import (
    check_metadata_matches,
    file_key,
    metadata_from_json,
    metadata_to_json,
    parse_core_metadata,
)
from orchestrator.index.pages import (
    ACCEPT,
    PageFormatError,
    ProjectPage,
    html_rows,
    json_rows,
)
from orchestrator.index.transport import (
    RETRIES,
    Deadlines,
    DownloadInterruptedError,
    content_range_start,
    content_range_total,
    content_type_of,
    get_with_retries,
    iter_body,
    make_http_client,
    read_body,
    sleep_before_retry,
    status_error,
    unreachable_error,
)
from orchestrator.models import CoreMetadata, DistFile, IndexSpec
from orchestrator.names import normalize

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    import httpx

METADATA_BUCKET = "metadata-v1"
HTTP_EXTRA_THREADS = 24  # requesting threads besides the pool's (resolver, prefetcher)
SDIST_BUCKET = "sdists-v1"

T = TypeVar("T")


class _Pending:
    """The result of one in-flight request, shared by every thread that waits for it.

    What ``_once`` and ``_submit`` need of a ``concurrent.futures.Future`` (set
    once, wait, raise the failure in every waiter) without importing it.
    """

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: object = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._done.is_set()

    def set_result(self, value: object) -> None:
        self._value = value
        self._done.set()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def result(self) -> object:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class IndexClient:
    """A thread-safe client for the configured indexes, with on-disk caches.

    *sources* pins normalized project names to index names.  *refresh* ignores
    page freshness (pages are revalidated or re-fetched; metadata, which is
    immutable, stays cached).  *offline* serves only from the caches.
    *sdist_metadata* turns a downloaded sdist into its core metadata (by
    building it); without it, sdist metadata raises PackageIndexError.
    *deadlines* bound every request (workspace.yaml's ``http.timeout``).
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
        deadlines: Deadlines | None = None,
    ) -> None:
        if not indexes:
            raise PackageIndexError(
                "no package index is configured",
                hint="add at least one entry under `indexes:` in workspace.yaml",
            )
        self._indexes = tuple(resolve_index(spec) for spec in indexes)
        self._by_name = {index.name: index for index in self._indexes}
        self._sources = {normalize(k): v for k, v in sources.items()}
        self._cache_dir = cache_dir
        self._pages = PageCache(cache_dir)
        self._refresh = refresh
        self._offline = offline
        self._page_ttl = page_ttl
        self._sdist_metadata = sdist_metadata
        self._deadlines = deadlines  # workspace.yaml's http.timeout; None: the defaults
        # Started by the first background request (_submit): a warm run may make none,
        # and concurrent.futures (with logging) costs a warm lock 2-3 ms to import.
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: dict[tuple[str, str], _Pending] = {}
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
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._http_lock:
            if self._http_client is not None:
                self._http_client.close()

    @property
    def _http(self) -> httpx.Client:
        with self._http_lock:
            if self._http_client is None:
                # Sized for every thread that may wait on a request at once: this
                # pool's, the resolver's and its prefetcher's (resolver/prefetch.py),
                # so that none waits for a connection and every one is kept alive.
                self._http_client = make_http_client(self._max_workers + HTTP_EXTRA_THREADS)
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

    def metadata(self, file: DistFile, *, licenses: bool = False) -> CoreMetadata:
        """The file's core metadata: from the disk cache, PEP 658, a ranged read, or a build.

        With *licenses*, a cache entry written before license fields were
        recorded is fetched again (``licenses`` and ``sbom`` ask for them).
        """
        if licenses:
            return self._once(("metadata+licenses", file_key(file)),
                              lambda: self._fetch_metadata(file, licenses=True))
        return self._once(("metadata", file_key(file)), lambda: self._fetch_metadata(file))

    def cached_metadata(self, file: DistFile) -> CoreMetadata | None:
        """The file's core metadata if the disk cache holds it; never the network."""
        with contextlib.suppress(OSError):
            return metadata_from_json(self._metadata_path(file).read_bytes())
        return None

    def page_is_fresh(self, name: str) -> bool:
        """Whether ``project(name)`` would be answered from the cache, without a request.

        Reads only cached page headers. Offline, every page counts as fresh;
        a name pinned to an index that is not configured too (``project``
        reports that).
        """
        if self._offline:
            return True
        key = normalize(name)
        try:
            candidates = self._candidate_indexes(key)
        except PackageIndexError:
            return True
        now = time.time()
        for index in candidates:
            cached = self._pages.load(f"{index.url}/{key}/", body=False)
            if cached is None or self._refresh or not cached.is_fresh(self._page_ttl, now):
                return False
            if cached.status != 404:
                return True
        return True

    def connect(self) -> None:
        """Make the HTTP client now (httpx's imports and the trust store: 0.1 s of CPU).

        Otherwise the first request makes it. A caller about to start many requests
        calls this first, so that the requesting threads do not wait for it while
        the caller's own work holds the GIL.
        """
        self._http  # noqa: B018 - made on first use

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
                self._submit(("metadata", file_key(file)), partial(self._fetch_metadata, file))

    def download(self, file: DistFile, dest: BinaryIO | Path) -> None:
        """Stream *file* into *dest*, checking its sha256 when the index gave one.

        A Path destination is written atomically (temporary sibling + rename)
        and only after the hash matched.  A stream destination receives bytes
        as they arrive; on a mismatch the caller must discard what it got.
        """
        self._require_online(f"download {file.filename}")
        index = self._index_named(file.index)
        if isinstance(dest, Path):
            import tempfile

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
                future = self._inflight[key] = _Pending()
        if owner:
            self._run(key, future, work)
        return cast("T", future.result())

    def _submit(self, key: tuple[str, str], work: Callable[[], Any]) -> None:
        with self._lock:
            if key in self._inflight or self._closed:
                return
            future = _Pending()
            self._inflight[key] = future
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="index")
            pool = self._pool
        task = pool.submit(self._run, key, future, work)
        # close() cancels queued tasks; their waiters must not hang forever.
        task.add_done_callback(lambda t: self._abandon(key, future) if t.cancelled() else None)

    def _abandon(self, key: tuple[str, str], future: _Pending) -> None:
        with self._lock:
            self._inflight.pop(key, None)
        if not future.done():
            future.set_exception(_closed_error(key))

    def _run(self, key: tuple[str, str], future: _Pending, work: Callable[[], Any]) -> None:
        try:
            future.set_result(work())
        except BaseException as exc:
            # Forget failures so a later call tries again; current waiters see this one.
            with self._lock:
                self._inflight.pop(key, None)
            future.set_exception(exc)

    # -- projects ---------------------------------------------------------------

    def _candidate_indexes(self, name: str) -> tuple[ResolvedIndex, ...]:
        pinned = self._sources.get(name)
        if pinned is None:
            return self._indexes
        if pinned not in self._by_name:
            configured = ", ".join(i.name for i in self._indexes)
            raise PackageIndexError(
                f"package '{name}' is pinned to index '{pinned}', which is not configured "
                f"(configured: {configured})",
                hint="fix the pin in [tool.orchestrator] sources, or add the index to "
                "`indexes:` in workspace.yaml",
                package=name,
                index=pinned,
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

    def _parse_page(self, index: ResolvedIndex, page: CachedPage, name: str) -> ProjectPage:
        """The page's files, from the listing derived from it earlier when there is one.

        Parsing pydantic-core's 5 MB of JSON into 15,000 files takes longer than
        resolving a whole member, so each page's files are kept pre-grouped
        beside it in the cache, keyed by the page body's hash.
        """
        digest = page.digest()
        if digest is not None:
            derived = self._pages.load_parts(page.url, LISTING_KIND, digest)
            loaded = None if derived is None else decode_listing(
                derived, index.name, partial(self._relisted, index, page, name))
            if loaded is not None:
                return ProjectPage(name, index.name, *loaded)
        files, versions = self._listed(index, page, name)
        return ProjectPage(name, index.name, files, versions)

    def _listed(self, index: ResolvedIndex, page: CachedPage,
                name: str) -> tuple[ProjectFiles, tuple[str, ...]]:
        """The page body parsed, and its listing stored beside it."""
        if page.body is None:
            page = self._full_page(index, page, name)
        files, versions = self._parse_body(index, page, name)
        digest = page.digest()
        if digest is not None:  # always, now that the body is there
            with contextlib.suppress(OSError):  # the listing only saves time
                listing = encode_listing(files, versions)
                self._pages.store_parts(page.url, LISTING_KIND, digest, listing)
                for old in OLD_LISTING_KINDS:  # an earlier version's, read by nothing now
                    self._pages.derived_path(page.url, old).unlink(missing_ok=True)
        return files, versions

    def _relisted(self, index: ResolvedIndex, page: CachedPage, name: str) -> ProjectFiles:
        """The files of *page* parsed again, for a cached listing that turned out damaged
        only when one of its groups was read (a miss, found late)."""
        digest = page.digest()
        if page.body is None:
            page = self._full_page(index, page, name)
            if page.digest() != digest:
                raise PackageIndexError(
                    f"the cached page of '{name}' from index {index.describe()} changed "
                    "while it was read",
                    hint="retry; if it persists, use --refresh",
                    package=name,
                    index=index.name,
                )
        return self._listed(index, page, name)[0]

    def _full_page(self, index: ResolvedIndex, page: CachedPage, name: str) -> CachedPage:
        """*page* with its body, read from the cache again."""
        full = self._pages.load(page.url)
        if full is None or full.status != page.status:  # replaced or removed meanwhile
            raise PackageIndexError(
                f"the cached page of '{name}' from index {index.describe()} changed while "
                "it was read",
                hint="retry; if it persists, use --refresh",
                package=name,
                index=index.name,
            )
        return full

    def _parse_body(
        self, index: ResolvedIndex, page: CachedPage, name: str
    ) -> tuple[ProjectFiles, tuple[str, ...]]:
        body = page.body or b""
        try:
            if page.content_type.endswith("json"):  # v1+json, or a server's plain JSON
                _name, rows, versions = json_rows(body, page.url)
            else:
                rows, versions = html_rows(body, page.url), ()
        except PageFormatError as exc:
            raise PackageIndexError(
                f"index {index.describe()} sent an unreadable page for '{name}' "
                f"({redact_url(page.url)}): {exc}",
                hint=exc.hint, package=name, index=index.name,
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PackageIndexError(
                f"index {index.describe()} sent an unreadable page for '{name}': {exc}",
                hint="retry with --refresh; if it persists, the index is misbehaving",
                package=name,
                index=index.name,
            ) from None
        return ProjectFiles.from_rows(index.name, rows), versions

    def _page(self, index: ResolvedIndex, url: str, name: str) -> CachedPage:
        """The page for *url* from the cache when fresh, else from the index.

        A page served from the cache may come without its body (read only its
        header); ``_parse_page`` reads the body if it needs it.
        """
        cached = self._pages.load(url, body=False)
        if cached is not None and cached.digest() is None:  # stored without its hash
            cached = self._pages.load(url)
        if self._offline:
            if cached is None:
                raise PackageIndexError(
                    f"package '{name}' is not in the cache for index {index.describe()}, "
                    "and offline mode forbids network access",
                    hint="run once without --offline to fill the cache",
                    package=name,
                    index=index.name,
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
                body = read_body(index, response) if response.status_code == 200 else b""
                page = CachedPage(
                    url=url,
                    status=response.status_code,
                    content_type=content_type_of(response),
                    body=body,
                    fetched_at=now,
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                    cache_control=control,
                    body_sha256=hashlib.sha256(body).hexdigest(),  # hashed once, not per use
                )
            else:
                raise status_error(index, url, response.status_code)
        if not control.no_store:
            self._pages.store(page)
        return page

    # -- metadata -----------------------------------------------------------------

    def _metadata_path(self, file: DistFile) -> Path:
        key = file_key(file)
        shard = key.partition("-")[2][:2]
        return self._cache_dir / METADATA_BUCKET / shard / f"{key}.json"

    def _fetch_metadata(self, file: DistFile, *, licenses: bool = False) -> CoreMetadata:
        path = self._metadata_path(file)
        with contextlib.suppress(OSError):
            cached = metadata_from_json(path.read_bytes())
            if cached is not None and not (licenses and cached.license is None):
                return cached
        self._require_online(f"read the metadata of {file.filename}")
        index = self._index_named(file.index)
        if file.is_wheel:
            data = self._wheel_metadata(index, file)
            _check_metadata_size(index, file, len(data))
            meta = parse_core_metadata(data, file.filename)
            check_metadata_matches(meta, file)
        else:
            meta = self._sdist_core_metadata(index, file)
        write_bytes(path, metadata_to_json(meta))
        return meta

    def _wheel_metadata(self, index: ResolvedIndex, file: DistFile) -> bytes:
        if file.has_metadata:
            data = self._pep658_metadata(index, file)
            if data is not None:
                return data
        return self._ranged_metadata(index, file)

    def _pep658_metadata(self, index: ResolvedIndex, file: DistFile) -> bytes | None:
        url = file.url + ".metadata"
        response = self._get(index, url, {})
        with contextlib.closing(response):
            if response.status_code == 404:
                return None  # the page promised more than the index serves
            if response.status_code != 200:
                raise status_error(index, url, response.status_code)
            _check_metadata_size(index, file, int(response.headers.get("Content-Length") or 0))
            data = read_body(index, response)
        if file.metadata_sha256:
            actual = hashlib.sha256(data).hexdigest()
            if actual != file.metadata_sha256:
                raise HashMismatchError(
                    f"the metadata file of {file.filename} from index {index.describe()} has "
                    f"sha256 {actual}, but the index lists {file.metadata_sha256}",
                    hint="retry with --refresh; if it persists, report it to the index",
                    index=index.name,
                    expected=file.metadata_sha256,
                    actual=actual,
                )
        return data

    def _ranged_metadata(self, index: ResolvedIndex, file: DistFile) -> bytes:
        """METADATA via Range requests: the tail, maybe the directory, maybe the entry."""
        # Here, not at the top: a warm run reads every METADATA from the cache.
        import logging
        import struct

        from orchestrator.index.remotezip import TAIL_BYTES, ZipFormatError, metadata_from_tail

        response = self._get(index, file.url, {"Range": f"bytes=-{TAIL_BYTES}"})
        with contextlib.closing(response):
            if response.status_code == 200:  # Range ignored: we get the whole wheel
                return self._metadata_from_body(index, file, response)
            if response.status_code != 206:
                raise status_error(index, file.url, response.status_code)
            tail = read_body(index, response)
            size = content_range_total(response.headers.get("Content-Range"))
        if size is None:
            size = len(tail)  # no total: assume the suffix covered the whole file
        try:
            fetch = partial(self._range, index, file)
            return metadata_from_tail(fetch, size, tail, file.filename)
        except (ZipFormatError, struct.error) as exc:
            logging.getLogger(__name__).debug("ranged read of %s failed (%s); downloading it",
                                              file.url, exc)
            return self._full_metadata(index, file)

    def _range(self, index: ResolvedIndex, file: DistFile, start: int, end: int) -> bytes:
        """Bytes [start, end) of a remote file."""
        from orchestrator.index.remotezip import ZipFormatError

        response = self._get(index, file.url, {"Range": f"bytes={start}-{end - 1}"})
        with contextlib.closing(response):
            if response.status_code == 200:
                return read_body(index, response)[start:end]
            if response.status_code != 206:
                raise status_error(index, file.url, response.status_code)
            got = content_range_start(response.headers.get("Content-Range"))
            data = read_body(index, response)
        if got != start or len(data) != end - start:
            raise ZipFormatError("the server answered a different range than asked")
        return data

    def _full_metadata(self, index: ResolvedIndex, file: DistFile) -> bytes:
        response = self._get(index, file.url, {})
        with contextlib.closing(response):
            if response.status_code != 200:
                raise status_error(index, file.url, response.status_code)
            return self._metadata_from_body(index, file, response)

    def _metadata_from_body(
        self, index: ResolvedIndex, file: DistFile, response: httpx.Response
    ) -> bytes:
        import tempfile

        from orchestrator.index.remotezip import ZipFormatError, metadata_from_zip

        with tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024) as spool:
            try:
                for chunk in iter_body(index, response):
                    spool.write(chunk)
            except DownloadInterruptedError as exc:
                raise unreachable_error(index, file.url, exc.cause) from None
            spool.seek(0)
            try:
                return metadata_from_zip(spool, file.filename)
            except ZipFormatError as exc:
                raise PackageIndexError(
                    f"cannot read METADATA from {file.filename} on index "
                    f"{index.describe()}: {exc}",
                    hint="the wheel is malformed; pin another version of it",
                    index=index.name,
                ) from None

    def _sdist_core_metadata(self, index: ResolvedIndex, file: DistFile) -> CoreMetadata:
        if self._sdist_metadata is None:
            raise PackageIndexError(
                f"cannot read the metadata of {file.filename} from index {index.describe()}: "
                "it is a source distribution, and building sdists is not enabled here",
                hint="pin a version that ships a wheel, or enable sdist builds",
                index=index.name,
            )
        key = file_key(file)
        target = self._cache_dir / SDIST_BUCKET / key / file.filename
        if not target.is_file():
            self.download(file, target)
        return self._sdist_metadata(target)

    # -- downloads ------------------------------------------------------------------

    def _stream_to(self, index: ResolvedIndex, file: DistFile, out: IO[bytes]) -> None:
        """Copy the file into *out*; a dropped connection restarts it if *out* can rewind."""
        seekable = getattr(out, "seekable", None)  # a bare writer can't rewind
        start = out.tell() if seekable is not None and seekable() else None
        for attempt in range(RETRIES + 1):
            try:
                actual = self._copy(index, file, out)
                break
            except DownloadInterruptedError as exc:
                if start is None or attempt == RETRIES:
                    raise unreachable_error(index, file.url, exc.cause) from None
                out.seek(start)
                out.truncate()
                sleep_before_retry(attempt, None)
        if file.sha256 and actual != file.sha256:
            raise HashMismatchError(
                f"downloaded {file.filename} from index {index.describe()} has sha256 "
                f"{actual}, but the index lists {file.sha256}",
                hint="the file was corrupted in transit or changed on the index; retry, "
                "and report it to the index maintainers if it persists",
                index=index.name,
                expected=file.sha256,
                actual=actual,
            )

    def _copy(self, index: ResolvedIndex, file: DistFile, out: IO[bytes]) -> str:
        """One download attempt; returns the sha256 of what was written.

        A connection broken mid-body is DownloadInterruptedError (restarted);
        a deadline passed is a PackageIndexError (not: the index is stuck).
        """
        response = self._get(index, file.url, {})
        with contextlib.closing(response):
            if response.status_code != 200:
                raise status_error(index, file.url, response.status_code)
            digest = hashlib.sha256()
            for chunk in iter_body(index, response):
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()

    # -- HTTP -------------------------------------------------------------------------

    def _index_named(self, name: str) -> ResolvedIndex:
        try:
            return self._by_name[name]
        except KeyError:
            raise PackageIndexError(
                f"the file comes from index '{name}', which is not configured",
                hint="re-lock, or add the index back to `indexes:` in workspace.yaml",
                index=name,
            ) from None

    def _require_online(self, action: str) -> None:
        if self._offline:
            raise PackageIndexError(
                f"cannot {action}: it is not cached, and offline mode forbids network access",
                hint="run once without --offline to fill the cache",
            )

    def _get(self, index: ResolvedIndex, url: str, headers: Mapping[str, str]) -> httpx.Response:
        """A streamed GET with retries (``get_with_retries``); the caller closes it."""
        return get_with_retries(self._http, index, url, headers, self._deadlines)


# ---------------------------------------------------------------------------
# Errors


def _not_found(name: str, indexes: Sequence[ResolvedIndex], *, pinned: bool) -> PackageIndexError:
    if pinned:
        return PackageIndexError(
            f"package '{name}' was not found on index {indexes[0].describe()}, "
            "where [tool.orchestrator] sources pins it",
            hint="check the package name, or change the pin in [tool.orchestrator] sources",
            package=name,
            index=indexes[0].name,
        )
    where = ", ".join(index.describe() for index in indexes)
    return PackageIndexError(
        f"package '{name}' was not found on any configured index: {where}",
        hint="check the package name for typos; if it lives on another index, "
        "add that index to `indexes:` in workspace.yaml",
        package=name,
    )


def _check_metadata_size(index: ResolvedIndex, file: DistFile, size: int) -> None:
    """Refuse METADATA over the limit (``ORCHESTRATOR_METADATA_MAX_BYTES``, 10 MiB)."""
    from orchestrator.wheelfile import ArchiveLimits

    limit = ArchiveLimits.from_env().metadata_bytes
    if size > limit:
        raise PackageIndexError(
            f"the METADATA of {file.filename} from index {index.describe()} is {size} bytes, "
            f"over the {limit}-byte limit; refusing to read it",
            hint="raise ORCHESTRATOR_METADATA_MAX_BYTES if it is genuine; otherwise the "
            "file is malformed or malicious: pin another version",
            index=index.name, package=normalize(file.filename.split("-", 1)[0]),
        )


def _closed_error(key: tuple[str, str]) -> PackageIndexError:
    return PackageIndexError(f"the index client was closed before it fetched {key[1]}")
