"""Render plans for people and for CI systems: graph formats and CI matrices.

Pure functions from data to text; the CLI decides where the text goes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from orchestrator.graph import Affected, Edge
from orchestrator.models import Member, Workspace


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


def image_name(workspace: Workspace, member: Member) -> str:
    """The image repository for a service: `<registry>/<name>`, or `<name>` alone."""
    registry = workspace.image.registry
    return f"{registry}/{member.name}" if registry else member.name


def matrix_entries(workspace: Workspace, members: Sequence[Affected]) -> list[dict[str, Any]]:
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


def matrix_github(entries: Sequence[dict[str, Any]]) -> str:
    """A JSON object for `strategy.matrix: ${{ fromJSON(...) }}`.

    GitHub rejects an empty matrix, so callers should guard the job with
    `if: fromJSON(...).include[0]`; the object is still well-formed when empty.
    """
    rows = [{k: e[k] for k in ("service", "path", "image", "version")} for e in entries]
    return json.dumps({"include": rows}, separators=(",", ":"))


def matrix_gitlab(entries: Sequence[dict[str, Any]]) -> str:
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


def matrix_json(entries: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(entries), indent=2)


# -- show -----------------------------------------------------------------------------


def _versions(lock: Any) -> dict[str, str]:
    return {str(p.name): (str(p.version) if p.version else "(workspace)") for p in lock.packages}


def direct_names(member: Member) -> dict[str, str]:
    """Direct requirement name -> where it comes from ("main" or the group)."""
    from packaging.requirements import Requirement

    from orchestrator.names import normalize

    out: dict[str, str] = {}
    for req in member.dependencies:
        out.setdefault(normalize(Requirement(req).name), "main")
    for group, reqs in member.groups.items():
        for req in reqs:
            out.setdefault(normalize(Requirement(req).name), group)
    return out


def show_list(member: Member, lock: Any, installed: dict[str, str] | None) -> str:
    versions = _versions(lock)
    direct = direct_names(member)
    width = max((len(n) for n in versions), default=0)
    lines = []
    for name in sorted(versions):
        mark = "*" if name in direct else " "
        state = ""
        if installed is not None:
            have = installed.get(name)
            state = "  (not installed)" if have is None else (
                f"  (installed {have})" if have != versions[name] and
                versions[name] != "(workspace)" else "")
        lines.append(f"{mark} {name:<{width}}  {versions[name]}{state}")
    lines.append("(* direct requirement)")
    return "\n".join(lines)


def show_tree(member: Member, lock: Any) -> str:
    from orchestrator.lock import dependency_graph

    graph = dependency_graph(lock)
    versions = _versions(lock)
    lines = [f"{member.name} {member.version or ''}".rstrip()]

    def walk(name: str, prefix: str, last: bool, seen: frozenset[str]) -> None:
        branch = "└── " if last else "├── "
        repeat = " (*)" if name in seen else ""
        lines.append(f"{prefix}{branch}{name} {versions.get(name, '?')}{repeat}")
        if repeat:
            return
        children = sorted(graph.get(name, []))
        for i, child in enumerate(children):
            walk(child, prefix + ("    " if last else "│   "), i == len(children) - 1,
                 seen | {name})

    roots = sorted(n for n in direct_names(member) if n in versions)
    for i, root in enumerate(roots):
        walk(root, "", i == len(roots) - 1, frozenset())
    return "\n".join(lines)


def show_why(member: Member, lock: Any, package: str) -> list[list[str]]:
    """Every chain from the member's direct requirements to *package*."""
    from orchestrator.lock import dependency_graph

    graph = dependency_graph(lock)
    chains: list[list[str]] = []

    def walk(path: list[str]) -> None:
        node = path[-1]
        if node == package:
            chains.append(path)
            return
        for child in sorted(graph.get(node, [])):
            if child not in path:
                walk([*path, child])

    for root in sorted(direct_names(member)):
        if root in graph:
            walk([root])
    return chains
