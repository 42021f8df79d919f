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
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO

from orchestrator.errors import VenvError
from orchestrator.names import normalize

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


def extract(archive: Path, dest: Path, *, reserved: str | None = None) -> list[str]:
    """Extract the zip *archive* into the empty directory *dest*, rejecting unsafe paths.

    Every name is checked before anything is written, so a malicious archive
    leaves nothing behind but *dest* itself; so is *reserved*, a top-level
    directory the caller keeps for itself. Returns the files' paths,
    relative to *dest* with ``/`` separators.
    """
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        infos = [info for info in zf.infolist() if not info.is_dir()]
        paths = [check_archive_path(info.filename, archive) for info in infos]
        if reserved is not None and any(p.parts[0] == reserved for p in paths):
            raise VenvError(
                f"{archive.name}: the archive holds {reserved}/, a directory orchestrator "
                "keeps for itself; refusing to install it",
                hint="the file is malformed or malicious; remove it from the lock or the index",
            )
        made: set[Path] = set()
        for info, rel in zip(infos, paths, strict=True):
            target = dest.joinpath(*rel.parts)
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            # The wheel spec asks installers to keep the executable bit set in the archive.
            if (info.external_attr >> 16) & 0o111:
                target.chmod(0o755)
    return [p.as_posix() for p in paths]


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
        return None if name is None else zf.read(name)
