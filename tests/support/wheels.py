"""Build small, real wheels (and sdists) in a temporary directory for tests."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from orchestrator.names import normalize


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def metadata_text(
    name: str,
    version: str,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    extras: Iterable[str] = (),
    extra_headers: Iterable[str] = (),
) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *extra_headers]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Provides-Extra: {extra}" for extra in extras)
    lines.extend(f"Requires-Dist: {req}" for req in requires_dist)
    return "\n".join(lines) + "\n\n"


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    extras: Iterable[str] = (),
    tag: str = "py3-none-any",
    files: Mapping[str, str | bytes] | None = None,
    console_scripts: Mapping[str, str] | None = None,
    extra_metadata: Iterable[str] = (),
) -> Path:
    """Write ``name-version-tag.whl`` into *directory* and return its path.

    Without *files*, the wheel holds one module ``<name>/__init__.py`` that
    defines ``__version__``.
    """
    dist = name.replace("-", "_").replace(".", "_")
    dist_info = f"{dist}-{version}.dist-info"
    if files is None:
        files = {f"{dist}/__init__.py": f'__version__ = "{version}"\n'}
    entries: dict[str, bytes] = {
        path: content.encode() if isinstance(content, str) else content
        for path, content in files.items()
    }
    entries[f"{dist_info}/METADATA"] = metadata_text(
        name, version, requires_dist, requires_python, extras, extra_metadata
    ).encode()
    entries[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n\n"
    ).encode()
    if console_scripts:
        body = "[console_scripts]\n" + "".join(
            f"{script} = {target}\n" for script, target in console_scripts.items()
        )
        entries[f"{dist_info}/entry_points.txt"] = body.encode()
    record = io.StringIO()  # CSV, as the wheel spec says: a path may hold a comma
    rows = [(path, _record_hash(data), len(data)) for path, data in entries.items()]
    csv.writer(record, lineterminator="\n").writerows([*rows, (f"{dist_info}/RECORD", "", "")])
    entries[f"{dist_info}/RECORD"] = record.getvalue().encode()

    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in entries.items():
            info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return wheel


def build_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
) -> Path:
    """Write a minimal setuptools-free sdist using flit_core as its backend.

    The backend must be installable from the index the build uses.
    """
    dist = normalize(name).replace("-", "_")
    root = f"{dist}-{version}"
    deps = ", ".join(f'"{req}"' for req in requires_dist)
    rp = f'requires-python = "{requires_python}"\n' if requires_python else ""
    pyproject = (
        '[build-system]\nrequires = ["flit_core>=3.2,<4"]\n'
        'build-backend = "flit_core.buildapi"\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n'
        f'description = "test package"\ndependencies = [{deps}]\n{rp}'
    )
    members = {
        f"{root}/pyproject.toml": pyproject.encode(),
        f"{root}/{dist}/__init__.py": f'"""{name}."""\n__version__ = "{version}"\n'.encode(),
        f"{root}/PKG-INFO": metadata_text(name, version, requires_dist, requires_python).encode(),
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for arcname, data in members.items():
            info = tarfile.TarInfo(arcname)
            info.size = len(data)
            info.mtime = 1577836800
            tf.addfile(info, io.BytesIO(data))
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
