"""Writes that are never seen half-done: a temporary sibling file, then a rename.

Every file orchestrator changes for a user (locks, pyproject.toml edits,
workspace.yaml) or shares between processes (cache entries) goes through here.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_bytes(path: Path, data: bytes) -> None:
    """Replace *path* with *data* atomically, keeping its permissions if it exists.

    An OSError names *path*, not the temporary file: that is the one the user knows.
    """
    try:
        _write_bytes(path, data)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_sibling(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644  # the temporary file's 0600 would hide a shared cache entry from others
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# O_NOFOLLOW and O_CLOEXEC where the system has them (Windows has neither), as mkstemp does
_TEMP_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
_TEMP_ATTEMPTS = 100


def _create_sibling(path: Path) -> tuple[int, str]:
    """A new file ``.<name>.<random>.tmp`` beside *path*, opened for writing, mode 0600.

    What ``tempfile.mkstemp`` does (O_EXCL, no symlink followed, a new name on a
    collision), without importing tempfile: its imports (shutil, random and the
    compressors) cost a lock or a sync about 2 ms of start-up.
    """
    for _attempt in range(_TEMP_ATTEMPTS):
        name = str(path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(name, _TEMP_FLAGS, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def write_text(path: Path, text: str) -> None:
    """UTF-8 text with LF line ends, written atomically."""
    write_bytes(path, text.encode("utf-8"))
