"""A uv workspace member: already PEP 621, so only uv's own tables need a look.

- ``[tool.uv] dev-dependencies`` moves to ``[dependency-groups] dev`` (uv reads
  that group too, and warns that the old key is deprecated);
- ``[tool.uv.sources] x = { workspace = true }`` needs nothing: the bare name in
  ``[project].dependencies`` already is the workspace edge. The entry is left
  in place, with every other ``[tool.uv]`` key, so that uv keeps working on the
  repository while a team moves over; orchestrator never reads ``[tool.uv]``;
- ``x = { index = "name" }`` becomes ``[tool.orchestrator] sources`` pins;
- ``path`` sources on members are edges as well; ``git``/``url``/other ``path``
  sources are refused (direct references are not supported yet).

Sources declared at the workspace root apply to every member, as in uv; a
member's own entry wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

from orchestrator.adopt import tomledit
from orchestrator.adopt.context import Conversion, MemberRefs, Where
from orchestrator.adopt.references import rewrite_member_references, to_member_name
from orchestrator.names import normalize


def uv_table(data: Mapping[str, object]) -> Mapping[str, object]:
    tool = data.get("tool")
    uv = tool.get("uv") if isinstance(tool, Mapping) else None
    return cast(Mapping[str, object], uv) if isinstance(uv, Mapping) else {}


def convert(text: str, data: Mapping[str, object], where: Where, refs: MemberRefs, *,
            root_sources: Mapping[str, object], root: Path) -> Conversion:
    """Convert one uv member; *root_sources* is the workspace root's [tool.uv.sources]."""
    doc = tomledit.parse(text)
    notes = rewrite_member_references(doc, where, refs)
    uv = uv_table(data)
    dev = uv.get("dev-dependencies")
    if dev is not None:
        if not isinstance(dev, list) or not all(isinstance(d, str) for d in dev):
            where.fail("tool.uv.dev-dependencies", "expected a list of requirements")
        items = [to_member_name(d, where, refs, f"tool.uv.dev-dependencies[{i}]")
                 for i, d in enumerate(dev)]
        tomledit.merge_groups(doc, {"dev": items})
        tomledit.remove(doc, ["tool", "uv"], ["dev-dependencies"])
        notes.append("[tool.uv] dev-dependencies -> [dependency-groups] dev")
    own = uv.get("sources", {})
    if not isinstance(own, Mapping):
        where.fail("tool.uv.sources", "expected a table")
    used = requirement_names(data)
    pins: dict[str, str] = {}
    sources = [(root, "tool.uv.sources (workspace root)", root_sources),
               (where.directory, "tool.uv.sources", own)]
    for base, label, table in sources:
        for package, source in table.items():
            if normalize(package) not in used:
                continue
            index = _source(package, source, f"{label}.{package}", base, where, refs)
            if index is not None:
                pins[normalize(package)] = index
            else:
                pins.pop(normalize(package), None)
    return Conversion(doc, pins, tuple(notes))


def _source(package: str, source: object, key: str, base: Path, where: Where,
            refs: MemberRefs) -> str | None:
    """The index a uv source pins *package* to; None for a workspace edge."""
    if isinstance(source, list):
        where.fail(key, "per-marker sources have no [tool.orchestrator] form",
                   f"give {package!r} one source", package=package)
    if not isinstance(source, Mapping):
        where.fail(key, "expected a table such as { index = \"name\" }", package=package)
    if source.get("workspace") is True:
        if normalize(package) not in refs.names.values():
            where.fail(key, f"{package!r} is marked workspace = true but is no member",
                       "add it to [tool.uv.workspace] members, or drop the source",
                       package=package)
        return None
    if isinstance(source.get("index"), str):
        return str(source["index"])
    path = source.get("path")
    if isinstance(path, str) and refs.at(base, path) is not None:
        return None
    kind = next((k for k in ("git", "url", "path") if k in source), "unknown")
    where.fail(key, f"{package!r} comes from a {kind} source ({source.get(kind)!r}); direct "
               "references are not supported yet",
               f"publish {package!r} to an index, or make its directory a workspace member",
               package=package)


def requirement_names(data: Mapping[str, object]) -> set[str]:
    """Normalized names of everything a pyproject requires: main, extras, groups, uv dev."""
    texts: list[object] = []
    project = data.get("project")
    if isinstance(project, Mapping):
        texts += list(project.get("dependencies", []))
        extras = project.get("optional-dependencies", {})
        if isinstance(extras, Mapping):
            for items in extras.values():
                texts += list(items) if isinstance(items, list) else []
    groups = data.get("dependency-groups", {})
    if isinstance(groups, Mapping):
        for items in groups.values():
            texts += list(items) if isinstance(items, list) else []
    dev = uv_table(data).get("dev-dependencies", [])
    texts += list(dev) if isinstance(dev, list) else []
    return {name for text in texts if isinstance(text, str)
            for name in [_name(text)] if name}


def _name(text: str) -> str | None:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return normalize(Requirement(text.removeprefix("-e ").strip()).name)
    except InvalidRequirement:
        return None


def workspace_globs(data: Mapping[str, object], where: Where) -> tuple[Sequence[str],
                                                                         Sequence[str]]:
    """``[tool.uv.workspace]`` members and exclude, checked to be lists of strings."""
    table = uv_table(data).get("workspace")
    if not isinstance(table, Mapping):
        return (), ()
    out = []
    for key in ("members", "exclude"):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            where.fail(f"tool.uv.workspace.{key}", "expected a list of directory globs")
        out.append(cast(list[str], value))
    return out[0], out[1]
