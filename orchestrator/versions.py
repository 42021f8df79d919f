"""A member's effective version: static in its pyproject.toml, or what its backend reports.

``Member.version`` is the static ``[project].version`` (None when the
version is dynamic). Every place that shows or ships a member's version
(`list`, `version`, editable installs, image tags and labels) asks
``member_version`` instead: a static version costs nothing (no build, no
import of the build machinery), a dynamic one is asked of the member's own
PEP 517 backend once per source state (``build.MemberBuilder.metadata``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from orchestrator.errors import WorkspaceError
from orchestrator.models import Member

if TYPE_CHECKING:
    from orchestrator.session import Session


def member_version(session: Session, member: Member) -> str | None:
    """The version *member* is built with; None when it has neither a static nor a dynamic one."""
    if not member.dynamic_version:
        return member.version
    return session.member_builder.metadata(member.path).version


def version_source(member: Member) -> str:
    """Where a dynamic version comes from, as its pyproject.toml configures it."""
    try:
        data = tomllib.loads(member.pyproject.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        data = {}
    tool = _table(data.get("tool"))
    backend = str(_table(data.get("build-system")).get("build-backend", ""))
    hatch = _table(_table(tool.get("hatch")).get("version"))
    if "path" in hatch:
        return f"[tool.hatch.version] path = {_quoted(hatch['path'])}"
    if hatch.get("source") == "vcs":
        return "git tags, through hatch-vcs ([tool.hatch.version] source = \"vcs\")"
    setuptools = _table(_table(_table(tool.get("setuptools")).get("dynamic")).get("version"))
    for kind in ("attr", "file"):
        if kind in setuptools:
            return (f"[tool.setuptools.dynamic] version = {{{kind} = "
                    f"{_quoted(setuptools[kind])}}}")
    if "setuptools_scm" in tool or "setuptools-scm" in tool:
        return "git tags, through setuptools-scm ([tool.setuptools_scm])"
    if "poetry-dynamic-versioning" in tool:
        return "git tags, through poetry-dynamic-versioning ([tool.poetry-dynamic-versioning])"
    pdm = _table(_table(tool.get("pdm")).get("version"))
    if "source" in pdm:
        return f"[tool.pdm.version] source = {_quoted(pdm['source'])}"
    if backend.startswith("flit_core"):
        return "the module's __version__ (flit)"
    return f"its build backend ({backend or 'setuptools'})"


def cannot_bump(member: Member) -> WorkspaceError:
    """The error for bumping a dynamic version: bump it where it comes from."""
    source = version_source(member)
    where = "tag a new release in git" if source.startswith("git tags") else (
        f"edit it where it comes from ({source})")
    label = "pyproject.toml" if member.relpath == "." else f"{member.relpath}/pyproject.toml"
    return WorkspaceError(
        f"{label}: project.dynamic: cannot bump the version of {member.name}: it is dynamic, "
        f"computed by its build backend from {source}",
        hint=f"{where}, or make it static: set project.version and remove \"version\" from "
        "project.dynamic", file=member.pyproject, key="project.dynamic", member=member.name)


def _table(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _quoted(value: object) -> str:
    return f"\"{value}\"" if isinstance(value, str) else repr(value)
