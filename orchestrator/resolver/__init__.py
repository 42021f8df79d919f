"""Resolve a member's dependencies for the workspace's target environments.

``resolve()`` runs resolvelib once per target (a CPython version on a Linux
platform, never the host), over the member's main dependencies and all its
dependency groups together, then folds the answers into lock entries with
PEP 751 markers. The pieces:

* ``environment``: marker values and wheel tags of a target;
* ``catalog``: the ``PackageFinder`` protocol and a per-run cache over it;
* ``provider``: requirements, candidates and the resolvelib provider;
* ``explain``: the human text of a failed resolution;
* ``merge``: per-target answers to ``ResolvedPackage`` entries.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from packaging.requirements import InvalidRequirement
from packaging.version import InvalidVersion, Version
from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep, Resolver

from orchestrator.errors import ResolutionError
from orchestrator.models import Member, Target
from orchestrator.names import normalize
from orchestrator.resolver.catalog import Catalog, PackageFinder
from orchestrator.resolver.environment import TargetEnvironment
from orchestrator.resolver.explain import conflict_error
from orchestrator.resolver.merge import Origin, ResolvedPackage, TargetResolution, merge
from orchestrator.resolver.provider import (
    INVALID,
    PYTHON,
    Candidate,
    Provider,
    Requirement,
    parse_requirements,
)

__all__ = ["Catalog", "PackageFinder", "Resolution", "ResolvedPackage", "resolve"]

# pip's bound: high enough for real backtracking, low enough to end a hopeless search
MAX_ROUNDS = 200_000
_NO_PREFERENCES: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Resolution:
    """A member's locked dependency set for its targets."""

    member: str  # normalized name of the member locked
    targets: tuple[Target, ...]
    packages: tuple[ResolvedPackage, ...]  # sorted by name, then version; without the member


def resolve(
    member: Member,
    members: Mapping[str, Member],
    targets: Sequence[Target],
    finder: PackageFinder,
    *,
    preferred: Mapping[str, str] = _NO_PREFERENCES,
    upgrade: bool | Collection[str] = False,
    allow_prerelease: Collection[str] = (),
    catalog: Catalog | None = None,
) -> Resolution:
    """Resolve *member*'s main dependencies and dependency groups on every target.

    *members* maps normalized names to the workspace's members: a requirement
    naming one resolves to it. *preferred* maps names to versions pinned by
    the previous lock, tried first while they still fit; *upgrade* drops all
    of them (True) or those of the named packages. Pre-releases are used only
    where a requirement names one, for the packages in *allow_prerelease*, or
    when nothing else fits. Pass one *catalog* (over *finder*) to every call
    of a run so that members share the work of reading the index. Raises
    ``ResolutionError`` with the conflicting requirement chains when no
    consistent set exists.
    """
    if not targets:
        raise ResolutionError(
            f"cannot lock {member.name}: no target environments",
            hint="list at least one platform under `platforms` in workspace.yaml",
            member=member.name,
        )
    if catalog is None:
        catalog = Catalog(finder)
    pins = _preferences(preferred, upgrade)
    prereleases = frozenset(normalize(name) for name in allow_prerelease)
    resolutions = []
    for target in targets:
        env = TargetEnvironment.for_target(target)
        provider = Provider(env, catalog, members, preferred=pins, allow_prerelease=prereleases)
        resolutions.append(_resolve_target(member, provider))
    packages = merge(member, targets, resolutions)
    return Resolution(member.name, tuple(targets), packages)


def _preferences(
    preferred: Mapping[str, str], upgrade: bool | Collection[str]
) -> dict[str, Version]:
    if upgrade is True:
        return {}
    upgraded = {normalize(name) for name in upgrade} if upgrade else set()
    pins: dict[str, Version] = {}
    for name, version in preferred.items():
        key = normalize(name)
        if key not in upgraded:
            try:
                pins[key] = Version(version)
            except InvalidVersion:
                continue  # an unreadable old pin is no preference at all
    return pins


def _resolve_target(member: Member, provider: Provider) -> TargetResolution:
    env = provider.env
    if not env.allows_python(member.requires_python):
        raise ResolutionError(
            f"cannot lock {member.name} for {env.label}: the member requires Python "
            f"{member.requires_python}",
            hint=f"change requires-python in {member.relpath}/pyproject.toml "
            "or `python` in workspace.yaml",
            member=member.name,
        )
    roots = _root_requirements(member, provider)
    wanted = [r for origin_roots in roots.values() for r in origin_roots]
    resolver: Resolver[Requirement, Candidate, str] = Resolver(provider, BaseReporter())
    try:
        result = resolver.resolve(wanted, max_rounds=MAX_ROUNDS)
    except ResolutionImpossible as error:
        raise conflict_error(member.name, provider, list(error.causes)) from None
    except ResolutionTooDeep as error:
        raise ResolutionError(
            f"cannot lock {member.name} for {env.label}: gave up after {error.round_count} "
            "resolution rounds of backtracking",
            hint="add tighter version bounds (e.g. a lower bound on the packages that "
            "backtrack most) to the member's dependencies so fewer combinations are tried",
            member=member.name,
        ) from None
    pins = {k: c for k, c in result.mapping.items() if c.name not in (PYTHON, INVALID)}
    edges = {
        identifier: tuple(
            r.identifier
            for r in provider.get_dependencies(candidate)
            if r.name not in (PYTHON, INVALID)
        )
        for identifier, candidate in pins.items()
    }
    origins = {origin: tuple(r.identifier for r in reqs) for origin, reqs in roots.items()}
    return TargetResolution(env.target, pins, edges, origins)


def _root_requirements(member: Member, provider: Provider) -> dict[Origin, tuple[Requirement, ...]]:
    """The member's requirements per origin (None: main), as they apply on this target."""
    origins: dict[Origin, tuple[str, ...]] = {None: member.dependencies}
    # PEP 735 compares group names normalized; the lock markers use that form
    origins.update({normalize(group): texts for group, texts in member.groups.items()})
    roots: dict[Origin, tuple[Requirement, ...]] = {}
    for origin, texts in origins.items():
        try:
            roots[origin] = tuple(parse_requirements(texts, provider.env))
        except (InvalidRequirement, ValueError) as error:
            where = "dependencies" if origin is None else f"dependency-groups.{origin}"
            raise ResolutionError(
                f"{member.relpath}/pyproject.toml: invalid requirement in {where}: {error}",
                hint="write it as a PEP 508 requirement, e.g. `requests>=2.31`",
                file=member.path / "pyproject.toml",
                key="project.dependencies" if origin is None else where,
                member=member.name,
            ) from None
        provider.record_roots(roots[origin], origin)
    return roots
