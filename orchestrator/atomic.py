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
    import tempfile  # here, not at the top: a no-op command writes nothing (5 ms of start-up)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644  # mkstemp's 0600 would hide a shared cache entry from others
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """UTF-8 text with LF line ends, written atomically."""
    write_bytes(path, text.encode("utf-8"))
