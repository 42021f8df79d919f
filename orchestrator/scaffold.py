"""`orchestrator new`: create a member from templates/new/<kind>/ and register it."""

from __future__ import annotations

import re
import shutil
import string
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from orchestrator.atomic import write_text
from orchestrator.errors import WorkspaceError
from orchestrator.models import Member, MemberKind, Workspace
from orchestrator.names import normalize
from orchestrator.resources import templates_dir

DEFAULT_PARENT = {"service": "services", "library": "libs"}
# Directory names that say what a glob's members are, when no member of the kind exists yet.
KIND_DIRS = {"service": ("services", "apps", "service", "applications", "app"),
             "library": ("libs", "packages", "lib", "libraries", "pkgs")}
MODULE_PLACEHOLDER = "__module__"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a new member goes, under which project name, and why there."""

    directory: Path  # absolute
    name: str  # the project name, with the workspace's prefix for the kind
    reason: str


@dataclass(frozen=True, slots=True)
class Created:
    path: Path
    name: str  # PEP 503-normalized project name
    reason: str


def place(workspace: Workspace, kind: MemberKind, name: str) -> Placement:
    """Where `new` puts a *kind* member called *name*, following the workspace's layout.

    The directory: where the existing members of that kind live (the most
    of them), else the parent of a member glob named for the kind (apps/*,
    packages/*, ...), else services/ or libs/. The name: when every member
    of the kind is ``<prefix><directory name>`` (acme-common in libs/common),
    the new one is too; a name that already has the prefix keeps it.
    """
    same = [m for m in workspace.members if m.kind == kind and m.relpath != "."]
    parent, reason = _parent(workspace, kind, same)
    prefix = _name_prefix(same)
    stem = name[len(prefix):] if prefix and normalize(name).startswith(prefix) else name
    project = f"{prefix}{stem}" if prefix else name
    if prefix:
        reason += f"; named {prefix}* like them"
    return Placement(workspace.root.resolve() / parent / stem, project, reason)


def _parent(workspace: Workspace, kind: MemberKind, same: Sequence[Member]) -> tuple[str, str]:
    plural = "services" if kind == "service" else "libraries"
    parents = Counter(PurePosixPath(m.relpath).parent.as_posix() for m in same)
    if parents:
        # The most members; among equals, the first in workspace.yaml's order.
        best = max(parents.values())
        parent = next(p for p in parents if parents[p] == best)
        where = "the workspace root" if parent == "." else f"{parent}/"
        return parent, f"{where} holds the workspace's {plural}"
    for pattern in _member_globs(workspace):
        pure = PurePosixPath(pattern)
        if pure.name == "*" and pure.parent.name in KIND_DIRS[kind]:
            return pure.parent.as_posix(), f"members: {pattern} in workspace.yaml"
    return DEFAULT_PARENT[kind], f"the default for {plural}: the workspace has none yet"


def _member_globs(workspace: Workspace) -> list[str]:
    """The `members:` globs of workspace.yaml (read again: Workspace keeps only the result)."""
    import yaml

    try:
        data = yaml.safe_load(workspace.manifest.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    globs = data.get("members") if isinstance(data, dict) else None
    return [g for g in globs if isinstance(g, str)] if isinstance(globs, list) else []


def _name_prefix(members: Sequence[Member]) -> str:
    """``acme-`` when every member is named ``acme-<its directory name>``, else ''."""
    prefixes = set()
    for member in members:
        directory = normalize(PurePosixPath(member.relpath).name)
        prefix = member.name[: -len(directory)]
        if not member.name.endswith(directory) or not prefix.endswith("-"):
            return ""  # "xcommon" in libs/common is no prefixed name
        prefixes.add(prefix)
    return prefixes.pop() if len(prefixes) == 1 else ""


def new_member(workspace: Workspace, kind: MemberKind, name: str,
               directory: Path | None = None) -> Created:
    """Create a member named *name* where the workspace's layout puts it (``place``).

    The files are rendered into a temporary directory and renamed into place,
    so a failure leaves nothing behind. *directory* overrides the placement
    (and the name prefix).
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise WorkspaceError(f"{name!r} is not a valid member name",
                             hint="use letters, digits, - and _, starting with a letter")
    placement = (place(workspace, kind, name) if directory is None
                 else Placement(directory.resolve(), name, "the directory given"))
    if workspace.find(placement.name) is not None:
        raise WorkspaceError(
            f"the workspace already has a member named {normalize(placement.name)!r}",
            member=normalize(placement.name))
    target = placement.directory
    if target.exists():
        raise WorkspaceError(f"{target} already exists", hint="choose another name or --path")
    if not target.is_relative_to(workspace.root.resolve()):
        raise WorkspaceError(f"{target} is outside the workspace root {workspace.root}")
    source = templates_dir(workspace, "new", kind)
    if not source.is_dir():
        raise WorkspaceError(f"no template for a new {kind} at {source}")
    project = normalize(placement.name)
    values = {"name": project, "module": project.replace("-", "_"),
              "python": workspace.python}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        _render_tree(source, staging, values)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _register(workspace, target)
    return Created(target, project, placement.reason)


def _render_tree(source: Path, dest: Path, values: dict[str, str]) -> None:
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue  # an installer may have compiled the templates' .py files
        rel = path.relative_to(source).as_posix().replace(MODULE_PLACEHOLDER, values["module"])
        out = dest / rel
        if path.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(string.Template(path.read_text(encoding="utf-8")).substitute(values),
                       encoding="utf-8")


def _register(workspace: Workspace, target: Path) -> None:
    """Add *target* to `members:` in workspace.yaml unless a glob already covers it."""
    from orchestrator.workspace import load_workspace

    rel = target.relative_to(workspace.root.resolve()).as_posix()
    if any(m.path == target for m in load_workspace(workspace.manifest).members):
        return
    text = workspace.manifest.read_text(encoding="utf-8")
    flow = re.search(r"^members:\s*\[(.*)\]\s*$", text, re.MULTILINE)
    if flow:
        items = [i.strip() for i in flow.group(1).split(",") if i.strip()]
        new = text[: flow.start()] + f"members: [{', '.join([*items, rel])}]" + text[flow.end():]
    else:
        block = re.search(r"^members:\s*\n((?:[ \t]+-.*\n?)+)", text, re.MULTILINE)
        if not block:
            raise WorkspaceError(f"{workspace.manifest}: members: cannot add {rel} "
                                 "automatically", hint=f"add {rel} under members: by hand")
        indent = re.match(r"[ \t]+", block.group(1))
        prefix = indent.group(0) if indent else "  "
        body = block.group(1).rstrip("\n") + f"\n{prefix}- {rel}\n"
        new = text[: block.start(1)] + body + text[block.end(1):]
    write_text(workspace.manifest, new)
