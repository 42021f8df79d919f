"""`build --engine oci` images in the real Docker engine and the loopback registry.

The example workspace is locked against the public index, as in
tests/test_image.py; the base is the local Debian image written out with
``docker save``, so the build itself talks to no daemon. The archive is loaded
with ``docker load``; pushed images are pulled back by digest and run with
``--network host`` on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from tests.support import docker_infra
from tests.support.git import git
from tests.test_image import docker, free_port, wait_for

REPO = Path(__file__).parents[1]
pytestmark = [pytest.mark.docker, pytest.mark.network, pytest.mark.slow]


@pytest.fixture(scope="module")
def registry() -> str:
    addr = docker_infra.registry()
    if addr is None:
        pytest.skip(docker_infra.skip_reason("registry"))
    return addr


@pytest.fixture(scope="module")
def base_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not docker_infra.docker_available():
        pytest.skip(docker_infra.skip_reason("docker"))
    base = docker_infra.base_image()
    if base is None:
        pytest.skip(docker_infra.skip_reason("base_image"))
    path = tmp_path_factory.mktemp("base") / "base.tar"
    docker("save", base, "-o", str(path))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, base_archive: Path,
          registry: str) -> dict[str, dict[str, object]]:
    root = tmp_path_factory.mktemp("example")
    shutil.copy(REPO / "workspace.yaml", root)
    for part in ("services", "libs", "templates"):
        shutil.copytree(REPO / part, root / part,
                        ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    prefix = f"{registry}/oci{os.getpid()}"
    manifest = (root / "workspace.yaml").read_text()
    (root / "workspace.yaml").write_text(
        re.sub(r"(?m)^(\s*registry:).*$", rf"\1 {prefix}", manifest))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "example")
    saved = os.environ.get("ORCHESTRATOR_CACHE_DIR")
    os.environ["ORCHESTRATOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        runner = CliRunner()
        done = runner.invoke(cli, ["-w", str(root), "lock"])
        assert done.exit_code == 0, done.output
        done = runner.invoke(cli, [
            "-w", str(root), "build", "--engine", "oci", "--base",
            f"docker-archive:{base_archive}", "--archive", str(root / "out/{service}.tar"),
            "--push", "--json"])
        assert done.exit_code == 0, done.output
    finally:
        if saved is None:
            os.environ.pop("ORCHESTRATOR_CACHE_DIR", None)
        else:
            os.environ["ORCHESTRATOR_CACHE_DIR"] = saved
    results = {s["service"]: s for s in json.loads(done.stdout)["services"]}
    for service, result in results.items():
        result["archive"] = str(root / "out" / f"{service}.tar")
        result["root"] = str(root)
    return results


def _health(ref: str, service: str) -> None:
    port = free_port()
    name = f"orch-oci-{service}-{port}"
    docker("run", "-d", "--rm", "--name", name, "--network", "host", "-e", "HOST=127.0.0.1",
           "-e", f"PORT={port}", ref)
    try:
        health = wait_for(f"http://127.0.0.1:{port}/health")
        assert (health["service"], health["status"]) == (service, "ok")
    finally:
        docker("rm", "-f", name, check=False)


@pytest.mark.parametrize("service", ["gateway", "orders"])
def test_loaded_archive_answers_health_as_uid_10001(built: dict[str, dict[str, object]],
                                                    service: str) -> None:
    out = docker("load", "-i", str(built[service]["archive"]))
    tags = built[service]["tags"]
    assert isinstance(tags, list)
    assert f"Loaded image: {tags[0]}" in out
    uid = docker("run", "--rm", "--network", "none", "--entrypoint", "id", tags[0], "-u")
    assert uid == "10001"
    _health(tags[0], service)


def test_pushed_image_pulls_by_digest_and_runs(built: dict[str, dict[str, object]]) -> None:
    tags = built["gateway"]["tags"]
    assert isinstance(tags, list)
    ref = f"{str(tags[0]).rsplit(':', 1)[0]}@{built['gateway']['digest']}"
    docker("pull", "-q", ref)
    _health(ref, "gateway")


def test_registry_holds_every_tag_and_the_shared_layers(built: dict[str, dict[str, object]],
                                                        registry: str) -> None:
    venv = {}
    for service, result in built.items():
        tags = result["tags"]
        assert isinstance(tags, list)
        repository = str(tags[0]).split("/", 1)[1].rsplit(":", 1)[0]
        with urllib.request.urlopen(f"http://{registry}/v2/{repository}/tags/list") as r:
            listed = json.loads(r.read())["tags"]
        assert {str(t).rsplit(":", 1)[1] for t in tags} <= set(listed)
        platforms = result["platforms"]
        assert isinstance(platforms, dict)
        (image,) = platforms.values()
        venv[service] = image["layers"][0]["digest"]
    # The venv layer is the same blob in every service's image (the registry stores it once;
    # that a push mounts it instead of re-sending it is test_oci_registry.py's to show).
    assert len(set(venv.values())) == 1


def test_skopeo_copies_the_pushed_image(built: dict[str, dict[str, object]],
                                        tmp_path: Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (scripts/oci-tools.sh installs it)")
    tags = built["orders"]["tags"]
    assert isinstance(tags, list)
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{tags[0]}",
                    f"oci:{tmp_path / 'copy'}:x"], check=True, capture_output=True)
    assert (tmp_path / "copy/index.json").is_file()


def test_base_from_the_registry(built: dict[str, dict[str, object]], registry: str,
                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = docker_infra.base_image()
    assert base is not None
    remote = f"{registry}/oci{os.getpid()}/base:3.11"
    docker("tag", base, remote)
    docker("push", "-q", remote)
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    done = CliRunner().invoke(cli, ["-w", str(built["gateway"]["root"]), "build", "gateway",
                                    "--engine", "oci", "--base", remote, "--push", "--json"])
    assert done.exit_code == 0, done.output
    (result,) = json.loads(done.stdout)["services"]
    ref = f"{str(result['tags'][0]).rsplit(':', 1)[0]}@{result['digest']}"
    docker("pull", "-q", ref)
    labels = json.loads(docker("image", "inspect", ref))[0]["Config"]["Labels"]
    assert labels["org.opencontainers.image.base.name"] == remote
    _health(ref, "gateway")
