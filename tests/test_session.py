"""The Session: parts made on first use, once, and closed with it."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from orchestrator.errors import WorkspaceError
from orchestrator.session import Session, source_pins
from orchestrator.workspace import load_workspace
from tests.conftest import MANIFEST, MakeWorkspace, pyproject

REPO = Path(__file__).resolve().parents[1]


def test_nothing_heavy_is_made_until_asked(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom pathlib import Path\nfrom orchestrator.session import Session\n"
        f"s = Session(Path({str(REPO)!r}))\n"
        "s.workspace; s.members([]); s.cache_dir\n"
        "print(','.join(m for m in ('httpx', 'resolvelib', 'networkx', 'docker')"
        " if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.strip() == ""


def test_parts_are_made_once_even_from_threads(shop: Path, tmp_path: Path) -> None:
    session = Session(shop, cache_dir=tmp_path / "cache")
    barrier = threading.Barrier(8)
    seen: list[object] = []

    def ask() -> None:
        barrier.wait()
        seen.append(session.index)
        seen.append(session.member_builder)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(x) for x in seen}) == 2
    assert session.member_builder.sdists is session.sdists
    assert session.sdists.cache is session.cache
    assert session.cache.root == tmp_path / "cache"
    session.close()
    assert "index" not in session.__dict__
    session.close()  # closing twice is fine


def test_reload_sees_edits_and_keeps_the_cache(shop: Path, tmp_path: Path) -> None:
    with Session(shop, cache_dir=tmp_path / "cache") as session:
        cache = session.cache
        api = session.member("api")
        assert "httpx" in api.dependencies
        (api.pyproject).write_text(pyproject("api", ["common"], tool='kind = "service"'))
        assert "httpx" in session.member("api").dependencies  # still the loaded one
        session.reload()
        assert session.member("api").dependencies == ("common",)
        assert session.cache is cache


def test_services_only_names_the_library(shop: Path) -> None:
    session = Session(shop)
    assert [m.name for m in session.members([], services_only=True)] == ["api", "solo", "web"]
    with pytest.raises(WorkspaceError) as info:
        session.members(["common"], services_only=True)
    assert info.value.message == "common is a library, not a service"
    assert info.value.member == "common"


TWO_INDEXES = MANIFEST + """indexes:
  - {name: one, url: 'https://one.invalid/simple'}
  - {name: two, url: 'https://two.invalid/simple'}
"""


def test_conflicting_source_pins(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({
        "services/a": pyproject("a", ["x"], tool='sources = {x = "one"}'),
        "services/b": pyproject("b", ["x"], tool='sources = {x = "two"}'),
        "services/c": pyproject("c", ["y"], tool='sources = {y = "one"}'),
    }, manifest=TWO_INDEXES)
    members = load_workspace(root).members
    assert source_pins([members[0], members[2]]) == {"x": "one", "y": "one"}
    with pytest.raises(WorkspaceError) as info:
        source_pins(members)
    assert info.value.message == "x is pinned to index 'one' by a but to 'two' by b"
    assert (info.value.member, info.value.package) == ("b", "x")


def test_cache_options_hold_whenever_they_are_set(shop: Path, tmp_path: Path) -> None:
    early = Session(shop, cache_dir=tmp_path / "a")
    early.configure_cache(link_mode="copy", rehash=True)
    assert (early.cache.link_mode, early.cache.rehash) == ("copy", True)
    late = Session(shop, cache_dir=tmp_path / "b")
    assert (late.cache.link_mode, late.cache.rehash) == ("hardlink", False)
    late.configure_cache(link_mode="reflink")  # after the cache was made: still applied
    assert (late.cache.link_mode, late.cache.rehash) == ("reflink", False)
