"""The member graph: who depends on whom, build order, cycles, and what a change affects.

An edge ``a -> b`` means member *a* depends on member *b* (in its main
dependencies or in any dependency group), so *b* is built before *a*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from orchestrator.errors import GraphError
from orchestrator.models import Member, Workspace, requirement_head
from orchestrator.names import normalize

if TYPE_CHECKING:
    import networkx as nx

# Paths (relative to the workspace root) whose change affects every member.
GLOBAL_INPUTS = ("workspace.yaml", "templates")


@dataclass(frozen=True, slots=True)
class Edge:
    """One workspace dependency, with the groups it comes from ("" for main)."""

    source: str
    target: str
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Affected:
    """A member a change affects, and why."""

    member: Member
    reason: str  # "changed: services/orders/app.py" or "depends on common"


# Every lock --check and every graph build parses the same few strings again.
@lru_cache(maxsize=4096)
def requirement_name(requirement: str) -> str:
    """The normalized project name of a PEP 508 requirement string."""
    head = requirement_head(requirement)  # without importing packaging, on a no-op's path
    if head is not None:
        return normalize(head[0])
    from packaging.requirements import Requirement

    return normalize(Requirement(requirement).name)


def member_edges(workspace: Workspace) -> list[Edge]:
    """Every workspace dependency edge, read from each member's requirements."""
    names = {m.name for m in workspace.members}
    edges: list[Edge] = []
    for member in workspace.members:
        found: dict[str, list[str]] = {}
        sections = [("", member.dependencies), *member.groups.items(), *member.optional.items()]
        for group, reqs in sections:
            for req in reqs:
                target = requirement_name(req)
                if target in names and target != member.name:
                    found.setdefault(target, [])
                    if group not in found[target]:
                        found[target].append(group)
        edges.extend(Edge(member.name, t, tuple(g)) for t, g in sorted(found.items()))
    return edges


def workspace_dependencies(member: Member, members: Mapping[str, Member]) -> list[Member]:
    """The members *member* needs, transitively, sorted by name (*members*: by name).

    What a member's lock depends on: the members its main and group
    requirements name, then those members' main requirements only (a
    library's groups are its own development tools). Plain Python, without
    networkx, so that ``lock --check`` stays fast.
    """
    seen: dict[str, Member] = {}
    stack = list(member.all_requirements())
    while stack:
        name = requirement_name(stack.pop())
        dep = members.get(name)
        if dep is None or name in seen or name == member.name:
            continue
        seen[name] = dep
        stack.extend(dep.dependencies)
    return [seen[n] for n in sorted(seen)]


def build_graph(workspace: Workspace) -> nx.DiGraph:
    """A DiGraph over member names; raises GraphError on a dependency cycle."""
    import networkx as nx

    graph = nx.DiGraph()
    for member in workspace.members:
        graph.add_node(member.name, member=member)
    for edge in member_edges(workspace):
        graph.add_edge(edge.source, edge.target, groups=edge.groups)
    cycle = _find_cycle(graph)
    if cycle:
        raise cycle_error(cycle)
    return graph


def cycle_error(cycle: Sequence[str]) -> GraphError:
    """The error naming a dependency cycle (``a -> b -> a``)."""
    return GraphError(
        "dependency cycle between workspace members: " + " -> ".join(cycle),
        hint="a member cannot depend on itself through others; move the shared code "
        "into a library both can depend on",
    )


def member_cycle(workspace: Workspace) -> list[str] | None:
    """A dependency cycle between members (``[a, b, a]``), or None; without networkx.

    For ``check``, which must stay fast: importing networkx alone costs more
    than the rest of the command. Starts at the alphabetically first member
    of the cycle, as ``build_graph``'s message does.
    """
    edges: dict[str, list[str]] = {}
    for edge in member_edges(workspace):
        edges.setdefault(edge.source, []).append(edge.target)
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            loop = path[path.index(name):]
            start = loop.index(min(loop))
            loop = loop[start:] + loop[:start]
            return [*loop, loop[0]]
        if name in done:
            return None
        for target in edges.get(name, ()):
            found = visit(target, [*path, name])
            if found:
                return found
        done.add(name)
        return None

    for member in sorted(m.name for m in workspace.members):
        found = visit(member, [])
        if found:
            return found
    return None


def _find_cycle(graph: nx.DiGraph) -> list[str] | None:
    import networkx as nx

    try:
        edges = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return None
    # Start the printed cycle at its alphabetically first member so it is stable.
    nodes = [u for u, _v in edges]
    start = nodes.index(min(nodes))
    nodes = nodes[start:] + nodes[:start]
    return [*nodes, nodes[0]]


def build_generations(graph: nx.DiGraph) -> list[list[str]]:
    """Members grouped into stages: each stage depends only on earlier stages."""
    import networkx as nx

    return [sorted(stage) for stage in nx.topological_generations(graph.reverse(copy=False))]


def build_order(graph: nx.DiGraph) -> list[str]:
    """A stable topological order: dependencies before dependents."""
    return [name for stage in build_generations(graph) for name in stage]


def member_order(workspace: Workspace) -> list[str]:
    """``build_order(build_graph(workspace))`` without networkx (its import alone is ~0.17 s
    of a no-op build): stages of members whose workspace dependencies are all in earlier
    stages, each sorted. A cycle is refused as ``build_graph`` refuses it."""
    cycle = member_cycle(workspace)
    if cycle:
        raise cycle_error(cycle)
    needs: dict[str, set[str]] = {m.name: set() for m in workspace.members}
    for edge in member_edges(workspace):
        needs[edge.source].add(edge.target)
    order: list[str] = []
    done: set[str] = set()
    while len(done) < len(needs):
        stage = sorted(n for n, deps in needs.items() if n not in done and deps <= done)
        order += stage
        done.update(stage)
    return order


def dependencies_of(graph: nx.DiGraph, name: str) -> list[str]:
    """Every member *name* depends on, transitively, in build order."""
    import networkx as nx

    deps = nx.descendants(graph, name)
    return [n for n in build_order(graph) if n in deps]


def dependents_of(graph: nx.DiGraph, name: str) -> set[str]:
    """Every member that depends on *name*, transitively."""
    import networkx as nx

    return set(nx.ancestors(graph, name))


def owner_of(workspace: Workspace, path: str) -> Member | None:
    """The member whose directory holds *path* (relative to the root); the deepest wins."""
    parts = PurePosixPath(path).parts
    best: Member | None = None
    for member in workspace.members:
        mparts = PurePosixPath(member.relpath).parts
        if parts[: len(mparts)] == mparts and (
            best is None or len(mparts) > len(PurePosixPath(best.relpath).parts)
        ):
            best = member
    return best


def affected(
    workspace: Workspace, graph: nx.DiGraph, changed: Iterable[str]
) -> list[Affected]:
    """The members a set of changed paths (relative to the workspace root) affects.

    A changed file marks the member that owns it, then everything depending on
    that member; a change to workspace.yaml or templates/ marks every member.
    Returned in build order.
    """
    reasons: dict[str, str] = {}
    for path in sorted(set(changed)):
        first = PurePosixPath(path).parts[0] if path else ""
        if path in GLOBAL_INPUTS or first in GLOBAL_INPUTS:
            for member in workspace.members:
                reasons.setdefault(member.name, f"changed: {path}")
            continue
        owner = owner_of(workspace, path)
        if owner is None:
            continue
        reasons.setdefault(owner.name, f"changed: {path}")
        for dependent in sorted(dependents_of(graph, owner.name)):
            reasons.setdefault(dependent, f"depends on {owner.name}")
    by_name = {m.name: m for m in workspace.members}
    return [Affected(by_name[n], reasons[n]) for n in build_order(graph) if n in reasons]


def affected_since(workspace: Workspace, since: str | None, *,
                   committed_only: bool = False) -> list[Affected]:
    """The members changes since the merge base with *since* affect, in build order.

    None means every member ("all members"), as CI runs on the default branch want.
    """
    graph = build_graph(workspace)
    if since is None:
        by_name = {m.name: m for m in workspace.members}
        return [Affected(by_name[n], "all members") for n in build_order(graph)]
    from orchestrator.vcs import changed_files

    return affected(workspace, graph,
                    changed_files(workspace.root, since, committed_only=committed_only))


def select(workspace: Workspace, names: Sequence[str]) -> list[Member]:
    """Members by name, in the order given; an unknown name is a GraphError."""
    out: list[Member] = []
    for name in names:
        member = workspace.find(name)
        if member is None:
            known = ", ".join(m.name for m in workspace.members) or "none"
            raise GraphError(f"no workspace member named {name!r} (members: {known})",
                             hint="run `orchestrator list` to see the members")
        if member not in out:
            out.append(member)
    return out
