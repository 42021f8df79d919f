"""The resolvelib provider: requirements, candidates and how they meet.

How the pieces split (one provider per target environment):

* A ``Requirement`` is one need for one *identifier*: a normalized project
  name, ``name[extra]`` for one extra of it, or ``<python>`` for a
  ``Requires-Python`` that must admit the target interpreter. A PEP 508 string
  with several extras becomes one requirement per extra plus one on the bare
  name, so resolvelib merges needs per extra exactly as pip does.
* A ``Candidate`` is one concrete answer for an identifier: a release of a
  project (with the file this target would install), the same release seen
  through one extra (it depends on the bare release at exactly its version
  plus the extra's requirements), a workspace member (a single candidate at
  its pyproject version), or the target interpreter itself.
* The ``Provider`` answers resolvelib's questions. Costs, as resolvelib calls
  them: ``identify`` and ``is_satisfied_by`` run for every requirement at
  every step and stay O(1); ``get_preference`` runs O(n) times per step (n
  open identifiers) and only looks at the requirement information it is
  given; ``narrow_requirement_selection`` runs once per step; ``find_matches``
  runs once per identifier per (back)tracking step and returns a lazy
  factory over one cached project listing: releases are checked (their files
  read, their names parsed) only as far as resolvelib iterates, usually to the
  first usable one (no metadata is read, only prefetched);
  ``get_dependencies`` runs once per pinned candidate and is where metadata
  is read, so its answers are cached per candidate.

Dependencies that make a candidate unusable (a ``Requires-Python`` excluding
the target, unreadable requirement strings) are expressed as requirements no
candidate satisfies, so resolvelib rejects that candidate and backtracks to
the next one instead of failing the whole resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as Pep508
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version
from resolvelib import AbstractProvider
from resolvelib.structs import RequirementInformation

from orchestrator.errors import PackageIndexError
from orchestrator.models import DistFile, Member
from orchestrator.names import normalize
from orchestrator.resolver.catalog import Catalog, Release
from orchestrator.resolver.environment import TargetEnvironment
from orchestrator.resolver.origin import Origin

PYTHON = "<python>"  # identifier of the target interpreter
INVALID = "<invalid-metadata>"  # identifier nothing satisfies
# Candidates per identifier whose metadata is prefetched: the first one (which
# resolvelib pins unless it conflicts), and a few more at a time once it goes
# past it or backtracks on the identifier. Prefetching more everywhere costs a
# cold lock more than it saves: every wasted ranged read competes with the
# ones the resolver waits for.
PREFETCH_DEPTH = 1
BACKTRACK_PREFETCH_DEPTH = 4
_EXACT_OPERATORS = frozenset({"==", "==="})
_UPPER_OPERATORS = frozenset({"<", "<=", "==", "===", "~="})


@dataclass(frozen=True, slots=True)
class Requirement:
    """One need for one identifier (see the module docstring)."""

    name: str  # normalized project name, or PYTHON / INVALID
    specifier: SpecifierSet
    text: str  # as written, for messages
    extra: str | None = None

    @property
    def identifier(self) -> str:
        return f"{self.name}[{self.extra}]" if self.extra else self.name

    @property
    def pins_exactly(self) -> bool:
        return any(
            s.operator in _EXACT_OPERATORS and not s.version.endswith(".*") for s in self.specifier
        )

    @property
    def has_upper_bound(self) -> bool:
        return any(s.operator in _UPPER_OPERATORS for s in self.specifier)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One concrete answer for an identifier (see the module docstring)."""

    name: str
    version: Version | None  # None: a workspace member without a static version
    extra: str | None = None
    file: DistFile | None = field(default=None, compare=False)  # what this target installs
    member: Member | None = field(default=None, compare=False)

    @property
    def identifier(self) -> str:
        return f"{self.name}[{self.extra}]" if self.extra else self.name

    def describe(self) -> str:
        """How messages name it: ``fastapi 0.110.0``, ``common`` for a member."""
        if self.member is not None or self.version is None:
            return self.identifier
        return f"{self.identifier} {self.version}"


Information = RequirementInformation[Requirement, Candidate]


def parse_requirements(
    texts: Iterable[str], env: TargetEnvironment, extra: str = "", *, only_extra: bool = False
) -> Iterator[Requirement]:
    """Split PEP 508 strings into per-identifier requirements that apply on *env*.

    Markers are evaluated with ``extra`` set to *extra*; with *only_extra*,
    strings that apply without the extra too are left to the bare release.
    Raises ``InvalidRequirement`` for a malformed string and ``ValueError``
    for a direct URL reference, which the resolver does not support.
    """
    for text in texts:
        parsed = _parse_pep508(text)
        if parsed.url:
            raise ValueError(f"direct URL references are not supported: {text!r}")
        if not env.evaluate(parsed.marker, extra):
            continue
        if only_extra and env.evaluate(parsed.marker, ""):
            continue
        yield from split_extras(parsed, text)


# Members and targets share most dependencies; a parse is never modified.
_parse_pep508 = lru_cache(maxsize=4096)(Pep508)


def split_extras(parsed: Pep508, text: str) -> Iterator[Requirement]:
    name = normalize(parsed.name)
    shown = text.split(";", 1)[0].strip()
    yield Requirement(name, parsed.specifier, shown)
    for extra in sorted({normalize(e) for e in parsed.extras}):
        yield Requirement(name, parsed.specifier, shown, extra)


class Provider(AbstractProvider[Requirement, Candidate, str]):
    """Answers resolvelib's questions for one target environment."""

    def __init__(
        self,
        env: TargetEnvironment,
        catalog: Catalog,
        members: Mapping[str, Member],
        *,
        preferred: Mapping[str, Sequence[Version]],
        allow_prerelease: Collection[str],
    ) -> None:
        self.env = env
        self.catalog = catalog
        self.members = members
        self.preferred = preferred
        self.allow_prerelease = allow_prerelease
        self.index_errors: dict[str, PackageIndexError] = {}
        # child identifier -> every (parent, requirement) that asked for it, for messages
        self.asked_by: dict[str, list[tuple[Candidate | None, Requirement]]] = {}
        self.root_groups: dict[Requirement, Origin] = {}  # None: main dependencies
        self._dependencies: dict[Candidate, tuple[Requirement, ...]] = {}
        # candidates that can never be used here -> a dependency nothing satisfies
        self.dead: dict[Candidate, Requirement] = {}
        # project -> why a preferred version could not be used here, other than the
        # requirements on it (which a caller can check itself): "3.0 is not on the index"
        self.pin_problems: dict[str, str] = {}

    def record_roots(self, requirements: Iterable[Requirement], group: Origin) -> None:
        """Remember the member's own requirements (record main ones first)."""
        for requirement in requirements:
            self._record(None, requirement)
            self.root_groups.setdefault(requirement, group)

    def _record(self, parent: Candidate | None, requirement: Requirement) -> None:
        self.asked_by.setdefault(requirement.identifier, []).append((parent, requirement))

    # -- resolvelib interface -------------------------------------------------

    def identify(self, requirement_or_candidate: Requirement | Candidate) -> str:
        return requirement_or_candidate.identifier

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Information]],
        backtrack_causes: Sequence[Information],
    ) -> tuple[bool, bool, bool, bool, str]:
        """Interpreter first, then exact pins, then direct needs, then bounded ones."""
        infos = list(information[identifier])
        pinned = any(info.requirement.pins_exactly for info in infos)
        direct = any(info.parent is None for info in infos)
        bounded = any(info.requirement.has_upper_bound for info in infos)
        return (identifier != PYTHON, not pinned, not direct, not bounded, identifier)

    def narrow_requirement_selection(
        self,
        identifiers: Iterable[str],
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[Information]],
        backtrack_causes: Sequence[Information],
    ) -> Iterable[str]:
        """Work on the interpreter first, then on what just caused a backtrack."""
        identifiers = list(identifiers)
        if PYTHON in identifiers:
            return [PYTHON]
        causes = {info.requirement.identifier for info in backtrack_causes}
        causes.update(info.parent.identifier for info in backtrack_causes if info.parent)
        return [i for i in identifiers if i in causes] or identifiers

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[Requirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> Callable[[], Iterator[Candidate]] | list[Candidate]:
        wanted = list(requirements[identifier])
        excluded = {c.version for c in incompatibilities[identifier]}
        name, extra = wanted[0].name, wanted[0].extra
        if name == PYTHON:
            return self._python_matches(wanted)
        if name == INVALID:
            return []
        if name in self.members:
            return self._member_matches(self.members[name], extra, wanted, excluded)
        # A factory: resolvelib reads (and tees) it only as far as it needs,
        # usually to the first candidate, so old releases are never looked at.
        depth = BACKTRACK_PREFETCH_DEPTH if excluded else PREFETCH_DEPTH
        return lambda: self._prefetching(self.candidates(name, extra, wanted, excluded), depth)

    def _prefetching(self, found: Iterator[Candidate], depth: int) -> Iterator[Candidate]:
        """*found*, prefetching the metadata of its first *depth* candidates, then in batches.

        Past the first batch, resolvelib is trying one candidate after another
        (the earlier ones failed), so the next few are fetched together.
        """
        while batch := list(islice(found, depth)):
            self.catalog.prefetch([c.file for c in batch if c.file is not None])
            yield from batch
            depth = BACKTRACK_PREFETCH_DEPTH

    def is_satisfied_by(self, requirement: Requirement, candidate: Candidate) -> bool:
        if candidate.version is None:
            return not requirement.specifier
        return requirement.specifier.contains(candidate.version, prereleases=True)

    def get_dependencies(self, candidate: Candidate) -> tuple[Requirement, ...]:
        cached = self._dependencies.get(candidate)
        if cached is None:
            cached = self._dependencies[candidate] = tuple(self._dependencies_of(candidate))
            for requirement in cached:
                self._record(candidate, requirement)
        return cached

    # -- candidates -----------------------------------------------------------

    def candidates(
        self,
        name: str,
        extra: str | None,
        wanted: Sequence[Requirement],
        excluded: Collection[Version | None] = (),
    ) -> Iterator[Candidate]:
        """Releases of *name* usable on this target under *wanted*, best first.

        Lazy, newest first, with the previous lock's pins (those usable, in
        the order given) in front; pre-releases only when allowed or when no
        final release is usable. Which of those rules apply is decided before
        *excluded* (resolvelib's known-bad candidates) is taken out.
        """
        try:
            releases = self.catalog.releases(name)
        except PackageIndexError as error:
            self.index_errors[name] = error
            return
        allow_yanked = any(r.pins_exactly for r in wanted)
        allow_pre = self._prereleases_allowed(name, wanted)
        pinned = []
        for pin in self.preferred.get(name, ()):
            release = next((r for r in releases if r.version == pin), None)
            candidate = self._usable(name, extra, wanted, release, allow_yanked)
            if candidate is not None:
                pinned.append(candidate)
            elif name not in self.pin_problems:
                self._pin_problem(name, pin, release, wanted, allow_yanked)
        first = [c for c in pinned if allow_pre or not _is_prerelease(c)]
        finals = bool(first)
        yield from (c for c in first if c.version not in excluded)
        pinned_versions = {c.version for c in pinned}
        held = [c for c in pinned if c not in first]  # pre-releases, if no final is usable
        for release in releases:
            if release.version in pinned_versions:
                continue
            candidate = self._usable(name, extra, wanted, release, allow_yanked)
            if candidate is None:
                continue
            if allow_pre or not _is_prerelease(candidate):
                finals = True
                if candidate.version not in excluded:
                    yield candidate
            elif not finals:
                held.append(candidate)
        if not finals:
            yield from (c for c in held if c.version not in excluded)

    def _pin_problem(self, name: str, pin: Version, release: Release | None,
                     wanted: Sequence[Requirement], allow_yanked: bool) -> None:
        """Remember why the preferred *pin* of *name* is unusable, unless *wanted* excludes it."""
        if release is None:
            self.pin_problems[name] = f"{pin} is not on the index"
        elif not all(r.specifier.contains(pin, prereleases=True) for r in wanted):
            return
        elif self.installable_file(release, allow_yanked) is None:
            self.pin_problems[name] = f"{pin} has no usable file for {self.env.label}"
        else:
            self.pin_problems[name] = (f"{pin} has a dependency that cannot be met on "
                                       f"{self.env.label}")

    def _usable(
        self,
        name: str,
        extra: str | None,
        wanted: Sequence[Requirement],
        release: Release | None,
        allow_yanked: bool,
    ) -> Candidate | None:
        """The candidate of *release* if it fits *wanted*, has a file here and is not dead."""
        if release is None or not all(
            r.specifier.contains(release.version, prereleases=True) for r in wanted
        ):
            return None
        file = self.installable_file(release, allow_yanked)
        if file is None:
            return None
        candidate = Candidate(name, release.version, extra, file)
        return None if self.is_dead(candidate) else candidate

    def is_dead(self, candidate: Candidate) -> bool:
        """Whether a dependency of *candidate* is unsatisfiable even on its own.

        Such a candidate can never be part of a resolution on this target.
        Remembering it stops resolvelib from pinning it again after every
        backtrack, which otherwise makes hopeless searches (a dependency with
        no usable release, several levels down) run for hours. Only candidates
        whose dependencies are known (pinned before) are judged; the verdict
        is rechecked as more candidates are found dead, and never reverts.
        """
        if candidate in self.dead:
            return True
        dependencies = self._dependencies.get(candidate)
        for requirement in dependencies or ():
            if not self.could_match(requirement):
                self.dead[candidate] = requirement
                return True
        return False

    def could_match(self, requirement: Requirement) -> bool:
        """Whether some candidate not yet known dead satisfies *requirement* alone."""
        name = requirement.name
        if name == PYTHON:
            return requirement.specifier.contains(self.env.python_full_version, prereleases=True)
        if name == INVALID:
            return False
        if name in self.members:
            return bool(
                self._member_matches(self.members[name], requirement.extra, [requirement], ())
            )
        try:
            releases = self.catalog.releases(name)
        except PackageIndexError:
            return False
        for release in releases:
            if requirement.specifier.contains(release.version, prereleases=True):
                file = self.installable_file(release, allow_yanked=True)
                candidate = Candidate(name, release.version, requirement.extra, file)
                if file is not None and candidate not in self.dead:
                    return True
        return False

    def installable_file(self, release: Release, allow_yanked: bool) -> DistFile | None:
        """The file this target would install from *release*: best wheel, else the sdist."""
        return installable_file(self.env, release, allow_yanked)

    def _prereleases_allowed(self, name: str, wanted: Sequence[Requirement]) -> bool:
        return name in self.allow_prerelease or any(r.specifier.prereleases for r in wanted)

    def _python_matches(self, wanted: Sequence[Requirement]) -> list[Candidate]:
        version = self.env.python_full_version
        if all(r.specifier.contains(version, prereleases=True) for r in wanted):
            return [Candidate(PYTHON, version)]
        return []

    def _member_matches(
        self,
        member: Member,
        extra: str | None,
        wanted: Sequence[Requirement],
        excluded: Collection[Version | None],
    ) -> list[Candidate]:
        version = _member_version(member)
        candidate = Candidate(member.name, version, extra, member=member)
        if version in excluded or not all(self.is_satisfied_by(r, candidate) for r in wanted):
            return []
        return [candidate]

    # -- dependencies ---------------------------------------------------------

    def _dependencies_of(self, candidate: Candidate) -> Iterator[Requirement]:
        if candidate.name == PYTHON:
            return
        if candidate.extra:
            pin = f"=={candidate.version}" if candidate.version is not None else ""
            yield Requirement(candidate.name, SpecifierSet(pin), f"{candidate.name}{pin}")
        texts, requires_python = self._declared(candidate)
        if not self.env.allows_python(requires_python):
            spec = SpecifierSet(requires_python or "")
            yield Requirement(PYTHON, spec, f"Python{requires_python}")
        only_extra = candidate.member is None and bool(candidate.extra)
        try:
            yield from parse_requirements(
                texts, self.env, candidate.extra or "", only_extra=only_extra
            )
        except (InvalidRequirement, ValueError) as error:
            yield Requirement(INVALID, SpecifierSet(), str(error))

    def _declared(self, candidate: Candidate) -> tuple[Sequence[str], str | None]:
        """Requirement strings and Requires-Python the candidate declares."""
        member = candidate.member
        if member is not None:
            if candidate.extra:
                return optional_dependencies(member, candidate.extra), None
            return member.dependencies, member.requires_python
        assert candidate.file is not None, candidate
        metadata = self.catalog.metadata(candidate.file)
        return metadata.requires_dist, metadata.requires_python


def installable_file(
    env: TargetEnvironment, release: Release, allow_yanked: bool
) -> DistFile | None:
    """The file *env* would install from *release*: its best wheel, else the sdist."""
    best: tuple[int, DistFile] | None = None
    sdist: DistFile | None = None
    for entry in release.files:
        file = entry.file
        if (file.yanked is not None and not allow_yanked) or not env.allows_python(
            file.requires_python
        ):
            continue
        if not entry.is_wheel:
            sdist = sdist or file
            continue
        rank = env.best_rank(entry.tags)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, file)
    return best[1] if best is not None else sdist


def optional_dependencies(member: Member, extra: str) -> tuple[str, ...]:
    """The requirements of *member*'s extra *extra* (normalized), however the pyproject spells it.

    PEP 685 compares extra names normalized: ``common[redis-cache]`` asks for
    ``Redis_Cache``. An extra the member does not define brings nothing, as
    with pip (which only warns).
    """
    for name, requirements in member.optional.items():
        if normalize(name) == extra:
            return requirements
    return ()


def _is_prerelease(candidate: Candidate) -> bool:
    return candidate.version is not None and candidate.version.is_prerelease


def _member_version(member: Member) -> Version | None:
    try:
        return Version(member.version) if member.version else None
    except InvalidVersion:
        return None
