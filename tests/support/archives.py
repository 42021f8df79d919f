"""The files inside a built sdist or wheel, by archive name, for tests that compare them."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path


def archive_files(path: Path) -> dict[str, bytes]:
    """Every regular file of an sdist (``.tar.gz``) or a wheel (``.whl``), by archive name."""
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            return {info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()}
    out: dict[str, bytes] = {}
    with tarfile.open(path, "r:gz") as tf:
        for info in tf.getmembers():
            handle = tf.extractfile(info) if info.isfile() else None
            if handle is not None:
                out[info.name] = handle.read()
    return out
