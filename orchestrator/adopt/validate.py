"""A ``[project]`` table checked as the core metadata a backend would write from it.

packaging has no reader for pyproject.toml itself, so the table is mapped to
``RawMetadata`` the way PEP 621 says backends do (description -> Summary,
optional-dependencies -> Requires-Dist with ``extra == ...``, authors ->
Author/Author-email, ...) and ``Metadata.from_raw(validate=True)`` judges every
field. ``init`` runs this on each converted file before writing anything: a
conversion that would not build is an error then, not at the first ``build``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

from orchestrator.errors import WorkspaceError

if TYPE_CHECKING:
    from packaging.metadata import Metadata, RawMetadata


def project_metadata(project: Mapping[str, object], label: str = "pyproject.toml") -> Metadata:
    """The core metadata *project* stands for; WorkspaceError naming the first bad field."""
    from packaging.metadata import Metadata

    raw = raw_metadata(project)
    try:
        return Metadata.from_raw(raw, validate=True)
    except ExceptionGroup as group:
        first = group.exceptions[0]
        raise WorkspaceError(f"{label}: [project] is not valid core metadata ({first})",
                             hint="fix that field of [project]", key="project") from group


def raw_metadata(project: Mapping[str, object]) -> RawMetadata:
    """*project* as PEP 621 maps it to core metadata (the fields packaging can check)."""
    dynamic = _strings(project.get("dynamic"))
    raw: dict[str, object] = {
        "metadata_version": "2.4",
        "name": str(project.get("name", "")),
        # a dynamic version is the backend's to supply; any valid one stands in for it
        "version": str(project.get("version") or ("0" if "version" in dynamic else "")),
    }
    for key, field in (("description", "summary"), ("requires-python", "requires_python")):
        if isinstance(project.get(key), str):
            raw[field] = project[key]
    for key in ("keywords", "classifiers"):
        if project.get(key):
            raw[key] = _strings(project[key])
    license_ = project.get("license")
    if isinstance(license_, str):
        raw["license_expression"] = license_
    elif isinstance(license_, Mapping) and isinstance(license_.get("text"), str):
        raw["license"] = license_["text"]
    _people(raw, project.get("authors"), "author")
    _people(raw, project.get("maintainers"), "maintainer")
    urls = project.get("urls")
    if isinstance(urls, Mapping):
        raw["project_urls"] = {str(k): str(v) for k, v in urls.items()}
    requires = list(_strings(project.get("dependencies")))
    extras = project.get("optional-dependencies")
    if isinstance(extras, Mapping):
        raw["provides_extra"] = list(extras)
        for extra, items in extras.items():
            requires += [_with_extra(item, str(extra)) for item in _strings(items)]
    if requires:
        raw["requires_dist"] = requires
    return cast("RawMetadata", raw)


def _people(raw: dict[str, object], value: object, field: str) -> None:
    if not isinstance(value, list):
        return
    names = [str(p["name"]) for p in value if isinstance(p, Mapping) and "name" in p
             and "email" not in p]
    emails = [f"{p['name']} <{p['email']}>" if "name" in p else str(p["email"])
              for p in value if isinstance(p, Mapping) and "email" in p]
    if names:
        raw[field] = ", ".join(names)
    if emails:
        raw[f"{field}_email"] = ", ".join(emails)


def _with_extra(requirement: str, extra: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return requirement  # from_raw reports it, with the field it is in
    marker = f'extra == "{extra}"'
    if req.marker is not None:
        marker = f"({req.marker}) and {marker}"
    base = requirement.split(";", 1)[0].strip()
    return f"{base}; {marker}"


def _strings(value: object) -> Sequence[str]:
    if not isinstance(value, list):
        return []
    return [str(v) for v in value]
