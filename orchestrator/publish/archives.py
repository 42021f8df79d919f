"""Deterministic archives: an sdist and a wheel re-packed so the same sources give the same bytes.

Backends differ in how reproducible their archives are (hatchling and flit
honour SOURCE_DATE_EPOCH, older setuptools writes the build time, gzip
headers carry a time and a file name, tar headers the builder's user). So
every archive a release builds is re-packed here, the file contents
untouched:

- sdist (``.tar.gz``): entries sorted by name, mtime SOURCE_DATE_EPOCH,
  uid/gid 0 without user and group names, modes 0644 (0755 for directories
  and executables), pax format; gzip level 9 with mtime 0 and no file name;
- wheel (``.whl``): entries sorted by name with the ``.dist-info`` directory
  last and its RECORD the very last entry (the order the wheel spec
  recommends), every date_time from SOURCE_DATE_EPOCH (clamped to 1980,
  the first date zip can store), the same fixed modes, deflate level 9.
  RECORD hashes file contents only, so it stays valid unchanged.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import time
import zipfile
from pathlib import Path

from orchestrator.atomic import write_bytes
from orchestrator.errors import BuildError

_ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z: zip stores no earlier date


def _mode(executable: bool) -> int:
    return 0o755 if executable else 0o644


def repack_sdist(path: Path, epoch: int) -> None:
    """Rewrite the ``.tar.gz`` at *path* deterministically (module docstring)."""
    entries: list[tuple[tarfile.TarInfo, bytes]] = []
    try:
        with tarfile.open(path, "r:gz") as tf:
            for info in tf.getmembers():
                if not (info.isfile() or info.isdir()):
                    raise BuildError(
                        f"{path.name}: the sdist holds {info.name!r}, which is neither a "
                        "file nor a directory",
                        hint="remove links and special files from the package's sources")
                handle = tf.extractfile(info) if info.isfile() else None
                entries.append((info, handle.read() if handle is not None else b""))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BuildError(f"{path.name}: cannot read the sdist the backend built: {exc}",
                         hint="the package's build backend is broken") from exc
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as out:
        for info, data in sorted(entries, key=lambda entry: entry[0].name):
            fixed = tarfile.TarInfo(info.name)
            fixed.type = info.type
            fixed.mtime = epoch
            fixed.uid = fixed.gid = 0
            fixed.uname = fixed.gname = ""
            fixed.mode = _mode(info.isdir() or bool(info.mode & 0o100))
            fixed.size = len(data) if info.isfile() else 0
            out.addfile(fixed, io.BytesIO(data) if info.isfile() else None)
    packed = io.BytesIO()
    # filename="" leaves the FNAME field out; mtime=0 fixes the header's time.
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, compresslevel=9,
                       mtime=0) as gz:
        gz.write(raw.getvalue())
    write_bytes(path, packed.getvalue())


def _wheel_order(name: str) -> tuple[int, str]:
    top = name.split("/", 1)[0]
    if top.endswith(".dist-info"):
        return (2 if name == f"{top}/RECORD" else 1, name)
    return (0, name)


def repack_wheel(path: Path, epoch: int) -> None:
    """Rewrite the wheel at *path* deterministically (module docstring)."""
    date_time = time.gmtime(max(epoch, _ZIP_EPOCH))[:6]
    try:
        with zipfile.ZipFile(path) as zf:
            entries = [(info, zf.read(info)) for info in zf.infolist()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise BuildError(f"{path.name}: cannot read the wheel the backend built: {exc}",
                         hint="the package's build backend is broken") from exc
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as out:
        for info, data in sorted(entries, key=lambda entry: _wheel_order(entry[0].filename)):
            fixed = zipfile.ZipInfo(info.filename, date_time=date_time)
            fixed.create_system = 3  # Unix, so external_attr holds the mode
            directory = info.is_dir()
            mode = _mode(directory or bool((info.external_attr >> 16) & 0o100))
            fixed.external_attr = ((0o040000 if directory else 0o100000) | mode) << 16
            fixed.compress_type = zipfile.ZIP_STORED if directory else zipfile.ZIP_DEFLATED
            out.writestr(fixed, data, compresslevel=9)
    write_bytes(path, packed.getvalue())
