from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import GraphError
from orchestrator.graph import (
    affected,
    build_generations,
    build_graph,
    build_order,
    dependencies_of,
    member_edges,
    member_order,
    owner_of,
    requirement_name,
    select,
    workspace_dependencies,
)
from orchestrator.workspace import load_workspace
from tests.conftest import MakeWorkspace, pyproject


def test_edges_include_groups(shop: Path) -> None:
    edges = {(e.source, e.target): e.groups for e in member_edges(load_workspace(shop))}
    assert edges == {("api", "common"): ("",), ("web", "common"): ("dev",)}


def test_generations_and_order(shop: Path) -> None:
    g = build_graph(load_workspace(shop))
    assert build_generations(g) == [["common", "solo"], ["api", "web"]]
    assert build_order(g) == ["common", "solo", "api", "web"]
    assert member_order(load_workspace(shop)) == build_order(g)  # the same, without networkx
    assert dependencies_of(g, "api") == ["common"]


def test_cycle_is_reported(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({
        "libs/a": pyproject("a", ["b"]),
        "libs/b": pyproject("b", ["c"]),
        "libs/c": pyproject("c", groups={"dev": ["a"]}),
    })
    with pytest.raises(GraphError) as plain:
        member_order(load_workspace(root))
    with pytest.raises(GraphError) as info:
        build_graph(load_workspace(root))
    assert str(plain.value) == str(info.value) == (
        "dependency cycle between workspace members: a -> b -> c -> a\n"
        "hint: a member cannot depend on itself through others; move the shared code into a "
        "library both can depend on"
    )


def test_owner_prefers_deepest(make_workspace: MakeWorkspace) -> None:
    manifest = "version: 1\nname: d\nmembers: [apps/*, apps/x/plugins/*]\n"
    root = make_workspace({
        "apps/x": pyproject("x"),
        "apps/x/plugins/p": pyproject("p"),
    }, manifest=manifest)
    ws = load_workspace(root)
    assert owner_of(ws, "apps/x/plugins/p/mod.py").name == "p"  # type: ignore[union-attr]
    assert owner_of(ws, "apps/x/mod.py").name == "x"  # type: ignore[union-attr]
    assert owner_of(ws, "README.md") is None


def test_affected_by_library_change(shop: Path) -> None:
    ws = load_workspace(shop)
    result = affected(ws, build_graph(ws), ["libs/common/src/common.py"])
    assert [(a.member.name, a.reason) for a in result] == [
        ("common", "changed: libs/common/src/common.py"),
        ("api", "depends on common"),
        ("web", "depends on common"),
    ]


def test_affected_by_manifest_and_templates(shop: Path) -> None:
    ws = load_workspace(shop)
    g = build_graph(ws)
    assert len(affected(ws, g, ["workspace.yaml"])) == 4
    assert len(affected(ws, g, ["templates/Dockerfile.j2"])) == 4
    assert affected(ws, g, ["docs/x.md", "README.md"]) == []


def test_affected_by_lock(shop: Path) -> None:
    ws = load_workspace(shop)
    result = affected(ws, build_graph(ws), ["services/solo/pylock.toml"])
    assert [a.member.name for a in result] == ["solo"]


def test_select_unknown_member(shop: Path) -> None:
    with pytest.raises(GraphError) as info:
        select(load_workspace(shop), ["nope"])
    assert str(info.value) == (
        "no workspace member named 'nope' (members: api, solo, web, common)\n"
        "hint: run `orchestrator list` to see the members"
    )


def test_workspace_dependencies_walk(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({
        "services/svc": pyproject("svc", ["Lib_A>=1 ; python_version >= '3'", "httpx"],
                                  groups={"dev": ["tools"]})
        + '\n[project.optional-dependencies]\nextra = ["opt"]\n',
        "libs/lib-a": pyproject("lib-a", ["lib-b", "svc"], groups={"test": ["lib-c"]}),
        "libs/lib-b": pyproject("lib-b"),
        "libs/lib-c": pyproject("lib-c"),
        "libs/tools": pyproject("tools", ["lib-b[fast]"]),
        "libs/opt": pyproject("opt"),
    })
    ws = load_workspace(root)
    members = {m.name: m for m in ws.members}
    # Main and group requirements of the member, then only main requirements of the
    # libraries; never optional dependencies, never the member itself.
    assert [m.name for m in workspace_dependencies(members["svc"], members)] == [
        "lib-a", "lib-b", "tools"]
    assert [m.name for m in workspace_dependencies(members["lib-a"], members)] == [
        "lib-b", "lib-c", "svc"]
    assert workspace_dependencies(members["opt"], members) == []


def test_requirement_name_normalizes() -> None:
    assert requirement_name("Lib_A.x[extra] >=1 ; python_version >= '3'") == "lib-a-x"
