"""Deterministic layer tars: a venv at /opt/venv, and wheels installed into it.

A layer is staged as a real directory tree (``<staging>/opt/venv/...``) by the
project's own installer (RECORD, entry-point scripts with
``#!/opt/venv/bin/python``, ``.data`` schemes), then written as a tar whose
bytes depend only on that tree: entries sorted by path, one fixed mtime
(``SOURCE_DATE_EPOCH`` when set, else 0), uid/gid 0 with no user or
group names, modes reduced to 0644/0755, hardlinks written as plain files, PAX
headers only where a name needs them. The gzip stream has mtime 0, no file
name and a fixed OS byte, so the same tree gives the same blob digest on every
machine with the same deflate implementation (python-isal's igzip, else zlib:
``gzip_deflate``, whose identity is part of every layer's cache key).

Bytecode is compiled by one pool of fresh interpreters per build
(``BytecodeCompiler``), for every layer at once; the pycs come back as bytes and
go straight into the tar, in its sorted order, as compileall would have written
them under the staging tree.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import stat
import struct
import sys
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Protocol

from orchestrator.image import VENV

if TYPE_CHECKING:
    import subprocess
    from concurrent.futures import Future

    from orchestrator.cache import WheelCache
    from orchestrator.image import Layer

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
COMPRESSIONS = ("gzip", "zstd")
ZSTD_LEVEL = 3  # zstd's default: faster than gzip -3 and smaller than gzip -6
_CHUNK = 1024 * 1024
# zlib level 3 (where python-isal is missing): twice as fast as the default 6 on big
# wheels' trees, ~8% larger blobs.
GZIP_LEVEL = 3
# igzip level 2: on the data-science service's 539 MB of layer tars, 0.97 s of CPU for
# 184.7 MB; level 3 1.56 s for 181.0 MB, level 1 0.92 s for 187.9 MB; zlib 3 7.2 s for
# 175.0 MB (docs/benchmarks.md, "Cold OCI build: compression and bytecode"). Levels 0-2
# give the same bytes on every x86-64 CPU with SSE4.2 (SSE4.2, AVX, AVX2 under qemu, and
# AVX-512 here); level 3 differs between AVX2 and AVX-512 hosts (tests/test_oci_compress.py).
ISAL_LEVEL = 2
GZIP_VAR = "ORCHESTRATOR_OCI_GZIP"  # "zlib": zlib even where python-isal is installed
# magic, deflate, no flags, mtime 0, no extra flags, OS 255 ("unknown"): the header
# Python's gzip module writes for level 3 with mtime 0 and no name, on every platform.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
PYC_CHUNK = 16  # modules per request to a compiling interpreter


@dataclass(frozen=True, slots=True)
class Blob:
    """A layer written to the blob store: its digest, size and uncompressed digest."""

    digest: str  # sha256:<hex> of the stored bytes
    size: int
    diff_id: str  # sha256:<hex> of the uncompressed tar
    media_type: str = LAYER_GZIP


@dataclass(frozen=True, slots=True)
class Interpreter:
    """The base image's python, which the venv's ``bin/python`` points at."""

    path: str  # "/usr/bin/python3.11"
    version: str  # "3.11" (or the full version when the base says so)

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


def site_packages(python: Interpreter) -> str:
    return f"lib/python{python.minor}/site-packages"


# -- staging -------------------------------------------------------------------


def stage_venv(root: Path, python: Interpreter) -> None:
    """The empty venv under *root*: ``pyvenv.cfg``, ``bin/python*`` links, site-packages."""
    venv = root / VENV.lstrip("/")
    (venv / "bin").mkdir(parents=True)
    (venv / site_packages(python)).mkdir(parents=True)
    home = os.path.dirname(python.path)
    (venv / "pyvenv.cfg").write_text(
        f"home = {home}\ninclude-system-site-packages = false\n"
        f"version = {python.version}\nexecutable = {python.path}\n"
        f"command = {python.path} -m venv {VENV}\n")
    os.symlink(python.path, venv / "bin" / "python")
    os.symlink("python", venv / "bin" / "python3")
    os.symlink("python", venv / "bin" / f"python{python.minor}")
    os.symlink("lib", venv / "lib64")  # what `python -m venv` makes on 64-bit Linux


def stage_wheels(layer: Layer, root: Path, *, python: Interpreter, cache: WheelCache,
                 compiler: BytecodeCompiler | None = None) -> Bytecode | None:
    """Install *layer*'s wheels under *root* as they will sit in ``/opt/venv``.

    Files are hardlinked from the cache's unpacked trees (only read, then
    tarred); the shebangs and RECORD paths name ``/opt/venv``, not *root*.
    With a *compiler*, the site-packages' modules are handed to it: the
    returned pycs are compiling while the next layer is staged.
    """
    from orchestrator.installer import InstallOptions, Scheme, install_unpacked, unpack

    prefix = root / VENV.lstrip("/")
    lib = prefix / site_packages(python)
    scheme = Scheme(prefix=prefix, purelib=lib, platlib=lib, scripts=prefix / "bin",
                    headers=prefix / "include" / "site" / f"python{python.minor}",
                    data=prefix)
    options = InstallOptions(f"{VENV}/bin/python", link=True, requested=False)
    for wheel in layer.wheels:
        unpacked = cache.unpacked(wheel.path, wheel.sha256, unpack)
        install_unpacked(unpacked, scheme, options, origin={"sha256": wheel.sha256.lower()})
    return compiler.submit(root, lib) if compiler is not None else None


def can_compile(python: Interpreter) -> bool:
    """Bytecode is only valid for one minor version: compile when the host's is the target's."""
    return "{}.{}".format(*sys.version_info[:2]) == python.minor


# -- bytecode ------------------------------------------------------------------

# What py_compile.compile does for one module with PycInvalidationMode.UNCHECKED_HASH
# (source_to_code, _code_to_hash_pyc), without writing the file: requests are JSON lines
# of [path, name in the image] pairs, answers a 4-byte length and the pyc for each (length
# 0xffffffff: the module does not compile, so it gets no pyc, as compileall -q leaves it).
# Each module is compiled in a function whose objects are gone before the next one: a code
# object still alive changes the reference counts marshal's FLAG_REF bits follow (a pandas
# test module's pyc came out 15 bytes longer after its neighbour's, kept in a variable).
_WORKER = """\
import importlib._bootstrap_external as external, importlib.util, json, struct, sys


def pyc(path, name):
    try:
        with open(path, "rb") as f:
            source = f.read()
        code = compile(source, name, "exec", dont_inherit=True, optimize=0)
        return external._code_to_hash_pyc(code, importlib.util.source_hash(source), False)
    except Exception:
        return None


out = sys.stdout.buffer
for line in sys.stdin.buffer:
    for path, name in json.loads(line):
        data = pyc(path, name)
        out.write(struct.pack("<I", 0xFFFFFFFF if data is None else len(data)))
        if data is not None:
            out.write(data)
        del data
    out.flush()
"""
_FAILED = 0xFFFFFFFF


class _Worker:
    """One compiling interpreter, started fresh for this build: it imports nothing but
    importlib and json, so marshal's output depends only on the modules it compiles."""

    def __init__(self) -> None:
        import subprocess

        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            # -I -S: no PYTHON* variables (PYTHONOPTIMIZE would strip asserts from pycs
            # named as plain ones), no user site, no site-packages .pth imports (what the
            # interpreter has imported changes marshal's bytes): the same on every machine
            [sys.executable, "-I", "-S", "-c", _WORKER], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE)

    def compile(self, batch: Sequence[tuple[str, str]]) -> list[bytes | None]:
        import json

        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(list(batch)).encode() + b"\n")
        self.proc.stdin.flush()
        answers: list[bytes | None] = []
        for _ in batch:
            (size,) = struct.unpack("<I", _read(self.proc.stdout, 4))
            answers.append(None if size == _FAILED else _read(self.proc.stdout, size))
        return answers

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def _read(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        from orchestrator.errors import BuildError

        raise BuildError("the bytecode compiler stopped before it answered",
                         hint="run the build again; with --verbose for the traceback")
    return data


@dataclass(frozen=True, slots=True)
class Bytecode:
    """A layer's pycs, compiling: archive name -> the future of its bytes (None: no pyc)."""

    pycs: dict[str, Future[bytes | None]]

    def result(self, name: str) -> bytes | None:
        return self.pycs[name].result()

    def cache_dirs(self) -> dict[str, list[str]]:
        """Each ``__pycache__`` directory's archive name -> the pycs planned in it."""
        dirs: dict[str, list[str]] = {}
        for name in self.pycs:
            dirs.setdefault(name.rpartition("/")[0], []).append(name)
        return dirs


class BytecodeCompiler:
    """One pool of compiling interpreters for all the layers of a build.

    A layer's modules go in batches to whichever interpreter is free, so the
    layers' compiles share the cores and the tars are written while they run;
    each interpreter is started when first needed and lives until ``close``.
    The pycs are those ``python -m compileall -q --invalidation-mode
    unchecked-hash -s ROOT -p /`` writes: unchecked-hash (no mtime in them), the
    source named by its path in the image, the same files left out.
    """

    def __init__(self, workers: int | None = None) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1,
                                        thread_name_prefix="pyc")
        self._local = threading.local()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def __enter__(self) -> BytecodeCompiler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _worker(self) -> _Worker:
        worker: _Worker | None = getattr(self._local, "worker", None)
        if worker is None:
            worker = _Worker()
            self._local.worker = worker
            with self._lock:
                self._workers.append(worker)
        return worker

    def _run(self, batch: Sequence[tuple[str, str]]) -> list[bytes | None]:
        return self._worker().compile(batch)

    def submit(self, root: Path, directory: Path) -> Bytecode:
        """Start compiling the modules under *directory*, named as paths below *root*."""
        modules = _modules(directory)
        pycs: dict[str, Future[bytes | None]] = {}
        for start in range(0, len(modules), PYC_CHUNK):
            batch = modules[start:start + PYC_CHUNK]
            job = self._pool.submit(self._run, [(str(p), "/" + p.relative_to(root).as_posix())
                                                for p in batch])
            for i, path in enumerate(batch):
                pycs[_pyc_name(path, root)] = _item(job, i)
        return Bytecode(pycs)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for worker in self._workers:
            worker.close()


def _item(job: Future[list[bytes | None]], index: int) -> Future[bytes | None]:
    """A future of the *index*th answer of the batch *job*."""
    from concurrent.futures import Future

    one: Future[bytes | None] = Future()

    def done(batch: Future[list[bytes | None]]) -> None:
        if batch.cancelled():  # the compiler closed after another layer failed
            one.cancel()
            return
        error = batch.exception()
        if error is not None:
            one.set_exception(error)
        else:
            one.set_result(batch.result()[index])

    job.add_done_callback(done)
    return one


def _modules(directory: Path) -> list[Path]:
    """The files compileall's ``compile_dir`` compiles: ``*.py`` below *directory*, in
    sorted directories, not in ``__pycache__`` or a symlinked directory."""
    found: list[Path] = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return found
    for name in names:
        if name == "__pycache__":
            continue
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            found += _modules(path)
        elif name.endswith(".py") and path.is_file():
            found.append(path)
    return found


def _pyc_name(path: Path, root: Path) -> str:
    """The archive name of *path*'s pyc (``importlib.util.cache_from_source``'s)."""
    tag = sys.implementation.cache_tag
    rel = path.relative_to(root)
    return (rel.parent / "__pycache__" / f"{rel.name[:-3]}.{tag}.pyc").as_posix()


# -- compressing ---------------------------------------------------------------


class _Deflater(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Deflate:
    """The raw deflate of gzip layers: python-isal's igzip, or zlib where it is missing."""

    library: str  # "isal" or "zlib"
    version: str  # python-isal's version (it bundles ISA-L), or zlib's runtime version
    level: int
    machine: str = ""  # igzip's: its aarch64 code gives other bytes than its x86-64 code

    @property
    def identity(self) -> str:
        """What the bytes depend on, for cache keys: one blob store never mixes two."""
        return " ".join(filter(None, (self.library, self.version, f"level {self.level}",
                                      self.machine)))

    def compressor(self) -> _Deflater:
        if self.library == "isal":
            from isal import isal_zlib

            deflater: _Deflater = isal_zlib.compressobj(self.level, isal_zlib.DEFLATED, -15)
            return deflater
        import zlib

        return zlib.compressobj(self.level, zlib.DEFLATED, -15)

    def crc32(self, data: bytes, value: int) -> int:
        if self.library == "isal":
            from isal import isal_zlib

            return isal_zlib.crc32(data, value)
        import zlib

        return zlib.crc32(data, value)


@functools.cache
def gzip_deflate() -> Deflate:
    """igzip (python-isal, a dependency: 5-7x faster than zlib at a similar size), or
    zlib level 3 where python-isal cannot be imported or ``ORCHESTRATOR_OCI_GZIP=zlib``."""
    import platform
    import zlib

    fallback = Deflate("zlib", zlib.ZLIB_RUNTIME_VERSION, GZIP_LEVEL)
    if os.environ.get(GZIP_VAR, "").strip().lower() == "zlib":
        return fallback
    try:
        import isal
        from isal import isal_zlib  # noqa: F401  # the compiled part, not only the package
    except ImportError:
        return fallback
    return Deflate("isal", isal.__version__, ISAL_LEVEL, platform.machine().lower())


def compressor_identity(compression: str) -> str:
    """The compressor of *compression* layers as cache keys name it."""
    return f"gzip {gzip_deflate().identity}" if compression == "gzip" else compression


class _Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class GzipWriter:
    """A deterministic gzip member: ``GZIP_HEADER``, the deflate stream, CRC and size.

    Input is deflated in fixed 1 MiB pieces, so the output depends only on the
    bytes written, not on how the writer was called.
    """

    def __init__(self, out: _Sink, deflate: Deflate | None = None) -> None:
        self.out = out
        self.deflate = deflate or gzip_deflate()
        self._z = self.deflate.compressor()
        self._crc = 0
        self._size = 0
        self._pending = bytearray()
        out.write(GZIP_HEADER)

    def write(self, data: bytes) -> int:
        self._pending += data
        if len(self._pending) >= _CHUNK:
            whole = len(self._pending) - len(self._pending) % _CHUNK
            for start in range(0, whole, _CHUNK):
                self._deflate(bytes(self._pending[start:start + _CHUNK]))
            del self._pending[:whole]
        return len(data)

    def _deflate(self, piece: bytes) -> None:
        self._crc = self.deflate.crc32(piece, self._crc)
        self._size += len(piece)
        self.out.write(self._z.compress(piece))

    def close(self) -> None:
        if self._pending:
            self._deflate(bytes(self._pending))
            self._pending.clear()
        self.out.write(self._z.flush())
        self.out.write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))


class _Source(Protocol):
    def read(self, size: int, /) -> bytes: ...


def gzip_stream(source: _Source, out: _Sink, deflate: Deflate | None = None) -> None:
    """Compress all of *source* into *out* as one deterministic gzip member."""
    writer = GzipWriter(out, deflate)
    while chunk := source.read(_CHUNK):
        writer.write(chunk)
    writer.close()


# -- writing -------------------------------------------------------------------


def _entries(root: Path, bytecode: Bytecode | None = None
             ) -> Iterator[tuple[str, Path | None]]:
    """(archive name, path) for every entry below *root*, parents first, sorted by name.

    *bytecode*'s pycs and their ``__pycache__`` directories are entries too
    (path None), where compileall would have written them; a pyc replaces a
    file of its name that the wheel brought.
    """
    found: dict[str, Path | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found[path.relative_to(root).as_posix()] = path
    if bytecode is not None:
        for directory in bytecode.cache_dirs():
            found.setdefault(directory, None)
        for name in bytecode.pycs:
            found[name] = None
    # Sorting the names as a whole puts every directory before its contents.
    yield from sorted(found.items())


def _tarinfo(name: str, path: Path, mtime: int) -> tuple[tarfile.TarInfo, bool]:
    st = path.lstat()
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
        return info, False
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        return info, False
    info.type = tarfile.REGTYPE
    info.size = st.st_size
    # Readable by everyone (the process runs as uid 10001); executable only if it was.
    info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    return info, True


class _Hashing(io.RawIOBase):
    """A write-only stream that hashes and counts what passes to *out*."""

    def __init__(self, out: _Sink | None) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]  # bytes in, count out
        self.sha.update(data)
        self.size += len(data)
        if self.out is not None:
            self.out.write(data)
        return len(data)


def zstd_compressor() -> object:
    """zstandard's compressor (the optional extra): single-threaded, no content size, so
    the frame depends only on the bytes; a clear error when the package is missing."""
    try:
        import zstandard
    except ImportError as exc:
        from orchestrator.errors import BuildError

        raise BuildError("zstd layers need the zstandard package, which is not installed",
                         hint="pip install 'orchestrator[zstd]' (or zstandard), or build "
                         "with gzip layers (the default)") from exc
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True,
                                    write_content_size=False, threads=0)


def write_tar(root: Path, out: BinaryIO, *, mtime: int, compress: bool = True,
              compression: str = "gzip", bytecode: Bytecode | None = None,
              deflate: Deflate | None = None) -> Blob:
    """Write the tree at *root* to *out* as a deterministic tar, gzipped or zstd-compressed.

    *bytecode* (``BytecodeCompiler.submit``) adds the pycs as they are compiled;
    *deflate* is the gzip implementation (default ``gzip_deflate()``).
    """
    stored = _Hashing(out)
    packer: _Sink | None = None
    if compress and compression == "zstd":
        compressor = zstd_compressor()
        packer = compressor.stream_writer(stored, closefd=False)  # type: ignore[attr-defined]
    elif compress:
        packer = GzipWriter(stored, deflate)
    plain = _Hashing(packer if packer is not None else out)
    cache_dirs = bytecode.cache_dirs() if bytecode is not None else {}
    with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, path in _entries(root, bytecode):
            if path is None:
                assert bytecode is not None
                if _add_bytecode(tar, name, bytecode, cache_dirs, mtime):
                    continue
                path = root / name  # no pyc: the wheel's own file of that name, if any
                if not os.path.lexists(path):
                    continue
            info, regular = _tarinfo(name, path, mtime)
            if regular:
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    if packer is not None:
        packer.close()  # type: ignore[attr-defined]  # GzipWriter, zstandard's writer
        return Blob(f"sha256:{stored.sha.hexdigest()}", stored.size,
                    f"sha256:{plain.sha.hexdigest()}",
                    LAYER_ZSTD if compression == "zstd" else LAYER_GZIP)
    digest = f"sha256:{plain.sha.hexdigest()}"
    return Blob(digest, plain.size, digest, LAYER_TAR)


def _add_bytecode(tar: tarfile.TarFile, name: str, bytecode: Bytecode,
                  cache_dirs: dict[str, list[str]], mtime: int) -> bool:
    """A pyc as compileall writes it (mode 0644), or its ``__pycache__`` directory (0755),
    made only when one of its modules compiled; False when there is none to add."""
    info = tarfile.TarInfo(name)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if name not in bytecode.pycs:
        if not any(bytecode.result(pyc) is not None for pyc in cache_dirs[name]):
            return False
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        return True
    data = bytecode.result(name)
    if data is None:
        return False
    info.type = tarfile.REGTYPE
    info.mode = 0o644
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return True
