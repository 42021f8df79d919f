"""A Poetry member's pyproject.toml as PEP 621 ``[project]`` plus PEP 735 groups.

What is converted, and to what:

- the metadata keys of ``[tool.poetry]`` become their ``[project]`` keys
  (``authors = ["Name <mail>"]`` become ``{name, email}`` tables, ``homepage``,
  ``repository``, ``documentation`` and ``[tool.poetry.urls]`` become
  ``[project.urls]``, ``license`` stays the same ``License:`` text);
- ``python`` becomes ``requires-python``; each dependency becomes one PEP 508
  requirement per constraint (``constraints.py`` holds the version rules), with
  ``python``/``platform``/``markers`` as markers and ``extras`` kept;
- ``optional = true`` plus ``[tool.poetry.extras]`` become
  ``[project.optional-dependencies]``; groups and the legacy
  ``dev-dependencies`` become ``[dependency-groups]``;
- a ``path`` dependency on another member becomes the member's bare name (the
  edge orchestrator reads); ``path``/``git``/``url`` dependencies on anything
  else are refused, as the workspace does not lock direct references yet;
- ``source = "x"`` becomes a pin in ``[tool.orchestrator] sources``;
- ``packages``/``include``/``exclude`` stay for poetry-core, whose requirement is
  raised to 2.x (the first to read ``[project]``), unless the backend is
  switched to hatchling.

The new tables are written as text before ``[tool.poetry]`` (so they read
first, as in a hand-written file); every other table is left as it was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from orchestrator.adopt import tomledit
from orchestrator.adopt.constraints import (
    ConstraintError,
    and_markers,
    platform_marker,
    python_marker,
    specifier,
)
from orchestrator.adopt.context import Conversion, MemberRefs, Where
from orchestrator.names import normalize

if TYPE_CHECKING:
    from tomlkit import TOMLDocument

POETRY_CORE = "poetry-core>=2.0.0,<3.0.0"
POETRY_BACKEND = "poetry.core.masonry.api"
# Keys of [tool.poetry] that become [project] / [dependency-groups] and are removed.
CONVERTED = ("name", "version", "description", "authors", "maintainers", "license", "readme",
             "homepage", "repository", "documentation", "keywords", "classifiers", "urls",
             "dependencies", "dev-dependencies", "group", "extras", "scripts", "plugins",
             "source")
BUILD_KEYS = ("packages", "include", "exclude")
_DEPENDENCY_KEYS = {"version", "python", "platform", "markers", "extras", "optional", "source",
                    "path", "develop", "git", "branch", "tag", "rev", "subdirectory", "url",
                    "allow-prereleases", "allows-prereleases"}
_AUTHOR = re.compile(r"^\s*(?P<name>[^<>]*?)\s*(?:<(?P<email>[^<>]+)>)?\s*$")
_POETRY_HEADER = re.compile(r"(?m)^[ \t]*\[[ \t]*tool[ \t]*\.[ \t]*poetry[ \t]*[\].]")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One converted dependency entry: its PEP 508 text and where it goes."""

    package: str  # normalized
    text: str
    optional: bool = False
    source: str | None = None


@dataclass(slots=True)
class _Tables:
    """What a Poetry file becomes, before it is written."""

    project: dict[str, object] = field(default_factory=dict)
    groups: dict[str, list[object]] = field(default_factory=dict)
    # section ("dependencies", "group:dev") -> requirement text -> comment lines
    comments: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    kept_scripts: bool = False  # file scripts stay in [tool.poetry.scripts]


def is_poetry(data: Mapping[str, object]) -> bool:
    """Whether *data* holds a Poetry project (a [tool.poetry] table)."""
    tool = data.get("tool")
    return isinstance(tool, Mapping) and isinstance(tool.get("poetry"), Mapping)


def poetry_table(data: Mapping[str, object]) -> Mapping[str, object]:
    tool = data.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, Mapping) else None
    return cast(Mapping[str, object], poetry) if isinstance(poetry, Mapping) else {}


def convert(text: str, data: Mapping[str, object], where: Where, refs: MemberRefs, *,
            backend: str | None = None) -> Conversion:
    """Convert one Poetry member; raises WorkspaceError naming what has no exact form."""
    reader = _Reader(where, refs, tomledit.parse(text))
    poetry = poetry_table(data)
    if isinstance(data.get("project"), Mapping):
        return _convert_with_project(text, poetry, reader)
    tables = reader.read(poetry)
    block = _render(tables)
    cut = _insertion_point(text)
    head = text[:cut]
    if head and not head.endswith("\n"):
        head += "\n"
    doc = tomledit.parse(head + block + "\n" + text[cut:])
    removed = [key for key in CONVERTED if not (key == "scripts" and tables.kept_scripts)]
    tomledit.remove(doc, ["tool", "poetry"], removed)
    if tables.kept_scripts:
        converted = cast(Mapping[str, str], tables.project.get("scripts", {}))
        tomledit.remove(doc, ["tool", "poetry", "scripts"], list(converted))
    notes = tables.notes
    notes.extend(_build_system(doc, poetry, where, backend))
    return Conversion(doc, tables.pins, tuple(notes))


def _insertion_point(text: str) -> int:
    """Where the new tables go: before [tool.poetry] and the comments that belong to it.

    Comments right above the header belong to it, unless they open the file (then
    they describe the file and stay on top).
    """
    match = _POETRY_HEADER.search(text)
    if match is None:
        return len(text)
    lines = text[:match.start()].splitlines(keepends=True)
    start = len(lines)
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    if start == 0 or start == len(lines):
        return match.start()
    return sum(len(line) for line in lines[:start])


class _Reader:
    def __init__(self, where: Where, refs: MemberRefs, original: TOMLDocument) -> None:
        self.where = where
        self.refs = refs
        self.original = original  # for the comments on converted keys

    # -- the whole table ------------------------------------------------------------

    def read(self, poetry: Mapping[str, object]) -> _Tables:
        tables = _Tables()
        project = tables.project
        name = poetry.get("name")
        if not isinstance(name, str) or not name:
            self.where.fail("tool.poetry.name", "missing; a Poetry project needs a name")
        project["name"] = name
        for key in ("version", "description"):
            if isinstance(poetry.get(key), str):
                project[key] = poetry[key]
        readme = self._readme(poetry.get("readme"))
        if readme:
            project["readme"] = readme
        deps = self._table(poetry.get("dependencies", {}), "tool.poetry.dependencies")
        python = deps.get("python")
        if python is not None:
            requires = self._specifier(python, "tool.poetry.dependencies.python", "python")
            if requires:
                project["requires-python"] = requires
        if isinstance(poetry.get("license"), str):
            # {text = ...} gives the same `License:` field Poetry wrote before.
            project["license"] = {"text": poetry["license"]}
        for key in ("authors", "maintainers"):
            people = self._people(poetry.get(key), f"tool.poetry.{key}")
            if people:
                project[key] = people
        for key in ("keywords", "classifiers"):
            if poetry.get(key):
                project[key] = list(self._strings(poetry[key], f"tool.poetry.{key}"))
        main = [self.requirements(n, v, f"tool.poetry.dependencies.{_key(n)}")
                for n, v in deps.items() if n != "python"]
        tables.comments["dependencies"] = self._comments(
            ["tool", "poetry", "dependencies"], [n for n in deps if n != "python"], main)
        flat = [r for reqs in main for r in reqs]
        project["dependencies"] = [r.text for r in flat if not r.optional]
        extras = self._extras(poetry.get("extras", {}), flat, tables.notes)
        urls = self._urls(poetry)
        if urls:
            project["urls"] = urls
        if extras:
            project["optional-dependencies"] = extras
        scripts, kept = self._scripts(poetry.get("scripts", {}), tables.notes)
        tables.kept_scripts = kept
        if scripts:
            project["scripts"] = scripts
        plugins = self._plugins(poetry.get("plugins", {}))
        if plugins:
            project["entry-points"] = plugins
        tables.groups = self.groups(poetry, tables.comments)
        tables.pins = self.pins(poetry, flat)
        return tables

    def groups(self, poetry: Mapping[str, object],
               comments: dict[str, dict[str, tuple[str, ...]]] | None = None,
               ) -> dict[str, list[object]]:
        """[tool.poetry.group.X.dependencies] and the legacy dev-dependencies, as PEP 735."""
        out: dict[str, list[object]] = {}
        notes = comments if comments is not None else {}
        groups = self._table(poetry.get("group", {}), "tool.poetry.group")
        for group, body in groups.items():
            where = f"tool.poetry.group.{_key(group)}"
            body = self._table(body, where)
            items: list[object] = [{"include-group": g} for g in
                                   self._strings(body.get("include-groups", []),
                                                 f"{where}.include-groups")]
            deps = self._table(body.get("dependencies", {}), f"{where}.dependencies")
            reqs = [self.requirements(n, v, f"{where}.dependencies.{_key(n)}")
                    for n, v in deps.items()]
            notes.setdefault(f"group:{group}", {}).update(self._comments(
                ["tool", "poetry", "group", group, "dependencies"], list(deps), reqs))
            items.extend(r.text for entry in reqs for r in entry)
            out[group] = items
        legacy = self._table(poetry.get("dev-dependencies", {}), "tool.poetry.dev-dependencies")
        reqs = [self.requirements(n, v, f"tool.poetry.dev-dependencies.{_key(n)}")
                for n, v in legacy.items()]
        if reqs:
            notes.setdefault("group:dev", {}).update(self._comments(
                ["tool", "poetry", "dev-dependencies"], list(legacy), reqs))
            out.setdefault("dev", []).extend(r.text for entry in reqs for r in entry)
        return out

    def _comments(self, dotted: Sequence[str], names: Sequence[str],
                  converted: Sequence[Sequence[Requirement]]) -> dict[str, tuple[str, ...]]:
        """The comments on each converted key, attached to its first requirement."""
        found = tomledit.key_comments(self.original, dotted)
        return {reqs[0].text: found[name] for name, reqs in zip(names, converted, strict=True)
                if name in found and reqs}

    def pins(self, poetry: Mapping[str, object],
             main: Sequence[Requirement]) -> dict[str, str]:
        """Packages whose entries name a source (``source = "x"``), in main and groups."""
        found = {r.package: r.source for r in main if r.source}
        groups = self._table(poetry.get("group", {}), "tool.poetry.group")
        tables = [("tool.poetry.dev-dependencies", poetry.get("dev-dependencies", {}))]
        tables += [(f"tool.poetry.group.{_key(g)}.dependencies",
                    self._table(b, "tool.poetry.group").get("dependencies", {}))
                   for g, b in groups.items()]
        for where, deps in tables:
            for name, value in self._table(deps, where).items():
                for r in self.requirements(name, value, f"{where}.{_key(name)}"):
                    if r.source:
                        found.setdefault(r.package, r.source)
        return {package: source for package, source in found.items() if source}

    # -- one dependency ---------------------------------------------------------------

    def requirements(self, name: str, value: object, key: str) -> list[Requirement]:
        """The PEP 508 requirements one Poetry dependency entry stands for."""
        if isinstance(value, list):
            if not value:
                self.where.fail(key, "an empty list of constraints", package=name)
            return [self._entry(name, item, f"{key}[{i}]") for i, item in enumerate(value)]
        return [self._entry(name, value, key)]

    def _entry(self, name: str, value: object, key: str) -> Requirement:
        if isinstance(value, str):
            return Requirement(normalize(name), self._render(name, [], self._specifier(
                value, key, name), None, key))
        if not isinstance(value, Mapping):
            self.where.fail(key, "expected a version string or a table such as "
                            "{version = \"^1.2\"}", package=name)
        entry = cast(Mapping[str, object], value)
        unknown = sorted(set(entry) - _DEPENDENCY_KEYS)
        if unknown:
            self.where.fail(key, f"unknown key {unknown[0]!r} in the dependency on {name!r}",
                            "see Poetry's dependency specification", package=name)
        target = self._target(name, entry, key)
        constraint = entry.get("version", "*")
        spec = "" if "path" in entry else self._specifier(constraint, f"{key}.version", name)
        marker = self._marker(name, entry, key)
        extras = list(self._strings(entry.get("extras", []), f"{key}.extras"))
        source = entry.get("source")
        if source is not None and not isinstance(source, str):
            self.where.fail(f"{key}.source", "expected the name of a source", package=name)
        return Requirement(normalize(target), self._render(target, extras, spec, marker, key),
                           optional=entry.get("optional") is True, source=source)

    def _target(self, name: str, entry: Mapping[str, object], key: str) -> str:
        """The requirement's name: the member's own for a path dependency on a member."""
        for kind in ("git", "url"):
            if kind in entry:
                self.where.fail(
                    key, f"{name!r} is a {kind} dependency ({entry[kind]!r}); direct "
                    "references are not supported yet",
                    f"publish {name!r} to an index and depend on a version, or add its "
                    "source as a workspace member", package=name)
        path = entry.get("path")
        if path is None:
            return name
        if not isinstance(path, str):
            self.where.fail(f"{key}.path", "expected a path string", package=name)
        member = self.refs.at(self.where.directory, path)
        if member is None:
            self.where.fail(
                key, f"{name!r} is a path dependency on {path!r}, which is not a workspace "
                "member; direct references are not supported yet",
                f"make {path!r} a member (a directory with a pyproject.toml under the "
                "workspace root), or depend on a published version", package=name)
        return member

    def _marker(self, name: str, entry: Mapping[str, object], key: str) -> str | None:
        parts: list[str | None] = []
        try:
            if "python" in entry:
                parts.append(python_marker(self._string(entry["python"], f"{key}.python")))
            if "platform" in entry:
                parts.append(platform_marker(self._string(entry["platform"],
                                                          f"{key}.platform")))
        except ConstraintError as exc:
            self.where.fail(key, f"{name!r}: {exc.problem}", exc.hint, package=name)
        if "markers" in entry:
            parts.append(self._checked_marker(self._string(entry["markers"],
                                                           f"{key}.markers"),
                                              f"{key}.markers", name))
        return and_markers(parts)

    def _checked_marker(self, text: str, key: str, name: str) -> str:
        from packaging.markers import InvalidMarker, Marker

        try:
            Marker(text)
        except InvalidMarker as exc:
            self.where.fail(key, f"{text!r} is not a PEP 508 marker "
                            f"({str(exc).splitlines()[0]})", package=name)
        return text.strip()

    def _specifier(self, value: object, key: str, name: str) -> str:
        constraint = self._string(value, key)
        try:
            return specifier(constraint)
        except ConstraintError as exc:
            self.where.fail(key, f"the constraint on {name!r} (member {self.where.member!r}): "
                            f"{exc.problem}", exc.hint, package=name, actual=constraint)

    def _render(self, name: str, extras: Sequence[str], spec: str, marker: str | None,
                key: str) -> str:
        from packaging.requirements import InvalidRequirement
        from packaging.requirements import Requirement as Parsed

        text = name + (f"[{','.join(extras)}]" if extras else "") + spec
        if marker:
            text += f"; {marker}"
        try:
            Parsed(text)
        except InvalidRequirement as exc:
            self.where.fail(key, f"converts to {text!r}, which is not a PEP 508 requirement "
                            f"({str(exc).splitlines()[0]})", package=name)
        return text

    # -- the other tables ------------------------------------------------------------

    def _extras(self, value: object, main: Sequence[Requirement],
                notes: list[str]) -> dict[str, list[str]]:
        extras = self._table(value, "tool.poetry.extras")
        optional: dict[str, list[str]] = {}
        for req in main:
            if req.optional:
                optional.setdefault(req.package, []).append(req.text)
        out: dict[str, list[str]] = {}
        used: set[str] = set()
        for extra, packages in extras.items():
            texts: list[str] = []
            for package in self._strings(packages, f"tool.poetry.extras.{_key(extra)}"):
                wanted = normalize(re.split(r"[\[\s;<>=!~]", package, maxsplit=1)[0])
                if wanted not in optional:
                    self.where.fail(f"tool.poetry.extras.{_key(extra)}",
                                    f"names {package!r}, which is not an optional dependency",
                                    f"add `optional = true` to the dependency on {package!r}",
                                    package=package)
                texts.extend(optional[wanted])
                used.add(wanted)
            out[extra] = texts
        for package in sorted(set(optional) - used):
            notes.append(f"the optional dependency {package!r} is in no extra; Poetry "
                         "never installed it, so it is left out")
        return out

    def _urls(self, poetry: Mapping[str, object]) -> dict[str, str]:
        out = {label: poetry[key] for key, label in (
            ("homepage", "Homepage"), ("repository", "Repository"),
            ("documentation", "Documentation")) if isinstance(poetry.get(key), str)}
        for label, url in self._table(poetry.get("urls", {}), "tool.poetry.urls").items():
            out[label] = self._string(url, f"tool.poetry.urls.{_key(label)}")
        return cast(dict[str, str], out)

    def _scripts(self, value: object, notes: list[str]) -> tuple[dict[str, str], bool]:
        out: dict[str, str] = {}
        kept = False
        for name, target in self._table(value, "tool.poetry.scripts").items():
            key = f"tool.poetry.scripts.{_key(name)}"
            if isinstance(target, str):
                out[name] = target
            elif isinstance(target, Mapping) and isinstance(target.get("callable"), str):
                out[name] = str(target["callable"])
                if target.get("extras"):
                    notes.append(f"script {name!r}: its extras have no [project.scripts] "
                                 "form and are dropped")
            elif isinstance(target, Mapping) and target.get("type") == "file":
                kept = True  # poetry-core still installs file scripts from [tool.poetry]
            else:
                self.where.fail(key, "expected \"module:function\" or {callable = ...}")
        if kept:
            notes.append("file scripts (type = \"file\") stay in [tool.poetry.scripts] for "
                         "poetry-core")
        return out, kept

    def _plugins(self, value: object) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for group, entries in self._table(value, "tool.poetry.plugins").items():
            where = f"tool.poetry.plugins.{_key(group)}"
            out[group] = {name: self._string(target, f"{where}.{_key(name)}")
                          for name, target in self._table(entries, where).items()}
        return out

    def _readme(self, value: object) -> str | None:
        if value is None or isinstance(value, str):
            return value
        readmes = list(self._strings(value, "tool.poetry.readme"))
        if len(readmes) > 1:
            self.where.fail("tool.poetry.readme", f"lists {len(readmes)} files; [project] "
                            "takes one readme", "join them into one file and name that one")
        return readmes[0] if readmes else None

    def _people(self, value: object, key: str) -> list[dict[str, str]]:
        people = []
        for i, text in enumerate(self._strings(value or [], key)):
            match = _AUTHOR.match(text)
            if match is None or not (match["name"] or match["email"]):
                self.where.fail(f"{key}[{i}]", f"{text!r} is not \"Name <email>\"")
            person = {"name": match["name"]} if match["name"] else {}
            if match["email"]:
                person["email"] = match["email"].strip()
            people.append(person)
        return people

    # -- shapes ------------------------------------------------------------------------

    def _table(self, value: object, key: str) -> Mapping[str, object]:
        if not isinstance(value, Mapping):
            self.where.fail(key, "expected a table")
        return cast(Mapping[str, object], value)

    def _string(self, value: object, key: str) -> str:
        if not isinstance(value, str):
            self.where.fail(key, "expected a string")
        return value

    def _strings(self, value: object, key: str) -> Sequence[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.where.fail(key, "expected a list of strings")
        return cast(list[str], value)


def _key(name: str) -> str:
    """A TOML key as an error's key path writes it (quoted when it is not bare)."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else f'"{name}"'


def _render(tables: _Tables) -> str:
    """[project] (with its sub-tables) and [dependency-groups] as TOML text."""
    import tomlkit

    doc = tomlkit.document()
    project = tomlkit.table()
    subtables = ("urls", "optional-dependencies", "scripts", "entry-points")
    for key, value in tables.project.items():
        if key in subtables:
            continue
        if key == "license":
            project[key] = _inline(value)
        elif key == "dependencies" and isinstance(value, list):
            comments = tables.comments.get("dependencies")
            deps = tomledit.array(value, comments)
            if value and not comments:
                deps.multiline(True)  # one requirement a line, as people write them
            project[key] = deps
        elif isinstance(value, list):
            project[key] = tomledit.array(value)
        else:
            project[key] = value
    for key in subtables:
        value = tables.project.get(key)
        if not isinstance(value, Mapping):
            continue
        if key == "entry-points":
            points = tomlkit.table(is_super_table=True)
            for group, entries in value.items():
                points.add(group, tomledit.table(entries))
            project.add(key, points)
        elif key == "optional-dependencies":
            extras = tomlkit.table()
            for extra, items in value.items():
                extras[extra] = tomledit.array(items, tables.comments.get("dependencies"))
            project.add(key, extras)
        else:
            project.add(key, tomledit.table(value))
    doc.add("project", project)
    if tables.groups:
        groups = tomlkit.table()
        for group, items in tables.groups.items():
            groups[group] = tomledit.array(items, tables.comments.get(f"group:{group}"))
        doc.add(tomlkit.nl())
        doc.add("dependency-groups", groups)
    return tomlkit.dumps(doc)


def _inline(value: object) -> object:
    import tomlkit

    inline = tomlkit.inline_table()
    inline.update(cast(Mapping[str, object], value))
    return inline


def _build_system(doc: TOMLDocument, poetry: Mapping[str, object], where: Where,
                  backend: str | None) -> list[str]:
    """Point [build-system] at a backend that reads [project]; returns the notes."""
    if backend == "hatchling":
        return _to_hatchling(doc, poetry, where)
    system = tomledit.get(doc, ["build-system"])
    requires = tomledit.get(doc, ["build-system", "requires"])
    if isinstance(requires, list) and _poetry_core_2(requires) and tomledit.get(
            doc, ["build-system", "build-backend"]) == POETRY_BACKEND:
        return []
    values = {"requires": [POETRY_CORE], "build-backend": POETRY_BACKEND}
    if system is None:
        tomledit.append_table(doc, ["build-system"], tomledit.table(values))
        return [f"added [build-system] {POETRY_CORE}"]
    listed = requires if isinstance(requires, list) else []
    others = [str(r) for r in listed if not _is_poetry_build(str(r))]
    tomledit.as_dict(system)["requires"] = tomledit.array([POETRY_CORE, *others])
    tomledit.as_dict(system)["build-backend"] = POETRY_BACKEND
    return [f"[build-system] requires {POETRY_CORE}: poetry-core reads [project] from 2.0 on"]


def _poetry_core_2(requires: Sequence[object]) -> bool:
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Parsed

    for item in requires:
        try:
            req = Parsed(str(item))
        except InvalidRequirement:
            continue
        if normalize(req.name) == "poetry-core":
            return not req.specifier.contains("1.9.1") and req.specifier.contains("2.0.0")
    return False


def _is_poetry_build(requirement: str) -> bool:
    name = re.split(r"[\s\[;<>=!~]", requirement.strip(), maxsplit=1)[0]
    return normalize(name) in ("poetry-core", "poetry")


def _to_hatchling(doc: TOMLDocument, poetry: Mapping[str, object], where: Where) -> list[str]:
    for key in ("include", "exclude", "build"):
        if key in poetry:
            where.fail(f"tool.poetry.{key}", "has no exact hatchling form",
                       "keep poetry-core (drop --build-backend), or move those files into "
                       "the package")
    packages = []
    declared = poetry.get("packages")
    for i, item in enumerate(declared if isinstance(declared, list) else []):
        key = f"tool.poetry.packages[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("include"), str):
            where.fail(key, "expected {include = \"pkg\", from = \"src\"}")
        if "to" in item or any(ch in str(item["include"]) for ch in "*?["):
            where.fail(key, "a glob or `to` has no exact hatchling form",
                       "keep poetry-core (drop --build-backend)")
        base = str(item.get("from", "")).strip("/")
        packages.append(f"{base}/{item['include']}" if base else str(item["include"]))
    tomledit.remove(doc, ["tool", "poetry"], BUILD_KEYS)
    values = {"requires": ["hatchling"], "build-backend": "hatchling.build"}
    system = tomledit.get(doc, ["build-system"])
    if system is None:
        tomledit.append_table(doc, ["build-system"], tomledit.table(values))
    else:
        tomledit.as_dict(system)["requires"] = tomledit.array(["hatchling"])
        tomledit.as_dict(system)["build-backend"] = "hatchling.build"
    notes = ["[build-system] switched to hatchling"]
    if packages:
        tomledit.append_table(doc, ["tool", "hatch", "build", "targets", "wheel"],
                              tomledit.table({"packages": packages}))
        notes.append(f"packages -> [tool.hatch.build.targets.wheel] packages = {packages}")
    return notes


# -- Poetry 2: [project] already there ----------------------------------------------------


def _convert_with_project(text: str, poetry: Mapping[str, object],
                          reader: _Reader) -> Conversion:
    """A Poetry 2 file: [project] stays; groups, sources and member paths are converted."""
    doc = tomledit.parse(text)
    notes: list[str] = []
    project = tomledit.as_dict(doc["project"])
    deps = reader._table(poetry.get("dependencies", {}), "tool.poetry.dependencies")
    main = [r for n, v in deps.items() if n != "python"
            for r in reader.requirements(n, v, f"tool.poetry.dependencies.{_key(n)}")]
    dynamic = [str(d) for d in project.get("dynamic", [])]
    if "dependencies" not in project and "dependencies" in dynamic:
        project["dependencies"] = tomledit.array([r.text for r in main if not r.optional])
        dynamic.remove("dependencies")
        project["dynamic"] = tomledit.array(dynamic)
        if not dynamic:
            del project["dynamic"]
    else:
        written = {_requirement_name(str(r)) for r in project.get("dependencies", [])}
        ignored = sorted({r.package for r in main} - written)
        if ignored:
            notes.append("[tool.poetry.dependencies] entries not in [project].dependencies "
                         f"are dropped, as Poetry ignores them: {', '.join(ignored)}")
    if "python" in deps and "requires-python" not in project:
        requires = reader._specifier(deps["python"], "tool.poetry.dependencies.python",
                                     "python")
        if requires:
            project["requires-python"] = requires
    tomledit.merge_groups(doc, cast(Mapping[str, Sequence[tomledit.GroupItem]],
                                    reader.groups(poetry)))
    pins = reader.pins(poetry, main)
    tomledit.remove(doc, ["tool", "poetry"], ("dependencies", "dev-dependencies", "group",
                                              "source"))
    return Conversion(doc, pins, tuple(notes))


def _requirement_name(text: str) -> str:
    return normalize(re.split(r"[\s\[;<>=!~@(]", text.strip(), maxsplit=1)[0])
