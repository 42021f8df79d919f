"""Shared fixtures: temporary workspaces written from short descriptions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.indexserver import IndexServer

MakeWorkspace = Callable[..., Path]

MANIFEST = """\
version: 1
name: demo
python: "3.11"
platforms: [linux/amd64]
members: [services/*, libs/*]
"""


def pyproject(
    name: str,
    deps: Sequence[str] = (),
    *,
    version: str = "1.0.0",
    groups: Mapping[str, Sequence[str]] | None = None,
    tool: str = "",
) -> str:
    """A member pyproject.toml with the given dependencies and groups."""
    lines = [
        "[project]",
        f'name = "{name}"',
        f'version = "{version}"',
        "dependencies = [" + ", ".join(f'"{d}"' for d in deps) + "]",
    ]
    if groups:
        lines.append("\n[dependency-groups]")
        for group, reqs in groups.items():
            lines.append(f"{group} = [" + ", ".join(f'"{r}"' for r in reqs) + "]")
    if tool:
        lines.append("\n[tool.orchestrator]\n" + tool)
    return "\n".join(lines) + "\n"


@pytest.fixture
def make_workspace(tmp_path: Path) -> MakeWorkspace:
    """Write workspace.yaml and members ({relpath: pyproject text}) under tmp_path."""

    def make(
        members: Mapping[str, str], manifest: str = MANIFEST, root: Path | None = None
    ) -> Path:
        base = root or tmp_path / "ws"
        base.mkdir(parents=True, exist_ok=True)
        (base / "workspace.yaml").write_text(manifest)
        for rel, text in members.items():
            (base / rel).mkdir(parents=True, exist_ok=True)
            (base / rel / "pyproject.toml").write_text(text)
        return base

    return make


@pytest.fixture
def shop(make_workspace: MakeWorkspace) -> Path:
    """Two services sharing a library, plus an unrelated service."""
    return make_workspace({
        "libs/common": pyproject("common", ["attrs"]),
        "services/api": pyproject("api", ["common", "httpx"], tool='kind = "service"'),
        "services/web": pyproject("web", ["requests"], groups={"dev": ["common", "pytest"]}),
        "services/solo": pyproject("solo", ["click"]),
    })


def index_manifest(server: IndexServer, platforms: str = "[linux/amd64]") -> str:
    """workspace.yaml text whose only index is the local *server*."""
    return (
        "version: 1\nname: shop\npython: \"3.11\"\n"
        f"platforms: {platforms}\n"
        f"indexes:\n  - {{name: local, url: '{server.url}'}}\n"
        "members: [services/*, libs/*]\n"
    )


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[IndexServer]:
    """A local index with a few real wheels, and a private cache directory."""
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    with IndexServer(tmp_path / "index") as server:
        server.add_wheel("attrs", "23.1.0")
        server.add_wheel("attrs", "24.2.0")
        server.add_wheel("httpx", "0.27.0", requires_dist=["idna>=3"])
        server.add_wheel("idna", "3.7")
        server.add_wheel("pytest", "8.3.0", requires_dist=["pluggy<2"])
        server.add_wheel("pluggy", "1.5.0")
        yield server


@pytest.fixture
def locked_shop(make_workspace: MakeWorkspace, index: IndexServer) -> Path:
    """A service using a library, against the local index (not yet locked)."""
    return make_workspace({
        "libs/common": pyproject("common", ["attrs>=23"]),
        "services/api": pyproject("api", ["common", "httpx"], groups={"test": ["pytest"]}),
    }, manifest=index_manifest(index))


@pytest.fixture
def registry() -> str:
    """The loopback OCI registry scripts/infra-up.sh starts; the test is skipped without one."""
    from tests.support import docker_infra

    addr = docker_infra.registry()
    if addr is None:
        pytest.skip(docker_infra.skip_reason("registry"))
    return addr
