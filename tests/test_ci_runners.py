"""Two CI runners share builds through the real loopback registry.

Runner A builds and pushes every service of the example workspace; its images
are removed from the engine; runner B, a clone on the same commit with its own
empty cache, re-tags every image in the registry instead of building; after a
change to one library, B rebuilds exactly the services that use it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.oci.registry import Reference
from orchestrator.registry import RegistryClient, fingerprint_tag, parse
from tests.support import docker_infra
from tests.support.git import git

REPO = Path(__file__).parents[1]
pytestmark = [pytest.mark.docker, pytest.mark.network, pytest.mark.slow]


def docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False,
                          env=docker_infra.docker_env())
    assert proc.returncode == 0, f"docker {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout.strip()


@pytest.fixture
def infra(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """(base image, registry) of the real engine and loopback registry."""
    if not docker_infra.docker_available():
        pytest.skip(docker_infra.skip_reason("docker"))
    base = docker_infra.base_image()
    if base is None:
        pytest.skip(docker_infra.skip_reason("base_image"))
    registry = docker_infra.registry()
    if registry is None:
        pytest.skip(docker_infra.skip_reason("registry"))
    monkeypatch.setenv("DOCKER_HOST", docker_infra.docker_host())
    yield base, registry


def runner_build(root: Path, cache: Path, base: str,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, dict[str, object]], str,
                                                           str]:
    """`build --push --json` as a runner with its own cache dir: results by service."""
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(cache))
    result = CliRunner().invoke(cli, ["-w", str(root), "build", "--base", base, "--push",
                                      "--json"])
    assert result.exit_code == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    return {s["service"]: s for s in services}, result.stdout, result.stderr


def test_runner_b_reuses_what_runner_a_pushed(tmp_path: Path, infra: tuple[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    base, registry = infra
    a, b = tmp_path / "runner-a", tmp_path / "runner-b"
    a.mkdir()
    shutil.copy(REPO / "workspace.yaml", a)
    for part in ("services", "libs", "templates"):
        shutil.copytree(REPO / part, a / part,
                        ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    prefix = f"{registry}/ci{uuid.uuid4().hex[:8]}"
    manifest = (a / "workspace.yaml").read_text()
    (a / "workspace.yaml").write_text(
        re.sub(r"(?m)^(\s*registry:).*$", rf"\1 {prefix}", manifest))
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache-a"))
    locked = CliRunner().invoke(cli, ["-w", str(a), "lock"])
    assert locked.exit_code == 0, locked.stderr
    git(a, "init", "-q", "-b", "main")
    git(a, "add", "-A")
    git(a, "commit", "-qm", "example")
    subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True, capture_output=True)

    first, _, _ = runner_build(a, tmp_path / "cache-a", base, monkeypatch)
    assert sorted(first) == ["gateway", "orders", "worker"]
    assert all(r["built"] for r in first.values())
    # The fingerprint tag is in the registry next to the others.
    for service, r in first.items():
        tags = r["tags"]
        assert isinstance(tags, list)
        ref = parse(str(tags[0]))
        assert ref is not None
        client = RegistryClient(ref.host)
        fp_tag = next(t for t in _registry_tags(client, ref) if t.startswith("fp-"))
        client.close()
        assert re.fullmatch(r"fp-[0-9a-f]{16}", fp_tag), service
    for r in first.values():
        docker("image", "rm", "-f", str(r["image_id"]))

    second, _, err = runner_build(b, tmp_path / "cache-b", base, monkeypatch)
    assert sorted(second) == sorted(first)
    for service, r in second.items():
        assert r["built"] is False, service
        assert str(r["reused_from"]).startswith(f"{prefix}/{service}:fp-"), r
        assert f"{service}: reused from {prefix}/{service}:fp-" in err
        assert r["pushed"] == first[service]["pushed"], service  # the same digests
        assert r["image_id"] == first[service]["image_id"]
    assert "inputs changed" not in err and "building" not in err
    # No build ran, so the engine holds none of these images.
    assert docker("images", "-q", f"{prefix}/*") == ""

    events = b / "libs" / "events" / "src" / "events" / "__init__.py"
    events.write_text(events.read_text() + "\n# a change in the events library\n")
    git(b, "commit", "-qam", "events: a change")
    third, _, err = runner_build(b, tmp_path / "cache-b", base, monkeypatch)
    rebuilt = sorted(s for s, r in third.items() if r["built"])
    assert rebuilt == ["orders", "worker"]  # the services that use acme-events
    assert third["gateway"]["reused_from"] is not None
    assert "gateway: reused from" in err
    assert third["orders"]["image_id"] != first["orders"]["image_id"]


def _registry_tags(client: RegistryClient, ref: Reference) -> list[str]:
    response = client.client(ref).request("GET", f"{ref.base_url}/tags/list")
    assert response.status_code == 200, response.text
    return list(response.json()["tags"])


def test_fingerprint_tag_and_references() -> None:
    assert fingerprint_tag("sha256:" + "ab" * 32) == "fp-" + "ab" * 8
    ref = parse("127.0.0.1:5000/acme/orders:0.4.1")
    assert ref == Reference("127.0.0.1:5000", "acme/orders", "0.4.1", None)
    assert ref.base_url == "http://127.0.0.1:5000/v2/acme/orders"
    assert str(ref) == "127.0.0.1:5000/acme/orders:0.4.1"
    remote = parse("ghcr.io/acme/orders:1")
    assert remote is not None and remote.base_url == "https://ghcr.io/v2/acme/orders"
    assert parse("orders:1") is None  # Docker Hub: no reuse, build as before
