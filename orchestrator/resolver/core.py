"""``resolve()``: one member's resolution on every target (the package's entry point).

Imported by ``orchestrator.resolver`` on first use of the names it re-exports,
so that importing one of the package's small modules (``environment``) does
not import resolvelib and the provider.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from packaging.requirements import InvalidRequirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version
from resolvelib import BaseReporter, ResolutionImpossible, ResolutionTooDeep, Resolver

from orchestrator.errors import ResolutionError
from orchestrator.models import Member, Target
from orchestrator.names import normalize
from orchestrator.resolver.catalog import Catalog, PackageFinder
from orchestrator.resolver.environment import TargetEnvironment
from orchestrator.resolver.merge import ResolvedPackage, TargetResolution, merge
from orchestrator.resolver.origin import Extra, Origin
from orchestrator.resolver.provider import (
    INVALID,
    PYTHON,
    Candidate,
    Provider,
    Requirement,
    parse_requirements,
)

# pip's bound: high enough for real backtracking, low enough to end a hopeless search
MAX_ROUNDS = 200_000
_NO_PREFERENCES: Mapping[str, str | Sequence[str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class UsedRequirement:
    """A requirement on a project that the resolution met, and where it is declared.

    What a re-lock names when an old pin had to move: the requirements that
    exclude the old version.
    """

    text: str  # as written, without its marker: "requests>=2.31"
    specifier: SpecifierSet
    source: str  # "services/api/pyproject.toml", "... (group dev)", "fastapi 0.110.0"

    def excludes(self, version: str) -> bool:
        """Whether *version* does not satisfy this requirement (an unreadable one: no)."""
        try:
            return not self.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            return False


@dataclass(frozen=True, slots=True)
class Resolution:
    """A member's locked dependency set for its targets."""

    member: str  # normalized name of the member locked
    targets: tuple[Target, ...]
    packages: tuple[ResolvedPackage, ...]  # sorted by name, then version; without the member
    # project -> the requirements on it that the resolution met, on any target
    requirements: Mapping[str, tuple[UsedRequirement, ...]] = field(
        default_factory=lambda: MappingProxyType({}))
    # project -> why its preferred version was unusable beyond the requirements on it
    pin_problems: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}))


def resolve(
    member: Member,
    members: Mapping[str, Member],
    targets: Sequence[Target],
    finder: PackageFinder,
    *,
    preferred: Mapping[str, str | Sequence[str]] = _NO_PREFERENCES,
    upgrade: bool | Collection[str] = False,
    allow_prerelease: Collection[str] = (),
    catalog: Catalog | None = None,
) -> Resolution:
    """Resolve *member*'s main dependencies, dependency groups and extras on every target.

    *members* maps normalized names to the workspace's members: a requirement
    naming one resolves to it. *preferred* maps names to versions pinned by
    the previous lock (one, or several that are tried in the order given),
    tried first while they still fit; *upgrade* drops all of them (True) or
    those of the named packages. Pre-releases are used only
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
    used: dict[str, dict[UsedRequirement, None]] = {}
    problems: dict[str, dict[str, None]] = {}
    for target in targets:
        env = TargetEnvironment.for_target(target)
        provider = Provider(env, catalog, members, preferred=pins, allow_prerelease=prereleases)
        resolution = _resolve_target(member, provider)
        resolutions.append(resolution)
        for name, requirement in _used_requirements(member, provider, resolution):
            used.setdefault(name, {})[requirement] = None
        for name, problem in provider.pin_problems.items():
            problems.setdefault(name, {})[problem] = None
    packages = merge(member, targets, resolutions)
    return Resolution(member.name, tuple(targets), packages,
                      MappingProxyType({name: tuple(reqs) for name, reqs in used.items()}),
                      MappingProxyType({name: tuple(texts) for name, texts in problems.items()}))


def _preferences(
    preferred: Mapping[str, str | Sequence[str]], upgrade: bool | Collection[str]
) -> dict[str, tuple[Version, ...]]:
    if upgrade is True:
        return {}
    upgraded = {normalize(name) for name in upgrade} if upgrade else set()
    pins: dict[str, tuple[Version, ...]] = {}
    for name, versions in preferred.items():
        key = normalize(name)
        if key in upgraded:
            continue
        parsed = []
        for version in [versions] if isinstance(versions, str) else versions:
            try:
                parsed.append(Version(version))
            except InvalidVersion:
                continue  # an unreadable old pin is no preference at all
        if parsed:
            pins[key] = tuple(dict.fromkeys(parsed))
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
        from orchestrator.resolver.explain import conflict_error  # only when it failed

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
    # (origin, requirement texts, where they are in the pyproject)
    origins: list[tuple[Origin, tuple[str, ...], str]] = [
        (None, member.dependencies, "project.dependencies")]
    # PEP 735 and PEP 685 compare group and extra names normalized; lock markers use that form
    origins += [(normalize(group), texts, f"dependency-groups.{group}")
                for group, texts in member.groups.items()]
    origins += [(Extra(normalize(extra)), texts, f"project.optional-dependencies.{extra}")
                for extra, texts in member.optional.items()]
    roots: dict[Origin, tuple[Requirement, ...]] = {}
    for origin, texts, key in origins:
        try:
            parsed = tuple(parse_requirements(texts, provider.env))
        except (InvalidRequirement, ValueError) as error:
            where = "dependencies" if origin is None else key
            raise ResolutionError(
                f"{_pyproject(member)}: invalid requirement in {where}: {error}",
                hint="write it as a PEP 508 requirement, e.g. `requests>=2.31`",
                file=member.path / "pyproject.toml",
                key=key,
                member=member.name,
            ) from None
        # two extras may spell one normalized name; PEP 685 makes them one extra
        roots[origin] = (*roots.get(origin, ()), *parsed)
        provider.record_roots(parsed, origin)
    return roots


def _used_requirements(
    member: Member, provider: Provider, resolution: TargetResolution
) -> Iterator[tuple[str, UsedRequirement]]:
    """(project, requirement) for each requirement the resolution on this target met."""
    for requirement, origin in provider.root_groups.items():
        if requirement.name not in (PYTHON, INVALID):
            yield requirement.name, _used(requirement, _root_source(member, origin))
    for candidate in resolution.pins.values():
        for requirement in provider.get_dependencies(candidate):
            # an extra's own pin on its bare release says nothing about other versions
            if requirement.name not in (PYTHON, INVALID, candidate.name):
                yield requirement.name, _used(requirement, _candidate_source(candidate))


def _used(requirement: Requirement, source: str) -> UsedRequirement:
    return UsedRequirement(requirement.text, requirement.specifier, source)


def _root_source(member: Member, origin: Origin) -> str:
    if isinstance(origin, Extra):
        return f"{_pyproject(member)} (extra {origin})"
    return _pyproject(member) + (f" (group {origin})" if origin else "")


def _candidate_source(candidate: Candidate) -> str:
    if candidate.member is None:
        return candidate.describe()
    extra = f" (extra {candidate.extra})" if candidate.extra else ""
    return _pyproject(candidate.member) + extra


def _pyproject(member: Member) -> str:
    return "pyproject.toml" if member.relpath in ("", ".") else f"{member.relpath}/pyproject.toml"
