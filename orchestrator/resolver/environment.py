"""The environment a lock is made for: marker values and wheel tags of one Target.

Locks describe the deployment targets (a CPython version on linux/amd64 or
linux/arm64), never the machine running the resolver, so nothing here reads
the host: marker values are spelled out in full and the wheel tags come from
``packaging.tags`` with explicit interpreter, ABI and platform lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from packaging.markers import Marker, prepare_environment
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name
from packaging.version import Version

from orchestrator.errors import ResolutionError
from orchestrator.models import PLATFORM_MACHINES

if TYPE_CHECKING:
    from orchestrator.models import Target

# platform (as in workspace.yaml) -> platform_machine
MACHINES: Mapping[str, str] = PLATFORM_MACHINES

# Newest glibc whose manylinux wheels a target accepts: Debian bookworm's 2.36,
# the base of the python:3.x-slim images. Oldest: manylinux1 (2.5) on x86_64,
# manylinux2014 (2.17) on aarch64, where nothing older was ever defined.
GLIBC_NEWEST = 36
_GLIBC_OLDEST = {"x86_64": 5, "aarch64": 17}
_LEGACY_MANYLINUX = {5: "manylinux1", 12: "manylinux2010", 17: "manylinux2014"}

MarkerEnv = dict[str, "str | Set[str]"]


def manylinux_platforms(machine: str) -> list[str]:
    """Platform tags of a glibc 2.36 Linux on *machine*, best (newest glibc) first.

    musllinux and the bare ``linux_<arch>`` tag are left out: the images run
    Debian (glibc), and ``linux_*`` wheels only work on the machine that built them.
    """
    platforms: list[str] = []
    for minor in range(GLIBC_NEWEST, _GLIBC_OLDEST[machine] - 1, -1):
        platforms.append(f"manylinux_2_{minor}_{machine}")
        legacy = _LEGACY_MANYLINUX.get(minor)
        if legacy is not None:
            platforms.append(f"{legacy}_{machine}")
    return platforms


@dataclass(frozen=True, slots=True)
class TargetEnvironment:
    """Marker values, wheel tags and interpreter version of one Target.

    ``python_full_version`` is the target's ``X.Y.0`` unless the target names a
    patch release: a lock valid for the first patch release installs on every
    later one, which is what a ``python:X.Y-slim`` base image carries.
    """

    target: Target
    python_full_version: Version
    markers: Mapping[str, str | Set[str]]
    tag_ranks: Mapping[Tag, int]  # lower is better

    @classmethod
    def for_target(cls, target: Target) -> TargetEnvironment:
        """The environment of *target* (built once per target and process)."""
        return _environment(target)

    @classmethod
    def _build(cls, target: Target) -> TargetEnvironment:
        machine = MACHINES.get(target.platform)
        if machine is None:
            raise ResolutionError(
                f"unsupported target platform {target.platform!r}",
                hint=f"use one of: {', '.join(sorted(MACHINES))}",
            )
        full = _full_version(target.python)
        major_minor = (full.major, full.minor)
        markers = prepare_environment(_marker_values(full, machine), context="metadata")
        ranks: dict[Tag, int] = {}
        for rank, tag in enumerate(_target_tags(major_minor, machine)):
            ranks.setdefault(tag, rank)
        return cls(target, full, markers, ranks)

    @property
    def label(self) -> str:
        """How messages name the target: ``cpython 3.11 linux/amd64``."""
        return f"cpython {self.target.python} {self.target.platform}"

    def evaluate(self, marker: Marker | None, extra: str = "") -> bool:
        """Whether *marker* holds on this target, with ``extra`` set as given."""
        if marker is None:
            return True
        env: MarkerEnv = dict(self.markers)
        env["extra"] = canonicalize_name(extra) if extra else ""
        return marker.evaluate_prepared(env)

    def allows_python(self, requires_python: str | None) -> bool:
        """Whether a ``Requires-Python`` value admits the target interpreter.

        An unparsable value admits it, as pip does: the file's metadata is then
        the only thing left to judge by.
        """
        if not requires_python:
            return True
        return _admits(requires_python, self.python_full_version)

    def best_rank(self, tags: Iterable[Tag]) -> int | None:
        """Rank of the best of *tags* on this target, None when none fits."""
        ranks = [self.tag_ranks[tag] for tag in tags if tag in self.tag_ranks]
        return min(ranks) if ranks else None


# Every member's resolution, and lock selection, needs the same few targets;
# their tag lists take thousands of Tag objects to build.
@lru_cache(maxsize=64)
def _environment(target: Target) -> TargetEnvironment:
    return TargetEnvironment._build(target)


# A run asks about the same few Requires-Python strings thousands of times
# (once per file of every release it reads, per member and target).
@lru_cache(maxsize=4096)
def _admits(requires_python: str, python: Version) -> bool:
    try:
        spec = SpecifierSet(requires_python)
    except ValueError:
        return True
    return spec.contains(python, prereleases=True)


def _full_version(python: str) -> Version:
    try:
        version = Version(python)
    except ValueError:
        version = None
    if version is None or len(version.release) not in (2, 3) or version.major != 3:
        raise ResolutionError(
            f"invalid target Python {python!r}",
            hint='write a CPython 3 version like "3.11" in workspace.yaml',
        )
    release = version.release + (0,) * (3 - len(version.release))
    return Version(".".join(map(str, release)))


def _marker_values(full: Version, machine: str) -> dict[str, str | Set[str]]:
    return {
        "implementation_name": "cpython",
        "implementation_version": str(full),
        "os_name": "posix",
        "platform_machine": machine,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": str(full),
        "python_version": f"{full.major}.{full.minor}",
        "sys_platform": "linux",
    }


def _target_tags(python: tuple[int, int], machine: str) -> Iterator[Tag]:
    platforms = manylinux_platforms(machine)
    interpreter = f"cp{python[0]}{python[1]}"
    yield from cpython_tags(python, abis=[interpreter], platforms=platforms)
    yield from compatible_tags(python, interpreter=interpreter, platforms=platforms)
