"""What ``twine check`` asks of a distribution, asked before anything is uploaded.

For each sdist and wheel: its core metadata parses and validates
(``packaging.metadata``: a known Metadata-Version, a valid name, version
and requirement strings), the file name matches the Name and Version inside,
no Requires-Dist is a direct reference (indexes reject them, and a path
would leak the build machine's layout) or an unconstrained workspace member,
and the long description renders the way PyPI renders it:

- ``text/plain`` and ``text/markdown`` always render (PyPI shows any
  markdown), so they pass;
- ``text/x-rst`` (also what a missing content type means, as twine assumes)
  is rendered with readme_renderer when it is importable; without it the
  result says the description was not checked instead of passing silently;
- any other content type is an error (packaging's validation says so), as PyPI
  refuses the upload.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from orchestrator.names import normalize


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on one distribution file; *errors* block its upload."""

    file: str
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    description: str  # how the long description fared, for people

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "ok": self.ok, "errors": list(self.errors),
                "warnings": list(self.warnings), "description": self.description}


def read_core_metadata(path: Path) -> bytes | None:
    """The METADATA of a wheel or the top-level PKG-INFO of an sdist, None if absent."""
    import tarfile

    from orchestrator.wheelfile import read_metadata

    if path.name.endswith(".whl"):
        return read_metadata(path, path.name)
    with tarfile.open(path, "r:gz") as tf:
        for info in tf.getmembers():
            parts = info.name.split("/")
            if len(parts) == 2 and parts[1] == "PKG-INFO" and info.isfile():
                handle = tf.extractfile(info)
                return handle.read() if handle is not None else None
    return None


def check_file(path: Path, members: Collection[str] = ()) -> CheckResult:
    """Check the sdist or wheel at *path*; *members* are the workspace's member names."""
    from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata

    data = read_core_metadata(path)
    kind = "METADATA" if path.name.endswith(".whl") else "PKG-INFO"
    if data is None:
        return CheckResult(path.name, (f"{path.name} holds no {kind} file",), (), "not checked")
    try:
        meta = Metadata.from_email(data, validate=True)
    except (ExceptionGroup, InvalidMetadata) as exc:
        found = exc.exceptions if isinstance(exc, ExceptionGroup) else (exc,)
        problems = tuple(f"{kind}: {problem}" for problem in found)
        return CheckResult(path.name, problems, (), "not checked")
    errors = [*_name_errors(path, meta.name, str(meta.version)),
              *_requirement_errors(kind, [str(r) for r in meta.requires_dist or ()], members)]
    warnings: list[str] = []
    verdict = _description(meta.description, meta.description_content_type, errors, warnings)
    return CheckResult(path.name, tuple(errors), tuple(warnings), verdict)


def _name_errors(path: Path, name: str, version: str) -> list[str]:
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        if path.name.endswith(".whl"):
            file_name, file_version = parse_wheel_filename(path.name)[:2]
        else:
            file_name, file_version = parse_sdist_filename(path.name)
    except (InvalidSdistFilename, InvalidWheelFilename) as exc:
        return [f"the file name is not a valid distribution file name ({exc})"]
    if file_name != normalize(name) or str(file_version) != version:
        return [f"the file name says {file_name} {file_version}, its metadata {name} {version}"]
    return []


def _requirement_errors(kind: str, requirements: list[str],
                        members: Collection[str]) -> list[str]:
    from packaging.requirements import Requirement

    errors: list[str] = []
    for text in requirements:
        req = Requirement(text)
        if req.url is not None:
            errors.append(f"{kind}: Requires-Dist {text!r} is a direct reference; package "
                          "indexes reject them")
        elif normalize(req.name) in members and not str(req.specifier):
            errors.append(f"{kind}: Requires-Dist {text!r} names a workspace member without "
                          "a version range")
    return errors


def _description(text: str | None, content_type: str | None, errors: list[str],
                 warnings: list[str]) -> str:
    """How the long description fares; *content_type* is one packaging validated."""
    if not text or not text.strip():
        warnings.append("no long description (readme) is declared")
        return "not declared"
    if content_type is None:
        warnings.append("no Description-Content-Type; read as reStructuredText, as PyPI does")
    mime = (content_type or "text/x-rst").split(";", 1)[0].strip().lower()
    if mime in ("text/plain", "text/markdown"):
        return f"renders ({mime})"
    try:
        from readme_renderer import rst  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return "not checked: reStructuredText needs readme_renderer, which is not installed"
    stream = io.StringIO()
    if rst.render(text, stream=stream) is None:
        detail = stream.getvalue().strip().splitlines()
        errors.append("the long description is not valid reStructuredText and would not "
                      "render on PyPI" + (f": {detail[0]}" if detail else ""))
        return "does not render (text/x-rst)"
    return "renders (text/x-rst)"
