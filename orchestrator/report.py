"""Render plans for people and for CI systems: graph formats and CI matrices.

Pure functions from data to text; the CLI decides where the text goes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from orchestrator.graph import Affected, Edge
from orchestrator.image import image_name
from orchestrator.models import Member, Workspace
from orchestrator.show import ShownPackage, TreeNode


def graph_text(workspace: Workspace, edges: Sequence[Edge], stages: Sequence[Sequence[str]]) -> str:
    by_name = {m.name: m for m in workspace.members}
    deps: dict[str, list[str]] = {m.name: [] for m in workspace.members}
    for edge in edges:
        groups = [g for g in edge.groups if g]
        label = f"{edge.target} ({', '.join(groups)})" if groups and "" not in edge.groups \
            else edge.target
        deps[edge.source].append(label)
    lines: list[str] = []
    for number, stage in enumerate(stages, start=1):
        lines.append(f"stage {number}:")
        for name in stage:
            member = by_name[name]
            arrow = f" -> {', '.join(deps[name])}" if deps[name] else ""
            lines.append(f"  {name} [{member.kind}]{arrow}")
    return "\n".join(lines)


def graph_dot(workspace: Workspace, edges: Sequence[Edge]) -> str:
    lines = [f"digraph {json.dumps(workspace.name)} {{", "  rankdir=LR;"]
    for member in workspace.members:
        shape = "box" if member.kind == "service" else "ellipse"
        lines.append(f"  {json.dumps(member.name)} [shape={shape}];")
    for edge in edges:
        style = "" if "" in edge.groups else " [style=dashed]"
        lines.append(f"  {json.dumps(edge.source)} -> {json.dumps(edge.target)}{style};")
    lines.append("}")
    return "\n".join(lines)


def graph_mermaid(workspace: Workspace, edges: Sequence[Edge]) -> str:
    def node(member: Member) -> str:
        ident = member.name.replace("-", "_")
        return f"{ident}[{member.name}]" if member.kind == "service" else f"{ident}({member.name})"

    lines = ["graph LR"]
    lines.extend(f"  {node(m)}" for m in workspace.members)
    for edge in edges:
        arrow = "-->" if "" in edge.groups else "-.->"
        lines.append(f"  {edge.source.replace('-', '_')} {arrow} {edge.target.replace('-', '_')}")
    return "\n".join(lines)


def graph_json(workspace: Workspace, edges: Sequence[Edge], stages: Sequence[Sequence[str]]) -> str:
    data = {
        "workspace": workspace.name,
        "members": [
            {"name": m.name, "kind": m.kind, "path": m.relpath, "version": m.version}
            for m in workspace.members
        ],
        "edges": [
            {"from": e.source, "to": e.target, "groups": [g or "main" for g in e.groups]}
            for e in edges
        ],
        "stages": [list(stage) for stage in stages],
    }
    return json.dumps(data, indent=2)


def matrix_entries(workspace: Workspace, members: Sequence[Affected]) -> list[dict[str, str]]:
    return [
        {
            "service": a.member.name,
            "path": a.member.relpath,
            "image": image_name(workspace, a.member),
            "version": a.member.version or "0",
            "reason": a.reason,
        }
        for a in members
        if a.member.kind == "service"
    ]


def matrix_github(entries: Sequence[dict[str, str]]) -> str:
    """A JSON object for `strategy.matrix: ${{ fromJSON(...) }}`.

    GitHub rejects an empty matrix, so callers should guard the job with
    `if: fromJSON(...).include[0]`; the object is still well-formed when empty.
    """
    rows = [{k: e[k] for k in ("service", "path", "image", "version")} for e in entries]
    return json.dumps({"include": rows}, separators=(",", ":"))


def matrix_gitlab(entries: Sequence[dict[str, str]]) -> str:
    """A `parallel: matrix:` document, one job per affected service."""
    import yaml

    if not entries:
        return "# no affected services: nothing to build\nparallel:\n  matrix: []\n"
    rows = [
        {"SERVICE": e["service"], "SERVICE_PATH": e["path"], "IMAGE": e["image"],
         "VERSION": e["version"]}
        for e in entries
    ]
    return str(yaml.safe_dump({"parallel": {"matrix": rows}}, sort_keys=False))


def matrix_bitbucket(entries: Sequence[dict[str, str]]) -> str:
    """One service name a line: what each step of a Bitbucket pipeline greps for itself."""
    return "".join(f"{e['service']}\n" for e in entries)


def matrix_jenkins(entries: Sequence[dict[str, str]]) -> str:
    """`service<TAB>path<TAB>image<TAB>version` lines: a Jenkinsfile splits them without plugins."""
    return "".join("\t".join(e[k] for k in ("service", "path", "image", "version")) + "\n"
                   for e in entries)


def matrix_json(entries: Sequence[dict[str, str]]) -> str:
    return json.dumps(list(entries), indent=2)


# -- show -----------------------------------------------------------------------------


def show_list(rows: Sequence[ShownPackage], *, venv: bool) -> str:
    """The lock's packages; with *venv*, also where the venv differs from the lock."""
    width = max((len(r.name) for r in rows), default=0)
    lines = []
    for row in rows:
        mark = "*" if row.required_by else " "
        version = row.version or "(workspace)"
        state = ""
        if venv:
            state = "  (not installed)" if row.installed is None else (
                f"  (installed {row.installed})"
                if row.version is not None and row.installed != row.version else "")
        lines.append(f"{mark} {row.name:<{width}}  {version}{state}")
    lines.append("(* direct requirement)")
    return "\n".join(lines)


def show_tree(member: Member, roots: Sequence[TreeNode]) -> str:
    lines = [f"{member.name} {member.version or ''}".rstrip()]

    def walk(node: TreeNode, prefix: str, last: bool) -> None:
        branch = "└── " if last else "├── "
        repeat = " (*)" if node.repeated else ""
        lines.append(f"{prefix}{branch}{node.name} {node.version or '(workspace)'}{repeat}")
        for i, child in enumerate(node.children):
            walk(child, prefix + ("    " if last else "│   "), i == len(node.children) - 1)

    for i, root in enumerate(roots):
        walk(root, "", i == len(roots) - 1)
    return "\n".join(lines)
