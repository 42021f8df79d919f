"""The content-addressed wheel store: layout, verification, concurrency, housekeeping."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import threading
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from orchestrator import installer
from orchestrator.cache import BUILT, UNPACKED, WHEELS, FetchEvent, WheelCache, file_sha256
from orchestrator.errors import CacheError, HashMismatchError, VenvError
from orchestrator.models import DistFile
from tests.support.wheels import build_wheel, sha256_of


class DirDownloader:
    """Serves files from a directory, in small chunks, counting downloads."""

    def __init__(self, directory: Path, *, chunk_delay: float = 0.0) -> None:
        self.directory = directory
        self.chunk_delay = chunk_delay
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def download(self, file: DistFile, dest: BinaryIO) -> None:
        with self._lock:
            self.calls.append(file.filename)
        data = (self.directory / file.filename).read_bytes()
        for start in range(0, len(data), 512):
            dest.write(data[start : start + 512])
            if self.chunk_delay:
                time.sleep(self.chunk_delay)


class MeetingDownloader(DirDownloader):
    """Holds its first *parties* downloads until all of them are in flight at once.

    Downloads made one after another never meet: the first one's wait times
    out and it fails with ``threading.BrokenBarrierError``.
    """

    def __init__(self, directory: Path, parties: int) -> None:
        super().__init__(directory)
        self.barrier = threading.Barrier(parties, timeout=5)
        self.started = self.in_flight = self.most_in_flight = 0

    def download(self, file: DistFile, dest: BinaryIO) -> None:
        with self._lock:
            self.started += 1
            meets = self.started <= self.barrier.parties
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if meets:
                self.barrier.wait()
            super().download(file, dest)
        finally:
            with self._lock:
                self.in_flight -= 1


def dist_file(path: Path, sha256: str | None = "") -> DistFile:
    digest = sha256_of(path) if sha256 == "" else sha256
    return DistFile(path.name, f"http://127.0.0.1/files/{path.name}", "test", sha256=digest)


@pytest.fixture
def wheels(tmp_path: Path) -> list[Path]:
    return [build_wheel(tmp_path / "index", f"pkg{i}", "1.0") for i in range(6)]


def test_fetch_stores_by_hash_and_reuses(tmp_path: Path, wheels: list[Path]) -> None:
    cache = WheelCache(tmp_path / "cache")
    downloader = DirDownloader(wheels[0].parent)
    file = dist_file(wheels[0])
    assert file.sha256 is not None
    assert cache.get(file) is None

    path = cache.fetch(file, downloader)
    again = cache.fetch(file, downloader)

    sha = file.sha256
    assert path == tmp_path / "cache" / WHEELS / sha[:2] / sha[2:] / wheels[0].name
    assert again == path and cache.get(file) == path
    assert path.read_bytes() == wheels[0].read_bytes()
    assert downloader.calls == [wheels[0].name]
    leftovers = [p.name for p in (tmp_path / "cache" / WHEELS).iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_index_serving_other_bytes_is_a_hash_mismatch(tmp_path: Path, wheels: list[Path]) -> None:
    cache = WheelCache(tmp_path / "cache")
    locked = "0" * 64
    file = dist_file(wheels[0], sha256=locked)
    actual = sha256_of(wheels[0])
    size = wheels[0].stat().st_size

    with pytest.raises(HashMismatchError) as info:
        cache.fetch(file, DirDownloader(wheels[0].parent))

    assert info.value.message == (
        f"{wheels[0].name} from index 'test' (http://127.0.0.1/files/{wheels[0].name}) has "
        f"sha256 {actual} ({size} bytes), but the lock records {locked}"
    )
    assert info.value.hint is not None and "re-lock" in info.value.hint
    assert cache.get(file) is None
    assert list((tmp_path / "cache" / WHEELS).rglob("*.whl")) == []


def test_corrupted_entry_is_detected_discarded_and_refetched(
    tmp_path: Path, wheels: list[Path]
) -> None:
    cache = WheelCache(tmp_path / "cache")
    downloader = DirDownloader(wheels[0].parent)
    file = dist_file(wheels[0])
    path = cache.fetch(file, downloader)
    path.write_bytes(b"not a wheel any more")  # bit rot, a bad disk, a stray edit

    events: list[FetchEvent] = []
    refetched = cache.fetch(file, downloader, progress=events.append)

    assert refetched == path
    assert file_sha256(refetched) == file.sha256
    assert downloader.calls == [wheels[0].name, wheels[0].name]
    assert [e.status for e in events] == ["corrupt", "start", "downloaded"]


def test_rehash_catches_corruption_that_keeps_size_and_mtime(
    tmp_path: Path, wheels: list[Path]
) -> None:
    file = dist_file(wheels[0])
    path = WheelCache(tmp_path / "cache").fetch(file, DirDownloader(wheels[0].parent))
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    assert WheelCache(tmp_path / "cache").get(file) == path  # the stat marker is fooled
    assert WheelCache(tmp_path / "cache", rehash=True).get(file) is None  # a re-hash is not
    assert not path.exists()


def test_file_without_hash_is_stored_under_its_actual_hash(
    tmp_path: Path, wheels: list[Path]
) -> None:
    cache = WheelCache(tmp_path / "cache")
    path = cache.fetch(dist_file(wheels[0], sha256=None), DirDownloader(wheels[0].parent))
    sha = sha256_of(wheels[0])
    assert path.parent == tmp_path / "cache" / WHEELS / sha[:2] / sha[2:]


def test_fetch_many_is_concurrent_and_reports_each_file(tmp_path: Path, wheels: list[Path]) -> None:
    cache = WheelCache(tmp_path / "cache")
    files = [dist_file(w) for w in wheels]
    cache.fetch(files[0], DirDownloader(wheels[0].parent))
    downloader = MeetingDownloader(wheels[0].parent, parties=4)
    events: list[FetchEvent] = []
    lock = threading.Lock()

    def progress(event: FetchEvent) -> None:
        with lock:
            events.append(event)

    result = cache.fetch_many(files + files[:2], downloader, jobs=4, progress=progress)

    assert set(result) == set(files)
    for file, path in result.items():
        assert path.name == file.filename and file_sha256(path) == file.sha256
    finished = [e for e in events if e.status in ("hit", "downloaded")]
    assert sorted(e.done for e in finished) == list(range(1, 7))
    assert {e.total for e in events} == {6}
    assert [e.file for e in finished if e.status == "hit"] == [files[0]]
    assert len(downloader.calls) == 5  # the five missing files, each once
    assert downloader.most_in_flight == 4  # four at once (they met), never more than jobs


@pytest.mark.parametrize("evil", ["../../evil.whl", "/tmp/evil.whl", "sub/evil.whl", ".."])
def test_file_name_that_would_leave_its_entry_is_refused(
    tmp_path: Path, wheels: list[Path], evil: str
) -> None:
    cache = WheelCache(tmp_path / "cache")
    file = DistFile(evil, "http://127.0.0.1/files/x", "test", sha256=sha256_of(wheels[0]))

    with pytest.raises(CacheError) as info:
        cache.fetch(file, DirDownloader(wheels[0].parent))

    assert info.value.message == (
        f"{evil!r} is not a plain file name; refusing to store it in the cache"
    )
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_bad_hash_string_is_a_cache_error(tmp_path: Path, wheels: list[Path]) -> None:
    cache = WheelCache(tmp_path / "cache")
    with pytest.raises(CacheError, match="is not a sha256 hex digest"):
        cache.get(dist_file(wheels[0], sha256="abc"))


def _fill(root: str, index: str, filenames: list[str], hashes: list[str]) -> None:
    """Child process: fetch every file into the shared cache."""
    cache = WheelCache(Path(root))
    files = [
        DistFile(n, f"http://127.0.0.1/{n}", "test", sha256=h)
        for n, h in zip(filenames, hashes, strict=True)
    ]
    downloader = DirDownloader(Path(index), chunk_delay=0.001)
    paths = cache.fetch_many(files, downloader, jobs=3)
    for file, path in paths.items():
        cache.unpacked(path, file.sha256 or "", installer.unpack)


def test_two_processes_filling_the_cache_at_once_leave_it_consistent(
    tmp_path: Path, wheels: list[Path]
) -> None:
    root = tmp_path / "cache"
    names = [w.name for w in wheels]
    hashes = [sha256_of(w) for w in wheels]
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_fill, args=(str(root), str(wheels[0].parent), names, hashes))
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0]

    cache = WheelCache(root, rehash=True)
    for wheel, sha in zip(wheels, hashes, strict=True):
        assert cache.get(dist_file(wheel)) is not None
        tree = cache.unpacked(wheel, sha, installer.unpack)
        assert (tree / wheel.name.split("-")[0] / "__init__.py").exists()
    stray = [p for p in root.rglob(".t*") if p.name.startswith((".tmp-", ".trash-"))]
    assert stray == []
    wheels_bucket = next(b for b in cache.info().buckets if b.name == WHEELS)
    assert wheels_bucket.files == 12  # six wheels and their markers


def test_unpacked_tree_is_built_once(tmp_path: Path, wheels: list[Path]) -> None:
    cache = WheelCache(tmp_path / "cache")
    sha = sha256_of(wheels[0])
    results: list[Path] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(cache.unpacked(wheels[0], sha, installer.unpack))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    tree = results[0]
    assert tree == tmp_path / "cache" / UNPACKED / sha[:2] / sha[2:]
    assert (tree / "pkg0" / "__init__.py").read_text() == '__version__ = "1.0"\n'
    assert (tree / "pkg0-1.0.dist-info" / "RECORD").exists()
    assert [p.name for p in (tmp_path / "cache" / UNPACKED).iterdir()] == [sha[:2]]


_UNSAFE = "in the archive (absolute or leaving the install directory)"


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        ("../escaped.py", f"unsafe path '../escaped.py' {_UNSAFE}"),
        ("/tmp/absolute.py", f"unsafe path '/tmp/absolute.py' {_UNSAFE}"),
        ("pkg/../../up.py", f"unsafe path 'pkg/../../up.py' {_UNSAFE}"),
        (installer.MANIFEST, "the archive holds .orchestrator/, a directory orchestrator "
         "keeps for itself"),
    ],
)
def test_unpacking_refuses_paths_it_must_not_write(
    tmp_path: Path, member: str, problem: str
) -> None:
    wheel = build_wheel(tmp_path / "index", "evil", "1.0", files={member: "boom = 1\n"})
    cache = WheelCache(tmp_path / "cache")

    with pytest.raises(VenvError) as info:
        cache.unpacked(wheel, sha256_of(wheel), installer.unpack)

    assert info.value.message == f"{wheel.name}: {problem}; refusing to install it"
    assert not cache.entry_dir(UNPACKED, sha256_of(wheel)).exists()
    assert not any(p.is_file() for p in (tmp_path / "cache" / UNPACKED).rglob("*"))
    assert not (tmp_path / "escaped.py").exists()
    assert not Path("/tmp/absolute.py").exists()


def test_info_prune_and_clean(tmp_path: Path, wheels: list[Path]) -> None:
    root = tmp_path / "cache"
    cache = WheelCache(root)
    downloader = DirDownloader(wheels[0].parent)
    files = [dist_file(w) for w in wheels[:3]]
    for file in files:
        path = cache.fetch(file, downloader)
        cache.unpacked(path, file.sha256 or "", installer.unpack)
    (root / BUILT / (files[2].sha256 or "")).mkdir(parents=True)
    (root / BUILT / (files[2].sha256 or "") / "x.whl").write_bytes(b"x" * 10)
    (root / "http-v1").mkdir()
    (root / "http-v1" / "page").write_text("the index client's")

    info = cache.info()
    by_name = {b.name: b for b in info.buckets}
    assert sorted(by_name) == sorted([WHEELS, BUILT, UNPACKED, "http-v1"])  # every bucket
    assert by_name[WHEELS].files == 6 and by_name[BUILT].bytes == 10
    assert info.total_bytes == sum(b.bytes for b in info.buckets)

    keep = {files[0].sha256 or ""}
    report = cache.prune(keep)
    assert report.removed == 5  # two wheels, two unpacked trees, one build
    assert cache.get(files[0]) is not None
    assert cache.get(files[1]) is None and cache.get(files[2]) is None

    cache.clean()
    # the index client's buckets too; only the (empty) lock files of live processes stay
    assert sorted(p.name for p in root.iterdir()) == ["locks-v1"]
    assert cache.get(files[0]) is None


def test_prune_keeps_wheels_built_from_kept_sdists(tmp_path: Path, wheels: list[Path]) -> None:
    cache = WheelCache(tmp_path / "cache")
    built, sha = cache.add(wheels[0])
    sdist_sha = "ab" * 32
    (tmp_path / "cache" / BUILT / sdist_sha).mkdir(parents=True)
    record = {"filename": built.name, "sha256": sha}
    (tmp_path / "cache" / BUILT / sdist_sha / "cp311-linux_amd64.json").write_text(
        json.dumps(record)
    )
    cache.prune({sdist_sha})
    assert built.exists()
    cache.prune(set())
    assert not built.exists()


def test_hash_helper_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc" * 100_000)
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_unpacked_tree_carries_its_placement_manifest(tmp_path: Path) -> None:
    wheel = build_wheel(
        tmp_path / "index",
        "demo",
        "1.0",
        files={"demo/__init__.py": "X = 1\n", "demo-1.0.data/scripts/tool": "#!python\n"},
        console_scripts={"demo": "demo:main"},
    )
    tree = WheelCache(tmp_path / "cache").unpacked(wheel, sha256_of(wheel), installer.unpack)

    assert (tree / installer.MANIFEST).is_file()
    manifest = installer.load_manifest(tree)
    assert (manifest.name, manifest.version) == ("demo", "1.0")
    assert manifest.dist_info == "demo-1.0.dist-info"
    placed = {archive: (key, sub) for archive, key, sub, _hash, _size in manifest.files}
    assert placed["demo/__init__.py"] == ("purelib", "demo/__init__.py")
    assert "demo-1.0.dist-info/RECORD" not in placed  # written fresh by every install
    assert manifest.scripts == (("demo-1.0.data/scripts/tool", "tool"),)
    assert manifest.entry_points == (("demo", "demo:main"),)
    assert all(h.startswith("sha256=") for _a, _k, _s, h, _n in manifest.files)


def test_manifest_of_an_entry_unpacked_before_manifests_is_made_once(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "index", "demo", "1.0")
    tree = WheelCache(tmp_path / "cache").unpacked(wheel, sha256_of(wheel), installer.unpack)
    expected = installer.load_manifest(tree)
    shutil.rmtree(tree / installer.OWN_DIR)

    assert installer.load_manifest(tree) == expected
    own = tree / installer.OWN_DIR
    assert sorted(p.name for p in own.iterdir()) == ["INSTALLER", "REQUESTED", "manifest.json"]
    assert (own / "INSTALLER").read_text() == "orchestrator\n"


def test_plan_memos_and_cached_wheel(tmp_path: Path, wheels: list[Path]) -> None:
    cache = WheelCache(tmp_path / "cache")
    file = dist_file(wheels[0])
    assert file.sha256
    assert cache.cached_wheel(file.filename, file.sha256) is None  # not fetched yet
    path = cache.fetch(file, DirDownloader(wheels[0].parent))
    assert cache.cached_wheel(file.filename, file.sha256) == path
    assert cache.cached_wheel("other.whl", file.sha256) is None
    assert cache.cached_wheel(file.filename, "not-a-digest") is None
    os.utime(path, ns=(1, 1))  # no longer as verified: a miss, left for fetch_many to check
    assert cache.cached_wheel(file.filename, file.sha256) is None
    assert path.exists()

    key = "ab" * 32
    assert cache.read_memo(key) is None
    cache.write_memo(key, '{"x": 1}')
    assert cache.read_memo(key) == '{"x": 1}'
    assert cache.read_memo("../../etc") is None
    cache.prune({file.sha256})  # memos name wheels: pruned with them, made again later
    assert cache.read_memo(key) is None
