"""What `check` asks of requirements and locks beyond their validity.

``unbounded`` finds requirements without an upper bound (the policy
``require-upper-bounds``); ``lock_problems`` finds lock entries that cannot
be verified or audited: files without a hash, and packages from a direct
URL or a VCS instead of an index. Locks are read as plain TOML, which is
what keeps `check` fast.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.models import Member

_UPPER = {"<", "<=", "==", "===", "~="}


def unbounded(member: Member, members: set[str]) -> Iterator[tuple[str, str]]:
    """(key, requirement) of each requirement on a non-member with no upper bound.

    Floating means no version specifier at all, or only lower bounds and
    exclusions (``>=1.2``, ``>1``, ``!=1.3``); ``==1.*``, ``~=1.2`` and
    ``<2`` bound it. Markers do not matter: a requirement that applies
    somewhere floats there.
    """
    from packaging.requirements import Requirement

    from orchestrator.names import normalize

    sections = [("project.dependencies", member.dependencies),
                *((f"dependency-groups.{g}", reqs) for g, reqs in member.groups.items()),
                *((f"project.optional-dependencies.{e}", reqs)
                  for e, reqs in member.optional.items())]
    for key, requirements in sections:
        for text in requirements:
            parsed = Requirement(text)
            if normalize(parsed.name) in members or parsed.url:
                continue
            if not any(spec.operator in _UPPER for spec in parsed.specifier):
                yield key, text


@dataclass(frozen=True, slots=True)
class LockProblem:
    """A lock entry `check` rejects: *kind* is ``no-hash`` or ``not-from-index``."""

    package: str
    key: str  # packages[3].wheels[0] ...
    kind: str
    detail: str


def lock_problems(lockfile: Path) -> list[LockProblem]:
    """Entries of *lockfile* without hashes, or from a URL or VCS; [] when unreadable."""
    try:
        with lockfile.open("rb") as fh:
            packages = tomllib.load(fh).get("packages", [])
    except (OSError, tomllib.TOMLDecodeError):
        return []
    found = []
    for i, package in enumerate(packages if isinstance(packages, list) else ()):
        if not isinstance(package, dict):
            continue
        name = str(package.get("name", f"packages[{i}]"))
        for source in ("vcs", "archive"):
            if isinstance(package.get(source), dict):
                where = package[source].get("url") or package[source].get("path") or "?"
                origin = "a VCS" if source == "vcs" else "a direct URL"
                found.append(LockProblem(name, f"packages[{i}].{source}", "not-from-index",
                                         f"comes from {origin} ({where}), not from an index"))
        files = [(f"packages[{i}].wheels[{j}]", w) for j, w in
                 enumerate(package.get("wheels") or ()) if isinstance(w, dict)]
        if isinstance(package.get("sdist"), dict):
            files.append((f"packages[{i}].sdist", package["sdist"]))
        if isinstance(package.get("archive"), dict):
            files.append((f"packages[{i}].archive", package["archive"]))
        for key, file in files:
            hashes = file.get("hashes")
            if not isinstance(hashes, dict) or not hashes:
                label = file.get("name") or file.get("url") or key
                found.append(LockProblem(name, key, "no-hash", f"lists {label} without a hash"))
    return found
