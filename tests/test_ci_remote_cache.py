"""cache.remote: runners share built wheels through the real loopback registry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.build import SdistBuilder
from orchestrator.cache import WheelCache
from orchestrator.ci.remote_cache import RemoteWheels
from orchestrator.errors import WorkspaceError
from orchestrator.workspace import load_workspace
from tests.conftest import MakeWorkspace, pyproject
from tests.support.indexserver import IndexServer
from tests.support.wheels import build_sdist, sha256_of
from tests.test_build import FAKE_BACKEND, HOST


@pytest.fixture
def index(tmp_path: Path) -> Iterator[IndexServer]:
    with IndexServer(tmp_path / "index") as server:
        server.add_wheel("flit_core", "3.9.0", files={"flit_core/__init__.py": "",
                                                      "flit_core/buildapi.py": FAKE_BACKEND})
        yield server


def test_runner_b_downloads_the_wheel_runner_a_built(tmp_path: Path, registry: str,
                                                      index: IndexServer) -> None:
    remote = RemoteWheels(registry, f"ci{uuid.uuid4().hex[:8]}/wheels")
    sdist = build_sdist(tmp_path / "src", "Hello.World", "1.2")
    a = SdistBuilder(WheelCache(tmp_path / "cache-a"), [index.url], remote=remote)
    built = a.build_wheel(sdist, HOST)
    b = SdistBuilder(WheelCache(tmp_path / "cache-b"), [index.url], remote=remote)
    requests = index.count()
    again = b.build_wheel(sdist, HOST)
    assert index.count() == requests  # no build environment: nothing was built
    assert again.path.name == built.path.name and again.sha256 == built.sha256
    assert sha256_of(again.path) == built.sha256
    assert again.path.is_relative_to(tmp_path / "cache-b")


def test_an_unreachable_registry_is_a_miss(tmp_path: Path) -> None:
    remote = RemoteWheels("127.0.0.1:9", "acme/wheels")
    wheel = tmp_path / "x-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    assert remote.store("key", wheel) is False
    assert remote.fetch("key", tmp_path) is None


def test_cache_remote_in_workspace_yaml(make_workspace: MakeWorkspace) -> None:
    manifest = ("version: 1\nname: d\nmembers: [libs/*]\n"
                "cache:\n  remote: oci://127.0.0.1:5000/acme/wheels\n")
    root = make_workspace({"libs/a": pyproject("a")}, manifest=manifest)
    ws = load_workspace(root)
    assert ws.cache_remote == "oci://127.0.0.1:5000/acme/wheels" and ws.cache_dir is None
    (root / "workspace.yaml").write_text(manifest.replace("oci://", "https://"))
    with pytest.raises(WorkspaceError) as raised:
        load_workspace(root)
    assert "cache.remote" in raised.value.message
    assert "oci://HOST/REPO" in raised.value.message
