"""The content-addressed wheel store shared by every member and command.

Layout under the cache root (other buckets, such as ``http-v1/`` and
``metadata-v1/``, belong to the index client and are never touched here)::

    wheels-v1/ab/cdef…/<filename>       downloaded files, by their sha256
    wheels-v1/ab/cdef…/.<filename>.ok   verification marker (see below)
    unpacked-v1/ab/cdef…/               a wheel unpacked, for hardlinked installs, by the
                                        caller's unpacker (installer.unpack adds its
                                        placement manifest)
    built-v1/<sdist sha256>/…           wheels built from sdists (``build.py``)

Every entry is written under a temporary name in its own bucket and renamed
into place, so no reader ever sees a partial file, and two processes filling
the cache at once both succeed: the later rename replaces identical bytes (a
file) or fails harmlessly (a directory), and the loser uses the winner's entry.

Verification: a file is hashed once downloaded and only renamed into
place when the hash matches the lock's. Beside it goes a marker holding the
size and mtime it had then. ``get`` trusts an entry whose stat still matches
its marker and re-hashes one that does not (or has no marker); an entry that
fails the re-hash is discarded. This makes a warm lookup one ``stat`` instead
of reading every byte; ``WheelCache(root, rehash=True)`` re-hashes always, for
caches on storage that can rot without touching mtimes.

Unpacked trees are checked too (by the installer, which owns their format):
unpacking compares every file with the wheel's RECORD, makes it read-only
(``a-w``, so an edit through a venv's hard link fails instead of spreading)
and records its size and mtime; every install compares those first and has
a changed tree discarded (``discard_unpacked``) and unpacked again from the
hash-checked wheel. ``sync --verify`` and ``cache verify`` re-hash it all.

Locks: a process writing a bucket holds ``locks-v1/<bucket>.lock`` shared;
one that gets it exclusively is alone, so every ``.tmp-*``/``.trash-*`` there
is a killed run's and is removed. Writes that fail for the user's reasons
(full disk, read-only, too long a path) are CacheErrors naming the path.

Import direction: this module knows addresses, hashes and atomic renames,
never a file format. What goes inside an unpacked tree is the installer's
business, so ``unpacked`` takes the function that fills it from its caller
(``venv`` passes ``installer.unpack``) instead of importing the installer:
cache and installer never import each other, and only the stage that uses
both (venv) knows them both. Names from the index are joined to entry
directories only after ``wheelfile.within`` says they stay inside.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from orchestrator.errors import CacheError, HashMismatchError, OrchestratorError
from orchestrator.models import DistFile
from orchestrator.wheelfile import within

WHEELS = "wheels-v1"
BUILT = "built-v1"
UNPACKED = "unpacked-v1"
BUCKETS = (WHEELS, BUILT, UNPACKED)
LOCKS = "locks-v1"  # advisory lock files: per bucket (here) and per venv (venv.py)
PLANS = "plans-v1"  # sync.plan's memos: which cached wheels a lock selects (small JSON files)
_STALE_TEMP_SECONDS = 3600  # temp entries older than this are left by dead processes


_DISK_HINTS = {
    errno.ENOSPC: "the disk is full: free space (`orchestrator cache prune` or `cache clean`) "
    "or set ORCHESTRATOR_CACHE_DIR to a larger disk",
    errno.EDQUOT: "the disk quota is used up: free space (`orchestrator cache prune`) or set "
    "ORCHESTRATOR_CACHE_DIR elsewhere",
    errno.EROFS: "the file system is read-only: set ORCHESTRATOR_CACHE_DIR (or `cache:` in "
    "workspace.yaml) to a writable directory",
    errno.ENAMETOOLONG: "the path is too long: set ORCHESTRATOR_CACHE_DIR to a shorter path",
}
_WRITABLE_HINT = (
    "make the directory writable, or set ORCHESTRATOR_CACHE_DIR (or `cache:` in "
    "workspace.yaml) to a writable directory"
)


def disk_hint(exc: OSError, default: str = _WRITABLE_HINT) -> str:
    """What to do about an OSError a user can cause (full disk, read-only, too long)."""
    return _DISK_HINTS.get(exc.errno or 0, default)


@contextlib.contextmanager
def cache_writes(root: Path, what: str) -> Iterator[None]:
    """Turn an OSError while writing the cache into a CacheError naming the path.

    A temporary entry is removed by whoever made it (or, if that process
    died, by the next one), so the cache stays consistent: nothing half-written
    is ever renamed into place.
    """
    try:
        yield
    except OrchestratorError:
        raise
    except OSError as exc:
        where = exc.filename or root
        raise CacheError(
            f"cannot write the cache while {what}: {where}: {exc.strerror or exc}",
            hint=disk_hint(exc), file=Path(where),
        ) from exc


class Downloader(Protocol):
    """Streams one file from its index into *dest* (``IndexClient`` satisfies this)."""

    def download(self, file: DistFile, dest: BinaryIO) -> None: ...


FetchStatus = Literal["start", "hit", "downloaded", "corrupt", "failed"]
LinkMode = Literal["hardlink", "copy", "reflink"]


@dataclass(frozen=True, slots=True)
class FetchEvent:
    """One step of a fetch, for progress display.

    ``corrupt`` means a cached copy failed its hash check and is being
    fetched again; ``done``/``total`` count finished files of the batch.
    """

    file: DistFile
    status: FetchStatus
    done: int
    total: int
    path: Path | None = None
    error: str | None = None


class Unpacker(Protocol):
    """Fills the empty directory *dest* with the contents of *archive* (``installer.unpack``)."""

    def __call__(self, archive: Path, dest: Path, /) -> object: ...


class Progress(Protocol):
    """Called from worker threads; implementations must be thread-safe."""

    def __call__(self, event: FetchEvent, /) -> None: ...


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class CacheInfo:
    root: Path
    buckets: tuple[BucketInfo, ...]

    @property
    def total_bytes(self) -> int:
        return sum(b.bytes for b in self.buckets)


@dataclass(frozen=True, slots=True)
class PruneReport:
    removed: int  # entries removed
    freed_bytes: int


def _noop_progress(event: FetchEvent) -> None:
    return None


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _HashingWriter:
    """A write-only file object that hashes what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        import hashlib

        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


class WheelCache:
    """Content-addressed wheels and their unpacked trees under *root*."""

    def __init__(
        self, root: Path, *, rehash: bool = False, link_mode: LinkMode = "hardlink"
    ) -> None:
        self.root = root
        self.rehash = rehash
        # How installs take files from unpacked trees: hard links (the default,
        # read-only and shared), copies, or reflinks (copy-on-write clones).
        self.link_mode: LinkMode = link_mode
        self._bucket_locks: dict[str, int] = {}  # bucket -> its lock file, held shared
        self._bucket_guard = threading.Lock()

    # -- addressing -----------------------------------------------------------

    def entry_dir(self, bucket: str, sha256: str) -> Path:
        sha256 = sha256.lower()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise CacheError(
                f"{sha256!r} is not a sha256 hex digest",
                hint="the lock's hash is malformed; re-lock to record it again",
            )
        return self.root / bucket / sha256[:2] / sha256[2:]

    @staticmethod
    def _file_in(entry: Path, filename: str) -> Path:
        """*entry*/*filename*, refusing a name from the index that would leave the entry."""
        path = entry / filename
        if os.sep in filename or not within(path, entry):
            raise CacheError(
                f"{filename!r} is not a plain file name; refusing to store it in the cache",
                hint="the index lists a malformed file name; report it to the index's "
                "maintainers, or pin another version",
            )
        return path

    def _bucket(self, name: str) -> Path:
        path = self.root / name
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot create the cache directory {path}: {exc.strerror}",
                hint=disk_hint(exc), file=path,
            ) from exc
        self._hold_bucket(name, path)
        return path

    def _hold_bucket(self, name: str, path: Path) -> None:
        """Hold *path*'s lock shared while this cache writes there; clean up first if alone.

        Every process writing a bucket holds its lock shared, and a kill
        releases it; so a process that gets it exclusively knows that no
        live process has temporary files there, and removes every one a
        killed run left (``.tmp-*``, ``.trash-*``), whatever its age.
        """
        import fcntl

        with self._bucket_guard:
            if name in self._bucket_locks:
                return
            try:
                # Beside the buckets, not in one: read-only, so a remount stays possible
                (self.root / LOCKS).mkdir(exist_ok=True)
                fd = os.open(self.root / LOCKS / f"{name}.lock", os.O_RDONLY | os.O_CREAT, 0o666)
            except OSError:
                return  # a read-only cache: nothing to write, nothing to clean
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pass  # another process is at work here: its temporary files are live
            else:
                _remove_temps(path)
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._bucket_locks[name] = fd
            weakref.finalize(self, os.close, fd)  # released with this cache, or at exit

    # -- lookup ---------------------------------------------------------------

    def get(self, file: DistFile) -> Path | None:
        """The verified cached copy of *file*, or None; a corrupt copy is discarded."""
        return self._lookup(file)[0]

    def cached_wheel(self, filename: str, sha256: str) -> Path | None:
        """The cached *filename* (by *sha256*) if it is as it was when verified, else None.

        A hit is what ``fetch_many`` answers from its marker check, without an index
        or a DistFile; nothing is hashed or discarded here, and ``--verify``
        (``rehash``) always misses: the caller then goes through ``fetch_many``,
        which re-checks, reports and replaces a damaged copy.
        """
        if self.rehash:
            return None
        try:
            entry = self.entry_dir(WHEELS, sha256)
            path = self._file_in(entry, filename)
            stat = path.stat()
        except (OSError, CacheError):
            return None
        return path if self._marker_matches(entry, filename, stat) else None

    def read_memo(self, key: str) -> str | None:
        """The memo stored under *key* (a sha256 hex digest), or None."""
        try:
            return self._memo_path(key).read_text("utf-8")
        except (OSError, CacheError, UnicodeDecodeError):
            return None

    def write_memo(self, key: str, text: str) -> None:
        """Store *text* under *key*, atomically; a read-only cache just keeps none."""
        from orchestrator.atomic import write_text

        with contextlib.suppress(OSError, CacheError):
            path = self._memo_path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, text)

    def _memo_path(self, key: str) -> Path:
        entry = self.entry_dir(PLANS, key)  # checks the digest
        return entry.parent / f"{entry.name}.json"

    def _lookup(self, file: DistFile) -> tuple[Path | None, bool]:
        """(path or None, whether a corrupt copy was found and discarded)."""
        if not file.sha256:
            return None, False
        entry = self.entry_dir(WHEELS, file.sha256)
        path = self._file_in(entry, file.filename)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None, False
        if not self.rehash and self._marker_matches(entry, file.filename, stat):
            return path, False
        if file_sha256(path) == file.sha256.lower():
            self._write_marker(entry, file.filename)
            return path, False
        self._discard(entry)
        return None, True

    @staticmethod
    def _marker(entry: Path, filename: str) -> Path:
        return entry / f".{filename}.ok"

    def _marker_matches(self, entry: Path, filename: str, stat: os.stat_result) -> bool:
        try:
            data = json.loads(self._marker(entry, filename).read_text())
        except (OSError, ValueError):
            return False
        return bool(data == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns})

    def _write_marker(self, entry: Path, filename: str) -> None:
        import tempfile

        stat = (entry / filename).stat()
        data = json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
        fd, tmp = tempfile.mkstemp(dir=entry, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            f.write(data)
        Path(tmp).replace(self._marker(entry, filename))

    def _discard(self, entry: Path) -> None:
        """Remove an entry by renaming it away first, so no reader sees it half-deleted."""
        import shutil

        trash = entry.with_name(f".trash-{entry.name}-{os.getpid()}-{threading.get_ident()}")
        try:
            entry.rename(trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    # -- fetching -------------------------------------------------------------

    def fetch(
        self, file: DistFile, downloader: Downloader, *, progress: Progress | None = None
    ) -> Path:
        """The cached copy of *file*, downloading and verifying it if missing."""
        return self._fetch(file, downloader, _Batch(1, progress))

    def _fetch(self, file: DistFile, downloader: Downloader, batch: _Batch) -> Path:
        try:
            path, corrupt = self._lookup(file)
            if path is not None:
                batch.emit(file, "hit", path)
                return path
            if corrupt:
                batch.emit(file, "corrupt")
            batch.emit(file, "start")
            with cache_writes(self.root, f"downloading {file.filename}"):
                path = self._download(file, downloader)
        except OrchestratorError as exc:
            batch.emit(file, "failed", error=str(exc))
            raise
        batch.emit(file, "downloaded", path)
        return path

    def _download(self, file: DistFile, downloader: Downloader) -> Path:
        import tempfile

        bucket = self._bucket(WHEELS)
        fd, tmp_name = tempfile.mkstemp(dir=bucket, prefix=".tmp-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w+b") as out:
                # A real file, not a hashing wrapper: a downloader may seek and
                # truncate to retry or resume. Re-reading it hits the page cache.
                downloader.download(file, out)
            actual = file_sha256(tmp)
            self._check_hash(file, actual, tmp.stat().st_size)
            return self._install_entry(tmp, actual, file.filename)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _check_hash(file: DistFile, actual: str, size: int) -> None:
        if file.sha256 and actual != file.sha256.lower():
            from orchestrator.index.auth import redact_url  # never a token in a message

            raise HashMismatchError(
                f"{file.filename} from index {file.index!r} ({redact_url(file.url)}) has sha256 "
                f"{actual} ({size} bytes), but the lock records {file.sha256.lower()}",
                hint="the file changed on the index since it was locked; if that is "
                "expected, re-lock (`orchestrator lock --update PACKAGE`), otherwise "
                "treat the index as compromised",
            )

    def _install_entry(self, tmp: Path, sha256: str, filename: str) -> Path:
        entry = self.entry_dir(WHEELS, sha256)
        final = self._file_in(entry, filename)
        entry.mkdir(parents=True, exist_ok=True)
        if not final.exists():
            tmp.chmod(0o644)  # mkstemp makes 0600; the cache may be shared by a group
            tmp.replace(final)  # atomic: readers see nothing or the whole file
        self._write_marker(entry, filename)
        return final

    def add(self, path: Path, *, filename: str | None = None) -> tuple[Path, str]:
        """Copy a local file (a built wheel) into the store; returns (path, sha256)."""
        with cache_writes(self.root, f"adding {path.name}"):
            return self._add(path, filename)

    def _add(self, path: Path, filename: str | None) -> tuple[Path, str]:
        import shutil
        import tempfile

        bucket = self._bucket(WHEELS)
        fd, tmp_name = tempfile.mkstemp(dir=bucket, prefix=".tmp-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                writer = _HashingWriter(out)
                shutil.copyfileobj(src, writer)
            sha = writer.digest.hexdigest()
            return self._install_entry(tmp, sha, filename or path.name), sha
        finally:
            tmp.unlink(missing_ok=True)

    def fetch_many(
        self,
        files: Iterable[DistFile],
        downloader: Downloader,
        *,
        jobs: int = 8,
        progress: Progress | None = None,
    ) -> dict[DistFile, Path]:
        """Fetch *files* concurrently; raises the first failure after all have finished.

        Files sharing a sha256 are downloaded once.
        """
        from concurrent.futures import ThreadPoolExecutor

        unique = list(dict.fromkeys(files))
        batch = _Batch(len(unique), progress)
        results: dict[DistFile, Path] = {}
        errors: list[BaseException] = []
        # Cache hits are a stat each: answer them here, and start threads only for
        # downloads (a warm sync of 44 wheels then starts none).
        missing = []
        for file in _dedupe_by_hash(unique):
            path, corrupt = self._lookup(file)
            if path is not None:
                batch.emit(file, "hit", path)
                results[file] = path
                continue
            if corrupt:
                batch.emit(file, "corrupt")
            missing.append(file)
        if not missing:
            return {file: results.get(file) or self._fetch(file, downloader, batch)
                    for file in unique}
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(missing)))) as pool:
            futures = {
                file: pool.submit(self._fetch, file, downloader, batch) for file in missing
            }
            for file, future in futures.items():
                exc = future.exception()
                if exc is not None:
                    errors.append(exc)
                else:
                    results[file] = future.result()
        if errors:
            raise errors[0]
        for file in unique:
            if file not in results:  # the same bytes listed under another name or index
                results[file] = self._fetch(file, downloader, batch)
        return results

    # -- unpacked trees ---------------------------------------------------------

    def unpacked(self, wheel_path: Path, sha256: str, unpack: Unpacker) -> Path:
        """The wheel at *wheel_path* unpacked by *unpack*, once (atomically), then reused.

        *unpack* fills a temporary directory that is renamed into place only
        when it returns, so every entry is whole (the installer's are born with
        their manifest). An entry is addressed by *sha256* alone: pass the same
        unpacker for a bucket's every entry.
        """
        entry = self.entry_dir(UNPACKED, sha256)
        if entry.is_dir():
            return entry
        with cache_writes(self.root, f"unpacking {wheel_path.name}"), \
                self._entry_lock(UNPACKED, sha256):
            if entry.is_dir():  # another process unpacked it while this one waited
                return entry
            return self._unpack(wheel_path, entry, unpack)

    @contextlib.contextmanager
    def _entry_lock(self, bucket: str, sha256: str) -> Iterator[None]:
        """Hold the lock of an entry's stripe, so one process fills an entry, once.

        One of 256 lock files per bucket (by the hash's first byte): a lock
        file per entry would never be removable without a race. Without a
        writable lock directory it locks nothing; the atomic rename still
        keeps the entry whole.
        """
        import fcntl

        try:
            (self.root / LOCKS).mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCKS / f"{bucket}-{sha256[:2].lower()}.lock",
                         os.O_RDONLY | os.O_CREAT, 0o666)
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _unpack(self, wheel_path: Path, entry: Path, unpack: Unpacker) -> Path:
        import shutil
        import tempfile

        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self._bucket(UNPACKED), prefix=".tmp-"))
        try:
            unpack(wheel_path, tmp)
            tmp.chmod(0o755)
            try:
                tmp.rename(entry)
            except OSError:
                if not entry.is_dir():  # not a lost race: a real failure
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return entry

    def verify_wheels(self) -> tuple[int, list[str]]:
        """Re-hash every cached wheel against its address; discard the ones that fail.

        Returns (wheels checked, what was discarded). Stale temporary files of
        killed runs are removed too.
        """
        checked, bad = 0, []
        with cache_writes(self.root, "verifying it"):
            for entry, sha in list(self._entries(WHEELS)):
                for path in sorted(entry.iterdir()):
                    if path.name.startswith(".") or not path.is_file():
                        continue
                    checked += 1
                    if file_sha256(path) != sha:
                        bad.append(str(path))
                        self._discard(entry)
                        break
                    self._write_marker(entry, path.name)
            self._remove_stale_temps()
        return checked, bad

    def unpacked_entries(self) -> list[tuple[Path, str]]:
        """Every unpacked tree and the sha256 of its wheel."""
        return list(self._entries(UNPACKED))

    def discard_unpacked(self, sha256: str) -> None:
        """Drop the unpacked tree of *sha256* (it failed a check); the next use re-unpacks."""
        with cache_writes(self.root, "discarding a damaged unpacked tree"):
            self._discard(self.entry_dir(UNPACKED, sha256))

    # -- housekeeping -----------------------------------------------------------

    def buckets(self) -> list[str]:
        """Every versioned bucket under the root: this store's and the index client's,
        build environments, interpreter records (``name-vN`` directories)."""
        try:
            names = [p.name for p in self.root.iterdir() if p.is_dir()]
        except FileNotFoundError:
            return []
        # not the lock files: live processes hold them, and they are empty
        return sorted(n for n in names if re.fullmatch(r"[a-z]+-v\d+", n) and n != LOCKS)

    def info(self) -> CacheInfo:
        """Sizes per bucket (counts regular files; hardlinked installs are not counted)."""
        buckets = []
        for name in self.buckets():
            files = size = 0
            for dirpath, _dirs, filenames in os.walk(self.root / name):
                for filename in filenames:
                    with contextlib.suppress(OSError):
                        size += Path(dirpath, filename).lstat().st_size
                        files += 1
            buckets.append(BucketInfo(name, files, size))
        return CacheInfo(self.root, tuple(buckets))

    def clean(self) -> PruneReport:
        """Remove every bucket: wheels, unpacked trees, builds, index pages, metadata."""
        import shutil

        before = self.info()
        for name in self.buckets():
            bucket = self.root / name
            if bucket.exists():
                trash = self.root / f".trash-{name}-{os.getpid()}"
                with cache_writes(self.root, "cleaning it"):
                    bucket.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
        return PruneReport(sum(b.files for b in before.buckets), before.total_bytes)

    def prune(self, keep: set[str]) -> PruneReport:
        """Remove entries whose sha256 (a wheel's, or a built sdist's) is not in *keep*.

        Wheels built from a kept sdist are kept too.
        """
        with cache_writes(self.root, "pruning it"):
            return self._prune({k.lower() for k in keep} | self._built_wheels(keep))

    def _prune(self, keep: set[str]) -> PruneReport:
        removed = freed = 0
        for name in (WHEELS, UNPACKED):
            for entry, sha in self._entries(name):
                if sha not in keep:
                    freed += _tree_size(entry)
                    self._discard(entry)
                    removed += 1
        built = self.root / BUILT
        for entry in sorted(built.iterdir()) if built.is_dir() else []:
            if entry.name not in keep and not entry.name.startswith("."):
                freed += _tree_size(entry)
                self._discard(entry)
                removed += 1
        plans = self.root / PLANS
        if plans.is_dir():  # memos name wheels: made again by the next sync of each lock
            freed += _tree_size(plans)
            self._discard(plans)
        self._remove_stale_temps()  # an hour old: left by dead processes
        for name in BUCKETS:  # and any age, where no live process writes the bucket
            if (self.root / name).is_dir():
                self._hold_bucket(name, self.root / name)
        return PruneReport(removed, freed)

    def _built_wheels(self, sdists: set[str]) -> set[str]:
        """sha256 of every wheel ``build.py`` recorded for these sdists."""
        found: set[str] = set()
        for sdist in sdists:
            directory = self.root / BUILT / sdist.lower()
            for record in directory.glob("*.json") if directory.is_dir() else []:
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    found.add(str(json.loads(record.read_text())["sha256"]).lower())
        return found

    def _entries(self, bucket: str) -> Iterable[tuple[Path, str]]:
        base = self.root / bucket
        if not base.is_dir():
            return
        for prefix in sorted(base.iterdir()):
            if len(prefix.name) != 2 or not prefix.is_dir():
                continue
            for entry in sorted(prefix.iterdir()):
                if not entry.name.startswith("."):
                    yield entry, prefix.name + entry.name

    def _remove_stale_temps(self) -> None:
        import shutil

        cutoff = time.time() - _STALE_TEMP_SECONDS
        for name in BUCKETS:
            base = self.root / name
            for path in base.glob("**/.t*-*") if base.is_dir() else []:
                with contextlib.suppress(OSError):
                    if path.lstat().st_mtime < cutoff:
                        if path.is_dir():
                            shutil.rmtree(path)
                        else:
                            path.unlink()


class _Batch:
    """Numbers a batch's progress events; shared by its worker threads."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.progress = progress or _noop_progress
        self.lock = threading.Lock()
        self.done = 0

    def emit(
        self,
        file: DistFile,
        status: FetchStatus,
        path: Path | None = None,
        error: str | None = None,
    ) -> None:
        with self.lock:
            if status in ("hit", "downloaded"):
                self.done += 1
            done = self.done
        self.progress(FetchEvent(file, status, done, self.total, path, error))


def _dedupe_by_hash(files: Iterable[DistFile]) -> list[DistFile]:
    seen: set[str] = set()
    out = []
    for file in files:
        key = (file.sha256 or file.url).lower()
        if key not in seen:
            seen.add(key)
            out.append(file)
    return out


def _remove_temps(bucket: Path) -> None:
    """Remove the temporary files and directories at the top of *bucket*."""
    import shutil

    with contextlib.suppress(OSError), os.scandir(bucket) as entries:
        for entry in entries:
            if entry.name.startswith((".tmp-", ".trash-")):
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, filenames in os.walk(path):
        for filename in filenames:
            with contextlib.suppress(OSError):
                total += Path(dirpath, filename).lstat().st_size
    return total
