"""show --json over a lock made against the local index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run
from tests.support.indexserver import IndexServer


@pytest.fixture
def shop(locked_shop: Path) -> Path:
    assert run(locked_shop, "lock")[0] == 0
    return locked_shop


def show_json(root: Path, *args: str) -> Any:  # a parsed JSON document
    code, out, err = run(root, "show", "api", "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_show_json_lists_the_lock_and_the_venv(shop: Path) -> None:
    data = show_json(shop)
    assert data["member"] == "api"
    assert data["venv"] is False
    packages = {p["name"]: p for p in data["packages"]}
    assert sorted(packages) == ["attrs", "common", "httpx", "idna", "pluggy", "pytest"]
    assert packages["httpx"] == {"name": "httpx", "version": "0.27.0", "workspace": False,
                                 "direct": "main", "installed": None}
    assert packages["pytest"]["direct"] == "test"
    assert packages["idna"]["direct"] is None
    assert packages["common"]["workspace"] is True

    assert run(shop, "sync", "api")[0] == 0
    data = show_json(shop)
    assert data["venv"] is True
    installed = {p["name"]: p["installed"] for p in data["packages"]}
    assert installed["httpx"] == "0.27.0"


def test_show_json_tree_and_why(shop: Path) -> None:
    tree = show_json(shop, "--tree")
    roots = tree["dependencies"]
    assert [r["name"] for r in roots] == ["common", "httpx", "pytest"]
    common = roots[0]
    assert common["dependencies"] == [{"name": "attrs", "version": "24.2.0", "repeated": False,
                                       "dependencies": []}]
    why = show_json(shop, "--why", "idna")
    assert why == {"member": "api", "package": "idna", "chains": [["httpx", "idna"]]}


def test_show_json_outdated(shop: Path, index: IndexServer) -> None:
    index.add_wheel("idna", "3.9")
    assert show_json(shop, "--outdated") == {
        "member": "api", "outdated": [{"name": "idna", "current": "3.7", "newest": "3.9"}]}


def test_show_takes_one_view(shop: Path) -> None:
    code, _, err = run(shop, "show", "api", "--tree", "--outdated")
    assert code == 2
    assert "pass at most one of --tree, --why, --outdated" in err
