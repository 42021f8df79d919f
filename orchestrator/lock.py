"""One PEP 751 ``pylock.toml`` per member: build, write, read, and check for staleness.

A lock is built through ``packaging.pylock`` so it is valid by construction,
written deterministically (sorted packages, stable key order) and atomically.
Its ``[tool.orchestrator]`` table records an input fingerprint: a hash of
everything the resolution depended on that can be read without the network
(the member's requirements, its workspace dependencies' requirements, the
target environments and the index configuration). ``check`` recomputes the
fingerprint from the workspace and compares, so it is fast and offline.

A member's own extras (``[project.optional-dependencies]``) are locked beside
its groups, with PEP 751 ``'x' in extras`` markers. They enter the fingerprint
only when the member has extras (and a library's only when a lock asks for
them), so the locks of members without extras kept their bytes when extras
began to be locked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias, cast

from orchestrator.atomic import write_text
from orchestrator.errors import LockError
from orchestrator.models import (
    LOCK_FILENAME,
    PLATFORM_MACHINES,
    DistFile,
    Member,
    Target,
    Workspace,
    requirement_head,
)
from orchestrator.names import normalize

if TYPE_CHECKING:
    from datetime import datetime

    from packaging.markers import Environment
    from packaging.pylock import (
        Package,
        PackageArchive,
        PackageDirectory,
        PackageSdist,
        PackageVcs,
        PackageWheel,
        Pylock,
        PylockSelectError,
    )
    from packaging.tags import Tag

    from orchestrator.adopt.locks import ForeignLockReader
    from orchestrator.resolver import Resolution, UsedRequirement
    from orchestrator.resolver.catalog import Catalog, PackageFinder
    from orchestrator.resolver.prefetch import Prefetcher

LOCK_VERSION = "1.0"
# Bump when the fingerprint recipe or the lock layout changes, so old locks read as stale.
FINGERPRINT_VERSION = 1
CREATED_BY = "orchestrator"


class LockablePackage(Protocol):
    """What a resolver hands over per locked package."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def files(self) -> tuple[DistFile, ...]: ...
    @property
    def dependencies(self) -> tuple[str, ...]: ...
    @property
    def marker(self) -> str | None: ...
    @property
    def directory(self) -> str | None: ...


# -- fingerprints ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The lock inputs of one member, hashed per part so staleness can say why."""

    requirements: str  # the member's own dependencies, groups, extras and requires-python
    workspace: str  # the requirements of the workspace members it depends on
    targets: str  # python x platforms
    indexes: str  # index names and URLs, and the member's sources

    @property
    def combined(self) -> str:
        return _digest([FINGERPRINT_VERSION, self.requirements, self.workspace, self.targets,
                        self.indexes])

    def as_table(self) -> dict[str, str]:
        return {"requirements": self.requirements, "workspace": self.workspace,
                "targets": self.targets, "indexes": self.indexes}


def _digest(value: object) -> str:
    data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _member_inputs(member: Member) -> dict[str, object]:
    inputs: dict[str, object] = {
        "name": member.name,
        "version": member.version,
        "requires-python": member.requires_python,
        "dependencies": list(member.dependencies),
        "groups": {g: list(reqs) for g, reqs in sorted(member.groups.items())},
    }
    if member.optional:  # absent otherwise: locks without extras keep their fingerprint
        inputs["optional"] = {e: list(reqs) for e, reqs in sorted(member.optional.items())}
    return inputs


def _library_inputs(member: Member, extras: Collection[str]) -> dict[str, object]:
    """What a dependent's lock takes from a workspace library: main needs, asked-for extras."""
    inputs = {k: v for k, v in _member_inputs(member).items() if k not in ("groups", "optional")}
    defined = {normalize(e): reqs for e, reqs in member.optional.items()}
    asked = {e: list(defined[e]) for e in sorted(extras) if e in defined}
    if asked:
        inputs["optional"] = asked
    return inputs


def fingerprint(workspace: Workspace, member: Member) -> Fingerprint:
    members = {m.name: m for m in workspace.members}
    deps = _workspace_extras(member, members)
    return Fingerprint(
        requirements=_digest(_member_inputs(member)),
        workspace=_digest([_library_inputs(members[name], deps[name]) for name in sorted(deps)]),
        targets=_digest([[t.python, t.platform] for t in workspace.targets]),
        indexes=_digest({"indexes": [[i.name, i.url] for i in workspace.indexes],
                         "sources": dict(sorted(member.options.sources.items()))}),
    )


@lru_cache(maxsize=4096)
def _requested(requirement: str) -> tuple[str, frozenset[str]]:
    """The normalized project name and extras a PEP 508 string asks for."""
    head = requirement_head(requirement)  # without importing packaging, on a no-op's path
    if head is None:
        from packaging.requirements import Requirement

        parsed = Requirement(requirement)
        head = parsed.name, frozenset(parsed.extras)
    return normalize(head[0]), frozenset(normalize(e) for e in head[1])


def _workspace_extras(member: Member, members: Mapping[str, Member]) -> dict[str, set[str]]:
    """The members *member*'s lock depends on -> the extras of each that it asks for.

    ``graph.workspace_dependencies``, but also following the member's own
    extras and the extras it asks of libraries (``common[redis]`` brings what
    common's redis extra names, members too).
    """
    found: dict[str, set[str]] = {}
    own = [req for reqs in member.optional.values() for req in reqs]
    stack = [*member.all_requirements(), *own]
    while stack:
        name, extras = _requested(stack.pop())
        dep = members.get(name)
        if dep is None or name == member.name:
            continue
        known = found.get(name)
        new = extras - known if known is not None else extras
        if known is not None and not new:
            continue
        if known is None:
            stack.extend(dep.dependencies)
        found.setdefault(name, set()).update(new)
        defined = {normalize(e): reqs for e, reqs in dep.optional.items()}
        for extra in new:
            stack.extend(defined.get(extra, ()))
    return found


# -- staleness -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Staleness:
    member: Member
    reason: str


_REASONS = {
    "requirements": "its dependencies or dependency groups changed",
    "workspace": "a workspace library it depends on changed its requirements",
    "targets": "the workspace's python or platforms changed",
    "indexes": "the index configuration changed",
}


def staleness(workspace: Workspace, member: Member) -> Staleness | None:
    """Why *member*'s lock is out of date, or None when it is current. No network."""
    path = member.lockfile
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Staleness(member, f"{_rel(workspace, path)} does not exist")
    except OSError as exc:
        return Staleness(member, f"{_rel(workspace, path)} cannot be read ({exc})")
    current = fingerprint(workspace, member)
    # The fast path of every no-op (`lock`, `lock --check`, `sync`): parse only the
    # [tool.orchestrator] table the writer puts last, not the whole lock with its hundreds
    # of wheel entries. Whoever then installs from the lock parses and validates all of it.
    tail = _tool_table(raw)
    if tail is not None and tail.get("fingerprint") == current.combined:
        return None
    import tomllib  # here: a lock with no pylock.toml to read does not import it

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return Staleness(member, f"{_rel(workspace, path)} cannot be read ({exc})")
    tool = data.get("tool", {}).get("orchestrator", {})
    if tool.get("fingerprint") == current.combined:
        return None
    recorded = tool.get("inputs", {})
    if not isinstance(recorded, dict) or tool.get("fingerprint-version") != FINGERPRINT_VERSION:
        return Staleness(member, "the lock was written by another version of orchestrator")
    for part, value in current.as_table().items():
        if recorded.get(part) != value:
            if part == "requirements" and member.optional:
                return Staleness(member, "its dependencies, dependency groups or extras changed")
            return Staleness(member, _REASONS[part])
    return Staleness(member, "the lock's fingerprint does not match its inputs")


_TOOL_HEADER = b"\n[tool.orchestrator]\n"


def _tool_table(raw: bytes) -> dict[str, object] | None:
    """The lock's ``[tool.orchestrator]`` table parsed on its own, or None if absent or
    unreadable (then the caller parses the whole file and says what is wrong)."""
    start = raw.find(_TOOL_HEADER)
    if start < 0:
        return None
    import tomllib

    try:
        data = tomllib.loads(raw[start + 1:].decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    table = data.get("tool", {}).get("orchestrator")
    return table if isinstance(table, dict) else None


def _rel(workspace: Workspace, path: Path) -> str:
    try:
        return path.relative_to(workspace.root.resolve()).as_posix()
    except ValueError:
        return str(path)


# -- building and writing ----------------------------------------------------------


def build_pylock(
    workspace: Workspace,
    member: Member,
    packages: Sequence[LockablePackage],
) -> Pylock:
    """A validated Pylock for *member* from the resolved packages."""
    from packaging.markers import Marker
    from packaging.pylock import Package, PackageDirectory, Pylock, PylockValidationError
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    from orchestrator.index.auth import hide_index_secrets

    def hide(url: str) -> str:  # a token in an index's path never goes into a lock
        return hide_index_secrets(url, workspace.indexes)

    index_urls = {i.name: hide(i.url) for i in workspace.indexes}
    entries = []
    for pkg in sorted(packages, key=lambda p: (p.name, p.version, p.marker or "")):
        wheels = [f for f in pkg.files if f.is_wheel]
        sdists = [f for f in pkg.files if not f.is_wheel]
        directory = None
        if pkg.directory is not None:
            target = workspace.root / pkg.directory
            directory = PackageDirectory(path=os.path.relpath(target, member.path),
                                         editable=True)
        entries.append(Package(
            name=canonicalize_name(pkg.name),
            version=Version(pkg.version) if pkg.version is not None else None,
            marker=Marker(pkg.marker) if pkg.marker else None,
            dependencies=[{"name": d} for d in sorted(set(pkg.dependencies))] or None,
            directory=directory,
            index=index_urls.get(pkg.files[0].index) if pkg.files else None,
            wheels=[_wheel(f, hide) for f in sorted(wheels, key=lambda f: f.filename)] or None,
            sdist=_sdist(sdists[0], hide) if sdists and not wheels else None,
        ))
    fp = fingerprint(workspace, member)
    lock = Pylock(
        lock_version=Version(LOCK_VERSION),
        environments=[Marker(_environment_marker(t.python, t.platform))
                      for t in workspace.targets],
        requires_python=SpecifierSet(member.requires_python) if member.requires_python else None,
        extras=sorted({canonicalize_name(e) for e in member.optional}) or None,
        dependency_groups=sorted(member.groups) or None,
        default_groups=[] if member.groups else None,
        created_by=CREATED_BY,
        packages=entries,
        tool={"orchestrator": {
            "member": member.name,
            "fingerprint": fp.combined,
            "fingerprint-version": FINGERPRINT_VERSION,
            "inputs": fp.as_table(),
            "targets": [f"{t.python} {t.platform}" for t in workspace.targets],
        }},
    )
    try:
        lock.validate()
    except PylockValidationError as exc:  # a bug here, not a user error, but say where
        raise LockError(f"internal error: the lock for {member.name} is not valid PEP 751: "
                        f"{exc}") from exc
    return lock


# A lock as ``toml_dict`` returns it: what ``render_table`` writes.
LockTable: TypeAlias = "dict[str, object]"


def lock_table(
    workspace: Workspace,
    member: Member,
    packages: Sequence[LockablePackage],
) -> LockTable:
    """``toml_dict(build_pylock(...))``, built without ``packaging.pylock``: what `lock` writes.

    The same keys in the same order and the same value spellings (normalized
    names, versions, markers and specifiers), so the same bytes; a test checks
    both ways agree and that what is written reads back as valid PEP 751.
    Skipped: importing ``packaging.pylock`` (about 50 dataclasses made at import),
    its objects and ``validate()`` (``from_dict(to_dict())``), a fifth of a warm lock.
    """
    from packaging.utils import canonicalize_name

    from orchestrator.index.auth import hide_index_secrets

    def hide(url: str) -> str:  # a token in an index's path never goes into a lock
        return hide_index_secrets(url, workspace.indexes)

    def archive(file: DistFile) -> dict[str, object]:
        entry: dict[str, object] = {"name": file.filename}
        uploaded = _upload_time(file)
        if uploaded is not None:
            entry["upload-time"] = uploaded
        entry["url"] = hide(file.url)
        if file.size is not None:
            entry["size"] = file.size
        entry["hashes"] = _hashes(file)
        return entry

    index_urls = {i.name: hide(i.url) for i in workspace.indexes}
    entries: list[dict[str, object]] = []
    for pkg in sorted(packages, key=lambda p: (p.name, p.version, p.marker or "")):
        entry: dict[str, object] = {"name": canonicalize_name(pkg.name)}
        if pkg.version is not None:
            entry["version"] = _version_text(pkg.version)
        if pkg.marker:
            entry["marker"] = _marker_text(pkg.marker)
        dependencies = [{"name": d} for d in sorted(set(pkg.dependencies))]
        if dependencies:
            entry["dependencies"] = dependencies
        if pkg.directory is not None:
            target = workspace.root / pkg.directory
            entry["directory"] = {"path": os.path.relpath(target, member.path),
                                  "editable": True}
        index = index_urls.get(pkg.files[0].index) if pkg.files else None
        if index is not None:
            entry["index"] = index
        wheels = sorted((f for f in pkg.files if f.is_wheel), key=lambda f: f.filename)
        sdists = [f for f in pkg.files if not f.is_wheel]
        if sdists and not wheels:
            entry["sdist"] = archive(sdists[0])
        if wheels:
            entry["wheels"] = [archive(f) for f in wheels]
        entries.append(entry)
    fp = fingerprint(workspace, member)
    table: LockTable = {
        "lock-version": _version_text(LOCK_VERSION),
        "environments": [_marker_text(_environment_marker(t.python, t.platform))
                         for t in workspace.targets],
    }
    if member.requires_python:
        table["requires-python"] = _specifier_text(member.requires_python)
    extras = sorted({canonicalize_name(e) for e in member.optional})
    if extras:
        table["extras"] = extras
    if member.groups:
        table["dependency-groups"] = sorted(member.groups)
        table["default-groups"] = []
    table["created-by"] = CREATED_BY
    table["packages"] = entries
    table["tool"] = {"orchestrator": {
        "member": member.name,
        "fingerprint": fp.combined,
        "fingerprint-version": FINGERPRINT_VERSION,
        "inputs": fp.as_table(),
        "targets": [f"{t.python} {t.platform}" for t in workspace.targets],
    }}
    return table


@lru_cache(maxsize=4096)
def _version_text(text: str) -> str:
    from packaging.version import Version

    return str(Version(text))


@lru_cache(maxsize=4096)
def _marker_text(text: str) -> str:
    from packaging.markers import Marker

    return str(Marker(text))


@lru_cache(maxsize=256)
def _specifier_text(text: str) -> str:
    from packaging.specifiers import SpecifierSet

    return str(SpecifierSet(text))


def table_pins(table: LockTable) -> dict[str, str]:
    """``pins`` of the lock *table* describes."""
    out: dict[str, str] = {}
    for pkg in cast("list[Mapping[str, object]]", table["packages"]):
        version = pkg.get("version")
        if isinstance(version, str) and "directory" not in pkg:
            out.setdefault(str(pkg["name"]), version)
    return out


def _wheel(file: DistFile, hide: Callable[[str], str]) -> PackageWheel:
    from packaging.pylock import PackageWheel

    return PackageWheel(name=file.filename, url=hide(file.url), size=file.size,
                        upload_time=_upload_time(file), hashes=_hashes(file))


def _sdist(file: DistFile, hide: Callable[[str], str]) -> PackageSdist:
    from packaging.pylock import PackageSdist

    return PackageSdist(name=file.filename, url=hide(file.url), size=file.size,
                        upload_time=_upload_time(file), hashes=_hashes(file))


def _hashes(file: DistFile) -> dict[str, str]:
    if not file.sha256:
        raise LockError(f"the index lists {file.filename} without a sha256 hash",
                        hint="locks need hashes; use an index that publishes them",
                        index=file.index)
    return {"sha256": file.sha256}


def _upload_time(file: DistFile) -> datetime | None:
    from datetime import datetime

    if not file.upload_time:
        return None
    try:
        return datetime.fromisoformat(file.upload_time.replace("Z", "+00:00"))
    except ValueError:
        return None  # an index's odd timestamp is not worth failing a lock for


def _environment_marker(python: str, platform: str) -> str:
    return (f"sys_platform == 'linux' and platform_machine == '{PLATFORM_MACHINES[platform]}' "
            f"and python_version == '{python}' and implementation_name == 'cpython'")


def render(lock: Pylock) -> str:
    """Deterministic TOML for *lock*: top-level keys, then [[packages]], then [tool].

    Written directly rather than through tomlkit (which costs more than the
    rest of a warm lock) or tomli-w (which writes long inline tables as
    ``[[packages.wheels]]`` tables and datetimes as ``2024-01-02 03:04:05+00:00``,
    so other bytes): a pylock.toml has a fixed shape. Within a table, plain
    values come first, then sub-tables; arrays of tables (wheels,
    dependencies) are multi-line arrays of inline tables, one per line.
    """
    # Not lock.to_dict(): dataclasses.asdict deep-copies every leaf, 65 of the 88 ms
    # rendering the benchmark workspace's nine locks took (bench/workspaces.py big).
    return render_table(toml_dict(lock))


def render_table(table: Mapping[str, object]) -> str:
    """``render`` of the lock whose ``toml_dict`` is *table* (``lock_table``'s output)."""
    data = dict(table)
    packages = cast("list[Mapping[str, object]]", data.pop("packages"))
    tool = data.pop("tool", None)
    lines = [
        "# This file is @generated by orchestrator; do not edit by hand.",
        "# Re-create it with `orchestrator lock`.",
    ]
    # An empty array of tables would vanish, and PEP 751 requires the key.
    _toml_table(lines, data if packages else {**data, "packages": []}, None)
    for package in packages:
        lines.append("")
        _toml_table(lines, package, "packages", array=True)
    if tool is not None:
        _toml_table(lines, {"tool": tool}, None)
    return "\n".join(lines) + "\n"


def toml_dict(lock: Pylock) -> dict[str, object]:
    """``lock.to_dict()`` without its copies: the same keys, values and order.

    Like packaging's ``_toml_dict_factory``: field names with dashes, None left out,
    versions, markers and specifiers as strings (``environments`` a list of them).
    Leaves are shared, not copied; ``render`` only reads them.
    """
    out = _toml_walk(lock)
    assert isinstance(out, dict)
    return out


_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _toml_walk(value: object) -> object:
    import dataclasses

    from packaging.markers import Marker
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    kind = type(value)
    names = _FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELDS[kind] = tuple((f.name, f.name.replace("_", "-"))
                                      for f in dataclasses.fields(value))
    if names is not None:
        table: dict[str, object] = {}
        for name, key in names:
            item = getattr(value, name)
            if item is None:
                continue
            item = _toml_walk(item)
            if isinstance(item, (Version, Marker, SpecifierSet)):
                item = str(item)
            elif name == "environments" and isinstance(item, (list, tuple)):
                item = [str(v) for v in item]
            table[key] = item
        return table
    if isinstance(value, list):
        return [_toml_walk(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_toml_walk(v) for v in value)
    if isinstance(value, dict):
        return {_toml_walk(k): _toml_walk(v) for k, v in value.items()}
    return value


def _toml_table(
    lines: list[str], table: Mapping[str, object], path: str | None, *, array: bool = False
) -> None:
    """Append *table* at *path* (None: the document's top level)."""
    values = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if path is not None and (array or values or not tables):
        lines.append(f"[[{path}]]" if array else f"\n[{path}]")
    for key, value in values.items():
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            lines.append(f"{_toml_key(key)} = [")
            lines.extend(f"    {_toml_value(item)}," for item in value)
            lines.append("]")
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, sub in tables.items():
        _toml_table(lines, sub, f"{path}.{_toml_key(key)}" if path else _toml_key(key))


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: object) -> str:
    from datetime import datetime

    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return f"{{{inner}}}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise LockError(f"internal error: cannot write {type(value).__name__} {value!r} to a lock")


def write_lock(member: Member, lock: Pylock | LockTable) -> bool:
    """Write *member*'s pylock.toml; returns False when the bytes were already there.

    *lock* is a Pylock or ``lock_table``'s output.
    """
    text = render_table(lock) if isinstance(lock, dict) else render(lock)
    path = member.lockfile
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(path, text)
    return True


# -- reading -----------------------------------------------------------------------


def read_lock(path: Path) -> Pylock:
    """Parse and validate a pylock.toml; errors name the file and the bad key."""
    import tomllib

    from packaging.pylock import Pylock, PylockValidationError

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise LockError(f"{path} does not exist", hint="run `orchestrator lock`",
                        file=path) from exc
    except tomllib.TOMLDecodeError as exc:
        raise LockError(f"{path}: invalid TOML ({exc})",
                        hint="re-create it with `orchestrator lock`", file=path) from exc
    try:
        return Pylock.from_dict(data)
    except PylockValidationError as exc:
        raise LockError(f"{path}: not a valid PEP 751 lock: {exc}",
                        hint="re-create it with `orchestrator lock`", file=path) from exc


def dependency_graph(lock: Pylock) -> dict[str, list[str]]:
    """name -> names it depends on, from the entries' `dependencies` lists."""
    graph: dict[str, list[str]] = {}
    for pkg in lock.packages:
        deps = graph.setdefault(str(pkg.name), [])
        for dep in pkg.dependencies or ():
            name = dep.get("name")
            if isinstance(name, str) and name not in deps:
                deps.append(name)
    return graph


def reachable(lock: Pylock, roots: Iterable[str]) -> set[str]:
    """Every package name reachable from *roots* through the lock's dependency lists."""
    graph = dependency_graph(lock)
    seen: set[str] = set()
    stack = [normalize(r) for r in roots]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(graph.get(name, ()))
    return seen


def archive_hashes(package: Package) -> list[str]:
    """The sha256 of every wheel and sdist a lock entry lists, sorted."""
    files: list[PackageWheel | PackageSdist] = [*(package.wheels or ()),
                                                *([package.sdist] if package.sdist else [])]
    return sorted({f.hashes["sha256"] for f in files if "sha256" in f.hashes})


def pins(lock: Pylock) -> dict[str, str]:
    """name -> version for every index package in the lock (preferences for re-locking)."""
    out: dict[str, str] = {}
    for pkg in lock.packages:
        if pkg.version is not None and pkg.directory is None:
            out.setdefault(str(pkg.name), str(pkg.version))
    return out


@dataclass(frozen=True, slots=True)
class LockChanges:
    added: tuple[tuple[str, str], ...]
    removed: tuple[tuple[str, str], ...]
    changed: tuple[tuple[str, str, str], ...]  # name, old, new

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> str:
        parts = [f"+{n} {v}" for n, v in self.added]
        parts += [f"-{n} {v}" for n, v in self.removed]
        parts += [f"{n} {old} -> {new}" for n, old, new in self.changed]
        return ", ".join(parts) if parts else "no changes"


def compare(old: Mapping[str, str], new: Mapping[str, str]) -> LockChanges:
    return LockChanges(
        added=tuple((n, new[n]) for n in sorted(new.keys() - old.keys())),
        removed=tuple((n, old[n]) for n in sorted(old.keys() - new.keys())),
        changed=tuple((n, old[n], new[n]) for n in sorted(old.keys() & new.keys())
                      if old[n] != new[n]),
    )


def existing_pins(member: Member) -> dict[str, str]:
    """Pins of the member's current lock, or nothing when it is missing or unreadable."""
    try:
        return pins(read_lock(member.lockfile))
    except LockError:
        return {}


def stale_members(workspace: Workspace, members: Iterable[Member]) -> list[Staleness]:
    return [s for m in members if (s := staleness(workspace, m)) is not None]


def unchanged_result(member: Member) -> LockResult:
    """What `lock` reports for a member whose lock is current (``staleness`` is None):
    nothing resolved, nothing written. Counts the lock's packages without parsing it."""
    raw = member.lockfile.read_bytes()
    # one header line per entry, as render writes them (CRLF: a checkout with autocrlf)
    packages = len(re.findall(rb"^\[\[packages\]\]\r?$", raw, flags=re.MULTILINE))
    return LockResult(member, LockChanges((), (), ()), False, packages, member.lockfile,
                      kept=packages)


# -- selecting what to install ---------------------------------------------------------


# What Pylock.select chose to install for one package on one target.
Source: TypeAlias = "PackageWheel | PackageSdist | PackageDirectory | PackageVcs | PackageArchive"


@dataclass(frozen=True, slots=True)
class Selected:
    """A lock entry chosen for some targets and dependency groups."""

    package: Package
    targets: tuple[Target, ...]  # where it applies, a subset of those asked for
    sources: tuple[Source, ...]  # what is installed there, one per target

    @property
    def name(self) -> str:
        return str(self.package.name)

    @property
    def is_member(self) -> bool:
        return self.package.directory is not None

    def file_for(self, target: Target) -> PackageWheel | PackageSdist:
        """The best wheel for *target*, one of ``targets``, else the sdist.

        Wheels are ranked by ``Pylock.select``: the best-ranked tag of the
        target wins, then the first filename.
        """
        from packaging.pylock import PackageSdist, PackageWheel

        for where, source in zip(self.targets, self.sources, strict=True):
            if where == target and isinstance(source, (PackageWheel, PackageSdist)):
                return source
        raise _no_file(self.package, target)


def _no_file(package: Package, target: Target) -> LockError:
    return LockError(
        f"the lock has no file of {package.name} {package.version} for "
        f"{target.python} {target.platform}",
        hint="re-lock with that platform listed under `platforms` in workspace.yaml",
        package=str(package.name))


def select(lock: Pylock, targets: Sequence[Target], groups: Collection[str], *,
           extras: Collection[str] = ()) -> list[Selected]:
    """Entries of *lock* installed on any of *targets* with *groups* and *extras*, in lock order.

    ``Pylock.select`` runs once per target (its marker environment and wheel
    tags, PEP 751's ``dependency_groups`` set to *groups* and ``extras`` to
    *extras*); an entry chosen on several targets comes back once, with each
    target's file.
    """
    ordered = _filename_ordered(lock)
    # By identity: entries are unhashable, and two entries may be equal.
    chosen: dict[int, tuple[list[Target], list[Source]]] = {}
    for target in targets:
        for pkg, source in _select_one(ordered, target, groups, extras):
            where, sources = chosen.setdefault(id(pkg), ([], []))
            where.append(target)
            sources.append(source)
    return [Selected(pkg, tuple(chosen[id(pkg)][0]), tuple(chosen[id(pkg)][1]))
            for pkg in ordered.packages if id(pkg) in chosen]


def _select_one(lock: Pylock, target: Target, groups: Collection[str],
                extras: Collection[str]) -> list[tuple[Package, Source]]:
    from packaging.pylock import PylockSelectError

    environment, tags = _select_environment(target)
    try:
        return list(lock.select(environment=environment, tags=tags, extras=tuple(extras),
                                dependency_groups=tuple(groups)))
    except PylockSelectError as exc:
        raise _select_error(lock, target, exc) from exc


@lru_cache(maxsize=64)
def _select_environment(target: Target) -> tuple[Environment, tuple[Tag, ...]]:
    """The marker environment and best-first wheel tags ``Pylock.select`` needs for *target*."""
    from packaging.markers import Environment

    from orchestrator.resolver.environment import TargetEnvironment

    env = TargetEnvironment.for_target(target)
    # The target's markers spell out every Environment key as a string.
    environment = cast("Environment", {key: env.markers[key]
                                       for key in Environment.__required_keys__})
    return environment, tuple(env.tag_ranks)  # tag_ranks is in rank order


def _filename_ordered(lock: Pylock) -> Pylock:
    """*lock*, with each entry's wheels in filename order.

    ``Pylock.select`` breaks a tie between equally ranked wheels by their order
    in the lock. Ours are written sorted (so this returns *lock* itself);
    sorting other locks keeps the tie-break at "first filename" for them too.
    """
    import dataclasses

    def ordered(wheels: Sequence[PackageWheel]) -> bool:
        names = [w.filename for w in wheels]
        return names == sorted(names)

    if all(ordered(pkg.wheels or ()) for pkg in lock.packages):
        return lock
    return dataclasses.replace(lock, packages=[
        pkg if ordered(pkg.wheels or ()) else dataclasses.replace(
            pkg, wheels=sorted(pkg.wheels or (), key=lambda w: w.filename))
        for pkg in lock.packages])


# PylockSelectError carries only text; this is how it names the entry without a file.
_NO_WHEEL = re.compile(r"^No wheel found .* at packages\[(\d+)\]")


def _recorded_targets(lock: Pylock) -> list[str]:
    """The targets our [tool.orchestrator] table lists ("3.11 linux/amd64"), if any."""
    table = (lock.tool or {}).get("orchestrator")
    targets = table.get("targets") if isinstance(table, Mapping) else None
    return [t for t in targets if isinstance(t, str)] if isinstance(targets, list) else []


def _select_error(lock: Pylock, target: Target, exc: PylockSelectError) -> LockError:
    where = f"{target.python} {target.platform}"
    text = str(exc)
    no_wheel = _NO_WHEEL.match(text)
    if no_wheel is not None and int(no_wheel.group(1)) < len(lock.packages):
        return _no_file(lock.packages[int(no_wheel.group(1))], target)
    if text.startswith("Provided environment does not satisfy any of the environments"):
        made_for = ", ".join(_recorded_targets(lock)) or "other targets"
        return LockError(f"the lock is made for {made_for}, not for {where}",
                         hint="re-lock with that platform listed under `platforms` in "
                         "workspace.yaml")
    return LockError(f"cannot install the lock on {where}: {text}",
                     hint="re-create it with `orchestrator lock`")


# -- locking members ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MovedPin:
    """A version the previous lock pinned that the new lock does not keep, and why."""

    name: str
    old: str  # "2.28.0" (several a foreign lock pinned: "1.24.4 or 1.26.4")
    new: str  # "2.32.3" (several, for different targets: "1.26.4 / 2.1.0")
    reason: str  # "pylock pin no longer fits: requires requests>=2.31 from ..."

    def summary(self) -> str:
        return f"{self.name} {self.old} -> {self.new} ({self.reason})"


@dataclass(frozen=True, slots=True)
class LockResult:
    """One member's new lock, against the pins it was asked to keep.

    *pins_from* is the lock whose versions the resolution preferred: the
    member's pylock.toml, else (on the first lock after adoption) a
    poetry.lock, uv.lock or pdm.lock; None when there was none or every
    package was upgraded. *kept* counts its pins the new lock still has;
    *moved* lists those at another version now. A pin of a package the lock
    no longer needs is neither. *warnings* name foreign locks that could not
    be read.
    """

    member: Member
    changes: LockChanges
    written: bool
    packages: int
    pins_from: Path | None = None
    kept: int = 0
    moved: tuple[MovedPin, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Previous:
    """The versions a member's lock run prefers, and where they come from."""

    pins: Mapping[str, tuple[str, ...]]  # name -> versions, tried in this order
    source: Path | None
    pylock: Mapping[str, str]  # the existing pylock.toml's pins (what `changes` compares to)
    warnings: tuple[str, ...] = ()


def lock_members(
    workspace: Workspace,
    members: Sequence[Member],
    finder: PackageFinder,
    *,
    upgrade: bool | Collection[str] = False,
    progress: Callable[[str], None] | None = None,
) -> list[LockResult]:
    """Resolve every member in one process over a shared *finder*, then write the locks.

    Existing pins are kept while they still fit (minimal churn) unless
    *upgrade* says otherwise: a member's pylock.toml, or, before it has one,
    the poetry.lock, uv.lock or pdm.lock the repository used before
    (``adopt.locks``). Locks are written only after every member has
    resolved, so a failure leaves every lock file as it was.
    """
    with _few_collections():
        return _lock_members(workspace, members, finder, upgrade=upgrade, progress=progress)


def _lock_members(
    workspace: Workspace,
    members: Sequence[Member],
    finder: PackageFinder,
    *,
    upgrade: bool | Collection[str],
    progress: Callable[[str], None] | None,
) -> list[LockResult]:
    by_name = {m.name: m for m in workspace.members}
    # Before anything else (the resolver's imports included): one burst of
    # requests for the page of every member's direct dependencies.
    cold = _fetch_pages_ahead(finder, members, by_name)

    from orchestrator.adopt.locks import ForeignLockReader
    from orchestrator.resolver import Catalog, resolve

    # One catalog for all members: they share most projects, and grouping a
    # big project's files into releases is worth doing once per run.
    catalog = Catalog(finder)
    foreign = ForeignLockReader(workspace.root)
    known: dict[str, _Previous] = {}
    prefetcher = _start_prefetcher(workspace, members, by_name, catalog, known,
                                   lambda m: _previous_pins(m, foreign, upgrade)) if cold else None

    def one(member: Member) -> tuple[Member, LockTable, _Previous, int, tuple[MovedPin, ...]]:
        previous = known.get(member.name) or _previous_pins(member, foreign, upgrade)
        resolution = resolve(member, by_name, workspace.targets, finder,
                             preferred=previous.pins, upgrade=upgrade, catalog=catalog)
        if progress:
            progress(f"resolved {member.name}: {len(resolution.packages)} packages")
        kept, moved = _pin_outcome(previous, resolution)
        return member, lock_table(workspace, member, resolution.packages), previous, kept, moved

    # Threads overlap one member's network waits with another's resolution; with
    # everything in the cache there are none, and threads only contend for the GIL.
    threads = max(1, min(RESOLVER_THREADS if cold else 1, len(members)))
    try:
        if threads == 1:  # a warm lock: no thread to start, nothing to overlap
            resolved = [one(member) for member in members]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=threads) as pool:
                resolved = list(pool.map(one, members))
    finally:
        if prefetcher is not None:
            prefetcher.close()
    results = []
    for member, table, previous, kept, moved in resolved:
        written = write_lock(member, table)
        count = len(cast("list[object]", table["packages"]))
        results.append(LockResult(member, compare(previous.pylock, table_pins(table)), written,
                                  count, previous.source, kept, moved, previous.warnings))
    return results


RESOLVER_THREADS = 4  # members resolved at once when the index must be asked


@contextlib.contextmanager
def _few_collections() -> Iterator[None]:
    """Run with the cyclic GC's young generation collected 100x less often.

    A cold lock decodes megabytes of JSON into hundreds of thousands of
    objects that all stay alive; collecting every 700 allocations walks
    them again and again (a fifth of the time spent parsing pages). What
    the resolver leaves as cycles is little and freed at the end.
    """
    import gc

    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 70_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


_NAME = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def _fetch_pages_ahead(finder: PackageFinder, members: Sequence[Member],
                       by_name: Mapping[str, Member]) -> bool:
    """Start fetching the pages of the members' direct dependencies that the cache lacks.

    Returns whether there were any: a run that must go to the index anyway
    also walks the dependency graph ahead of the resolver (``_start_prefetcher``);
    one served from the cache does not, since that walk would only repeat the
    resolver's work. Finders that cannot tell (test doubles) get neither.
    """
    fresh = getattr(finder, "page_is_fresh", None)
    prefetch = getattr(finder, "prefetch_projects", None)
    if fresh is None or prefetch is None:
        return False
    names: dict[str, None] = {}
    for member in members:
        for text in _requirement_texts(member):
            match = _NAME.match(text)
            if match is not None and normalize(match.group(1)) not in by_name:
                names[normalize(match.group(1))] = None
    missing = [name for name in names if not fresh(name)]
    connect = getattr(finder, "connect", None)
    if missing and connect is not None:
        # The HTTP client made here, before the burst: made by the first requesting
        # thread instead, it competed for the GIL with this thread's imports of the
        # resolver, and the first request went out 30 ms later (in-process, example).
        connect()
    prefetch(missing)
    return bool(missing)


def _requirement_texts(member: Member) -> list[str]:
    texts = [*member.dependencies]
    texts += [t for group in member.groups.values() for t in group]
    texts += [t for extra in member.optional.values() for t in extra]
    return texts


def _start_prefetcher(workspace: Workspace, members: Sequence[Member],
                      by_name: Mapping[str, Member], catalog: Catalog,
                      known: dict[str, _Previous],
                      previous: Callable[[Member], _Previous]) -> Prefetcher:
    """Walk every member's likely dependency graph ahead of the resolver (resolver/prefetch.py).

    Fills *known* with each member's previous pins, which the walk prefers
    as the resolver will.
    """
    from orchestrator.resolver.environment import TargetEnvironment
    from orchestrator.resolver.prefetch import Prefetcher

    prefetcher = Prefetcher(catalog, by_name)
    envs = [TargetEnvironment.for_target(t) for t in workspace.targets]
    for member in members:
        known[member.name] = found = previous(member)
        for env in envs:
            prefetcher.member(member, env, found.pins)
    return prefetcher


def _previous_pins(member: Member, foreign: ForeignLockReader,
                   upgrade: bool | Collection[str]) -> _Previous:
    """The member's pylock.toml pins if it has a readable one, else a foreign lock's."""
    if upgrade is True:
        return _Previous({}, None, existing_pins(member))
    upgraded = {normalize(n) for n in upgrade} if upgrade else set()
    try:
        lock = read_lock(member.lockfile) if member.lockfile.is_file() else None
    except LockError:
        lock = None  # an unreadable lock keeps nothing (a foreign lock may)
    if lock is not None:
        return _Previous(_without(all_pins(lock), upgraded), member.lockfile, pins(lock))
    lookup = foreign.find(member)
    if lookup.found is None:
        return _Previous({}, None, {}, lookup.warnings)
    return _Previous(_without(lookup.found.pins, upgraded), lookup.found.path, {},
                     lookup.warnings)


def _without(found: Mapping[str, tuple[str, ...]],
             names: Collection[str]) -> dict[str, tuple[str, ...]]:
    return {n: v for n, v in found.items() if n not in names}


def all_pins(lock: Pylock) -> dict[str, tuple[str, ...]]:
    """name -> every version the lock has of it (one per target set), newest first.

    Preferring all of them keeps a package that differs between targets (an
    older release where the newer lacks a wheel) at each target's version.
    """
    from packaging.version import Version

    found: dict[str, list[Version]] = {}
    for pkg in lock.packages:
        if pkg.version is not None and pkg.directory is None:
            found.setdefault(str(pkg.name), []).append(pkg.version)
    return {name: tuple(str(v) for v in sorted(set(versions), reverse=True))
            for name, versions in found.items()}


def _pin_outcome(previous: _Previous, resolution: Resolution) -> tuple[int, tuple[MovedPin, ...]]:
    """How many previous pins the resolution kept, and the ones it moved with the reason."""
    from packaging.version import InvalidVersion, Version

    def version(text: str) -> Version | str:
        try:
            return Version(text)
        except InvalidVersion:
            return text

    now: dict[str, list[str]] = {}
    for package in resolution.packages:
        if package.directory is None and package.version is not None:
            now.setdefault(package.name, []).append(package.version)
    label = "pylock" if previous.source is not None and previous.source.name == LOCK_FILENAME \
        else (previous.source.name if previous.source is not None else "")
    kept, moved = 0, []
    for name, old in sorted(previous.pins.items()):
        new = now.get(name)
        if new is None:
            continue  # the lock no longer needs it
        if {version(v) for v in old} & {version(v) for v in new}:
            kept += 1
            continue
        reason = _moved_reason(label, old, resolution.requirements.get(name, ()),
                               resolution.pin_problems.get(name, ()))
        moved.append(MovedPin(name, " or ".join(old), " / ".join(new), reason))
    return kept, tuple(moved)


def _moved_reason(label: str, old: Sequence[str], used: Sequence[UsedRequirement],
                  problems: Sequence[str]) -> str:
    """The requirements (met by the new lock) that exclude the old version, else what did."""
    excluding = [r for r in used if any(r.excludes(v) for v in old)]
    if excluding:
        return f"{label} pin no longer fits: " + "; ".join(
            f"requires {r.text} from {r.source}" for r in excluding)
    if problems:  # not on the index, no file for the target, ...
        return f"{label} pin " + "; ".join(problems)
    # nothing excludes it: the resolver chose otherwise to resolve a conflict
    return "moved to satisfy other pins"
