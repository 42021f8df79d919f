"""Package sources of Poetry, uv and pdm as workspace indexes, in the order they are searched.

A workspace asks its indexes in order and takes a package from the first that
has it (never a later one). Each tool's priorities map onto that order:

- Poetry: ``default`` and ``primary`` sources first (either one turns the
  implicit PyPI off, as in Poetry), then PyPI, then ``supplemental`` (and the
  legacy ``secondary``), then ``explicit``;
- uv: ``[[tool.uv.index]]`` entries first, then the default index (PyPI, or the
  entry with ``default = true``), then ``explicit = true`` entries;
- pdm: PyPI (or the source named ``pypi``), then the other sources.

An explicit source is listed last, and each package that names it
(``source = "x"``, ``{ index = "x" }``, pdm ``include_packages``) is pinned to it
in its member's ``[tool.orchestrator] sources``. ``--index NAME=URL`` replaces
the URL of the source called NAME; any other NAME is added first, and the
implicit PyPI is dropped (the user said where packages come from).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.adopt.discover import Found
from orchestrator.errors import WorkspaceError
from orchestrator.models import IndexSpec

PYPI = IndexSpec("pypi", "https://pypi.org/simple")
_RANK = {"default": 0, "primary": 1, "pypi": 2, "supplemental": 3, "explicit": 4}
_INDEX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True, slots=True)
class Source:
    """One package source as a tool declared it."""

    name: str
    url: str
    priority: str  # a key of _RANK
    origin: str  # the file and table, for messages
    replaces_pypi: bool = False
    packages: tuple[str, ...] = ()  # pdm include_packages patterns


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """The workspace's indexes and how the old tools' source names map onto them."""

    indexes: tuple[IndexSpec, ...]
    names: Mapping[str, str]  # source name as declared (lower-case) -> index name
    patterns: tuple[tuple[str, str], ...]  # (package glob, index name), from pdm
    explanation: tuple[str, ...]  # one line per index: where it came from

    def index_for(self, source: str) -> str | None:
        return self.names.get(source.lower())


def sources_of(found: Found) -> list[Source]:
    """The sources one pyproject.toml declares, in its own order."""
    return [*_poetry(found), *_uv(found), *_pdm(found)]


def plan_indexes(sources: Sequence[Source], overrides: Sequence[IndexSpec]) -> IndexPlan:
    """Order *sources* into indexes, then apply the ``--index`` *overrides*."""
    unique = _deduplicated(sources)
    pypi_off = any(s.replaces_pypi for s in unique)
    entries: list[tuple[int, int, IndexSpec, str]] = []
    names: dict[str, str] = {}
    for order, source in enumerate(unique):
        name = _index_name(source)
        names[source.name.lower()] = name
        spec = PYPI if name == "pypi" and not source.url else IndexSpec(name, source.url)
        entries.append((_RANK[source.priority], order, spec,
                        f"{source.priority} source {source.name!r} of {source.origin}"))
    if not pypi_off and "pypi" not in {e[2].name for e in entries}:
        entries.append((_RANK["pypi"], -1, PYPI, "the default index"))
    entries.sort(key=lambda e: (e[0], e[1]))
    indexes = [e[2] for e in entries]
    why = [e[3] for e in entries]
    indexes, why = _overridden(indexes, why, overrides)
    for index in indexes:
        _check_url(index)
    patterns = tuple((pattern, names[s.name.lower()]) for s in unique for pattern in s.packages)
    lines = tuple(f"{index.name} {index.url}  ({reason})" for index, reason in zip(
        indexes, why, strict=True))
    return IndexPlan(tuple(indexes), names, patterns, lines)


def _overridden(indexes: list[IndexSpec], why: list[str],
                overrides: Sequence[IndexSpec]) -> tuple[list[IndexSpec], list[str]]:
    known = {index.name.lower(): i for i, index in enumerate(indexes)}
    added: list[IndexSpec] = []
    for override in overrides:
        position = known.get(override.name.lower())
        if position is not None:
            indexes[position] = IndexSpec(indexes[position].name, override.url.rstrip("/"))
            why[position] = f"--index {override.name}, replacing {why[position]}"
        else:
            added.append(IndexSpec(override.name, override.url.rstrip("/")))
    if not added:
        return indexes, why
    # Indexes given on the command line say where packages come from: no implicit PyPI.
    kept = [(i, w) for i, w in zip(indexes, why, strict=True) if w != "the default index"]
    return ([*added, *(i for i, _ in kept)],
            [*(f"--index {a.name}" for a in added), *(w for _, w in kept)])


def _deduplicated(sources: Sequence[Source]) -> list[Source]:
    seen: dict[str, Source] = {}
    for source in sources:
        other = seen.get(source.name.lower())
        if other is None:
            seen[source.name.lower()] = source
        elif other.url.rstrip("/") != source.url.rstrip("/"):
            raise WorkspaceError(
                f"the source {source.name!r} has two URLs: {other.url} ({other.origin}) and "
                f"{source.url} ({source.origin})",
                hint="give the sources different names, or the same URL", index=source.name)
    return list(seen.values())


def _index_name(source: Source) -> str:
    if source.name.lower() == "pypi":
        return "pypi"
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", source.name).strip("-_")
    return name if _INDEX_NAME.match(name) else f"index-{name}".rstrip("-") or "index"


def _check_url(index: IndexSpec) -> None:
    if not index.url.startswith(("https://", "http://", "file://")):
        raise WorkspaceError(f"the index {index.name!r} has the URL {index.url!r}, which is "
                             "not an http(s) URL", hint="give the Simple API URL of the index",
                             index=index.name, actual=index.url)
    host = index.url.split("//", 1)[1].split("/", 1)[0]
    if "@" in host:
        env = re.sub(r"[^A-Za-z0-9]", "_", index.name).upper()
        raise WorkspaceError(
            f"the index {index.name!r} has credentials in its URL; credentials never live in "
            "workspace.yaml",
            hint=f"remove them from the URL and set ORCHESTRATOR_INDEX_{env}_USERNAME and "
            "_PASSWORD, or use ~/.netrc", index=index.name)


# -- each tool's tables ---------------------------------------------------------------------


def _entries(found: Found, value: object, key: str) -> list[Mapping[str, object]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise WorkspaceError(f"{found.label}: {key}: expected an array of tables",
                             hint=f"write each entry as a [[{key}]] table with a name and a url",
                             file=found.file, key=key)
    return list(value)


def _field(found: Found, entry: Mapping[str, object], key: str, name: str,
           required: bool = True) -> str:
    value = entry.get(name)
    if isinstance(value, str) and value:
        return value
    if not required and value is None:
        return ""
    raise WorkspaceError(f"{found.label}: {key}.{name}: expected a non-empty string",
                         hint=f"set `{name}` to a string in that entry", file=found.file,
                         key=f"{key}.{name}")


def _poetry(found: Found) -> list[Source]:
    out = []
    key = "tool.poetry.source"
    for i, entry in enumerate(_entries(found, found.table("tool", "poetry").get("source"),
                                       key)):
        name = _field(found, entry, f"{key}[{i}]", "name")
        url = _field(found, entry, f"{key}[{i}]", "url", required=name.lower() != "pypi")
        priority = str(entry.get("priority", "")).lower()
        if not priority:
            priority = "default" if entry.get("default") is True else (
                "supplemental" if entry.get("secondary") is True else "primary")
        if priority == "secondary":
            priority = "supplemental"  # deprecated: searched after PyPI, like supplemental
        if priority not in _RANK or priority == "pypi":
            raise WorkspaceError(
                f"{found.label}: {key}[{i}].priority: unknown priority {priority!r}",
                hint="use primary, supplemental or explicit", file=found.file,
                key=f"{key}[{i}].priority", actual=priority)
        if name.lower() == "pypi":
            priority = "pypi" if priority in ("primary", "default") else priority
        out.append(Source(name, url.rstrip("/"), priority, f"{found.label} [[{key}]]",
                          replaces_pypi=priority in ("default", "primary")))
    return out


def _uv(found: Found) -> list[Source]:
    out = []
    key = "tool.uv.index"
    for i, entry in enumerate(_entries(found, found.table("tool", "uv").get("index"), key)):
        url = _field(found, entry, f"{key}[{i}]", "url")
        name = _field(found, entry, f"{key}[{i}]", "name", required=False) or f"index-{i + 1}"
        if entry.get("explicit") is True:
            priority, replaces = "explicit", False
        elif entry.get("default") is True:
            priority, replaces = "pypi", True  # takes PyPI's place, searched last
        else:
            priority, replaces = "primary", False
        out.append(Source(name, url.rstrip("/"), priority, f"{found.label} [[{key}]]",
                          replaces_pypi=replaces))
    return out


def _pdm(found: Found) -> list[Source]:
    out = []
    key = "tool.pdm.source"
    for i, entry in enumerate(_entries(found, found.table("tool", "pdm").get("source"), key)):
        name = _field(found, entry, f"{key}[{i}]", "name")
        url = _field(found, entry, f"{key}[{i}]", "url")
        if entry.get("type", "index") != "index":
            raise WorkspaceError(
                f"{found.label}: {key}[{i}].type: {entry.get('type')!r} sources are not "
                "package indexes", hint="serve those files from a Simple API index",
                file=found.file, key=f"{key}[{i}].type")
        packages = entry.get("include_packages", [])
        if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
            raise WorkspaceError(f"{found.label}: {key}[{i}].include_packages: expected a "
                                 "list of package names",
                                 hint="write it as a list of strings, e.g. "
                                 "include_packages = [\"acme-*\"]", file=found.file,
                                 key=f"{key}[{i}].include_packages")
        priority = "pypi" if name.lower() == "pypi" else "supplemental"
        out.append(Source(name, url.rstrip("/"), priority, f"{found.label} [[{key}]]",
                          replaces_pypi=name.lower() == "pypi",
                          packages=tuple(packages)))
    return out
