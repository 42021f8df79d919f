"""Deterministic layer tars: a venv at /opt/venv, and wheels installed into it.

A layer is staged as a real directory tree (``<staging>/opt/venv/...``) by the
project's own installer (RECORD, entry-point scripts with
``#!/opt/venv/bin/python``, ``.data`` schemes), then written as a tar whose
bytes depend only on that tree: entries sorted by path, one fixed mtime
(``SOURCE_DATE_EPOCH`` when set, else 0), uid/gid 0 with no user or
group names, modes reduced to 0644/0755, hardlinks written as plain files, PAX
headers only where a name needs them. The gzip stream has mtime 0 and no file
name, so the same tree gives the same blob digest on every machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from orchestrator.image import VENV

if TYPE_CHECKING:
    from orchestrator.cache import WheelCache
    from orchestrator.image import Layer

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
COMPRESSIONS = ("gzip", "zstd")
ZSTD_LEVEL = 3  # zstd's default: faster than gzip -3 and smaller than gzip -6
_CHUNK = 1024 * 1024
SMALL_TREE = 64  # .py files below which one process compiles a layer's bytecode
# zlib level 3: twice as fast as the default 6 on big wheels' trees, ~8% larger blobs.
GZIP_LEVEL = 3


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
                 compile_pyc: bool = False) -> None:
    """Install *layer*'s wheels under *root* as they will sit in ``/opt/venv``.

    Files are hardlinked from the cache's unpacked trees (only read, then
    tarred); the shebangs and RECORD paths name ``/opt/venv``, not *root*.
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
    if compile_pyc:
        compile_bytecode(root, lib)


def can_compile(python: Interpreter) -> bool:
    """Bytecode is only valid for one minor version: compile when the host's is the target's."""
    return "{}.{}".format(*sys.version_info[:2]) == python.minor


def compile_bytecode(root: Path, directory: Path) -> None:
    """Unchecked-hash pycs for *directory*, as paths under ``/``, in a fresh interpreter.

    Unchecked-hash pycs hold no mtime, and a fresh process keeps marshal's
    output free of whatever this one has interned, so the bytes are the same
    on every machine with the same CPython.
    """
    import itertools
    import subprocess

    # A pool of workers pays off for big trees; a small layer (a member wheel) is
    # compiled by the one process, which starts in a fraction of the time.
    # A file that does not compile (a template, a py2 test) is left without a pyc, as pip
    # does: the exit status says only that some file failed.
    many = sum(1 for _ in itertools.islice(directory.rglob("*.py"), SMALL_TREE)) >= SMALL_TREE
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0" if many else "1",
         "--invalidation-mode",
         "unchecked-hash", "-s", str(root), "-p", "/", str(directory)],
        capture_output=True, check=False)


# -- writing -------------------------------------------------------------------


def _entries(root: Path) -> Iterator[tuple[str, Path]]:
    """(archive name, path) for every entry below *root*, parents first, sorted by name."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            found.append((path.relative_to(root).as_posix(), path))
    # Sorting the names as a whole puts every directory before its contents.
    yield from sorted(found)


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

    def __init__(self, out: BinaryIO | None) -> None:
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
              compression: str = "gzip") -> Blob:
    """Write the tree at *root* to *out* as a deterministic tar, gzipped or zstd-compressed."""
    stored = _Hashing(out)
    packer: BinaryIO | None = None
    if compress and compression == "zstd":
        compressor = zstd_compressor()
        packer = compressor.stream_writer(stored, closefd=False)  # type: ignore[attr-defined]
    elif compress:
        packer = gzip.GzipFile(filename="", mode="wb", fileobj=stored, mtime=0,  # type: ignore[assignment]
                               compresslevel=GZIP_LEVEL)
    plain = _Hashing(packer if packer is not None else out)
    with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, path in _entries(root):
            info, regular = _tarinfo(name, path, mtime)
            if regular:
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    if packer is not None:
        packer.close()
        return Blob(f"sha256:{stored.sha.hexdigest()}", stored.size,
                    f"sha256:{plain.sha.hexdigest()}",
                    LAYER_ZSTD if compression == "zstd" else LAYER_GZIP)
    digest = f"sha256:{plain.sha.hexdigest()}"
    return Blob(digest, plain.size, digest, LAYER_TAR)
