"""Core metadata: parsing it, checking it against its wheel, its on-disk cache form."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from packaging.utils import InvalidWheelFilename, canonicalize_version, parse_wheel_filename

from orchestrator.errors import PackageIndexError
from orchestrator.models import CoreMetadata, DistFile, LicenseFields
from orchestrator.names import normalize


def parse_core_metadata(data: bytes, source: str) -> CoreMetadata:
    """The resolver's view of a METADATA/PKG-INFO file; *source* names it in errors."""
    meta = CoreMetadata.parse(data)
    if meta is None:
        raise PackageIndexError(
            f"the core metadata of {source} has no Name or Version field",
            hint="the distribution is malformed; pin another version of it",
        )
    return meta


def check_metadata_matches(meta: CoreMetadata, file: DistFile) -> None:
    """Guard against an index serving another release's metadata for a wheel."""
    try:
        name, version, _build, _tags = parse_wheel_filename(file.filename)
    except InvalidWheelFilename:
        return
    same_version = canonicalize_version(meta.version) == canonicalize_version(version)
    if normalize(meta.name) != name or not same_version:
        actual = f"{meta.name} {meta.version}"
        raise PackageIndexError(
            f"the metadata served for {file.filename} (index '{file.index}') describes "
            f"{actual}, not the wheel's project and version",
            hint="the index is serving inconsistent files; report it to its maintainers",
            package=name,
            index=file.index,
            expected=f"{name} {version}",
            actual=actual,
        )


def metadata_to_json(meta: CoreMetadata) -> bytes:
    return json.dumps(asdict(meta), sort_keys=True).encode()


def metadata_from_json(raw: bytes) -> CoreMetadata | None:
    try:
        data = json.loads(raw)
        return CoreMetadata(
            name=str(data["name"]),
            version=str(data["version"]),
            requires_dist=tuple(str(r) for r in data["requires_dist"]),
            requires_python=data["requires_python"],
            provides_extra=tuple(str(e) for e in data["provides_extra"]),
            license=_license_from_json(data.get("license")),
        )
    except (ValueError, KeyError, TypeError):
        return None  # corrupt entry: fetch again


def _license_from_json(data: object) -> LicenseFields | None:
    """None for an entry cached before licenses were recorded (``licenses`` fetches again)."""
    if not isinstance(data, dict):
        return None
    expression, text = data.get("expression"), data.get("text")
    return LicenseFields(
        expression=expression if isinstance(expression, str) else None,
        text=text if isinstance(text, str) else None,
        classifiers=tuple(str(c) for c in data.get("classifiers") or ()),
    )


def file_key(file: DistFile) -> str:
    """Cache key of an immutable file: its sha256, else a digest of its URL."""
    if file.sha256:
        return f"sha256-{file.sha256}"
    return "url-" + hashlib.sha256(file.url.encode()).hexdigest()
