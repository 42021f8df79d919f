"""Archives as the packaging formats use them: safe member names, extraction, METADATA.

This sits below every stage that opens a wheel (the index reads METADATA out
of one, build reads the one it built, the installer unpacks them), so each
asks the same questions the same way. It also holds the one test for "this
path stays inside that directory", used wherever a path from an archive, a
RECORD or an index is joined to a directory: ``within``.

zipfile is imported where used (it is several milliseconds of imports that a
warm sync never needs).
"""

from __future__ import annotations

import functools
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from orchestrator.errors import VenvError
from orchestrator.names import normalize

if TYPE_CHECKING:
    import zipfile

_METADATA = re.compile(r"[^/]+\.dist-info/METADATA")


def within(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether *path* lies strictly below *root*, compared lexically.

    ``..`` is resolved, symlinks are not: callers pass resolved paths where
    a link could lead out. *root* itself is not below itself.
    """
    return os.path.normpath(path).startswith(_prefix(os.fspath(root)))


@functools.lru_cache(maxsize=256)
def _prefix(root: str) -> str:
    # Cached: an install checks every destination against the same root.
    return os.path.join(os.path.normpath(root), "")


def check_archive_path(name: str, archive: Path) -> PurePosixPath:
    """The member path, or VenvError when it could write outside its destination."""
    path = PurePosixPath(name)
    bad = (
        not name
        or "\\" in name
        or "\0" in name
        or path.is_absolute()
        or ".." in path.parts
        or (path.parts and ":" in path.parts[0])  # a Windows drive: C:evil
    )
    if bad:
        raise VenvError(
            f"{archive.name}: unsafe path {name!r} in the archive (absolute or leaving "
            "the install directory); refusing to install it",
            hint="the file is malformed or malicious; remove it from the lock or the index",
        )
    return path


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """How much an archive may unpack to: generous, but finite (a zip bomb is refused).

    ``ORCHESTRATOR_UNPACK_MAX_BYTES``, ``ORCHESTRATOR_UNPACK_MAX_RATIO`` and
    ``ORCHESTRATOR_METADATA_MAX_BYTES`` override the defaults.
    """

    total_bytes: int = 4 << 30  # 4 GiB decompressed per archive
    ratio: int = 200  # decompressed : compressed, for the archive as a whole
    metadata_bytes: int = 10 << 20  # 10 MiB of METADATA

    @classmethod
    def from_env(cls) -> ArchiveLimits:
        default = cls()
        return cls(
            total_bytes=_env_int("ORCHESTRATOR_UNPACK_MAX_BYTES", default.total_bytes),
            ratio=_env_int("ORCHESTRATOR_UNPACK_MAX_RATIO", default.ratio),
            metadata_bytes=_env_int("ORCHESTRATOR_METADATA_MAX_BYTES", default.metadata_bytes),
        )


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise VenvError(
            f"{name}={text!r} is not a positive whole number",
            hint=f"set {name} to a number such as {default}, or unset it",
            key=name,
        )
    return value


_BAD_ARCHIVE = "the file is malformed or malicious; remove it from the lock or the index"


def check_archive_infos(
    infos: Sequence[zipfile.ZipInfo], archive: Path, limits: ArchiveLimits | None = None
) -> None:
    """Refuse symlink members and archives that would decompress past *limits*.

    Wheels carry no symlinks (the spec has no way to record one), so a
    symlink member is only ever an attempt to write through it. The sizes
    checked are the ones the archive declares; ``extract`` holds every member
    to its declared size and the limits to the bytes it actually decompresses,
    so a directory lying about a size cannot get past.
    """
    limits = limits or ArchiveLimits.from_env()
    total = compressed = 0
    for info in infos:
        if stat.S_ISLNK(info.external_attr >> 16):
            raise VenvError(
                f"{archive.name}: {info.filename!r} is a symbolic link; wheels carry no "
                "links, refusing to install it",
                hint=_BAD_ARCHIVE, file=archive,
            )
        if _METADATA.fullmatch(info.filename) and info.file_size > limits.metadata_bytes:
            raise VenvError(
                f"{archive.name}: {info.filename} is {info.file_size} bytes, over the "
                f"{limits.metadata_bytes}-byte limit for METADATA; refusing to read it",
                hint="raise ORCHESTRATOR_METADATA_MAX_BYTES if the file is genuine; "
                + _BAD_ARCHIVE, file=archive,
            )
        total += info.file_size
        compressed += info.compress_size
    if total > limits.total_bytes:
        raise VenvError(
            f"{archive.name} would unpack to {total} bytes, over the {limits.total_bytes}-byte "
            "limit; refusing to unpack it",
            hint="raise ORCHESTRATOR_UNPACK_MAX_BYTES if the file is genuine; " + _BAD_ARCHIVE,
            file=archive,
        )
    if total > 1 << 20 and total > limits.ratio * max(compressed, 1):
        raise VenvError(
            f"{archive.name} would unpack to {total} bytes from {compressed} compressed "
            f"(more than {limits.ratio}:1, a zip bomb); refusing to unpack it",
            hint="raise ORCHESTRATOR_UNPACK_MAX_RATIO if the file is genuine; " + _BAD_ARCHIVE,
            file=archive,
        )


class _Budget:
    """The limits of ``check_archive_infos`` held against the bytes actually decompressed.

    The archive's directory may lie about a member's size: each member is read
    to the end of its compressed data, whatever size it declares, one chunk at
    a time, so a lie is seen (and refused) rather than cut short where the
    directory says the member ends.
    """

    __slots__ = ("archive", "compressed", "limits", "total")

    def __init__(self, archive: Path, limits: ArchiveLimits, compressed: int) -> None:
        self.archive = archive
        self.limits = limits
        self.compressed = max(compressed, 1)  # read exactly: zipfile stops at compress_size
        self.total = 0

    def copy(self, src: IO[bytes], out: IO[bytes], info: zipfile.ZipInfo) -> None:
        """Copy one member, refusing it once it passes its declared size or a limit."""
        name, archive, limits = info.filename, self.archive, self.limits
        copied = 0
        while chunk := src.read(1 << 20):
            copied += len(chunk)
            self.total += len(chunk)
            if self.total > limits.total_bytes:
                raise VenvError(
                    f"{archive.name}: {name} takes the archive past the {limits.total_bytes}-"
                    "byte unpacking limit as it decompresses (its directory declares "
                    f"{info.file_size} bytes for it); refusing to unpack it",
                    hint="raise ORCHESTRATOR_UNPACK_MAX_BYTES if the file is genuine; "
                    + _BAD_ARCHIVE, file=archive, key=name,
                )
            if self.total > 1 << 20 and self.total > limits.ratio * self.compressed:
                raise VenvError(
                    f"{archive.name}: {name} takes the archive past {limits.ratio}:1 as it "
                    f"decompresses ({self.total} bytes from {self.compressed} compressed; its "
                    f"directory declares {info.file_size} bytes for it), a zip bomb; refusing "
                    "to unpack it",
                    hint="raise ORCHESTRATOR_UNPACK_MAX_RATIO if the file is genuine; "
                    + _BAD_ARCHIVE, file=archive, key=name,
                )
            if copied > info.file_size:
                raise VenvError(
                    f"{archive.name}: {name} decompresses past the {info.file_size} bytes "
                    "the archive's directory declares for it; refusing to unpack it",
                    hint=_BAD_ARCHIVE, file=archive, key=name,
                )
            out.write(chunk)

    @staticmethod
    def probe(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
        """*info* with a size zipfile never reaches, so ``copy`` sees where the data ends.

        zipfile would stop at the declared size (and fail the CRC there); the
        compressed size still bounds what is read, and ``copy`` what is kept.
        """
        import copy

        unbounded = copy.copy(info)
        unbounded.file_size = 1 << 62
        return unbounded


def extract(archive: Path, dest: Path, *, reserved: str | None = None) -> list[str]:
    """Extract the zip *archive* into the empty directory *dest*, rejecting unsafe paths.

    Every name is checked before anything is written, so a malicious archive
    leaves nothing behind but *dest* itself; so is *reserved*, a top-level
    directory the caller keeps for itself, and so are the limits of
    ``check_archive_infos`` (no symlinks, no zip bombs). Returns the files'
    paths, relative to *dest* with ``/`` separators.
    """
    import zipfile
    import zlib

    limits = ArchiveLimits.from_env()
    with zipfile.ZipFile(archive) as zf:
        check_archive_infos(zf.infolist(), archive, limits)
        infos = [info for info in zf.infolist() if not info.is_dir()]
        paths = [check_archive_path(info.filename, archive) for info in infos]
        if reserved is not None and any(p.parts[0] == reserved for p in paths):
            raise VenvError(
                f"{archive.name}: the archive holds {reserved}/, a directory orchestrator "
                "keeps for itself; refusing to install it",
                hint=_BAD_ARCHIVE,
            )
        _check_no_clash(paths, archive)
        made: set[Path] = set()
        budget = _Budget(archive, limits, sum(info.compress_size for info in infos))
        for info, rel in zip(infos, paths, strict=True):
            target = dest.joinpath(*rel.parts)
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            # O_EXCL: a name listed twice is never written through
            try:
                with zf.open(budget.probe(info)) as src, open(target, "xb") as out:
                    budget.copy(src, out, info)
            except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise VenvError(
                    f"{archive.name}: {info.filename} is corrupt ({exc}); refusing to unpack it",
                    hint=_BAD_ARCHIVE, file=archive, key=info.filename,
                ) from exc
            # The wheel spec asks installers to keep the executable bit set in the archive.
            if (info.external_attr >> 16) & 0o111:
                target.chmod(0o755)
    return [p.as_posix() for p in paths]


def _check_no_clash(paths: Sequence[PurePosixPath], archive: Path) -> None:
    """Refuse a name listed twice, or a file that is also another member's directory."""
    seen: set[str] = set()
    twice: set[str] = set()
    for path in paths:  # one pass: files.count() per name was quadratic (3 s at 20,000 files)
        name = path.as_posix()
        (twice if name in seen else seen).add(name)
    dirs = {parent.as_posix() for p in paths for parent in p.parents}
    clash = sorted((seen & dirs) | twice)
    if clash:
        raise VenvError(
            f"{archive.name}: {clash[0]!r} is listed twice, or as both a file and a "
            "directory; refusing to install it",
            hint=_BAD_ARCHIVE, file=archive,
        )


def metadata_member(names: Iterable[str], filename: str) -> str | None:
    """The wheel's top-level ``*.dist-info/METADATA`` among *names*, None unless exactly one.

    A wheel holding several dist-infos is read by the one named like the
    wheel's file (*filename*).
    """
    found = [n for n in names if _METADATA.fullmatch(n)]
    if len(found) > 1:
        project = normalize(filename.split("-", 1)[0])
        found = [n for n in found if normalize(n.split("-", 1)[0]) == project]
    return found[0] if len(found) == 1 else None


def read_metadata(wheel: Path | IO[bytes], filename: str) -> bytes | None:
    """The METADATA file of a local wheel (a path or an open file), None if it has none.

    Raises ``zipfile.BadZipFile`` or OSError when *wheel* cannot be read as a
    zip. Parse the bytes with ``models.CoreMetadata.parse``.
    """
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        name = metadata_member(zf.namelist(), filename)
        if name is None:
            return None
        limit = ArchiveLimits.from_env().metadata_bytes
        if zf.getinfo(name).file_size > limit:
            raise VenvError(
                f"{filename}: {name} is {zf.getinfo(name).file_size} bytes, over the "
                f"{limit}-byte limit for METADATA; refusing to read it",
                hint="raise ORCHESTRATOR_METADATA_MAX_BYTES if the file is genuine; "
                + _BAD_ARCHIVE, file=Path(filename),
            )
        with zf.open(name) as src:
            data = src.read(limit + 1)
        if len(data) > limit:
            raise VenvError(
                f"{filename}: {name} decompresses past the {limit}-byte limit for "
                "METADATA; refusing to read it", hint=_BAD_ARCHIVE, file=Path(filename),
            )
        return data
