"""Human text for a failed resolution: the chains that conflict, and a hint.

resolvelib reports *what* failed as data (``ResolutionImpossible.causes``:
requirement and the candidate that asked for it). The provider remembers who
asked for every identifier, so each cause becomes a chain from the member
being locked, e.g. ``orders -> common -> pydantic<2``. When one requirement
alone cannot be met, the releases of the project are examined to say why.

The error carries the chains as data too (``ResolutionError.causes``), beside
the member and the package the text is about.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.errors import ConflictCause, PackageIndexError, ResolutionError
from orchestrator.resolver.origin import Extra, Origin
from orchestrator.resolver.provider import (
    INVALID,
    PYTHON,
    Candidate,
    Information,
    Provider,
    Requirement,
)

SHOWN_RELEASES = 5  # releases listed when explaining why none fits


def conflict_error(
    member: str, provider: Provider, causes: Sequence[Information]
) -> ResolutionError:
    """The ResolutionError for ``ResolutionImpossible(causes)`` while locking *member*."""
    by_name: dict[str, list[Information]] = {}
    for info in causes:
        by_name.setdefault(info.requirement.name, []).append(info)
    # the interpreter or unreadable metadata is the real story when present
    name = next((n for n in (PYTHON, INVALID) if n in by_name), next(iter(by_name)))
    infos = by_name[name]
    message, hint = _conflict_text(member, provider, name, infos)
    return ResolutionError(
        message,
        hint=hint,
        member=member,
        package=None if name in (PYTHON, INVALID) else name,
        causes=_causes(member, provider, infos),
    )


def _conflict_text(
    member: str, provider: Provider, name: str, infos: Sequence[Information]
) -> tuple[str, str]:
    """The message and the hint of ``conflict_error``."""
    chains = _grouped_chains(member, provider, infos)
    where = f"cannot lock {member} for {provider.env.label}"
    shown = "\n".join(f"  {c}" for c in [*chains, *_dead_ends(provider, name)])
    if name == PYTHON:
        return (
            f"{where}: the target Python {provider.env.python_full_version} is excluded by\n"
            f"{shown}",
            "pick a version of the package above that supports this Python, "
            "or change `python` in workspace.yaml",
        )
    if name == INVALID:
        return (
            f"{where}: a release declares unreadable requirements\n{shown}",
            "require another version of that package (the one shown is broken)",
        )
    if name in provider.members:
        return _member_text(where, provider, name, shown)
    if len({info.requirement.specifier for info in infos}) > 1 or len(chains) > 1:
        return (
            f"{where}: conflicting requirements on {name}\n{shown}",
            f"no version of {name} satisfies all of these; loosen one of them, "
            "or require another version of a package that brings it",
        )
    return _unavailable_text(where, provider, infos[0].requirement, shown)


def _causes(
    member: str, provider: Provider, infos: Sequence[Information]
) -> tuple[ConflictCause, ...]:
    """One cause per distinct chain, in resolvelib's order."""
    causes = (
        ConflictCause(
            None if info.requirement.name in (PYTHON, INVALID) else info.requirement.name,
            chain_links(member, provider, info),
        )
        for info in infos
    )
    return tuple(dict.fromkeys(causes))


def _dead_ends(provider: Provider, shown: str) -> list[str]:
    """Requirements met by no usable release at all: often the real cause of a conflict.

    When every release a requirement admits depends on something that does not
    exist, resolvelib reports whatever conflict it hit last while backtracking
    around it; these lines name the dead end itself.
    """
    found: dict[tuple[str, str], list[str]] = {}
    for asks in provider.asked_by.values():
        for parent, requirement in asks:
            if requirement.name in (PYTHON, INVALID, shown) or provider.could_match(requirement):
                continue
            if parent is not None and parent in provider.dead:
                continue
            askers = found.setdefault((requirement.identifier, str(requirement.specifier)), [])
            askers.append(parent.describe() if parent is not None else "the member")
    lines = []
    for (identifier, specifier), askers in found.items():
        others = " and others" if len(askers) > 1 else ""
        example = next((c for c in provider.dead if c.identifier == identifier), None)
        why = f"; {example.describe()} needs {provider.dead[example].text}" if example else ""
        lines.append(
            f"(nothing satisfies {identifier}{specifier}, needed by {askers[0]}{others}{why})"
        )
    return lines[:SHOWN_RELEASES]


def _grouped_chains(member: str, provider: Provider, infos: Sequence[Information]) -> list[str]:
    """One line per distinct chain; chains differing only in versions share a line."""
    groups: dict[tuple[object, ...], list[str]] = {}
    for info in infos:
        text, names = chain(member, provider, info), _chain_names(provider, info)
        lines = groups.setdefault((*names, info.requirement.specifier), [])
        if text not in lines:
            lines.append(text)
    shown = []
    for lines in groups.values():
        more = len(lines) - 1
        shown.append(lines[0] + (f"  (and {more} more like it via other versions)" if more else ""))
    return shown


def _chain_names(provider: Provider, info: Information) -> tuple[str, ...]:
    names, node, seen = [info.requirement.identifier], info.parent, set[str]()
    while node is not None and node.identifier not in seen:
        seen.add(node.identifier)
        names.append(node.identifier)
        node, _ = _asker(provider, node, seen)
    return tuple(names)


def chain(member: str, provider: Provider, info: Information) -> str:
    """``orders -> fastapi 0.110.0 -> pydantic>=2``: who asked, from the member down."""
    return " -> ".join(chain_links(member, provider, info))


def chain_links(member: str, provider: Provider, info: Information) -> tuple[str, ...]:
    """``("orders", "fastapi 0.110.0", "pydantic>=2")``: ``chain`` as a tuple."""
    links = [info.requirement.text]
    group = provider.root_groups.get(info.requirement) if info.parent is None else None
    node, seen = info.parent, set[str]()
    while node is not None and node.identifier not in seen:
        seen.add(node.identifier)
        links.append(node.describe())
        node, group = _asker(provider, node, seen)
    return (_origin_text(member, group), *reversed(links))


def _origin_text(member: str, origin: Origin) -> str:
    """``api``, ``api (group dev)`` or ``api (extra redis)``."""
    if isinstance(origin, Extra):
        return f"{member} (extra {origin})"
    return f"{member} (group {origin})" if origin else member


def _asker(
    provider: Provider, node: Candidate, seen: set[str]
) -> tuple[Candidate | None, Origin]:
    """Who asked for *node*: the member itself (None and its group) if it did."""
    askers = provider.asked_by.get(node.identifier, [])
    fitting = [(p, r) for p, r in askers if provider.is_satisfied_by(r, node)] or askers
    for parent, requirement in fitting:
        if parent is None:
            return None, provider.root_groups.get(requirement)
    for parent, _ in fitting:
        if parent is not None and parent.identifier not in seen:
            return parent, None
    return None, None


def _member_text(where: str, provider: Provider, name: str, shown: str) -> tuple[str, str]:
    member = provider.members[name]
    version = member.version or "(no static version)"
    return (
        f"{where}: workspace member {name} is at version {version}, which does not satisfy\n"
        f"{shown}",
        f"change the requirement, or the version in {member.relpath}/pyproject.toml",
    )


def _unavailable_text(
    where: str, provider: Provider, requirement: Requirement, shown: str
) -> tuple[str, str]:
    name = requirement.name
    error = provider.index_errors.get(name)
    if error is not None:
        return (
            f"{where}: {name} is not available\n{shown}\n{error.message}",
            error.hint or f"check the spelling of {name}, or the indexes in workspace.yaml",
        )
    reasons = _release_reasons(provider, requirement)
    if not reasons:
        return (
            f"{where}: no release of {name} matches {requirement.specifier or 'any version'}\n"
            f"{shown}\n{_available(provider, name)}",
            f"ask the index's maintainers to fix the file names of {name}"
            if _unusable(provider, name) else f"loosen the requirement on {name}",
        )
    listed = "\n".join(f"  {line}" for line in reasons[:SHOWN_RELEASES])
    more = len(reasons) - SHOWN_RELEASES
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return (
        f"{where}: no release of {name} matching {requirement.specifier or 'any version'}"
        f" can be installed there\n{shown}\n{listed}{tail}",
        f"require a version of {name} that fits {provider.env.label}, "
        "or drop that platform from workspace.yaml",
    )


def _release_reasons(provider: Provider, requirement: Requirement) -> list[str]:
    """Why each release the specifier admits cannot be used on this target."""
    env = provider.env
    reasons: list[str] = []
    for release in provider.catalog.releases(requirement.name):
        if not requirement.specifier.contains(release.version, prereleases=True):
            continue
        files = release.files
        live = [f for f in files if f.file.yanked is None or requirement.pins_exactly]
        fitting = [f for f in live if env.allows_python(f.file.requires_python)]
        if not files:  # every file it lists has a malformed name: nothing was yanked
            why = "no usable file (none of its files has a valid wheel or sdist name)"
        elif not live:
            why = "yanked (pin it with == to use it anyway)"
        elif not fitting:
            why = f"requires Python {live[0].file.requires_python}"
        else:
            why = f"no wheel for {env.target.platform} / CPython {env.target.python} and no sdist"
        reasons.append(f"{requirement.name} {release.version}: {why}")
    return reasons


def _available(provider: Provider, name: str) -> str:
    try:
        versions = [str(r.version) for r in provider.catalog.releases(name)]
    except PackageIndexError:
        versions = []
    if not versions:
        return _unusable(provider, name) or "the index lists no releases of it"
    shown = ", ".join(versions[:SHOWN_RELEASES])
    more = f" and {len(versions) - SHOWN_RELEASES} older" if len(versions) > SHOWN_RELEASES else ""
    return f"available: {shown}{more}"


def _unusable(provider: Provider, name: str) -> str | None:
    """The files listed for *name* that no release could use: names carrying no version."""
    try:
        if provider.catalog.releases(name):
            return None  # some release is usable: the specifier is what excludes them
        names = [f.filename for f in provider.catalog.finder.files(name)]
    except PackageIndexError:
        return None
    if not names:
        return None
    shown = ", ".join(names[:SHOWN_RELEASES]) + (" ..." if len(names) > SHOWN_RELEASES else "")
    return (f"the index lists no usable file of it; skipped {len(names)} whose names are "
            f"no valid wheel or sdist name: {shown}")
