"""From one resolution per target to one list of lock entries with markers.

Each target is resolved on its own (main dependencies, every dependency
group and every extra of the member together). Here the per-target answers
are walked from their roots to learn who needs what, then folded: one entry
per (project, version), with a marker naming the targets it is for (when not
all of them) and the dependency groups and extras that need it (when the main
dependencies do not), spelled as PEP 751 lock-file markers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.models import DistFile, Member, Target
from orchestrator.resolver.environment import MACHINES
from orchestrator.resolver.origin import Extra, Origin
from orchestrator.resolver.provider import Candidate

__all__ = ["MAIN", "Extra", "Origin", "ResolvedPackage", "TargetResolution", "merge"]

MAIN: None = None  # the origin of the main dependencies; groups are strings, extras Extra


@dataclass(frozen=True, slots=True)
class ResolvedPackage:
    """One lock entry: a project at one version, for some targets and some origins.

    A project appears more than once when targets need different versions of
    it. ``marker`` is None exactly when the entry is for every target and the
    main dependencies need it; otherwise it names the targets
    (``platform_machine == 'aarch64'``, with ``python_version`` when the
    targets differ in Python) and/or the groups and extras
    (``'dev' in dependency_groups``, ``'redis' in extras``) it is for.
    """

    name: str  # normalized
    version: str | None  # None only for a workspace member without a static version
    files: tuple[DistFile, ...]  # per target the best wheel, else the sdist; deduplicated
    dependencies: tuple[str, ...]  # normalized names, union over its targets and extras
    marker: str | None
    main: bool  # the main dependencies need it (on at least one of its targets)
    groups: frozenset[str]  # dependency groups (normalized names) whose requirements reach it
    targets: tuple[Target, ...]  # the targets this entry is installed on
    directory: str | None = None  # workspace member: its path relative to the workspace root
    index: str | None = None  # name of the index serving its files
    extras: frozenset[str] = frozenset()  # the member's extras (normalized) that reach it


@dataclass(frozen=True, slots=True)
class TargetResolution:
    """What resolvelib chose for one target, as identifiers and edges."""

    target: Target
    pins: Mapping[str, Candidate]  # identifier -> candidate
    edges: Mapping[str, tuple[str, ...]]  # identifier -> identifiers it depends on here
    roots: Mapping[Origin, tuple[str, ...]]  # origin -> identifiers it asks for


@dataclass(frozen=True, slots=True)
class _Found:
    """One project as found on one target."""

    target: Target
    candidate: Candidate
    origins: frozenset[Origin]
    dependencies: frozenset[str]


def merge(
    member: Member, targets: Sequence[Target], resolutions: Sequence[TargetResolution]
) -> tuple[ResolvedPackage, ...]:
    """Fold per-target resolutions into lock entries sorted by name, then version."""
    by_name: dict[str, list[_Found]] = {}
    for resolution in resolutions:
        for found in _project_view(resolution):
            if found.candidate.name != member.name:
                by_name.setdefault(found.candidate.name, []).append(found)
    packages: list[ResolvedPackage] = []
    for name in sorted(by_name):
        by_version: dict[str | None, list[_Found]] = {}
        for found in by_name[name]:
            by_version.setdefault(_version(found.candidate), []).append(found)
        for version in sorted(by_version, key=lambda v: (v is None, v or "")):
            packages.append(_entry(name, version, by_version[version], targets))
    return tuple(packages)


def _project_view(resolution: TargetResolution) -> Iterable[_Found]:
    origins = _origins(resolution)
    names: dict[str, set[Origin]] = {}
    dependencies: dict[str, set[str]] = {}
    for identifier, reached in origins.items():
        base = resolution.pins[identifier].name
        names.setdefault(base, set()).update(reached)
        children = {resolution.pins[c].name for c in resolution.edges.get(identifier, ())}
        dependencies.setdefault(base, set()).update(children - {base})
    for name, reached in names.items():
        # an extra's candidate pins its bare project, so every name has a pin
        candidate = resolution.pins[name]
        needs = frozenset(dependencies[name])
        yield _Found(resolution.target, candidate, frozenset(reached), needs)


def _origins(resolution: TargetResolution) -> dict[str, set[Origin]]:
    """identifier -> the origins (main, groups, extras) whose requirements reach it."""
    reached: dict[str, set[Origin]] = {}
    for origin, roots in resolution.roots.items():
        stack = list(roots)
        while stack:
            identifier = stack.pop()
            seen = reached.setdefault(identifier, set())
            if origin in seen:
                continue
            seen.add(origin)
            stack.extend(resolution.edges.get(identifier, ()))
    return reached


def _version(candidate: Candidate) -> str | None:
    return str(candidate.version) if candidate.version is not None else None


def _entry(
    name: str, version: str | None, found: Sequence[_Found], targets: Sequence[Target]
) -> ResolvedPackage:
    files = tuple(dict.fromkeys(f.candidate.file for f in found if f.candidate.file is not None))
    origins = frozenset().union(*(f.origins for f in found))
    member = found[0].candidate.member
    return ResolvedPackage(
        name=name,
        version=version,
        files=files,
        dependencies=tuple(sorted(frozenset().union(*(f.dependencies for f in found)))),
        marker=_marker(found, targets),
        main=MAIN in origins,
        groups=frozenset(o for o in origins if isinstance(o, str)),
        targets=tuple(f.target for f in found),
        directory=member.relpath if member is not None else None,
        index=files[0].index if files else None,
        extras=frozenset(o.name for o in origins if isinstance(o, Extra)),
    )


def _marker(found: Sequence[_Found], targets: Sequence[Target]) -> str | None:
    by_groups: dict[str | None, list[Target]] = {}
    for f in found:
        by_groups.setdefault(groups_marker(f.origins), []).append(f.target)
    alternatives = [
        _conjoin(targets_marker(subset, targets), groups) for groups, subset in by_groups.items()
    ]
    if any(a is None for a in alternatives):
        return None
    present = [a for a in alternatives if a is not None]
    if len(present) == 1:
        return present[0]
    return " or ".join(map(_group, present))


def groups_marker(origins: Iterable[Origin]) -> str | None:
    """``'dev' in dependency_groups or 'redis' in extras``; None when main is among *origins*.

    Groups come first, then extras, each sorted, so the marker is stable.
    """
    origins = set(origins)
    if MAIN in origins:
        return None
    groups = sorted(o for o in origins if isinstance(o, str))
    extras = sorted(o.name for o in origins if isinstance(o, Extra))
    return " or ".join([*(f"'{group}' in dependency_groups" for group in groups),
                        *(f"'{extra}' in extras" for extra in extras)])


def targets_marker(subset: Sequence[Target], targets: Sequence[Target]) -> str | None:
    """A marker true on the targets of *subset* and false on the other *targets*."""
    if set(subset) >= set(targets):
        return None
    pythons = sorted({t.python for t in targets})
    alternatives: list[str] = []
    for python in pythons:
        platforms = sorted({t.platform for t in subset if t.python == python})
        every = {t.platform for t in targets if t.python == python}
        if not platforms:
            continue
        parts: list[str] = []
        if len(pythons) > 1:
            parts.append(f"python_version == '{python}'")
        if set(platforms) != every:
            parts.append(" or ".join(f"platform_machine == '{MACHINES[p]}'" for p in platforms))
        alternatives.append(parts[0] if len(parts) == 1 else " and ".join(map(_wrap, parts)))
    return alternatives[0] if len(alternatives) == 1 else " or ".join(map(_group, alternatives))


def _conjoin(left: str | None, right: str | None) -> str | None:
    if left is None or right is None:
        return left or right
    return f"{_wrap(left)} and {_wrap(right)}"


def _group(marker: str) -> str:
    """Parenthesize a compound alternative of an ``or``, for the reader's sake."""
    return f"({marker})" if " and " in marker or " or " in marker else marker


def _wrap(marker: str) -> str:
    return f"({marker})" if " or " in marker else marker
