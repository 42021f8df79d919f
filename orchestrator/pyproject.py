"""Edit a member's pyproject.toml with tomlkit, keeping comments and formatting.

Reading for every other purpose goes through tomllib (workspace.py); tomlkit is
used only here, where a file is changed. Writes are atomic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from orchestrator.atomic import write_text
from orchestrator.errors import WorkspaceError
from orchestrator.models import Member, Workspace
from orchestrator.names import normalize

if TYPE_CHECKING:
    from packaging.requirements import Requirement
    from tomlkit import TOMLDocument
    from tomlkit.items import Array

    from orchestrator.session import Session

MAIN = "project.dependencies"


@dataclass
class PyprojectEdit:
    """A pyproject.toml loaded for editing; ``save()`` writes it back atomically."""

    path: Path
    original: str
    doc: TOMLDocument

    @classmethod
    def load(cls, path: Path) -> PyprojectEdit:
        import tomlkit

        text = path.read_text(encoding="utf-8")
        return cls(path, text, tomlkit.parse(text))

    def text(self) -> str:
        import tomlkit

        return tomlkit.dumps(self.doc)

    def save(self) -> None:
        write_text(self.path, self.text())

    def restore(self) -> None:
        """Put the original bytes back (after a failed lock)."""
        write_text(self.path, self.original)

    # -- requirements --------------------------------------------------------

    def _section(self, group: str | None, *, create: bool) -> Array | None:
        import tomlkit

        # tomlkit's containers are typed as their union of item kinds; a pyproject's
        # [project] and [dependency-groups] are tables and their lists arrays.
        doc = cast(dict[str, Any], self.doc)
        if group is None:
            project = doc.get("project")
            if project is None:
                raise WorkspaceError(f"{self.path}: project: missing [project] table")
            if "dependencies" not in project:
                if not create:
                    return None
                project["dependencies"] = tomlkit.array()
            return cast("Array", project["dependencies"])
        groups = doc.get("dependency-groups")
        if groups is None:
            if not create:
                return None
            doc["dependency-groups"] = tomlkit.table()
            groups = doc["dependency-groups"]
        for key in groups:
            if normalize(key) == normalize(group):
                return cast("Array", groups[key])
        if not create:
            return None
        groups[group] = tomlkit.array()
        return cast("Array", groups[group])

    def add_requirement(self, requirement: str, group: str | None = None) -> str | None:
        """Add or replace *requirement* in the main list or *group*; returns what it replaced."""
        from packaging.requirements import Requirement

        name = normalize(Requirement(requirement).name)
        array = self._section(group, create=True)
        assert array is not None  # created when missing
        for i, item in enumerate(array):
            if isinstance(item, str) and normalize(Requirement(item).name) == name:
                old = str(item)
                array[i] = requirement
                return old
        array.append(requirement)
        if len(array) > 1:
            array.multiline(True)
        return None

    def remove_requirement(self, package: str, group: str | None = None) -> str | None:
        """Remove the requirement on *package*; returns it, or None when absent."""
        from packaging.requirements import Requirement

        array = self._section(group, create=False)
        if array is None:
            return None
        name = normalize(package)
        for i, item in enumerate(array):
            if isinstance(item, str) and normalize(Requirement(item).name) == name:
                removed = str(item)
                del array[i]
                return removed
        return None

    def requirement_sections(self, package: str) -> list[str]:
        """Where *package* is required: "project.dependencies" and/or group names."""
        from packaging.requirements import Requirement

        name = normalize(package)
        found = []
        for label, array in self._sections():
            if any(isinstance(i, str) and normalize(Requirement(i).name) == name
                   for i in array):
                found.append(label)
        return found

    def _sections(self) -> Sequence[tuple[str, Array]]:
        out: list[tuple[str, Array]] = []
        doc = cast(dict[str, Any], self.doc)
        project = doc.get("project", {})
        if "dependencies" in project:
            out.append((MAIN, project["dependencies"]))
        for group, array in doc.get("dependency-groups", {}).items():
            out.append((f"dependency-groups.{group}", array))
        return out

    # -- version -----------------------------------------------------------

    def version(self) -> str | None:
        value = cast(dict[str, Any], self.doc).get("project", {}).get("version")
        return str(value) if value is not None else None

    def set_version(self, version: str) -> None:
        cast(dict[str, Any], self.doc)["project"]["version"] = version


def bump(current: str, rule: str) -> str:
    """The next version of *current* by *rule*: patch, minor, major, pre, or an explicit one.

    ``patch`` of a pre-release finalizes it (1.3.0rc1 -> 1.3.0); ``pre`` starts
    or advances an alpha/beta/rc series (1.2.3 -> 1.2.4a1, 1.2.4a1 -> 1.2.4a2).
    """
    from packaging.version import InvalidVersion, Version

    try:
        version = Version(current)
    except InvalidVersion as exc:
        raise WorkspaceError(f"the current version {current!r} is not valid PEP 440") from exc
    release = list(version.release) + [0] * (3 - len(version.release))
    major, minor, patch = release[:3]
    if rule == "major":
        return f"{major + 1}.0.0" if not (version.is_prerelease and minor == patch == 0) \
            else f"{major}.0.0"
    if rule == "minor":
        return f"{major}.{minor + 1}.0" if not (version.is_prerelease and patch == 0) \
            else f"{major}.{minor}.0"
    if rule == "patch":
        return f"{major}.{minor}.{patch}" if version.is_prerelease \
            else f"{major}.{minor}.{patch + 1}"
    if rule == "pre":
        if version.pre is not None:
            kind, number = version.pre
            return f"{major}.{minor}.{patch}{kind}{number + 1}"
        return f"{major}.{minor}.{patch + 1}a1"
    try:
        explicit = Version(rule)
    except InvalidVersion as exc:
        raise WorkspaceError(
            f"{rule!r} is neither a bump rule nor a valid version",
            hint="use patch, minor, major, pre, or a PEP 440 version such as 1.4.0") from exc
    return str(explicit)


# -- add / remove, with re-locking ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class EditResult:
    """What an add or remove changed."""

    member: str
    changes: tuple[str, ...]  # "added httpx>=0.28.1", "replaced x>=1 with x>=2", ...
    relocked: tuple[str, ...]  # members whose locks were re-resolved


def _affected_members(workspace: Workspace, member: Member) -> list[Member]:
    from orchestrator.graph import build_graph, dependents_of

    graph = build_graph(workspace)
    names = {member.name} | dependents_of(graph, member.name)
    return [m for m in workspace.members if m.name in names]


def _relock(session: Session, member_name: str) -> tuple[Workspace, list[Member]]:
    """Load the edited workspace and re-lock the member and every member that uses it."""
    from orchestrator.lock import lock_members

    workspace = session.reload()
    member = workspace.find(member_name)
    assert member is not None  # an edit does not rename the member
    targets = _affected_members(workspace, member)
    lock_members(workspace, targets, session.index)
    return workspace, targets


def add(session: Session, member: Member, requirements: Sequence[str],
        group: str | None) -> EditResult:
    """Add *requirements* to *member*, re-lock it and its dependents; all or nothing.

    A requirement without a version specifier gets a lower bound at the version
    the resolver picks (the newest that fits). If resolution fails, the
    pyproject.toml and every lock are left byte for byte as they were.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    parsed = []
    for text in requirements:
        try:
            parsed.append(Requirement(text))
        except InvalidRequirement as exc:
            raise WorkspaceError(f"invalid requirement {text!r}: {str(exc).splitlines()[0]}",
                                 hint="write a PEP 508 requirement such as \"httpx>=0.27\""
                                 ) from exc
    edit = PyprojectEdit.load(member.pyproject)
    changes = []
    for req in parsed:
        old = edit.add_requirement(str(req), group)
        changes.append(f"replaced {old} with {req}" if old else f"added {req}")
    with _all_or_nothing(session.workspace, member, edit):
        edit.save()
        ws, relocked = _relock(session, member.name)
        bare = [r for r in parsed if not r.specifier and not r.url
                and ws.find(r.name) is None]
        if bare:
            changes = _add_lower_bounds(edit, member, bare, group, changes)
            edit.save()
            ws, relocked = _relock(session, member.name)
    return EditResult(member.name, tuple(changes), tuple(m.name for m in relocked))


def _add_lower_bounds(edit: PyprojectEdit, member: Member, bare: Sequence[Requirement],
                      group: str | None, changes: list[str]) -> list[str]:
    from orchestrator.lock import pins, read_lock

    locked = pins(read_lock(member.lockfile))
    out = list(changes)
    for req in bare:
        version = locked.get(normalize(req.name))
        if version is None:
            continue
        bounded = f"{req.name}{'[' + ','.join(sorted(req.extras)) + ']' if req.extras else ''}" \
            f">={version}" + (f"; {req.marker}" if req.marker else "")
        edit.add_requirement(bounded, group)
        out = [c.replace(f"added {req}", f"added {bounded}") for c in out]
    return out


@contextmanager
def _all_or_nothing(workspace: Workspace, member: Member,
                    edit: PyprojectEdit) -> Iterator[None]:
    """On any failure inside, put back the pyproject.toml and every lock it could touch."""
    locks = {m.lockfile: m.lockfile.read_bytes() if m.lockfile.exists() else None
             for m in _affected_members(workspace, member)}
    try:
        yield
    except BaseException:
        edit.restore()
        for path, data in locks.items():
            if data is None:
                path.unlink(missing_ok=True)
            elif not path.exists() or path.read_bytes() != data:
                write_text(path, data.decode("utf-8"))
        raise


def remove(session: Session, member: Member, packages: Sequence[str],
           group: str | None) -> EditResult:
    """Remove requirements on *packages* from *member*, then re-lock; all or nothing."""
    edit = PyprojectEdit.load(member.pyproject)
    changes = []
    for package in packages:
        removed = edit.remove_requirement(package, group)
        if removed is None:
            where = f"dependency group {group!r}" if group else "project.dependencies"
            elsewhere = edit.requirement_sections(package)
            hint = (f"it is required in {', '.join(elsewhere)}; pass --group accordingly"
                    if elsewhere else f"see {member.relpath}/pyproject.toml")
            raise WorkspaceError(f"{member.name} has no requirement on {package} in {where}",
                                 hint=hint)
        changes.append(f"removed {removed}")
    with _all_or_nothing(session.workspace, member, edit):
        edit.save()
        _, relocked = _relock(session, member.name)
    return EditResult(member.name, tuple(changes), tuple(m.name for m in relocked))
