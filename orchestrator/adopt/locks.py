"""The versions a repository's previous tool pinned: poetry.lock, uv.lock and pdm.lock.

The first ``orchestrator lock`` after adoption prefers these versions (as it
prefers an existing pylock.toml's), so switching tools changes no version that
no requirement forces. The files are read with ``tomllib``; Poetry, uv and pdm
are never run.

Where a member's pins come from: the first of ``poetry.lock``, ``pdm.lock``
and ``uv.lock`` in its own directory, else the nearest ``uv.lock`` in a
directory above it, up to the workspace root (a uv workspace locks all its
members in one file at its root; Poetry and pdm lock one project per
directory). A uv.lock that lists local projects but not this member belongs to
another project and is passed over.

Only packages that come from an index are pins: a lock's path, directory, git,
URL, editable, virtual and workspace entries are the projects themselves or
direct references, which the resolver does not take from an index.

A lock may hold several versions of one package, for different markers
(``numpy`` 1.24 for Python < 3.9 and 2.1 beyond). All are kept, newest first;
the resolver tries them in that order and takes the first that fits the
requirements and has a file for the target, which is the one the old tool
chose for an environment like the target (the others fail its Python or its
requirements), and the newest when several fit.

An unreadable or malformed file is a warning, never an error: adoption then
just keeps fewer versions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import LockError
from orchestrator.models import Member
from orchestrator.names import normalize

OWN_LOCKS = ("poetry.lock", "pdm.lock", "uv.lock")  # in the member's directory, in this order
ANCESTOR_LOCKS = ("uv.lock",)  # in a directory above it, nearest first

# Entries that are not index packages, by the key that marks them.
_UV_LOCAL = frozenset({"editable", "virtual", "workspace"})  # the uv workspace's members
_UV_REFERENCE = frozenset({"git", "url", "path", "directory"})
_POETRY_NOT_INDEX = frozenset({"directory", "file", "git", "url"})
_PDM_NOT_INDEX = ("path", "git", "url", "editable")


@dataclass(frozen=True, slots=True)
class ForeignPins:
    """The index packages one foreign lock pins."""

    path: Path
    pins: Mapping[str, tuple[str, ...]]  # normalized name -> versions, newest first
    local: frozenset[str] = frozenset()  # projects the lock lists as local (uv: the members)

    @property
    def kind(self) -> str:
        """Which tool's lock: ``poetry.lock``, ``uv.lock`` or ``pdm.lock``."""
        return self.path.name

    def covers(self, member: str) -> bool:
        """Whether the lock is about *member* (a uv.lock of other projects is not)."""
        return not self.local or member in self.local


@dataclass(frozen=True, slots=True)
class ForeignLookup:
    """What was found for one member: the pins (or none) and the files that could not be read."""

    found: ForeignPins | None
    warnings: tuple[str, ...] = ()


class ForeignLockReader:
    """Finds and reads members' foreign locks, each file once per run.

    A root uv.lock serves every member; it may be megabytes. Safe to share
    between threads: a race only reads a file twice.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._read: dict[Path, ForeignPins | LockError] = {}

    def find(self, member: Member) -> ForeignLookup:
        """The pins for *member*: its own lock first, then the nearest uv.lock above it."""
        warnings: list[str] = []
        for path in self.candidates(member.path):
            found = self.read(path)
            if isinstance(found, LockError):
                warnings.append(found.message)
            elif found.covers(member.name):
                return ForeignLookup(found, tuple(warnings))
        return ForeignLookup(None, tuple(warnings))

    def candidates(self, directory: Path) -> list[Path]:
        """The lock files that could hold *directory*'s pins, in the order they are tried."""
        directory = directory.resolve()
        paths = [directory / name for name in OWN_LOCKS]
        if directory.is_relative_to(self.root):
            for parent in directory.parents:
                if not parent.is_relative_to(self.root):
                    break
                paths += [parent / name for name in ANCESTOR_LOCKS]
        return [p for p in paths if p.is_file()]

    def read(self, path: Path) -> ForeignPins | LockError:
        cached = self._read.get(path)
        if cached is None:
            try:
                cached = read_pins(path, shown=self._shown(path))
            except LockError as error:
                cached = error
            cached = self._read.setdefault(path, cached)
        return cached

    def _shown(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) \
            else str(path)


def read_pins(path: Path, *, shown: str | None = None) -> ForeignPins:
    """The index pins of the poetry.lock, uv.lock or pdm.lock at *path*.

    Raises ``LockError`` naming the file (as *shown*) when it cannot be read,
    is not TOML, or has no array of ``[[package]]`` tables.
    """
    import tomllib  # here: most locks have no foreign lock to read

    shown = shown or str(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _unreadable(path, shown, f"cannot be read ({exc})") from exc
    packages = data.get("package", [])
    if not isinstance(packages, list) or not all(isinstance(p, dict) for p in packages):
        raise _unreadable(path, shown, "is not a lock file: `package` is not an array of tables")
    entries: list[tuple[str, str]] = []
    local: set[str] = set()
    for package in packages:
        name, version = package.get("name"), package.get("version")
        if not isinstance(name, str):
            continue
        # pdm writes a package's extras as separate entries named `name[extra]`
        name = normalize(name.split("[", 1)[0].strip())
        kind = _source_kind(path.name, package)
        if kind == "local":
            local.add(name)
        elif kind == "index" and isinstance(version, str):
            entries.append((name, version))
    if path.name == "uv.lock":
        local.update(_uv_manifest_members(data))
    return ForeignPins(path, _newest_first(entries), frozenset(local))


def _unreadable(path: Path, shown: str, why: str) -> LockError:
    return LockError(f"{shown} {why}; the versions it pins are not kept",
                     hint="fix or delete the file, or lock without it", file=path)


def _source_kind(filename: str, package: Mapping[str, object]) -> str:
    """``index``, ``local`` (a uv workspace member) or ``reference`` (a direct reference)."""
    if filename == "uv.lock":
        source = package.get("source")
        keys = set(source) if isinstance(source, dict) else set()
        if keys & _UV_LOCAL:
            return "local"
        return "reference" if keys & _UV_REFERENCE else "index"
    if filename == "poetry.lock":
        source = package.get("source")
        kind = source.get("type") if isinstance(source, dict) else None
        return "reference" if kind in _POETRY_NOT_INDEX else "index"
    return "reference" if any(key in package for key in _PDM_NOT_INDEX) else "index"


def _uv_manifest_members(data: Mapping[str, object]) -> set[str]:
    manifest = data.get("manifest")
    members = manifest.get("members") if isinstance(manifest, dict) else None
    if not isinstance(members, list):
        return set()
    return {normalize(m) for m in members if isinstance(m, str)}


def _newest_first(entries: Sequence[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """name -> its valid versions, newest first; a version that is not PEP 440 is dropped."""
    from packaging.version import InvalidVersion, Version

    found: dict[str, dict[Version, str]] = {}
    for name, text in entries:
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        found.setdefault(name, {}).setdefault(version, text)
    return {name: tuple(versions[v] for v in sorted(versions, reverse=True))
            for name, versions in sorted(found.items())}
