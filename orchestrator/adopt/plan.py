"""``init``: everything worked out first (an InitPlan), then written in one go.

``plan_init`` reads the tree, picks the members, converts each pyproject.toml
in memory, checks the result as core metadata, chooses the Python and the
indexes and renders workspace.yaml. Any problem raises before a byte is
written. ``write_plan`` then replaces the files atomically, pyproject.toml
files first and the manifest last, and puts back what it already replaced if
a later write fails, so a tree is either adopted or left as it was.
"""

from __future__ import annotations

import difflib
import fnmatch
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from orchestrator.adopt import layout, pdm, poetry, tomledit, uv
from orchestrator.adopt.context import Conversion, MemberRefs, Where
from orchestrator.adopt.discover import Discovery, Found, discover, read_pyproject
from orchestrator.adopt.indexes import IndexPlan, plan_indexes, sources_of
from orchestrator.adopt.manifest import Manifest
from orchestrator.adopt.validate import project_metadata
from orchestrator.atomic import write_text
from orchestrator.errors import WorkspaceError
from orchestrator.models import IndexSpec
from orchestrator.names import normalize

From = Literal["auto", "poetry", "uv", "pdm", "plain"]
Flavour = Literal["poetry", "uv", "pdm", "plain"]
Backend = Literal["hatchling"]
MANIFEST = "workspace.yaml"
KNOWN_PLATFORMS = ("linux/amd64", "linux/arm64")
_LABELS = {"poetry": "a Poetry monorepo", "uv": "a uv workspace", "pdm": "a pdm monorepo",
           "plain": "plain PEP 621 projects"}


@dataclass(frozen=True, slots=True)
class InitOptions:
    """What ``orchestrator init`` was asked for."""

    source: From = "auto"
    python: str | None = None
    platforms: tuple[str, ...] = ()
    indexes: tuple[IndexSpec, ...] = ()  # --index NAME=URL
    build_backend: Backend | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class MemberPlan:
    """One member: what it is, why, and its pyproject.toml before and after."""

    relpath: str
    name: str
    flavour: Flavour
    kind: layout.Kind
    requires_python: str | None
    notes: tuple[str, ...]
    file: Path
    label: str
    original: str
    converted: str

    @property
    def changed(self) -> bool:
        return self.converted != self.original

    def diff(self) -> str:
        """A unified diff of the conversion (empty when nothing changes)."""
        return "".join(difflib.unified_diff(
            self.original.splitlines(keepends=True), self.converted.splitlines(keepends=True),
            fromfile=f"a/{self.label}", tofile=f"b/{self.label}"))


@dataclass(frozen=True, slots=True)
class InitPlan:
    """Everything ``init`` will write, and the reasons to show for it."""

    root: Path
    flavour: str  # "a Poetry monorepo", for the report
    manifest: Manifest
    manifest_text: str
    python_reason: str
    index_lines: tuple[str, ...]
    members: tuple[MemberPlan, ...]
    skipped: tuple[tuple[str, str], ...]  # (relpath, why it is not a member)
    previous_manifest: str | None = field(default=None, repr=False)  # with --force

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @property
    def changed(self) -> tuple[MemberPlan, ...]:
        return tuple(m for m in self.members if m.changed)


def plan_init(directory: Path, options: InitOptions) -> InitPlan:
    """Work out the whole adoption of *directory*; raises WorkspaceError, writes nothing."""
    root = directory.resolve()
    if not root.is_dir():
        raise WorkspaceError(f"{directory} is not a directory",
                             hint="pass the repository's root directory", file=directory)
    manifest_path = root / MANIFEST
    previous = None
    if manifest_path.exists():
        if not options.force:
            raise WorkspaceError(
                f"{manifest_path} already exists: this directory already is a workspace",
                hint="edit it by hand, or pass --force to write it again from the "
                "pyproject.toml files", file=manifest_path)
        previous = manifest_path.read_text(encoding="utf-8")
    platforms = _platforms(options.platforms)
    found = discover(root)
    top = next((f for f in found.found if f.relpath == "."), None)
    selection = _select(root, found, top, options.source)
    members = selection.members
    refs = _refs(members)
    index_plan = plan_indexes(
        [s for f in ([top] if top and top not in members else []) + members
         for s in sources_of(f)], options.indexes)
    root_sources = top.table("tool", "uv", "sources") if top else {}
    plans = [_member(f, selection.flavours[f.relpath], refs, index_plan, root, root_sources,
                     options) for f in members]
    python, reason = layout.choose_python({p.relpath: p.requires_python for p in plans},
                                          options.python)
    globs = selection.globs or layout.member_globs(root, [p.relpath for p in plans])
    manifest = Manifest(name=(top.name if top and top.name else root.name), python=python,
                        platforms=platforms, indexes=index_plan.indexes,
                        members=globs.members, exclude=globs.exclude)
    flavour = _LABELS[options.source] if options.source != "auto" else _overall(plans)
    return InitPlan(root, flavour, manifest, manifest.render(flavour), reason,
                    index_plan.explanation, tuple(plans), selection.skipped, previous)


def write_plan(plan: InitPlan) -> None:
    """Write every converted pyproject.toml, then workspace.yaml; all or nothing."""
    writes: list[tuple[Path, str, str | None]] = [
        (m.file, m.converted, m.original) for m in plan.changed]
    writes.append((plan.manifest_path, plan.manifest_text, plan.previous_manifest))
    done: list[tuple[Path, str | None]] = []
    try:
        for path, text, original in writes:
            write_text(path, text)
            done.append((path, original))
    except BaseException:
        for path, original in reversed(done):
            if original is None:
                path.unlink(missing_ok=True)
            else:
                write_text(path, original)
        raise


# -- which directories are members ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Selection:
    members: list[Found]
    flavours: Mapping[str, Flavour]
    skipped: tuple[tuple[str, str], ...]
    globs: layout.Globs | None  # taken over from [tool.uv.workspace]


def _select(root: Path, found: Discovery, top: Found | None, source: From) -> _Selection:
    skipped = [(rel, "ignored by git") for rel in found.ignored]
    if top is not None and source in ("auto", "uv") and top.table("tool", "uv", "workspace"):
        return _select_uv(root, found, top, skipped)
    members: list[Found] = []
    for f in found.found:
        why = _not_a_member(f)
        inside = next((m for m in members if m.relpath != "." and
                       f.directory.is_relative_to(m.directory)), None)
        if why is None and inside is not None:
            why = f"inside the member {inside.relpath}"
        if why is not None:
            skipped.append((f.relpath, why))
        else:
            members.append(f)
    if not members:
        raise WorkspaceError(
            f"no project found under {root}: no pyproject.toml there has a [project] or "
            "[tool.poetry] name (skipped: "
            + (", ".join(f"{rel}: {why}" for rel, why in skipped) or "none") + ")",
            hint="run init in the repository's root directory", file=root)
    flavours = {f.relpath: _flavour(f, source) for f in members}
    return _Selection(members, flavours, tuple(sorted(skipped)), None)


def _select_uv(root: Path, found: Discovery, top: Found,
               skipped: list[tuple[str, str]]) -> _Selection:
    where = Where(top.file, top.label, normalize(top.name or root.name))
    patterns, excluded = uv.workspace_globs(top.data, where)
    listed = _uv_dirs(root, patterns, where)
    dropped = _uv_dirs(root, excluded, where, key="exclude")
    by_rel = {f.relpath: f for f in found.found}
    members: list[Found] = []
    for rel in sorted(set(listed) - set(dropped)):
        if not (root / rel / "pyproject.toml").is_file():
            where.fail("tool.uv.workspace.members", f"{rel} has no pyproject.toml",
                       "add one, or list the directory under exclude")
        members.append(by_rel.get(rel) or read_pyproject(root, rel))
    root_is_member = "." in listed or bool(top.table("project").get("dependencies"))
    if root_is_member and all(m.relpath != "." for m in members):
        members.insert(0, top)
    chosen = {m.relpath for m in members}
    for f in found.found:
        if f.relpath not in chosen:
            why = ("a virtual workspace root (no [project] dependencies)" + _lost_groups(f)
                   if f.relpath == "." else "not in [tool.uv.workspace] members")
            skipped.append((f.relpath, why))
    globs = [p for p in patterns if p not in (".", "./")]
    if root_is_member:
        globs.insert(0, ".")
    flavours: dict[str, Flavour] = {m.relpath: "uv" for m in members}
    return _Selection(members, flavours, tuple(sorted(skipped)),
                      layout.Globs(tuple(globs), tuple(excluded)))


def _uv_dirs(root: Path, patterns: Sequence[str], where: Where,
             key: str = "members") -> list[str]:
    out = []
    for i, pattern in enumerate(patterns):
        if pattern in (".", "./"):
            out.append(".")
            continue
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            where.fail(f"tool.uv.workspace.{key}[{i}]",
                       f"{pattern!r} points outside the workspace root")
        out += [p.relative_to(root).as_posix() for p in sorted(root.glob(pattern))
                if p.is_dir() and not any(part.startswith(".") for part in
                                          p.relative_to(root).parts)]
    return out


def _not_a_member(f: Found) -> str | None:
    """Why *f* is no member (None when it is one)."""
    project = f.table("project")
    poetry_table = f.table("tool", "poetry")
    if poetry_table.get("package-mode") is False:
        return "package-mode = false: not a package" + _lost_groups(f)
    if f.table("tool", "pdm").get("distribution") is False:
        return "distribution = false: not a package" + _lost_groups(f)
    if not project and not poetry_table.get("name"):
        return "no [project] or [tool.poetry] name"
    if f.relpath == ".":
        deps = project.get("dependencies") or {
            k: v for k, v in cast(Mapping[str, object],
                                  poetry_table.get("dependencies", {})).items()
            if k != "python"}
        if not deps:
            return ("the root project has no dependencies (a workspace root, not a member)"
                    + _lost_groups(f))
    return None


def _lost_groups(f: Found) -> str:
    """For a root that is no member: the dependency groups nobody will install."""
    groups = [*f.table("dependency-groups"), *f.table("tool", "poetry", "group"),
              *f.table("tool", "pdm", "dev-dependencies")]
    if "dev-dependencies" in f.table("tool", "uv") or "dev-dependencies" in f.table(
            "tool", "poetry"):
        groups.append("dev")
    if not groups:
        return ""
    names = ", ".join(dict.fromkeys(groups))
    return f"; its dependency groups ({names}) belong to no member: move them into one"


def _flavour(f: Found, source: From) -> Flavour:
    tools = {name: f.table("tool", name) for name in ("poetry", "uv", "pdm")}
    if f.table("project"):
        # A [tool.poetry] left with only packages/include (poetry-core's build settings,
        # e.g. after an earlier init) has nothing to convert.
        tools["poetry"] = {k: v for k, v in tools["poetry"].items()
                           if k in ("dependencies", "dev-dependencies", "group", "source")}
    if source == "auto":
        names: tuple[Flavour, ...] = ("poetry", "uv", "pdm")
        return next((name for name in names if tools[name]), "plain")
    return source if source == "plain" or tools[source] else "plain"


def _refs(members: Sequence[Found]) -> MemberRefs:
    names: dict[Path, str] = {}
    seen: dict[str, Found] = {}
    for f in members:
        if f.name is None:
            raise WorkspaceError(f"{f.label}: project.name: missing",
                                 hint="every member needs a name", file=f.file,
                                 key="project.name")
        name = normalize(f.name)
        if name in seen:
            raise WorkspaceError(
                f"two members are named {name!r}: {seen[name].relpath} and {f.relpath}",
                hint="rename one of them", member=name)
        seen[name] = f
        names[f.directory] = name
    return MemberRefs(names)


def _overall(plans: Sequence[MemberPlan]) -> str:
    flavours = {p.flavour for p in plans}
    for flavour in ("poetry", "uv", "pdm"):
        if flavour in flavours:
            return _LABELS[flavour]
    return _LABELS["plain"]


def _platforms(given: Sequence[str]) -> tuple[str, ...]:
    platforms = tuple(dict.fromkeys(given)) or ("linux/amd64",)
    for platform in platforms:
        if platform not in KNOWN_PLATFORMS:
            raise WorkspaceError(f"unknown platform {platform!r}",
                                 hint="use " + " or ".join(KNOWN_PLATFORMS),
                                 expected=", ".join(KNOWN_PLATFORMS), actual=platform)
    return platforms


# -- one member --------------------------------------------------------------------------


def _member(f: Found, flavour: Flavour, refs: MemberRefs, indexes: IndexPlan, root: Path,
            root_sources: Mapping[str, object], options: InitOptions) -> MemberPlan:
    name = normalize(f.name or "")
    where = Where(f.file, f.label, name)
    conversion = _convert(f, flavour, where, refs, root, root_sources, options)
    doc = conversion.doc
    data = tomllib.loads(tomledit.dumps(doc))
    project = data.get("project")
    if not isinstance(project, dict):
        hint = ("run `orchestrator init --from poetry`" if poetry.is_poetry(f.data)
                else "add a PEP 621 [project] table with name and version")
        where.fail("project", "missing; every member needs a PEP 621 [project] table", hint)
    options_table = f.table("tool", "orchestrator")
    scripts = cast(dict[str, str], project.get("scripts", {}))
    table = "[tool.poetry.scripts]" if flavour == "poetry" else "[project.scripts]"
    kind = layout.infer_kind(f.relpath, f.directory, scripts, table, options_table)
    values: dict[str, object] = {}
    if "kind" not in options_table and kind.kind != layout.default_kind(f.relpath):
        values["kind"] = kind.kind
    if kind.command and "command" not in options_table:
        values["command"] = list(kind.command)
    pins = _pins(conversion, data, indexes, where)
    existing = options_table.get("sources")
    pins = {k: v for k, v in pins.items() if not (isinstance(existing, Mapping)
                                                   and k in existing)}
    if pins:
        values["sources"] = pins
    tomledit.set_tool_options(doc, "orchestrator", values)
    converted = tomledit.dumps(doc)
    if converted != f.text:
        converted = converted.rstrip("\n") + "\n"
    final = tomllib.loads(converted)
    project_metadata(cast(Mapping[str, object], final["project"]), f.label)
    notes = list(conversion.notes)
    if kind.kind == "service" and not kind.command and "command" not in options_table \
            and len(scripts) != 1:
        notes.append("a service needs a command for its image: set [tool.orchestrator] "
                     "command" + (f" (it has {len(scripts)} scripts)" if scripts else ""))
    requires = final["project"].get("requires-python")
    return MemberPlan(f.relpath, name, flavour, kind, requires if isinstance(requires, str)
                      else None, tuple(notes), f.file, f.label, f.text, converted)


def _convert(f: Found, flavour: Flavour, where: Where, refs: MemberRefs, root: Path,
             root_sources: Mapping[str, object], options: InitOptions) -> Conversion:
    if flavour == "poetry":
        return poetry.convert(f.text, f.data, where, refs, backend=options.build_backend)
    if flavour == "uv":
        sources = root_sources if f.relpath != "." else {}
        return uv.convert(f.text, f.data, where, refs, root_sources=sources, root=root)
    if flavour == "pdm":
        return pdm.convert(f.text, f.data, where, refs)
    return Conversion(tomledit.parse(f.text))


def _pins(conversion: Conversion, data: Mapping[str, object], indexes: IndexPlan,
          where: Where) -> dict[str, str]:
    """[tool.orchestrator] sources: package -> workspace index name."""
    out: dict[str, str] = {}
    for package, source in conversion.pins.items():
        index = indexes.index_for(source)
        if index is None:
            where.fail("tool.orchestrator.sources", f"{package!r} names the source "
                       f"{source!r}, which no pyproject.toml declares",
                       "declare the source ([[tool.poetry.source]], [[tool.uv.index]]), or "
                       "pass --index NAME=URL", package=package, actual=source)
        out[package] = index
    if indexes.patterns:
        names = uv.requirement_names(data)
        for package in sorted(names):
            for pattern, index in indexes.patterns:
                if fnmatch.fnmatch(package, normalize(pattern)):
                    out.setdefault(package, index)
    return out
