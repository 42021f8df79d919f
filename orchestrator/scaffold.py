"""`orchestrator new`: create a member from templates/new/<kind>/ and register it."""

from __future__ import annotations

import re
import shutil
import string
import tempfile
from pathlib import Path

from orchestrator.atomic import write_text
from orchestrator.errors import WorkspaceError
from orchestrator.models import MemberKind, Workspace
from orchestrator.names import normalize
from orchestrator.resources import templates_dir

DEFAULT_PARENT = {"service": "services", "library": "libs"}
MODULE_PLACEHOLDER = "__module__"


def new_member(workspace: Workspace, kind: MemberKind, name: str,
               directory: Path | None = None) -> Path:
    """Create a member named *name* and return its directory.

    The files are rendered into a temporary directory and renamed into place,
    so a failure leaves nothing behind.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise WorkspaceError(f"{name!r} is not a valid member name",
                             hint="use letters, digits, - and _, starting with a letter")
    if workspace.find(name) is not None:
        raise WorkspaceError(f"the workspace already has a member named {normalize(name)!r}")
    target = (directory or workspace.root / DEFAULT_PARENT[kind] / name).resolve()
    if target.exists():
        raise WorkspaceError(f"{target} already exists", hint="choose another name or --path")
    if not target.is_relative_to(workspace.root.resolve()):
        raise WorkspaceError(f"{target} is outside the workspace root {workspace.root}")
    source = templates_dir(workspace, "new", kind)
    if not source.is_dir():
        raise WorkspaceError(f"no template for a new {kind} at {source}")
    values = {"name": normalize(name), "module": normalize(name).replace("-", "_"),
              "python": workspace.python}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}."))
    try:
        _render_tree(source, staging, values)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _register(workspace, target)
    return target


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
