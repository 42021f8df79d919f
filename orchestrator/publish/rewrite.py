"""Workspace dependencies become version constraints before a member is built for release.

Inside the workspace a member names another by name only (``acme-common``)
and the lock points at its directory. A published package cannot: its
users install from an index, so each requirement on a member gets a
version range by ``publish.workspace-constraint`` (README, "Publishing"):

- ``compatible`` (default): ``>=X.Y.Z,<X+1`` for X >= 1; ``>=0.Y.Z,<0.Y+1``
  for 0.x, where a minor release may break (as Cargo and Poetry's caret read
  0.x versions);
- ``exact``: ``==X.Y.Z``;
- ``minimum``: ``>=X.Y.Z``.

Extras and markers are kept. A requirement that already carries a version
specifier keeps it (its author chose it), after checking that the member's
current version satisfies it; a direct reference (``name @ file:...``) loses
its URL and gets the rule's range. The same rewrite applies to
``[project].dependencies``, every ``[project.optional-dependencies]`` extra and
the ``[dependency-groups]`` (not published metadata, but the sdist's
pyproject.toml carries them and must not name a path either), and
``[tool.uv.sources]`` entries of members (paths) are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from orchestrator.errors import PublishError
from orchestrator.models import Member, WorkspaceConstraint
from orchestrator.names import normalize

if TYPE_CHECKING:
    from packaging.requirements import Requirement
    from tomlkit.items import Array


@dataclass(frozen=True, slots=True)
class Rewrite:
    """One requirement changed: where (``project.dependencies[0]``), before and after."""

    key: str
    before: str
    after: str

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "before": self.before, "after": self.after}


def version_range(version: str, rule: WorkspaceConstraint) -> str:
    """The specifier a dependency on a member at *version* gets under *rule*.

    >>> version_range("1.4.0", "compatible"), version_range("0.3.2", "compatible")
    ('>=1.4.0,<2', '>=0.3.2,<0.4')
    """
    from packaging.version import Version

    if rule == "exact":
        return f"=={version}"
    if rule == "minimum":
        return f">={version}"
    release = Version(version).release
    major, minor = release[0], release[1] if len(release) > 1 else 0
    upper = f"{major + 1}" if major >= 1 else f"0.{minor + 1}"
    return f">={version},<{upper}"


def constrain(requirement: str, versions: Mapping[str, str], rule: WorkspaceConstraint,
              *, where: str, member: str) -> str | None:
    """*requirement* rewritten if it names a member (*versions*: name -> version), else None.

    *where* and *member* name the requirement's place for errors.
    """
    from packaging.requirements import Requirement

    req = Requirement(requirement)
    name = normalize(req.name)
    if name not in versions:
        return None
    version = versions[name]
    if req.url is None and str(req.specifier):
        if not req.specifier.contains(version, prereleases=True):
            raise PublishError(
                f"{member}: {where}: {requirement!r} excludes {name} {version}, the version "
                "in this workspace",
                hint=f"widen the specifier to admit {version}, or drop it and let publish "
                "write the range", member=member, package=name, key=where,
                expected=str(req.specifier), actual=version)
        return None  # kept as written
    return _render(req, version_range(version, rule))


def _render(req: Requirement, spec: str) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    marker = f"; {req.marker}" if req.marker is not None else ""
    return f"{req.name}{extras}{spec}{marker}"


def rewrite_pyproject(text: str, member: Member, versions: Mapping[str, str],
                      rule: WorkspaceConstraint) -> tuple[str, tuple[Rewrite, ...]]:
    """*text* (the member's pyproject.toml) with its workspace dependencies constrained.

    Formatting and comments are kept (tomlkit); returns the new text and
    what changed, in file order.
    """
    import tomlkit

    doc = tomlkit.parse(text)
    # tomlkit types its containers as unions of item kinds; these are tables and arrays.
    data = cast(dict[str, Any], doc)
    changes: list[Rewrite] = []
    others = {n: v for n, v in versions.items() if n != member.name}
    project = data.get("project", {})

    def rewrite(array: Array, key: str) -> None:
        for i, item in enumerate(list(array)):
            if not isinstance(item, str):  # {include-group = "..."} in a dependency group
                continue
            where = f"{key}[{i}]"
            after = constrain(str(item), others, rule, where=where, member=member.name)
            if after is not None and after != str(item):
                array[i] = after
                changes.append(Rewrite(where, str(item), after))

    if "dependencies" in project:
        rewrite(project["dependencies"], "project.dependencies")
    for extra, reqs in project.get("optional-dependencies", {}).items():
        rewrite(reqs, f"project.optional-dependencies.{extra}")
    for group, reqs in data.get("dependency-groups", {}).items():
        rewrite(reqs, f"dependency-groups.{group}")
    sources = data.get("tool", {}).get("uv", {}).get("sources", {})
    for package in [p for p in sources if normalize(p) in others]:
        changes.append(Rewrite(f"tool.uv.sources.{package}", str(sources[package]), ""))
        del sources[package]
    return tomlkit.dumps(doc), tuple(changes)
