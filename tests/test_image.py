"""Images through a real Docker engine and a real loopback registry.

The example workspace is copied into a temporary git repository, locked against
the public index, and every service is built on the local Debian base image
(scripts/base-image.sh); containers run with --network host on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import docker_infra
from tests.support.cli import run as orch
from tests.support.git import git

REPO = Path(__file__).parents[1]
pytestmark = [pytest.mark.docker, pytest.mark.network, pytest.mark.slow]


@pytest.fixture(scope="module")
def engine() -> Iterator[dict[str, str]]:
    if not docker_infra.docker_available():
        pytest.skip(docker_infra.skip_reason("docker"))
    base = docker_infra.base_image()
    if base is None:
        pytest.skip(docker_infra.skip_reason("base_image"))
    env = {"DOCKER_HOST": docker_infra.docker_host(), "BASE": base}
    saved = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = env["DOCKER_HOST"]
    yield env
    if saved is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = saved


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory, engine: dict[str, str]) -> Path:
    """The example workspace in a fresh git repository, with a unique registry prefix."""
    root = tmp_path_factory.mktemp("example")
    shutil.copy(REPO / "workspace.yaml", root)
    for part in ("services", "libs", "templates"):
        shutil.copytree(REPO / part, root / part,
                        ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    registry = docker_infra.registry() or "127.0.0.1:5000"
    manifest = (root / "workspace.yaml").read_text()
    unique = f"{registry}/t{os.getpid()}"
    (root / "workspace.yaml").write_text(
        re.sub(r"(?m)^(\s*registry:).*$", rf"\1 {unique}", manifest))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "example")
    return root


def docker(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, check=False,
                          env=docker_infra.docker_env())
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def inspect(ref: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(docker("image", "inspect", ref))
    return data[0]


def layers(ref: str) -> list[str]:
    return list(inspect(ref)["RootFS"]["Layers"])


def image(root: Path, service: str) -> str:
    manifest = (root / "workspace.yaml").read_text()
    registry = next(line.split(": ", 1)[1] for line in manifest.splitlines()
                    if line.strip().startswith("registry:"))
    version = next(line.split('"')[1] for line in
                   (root / "services" / service / "pyproject.toml").read_text().splitlines()
                   if line.startswith("version"))
    return f"{registry}/{service}:{version}"


@pytest.fixture(scope="module")
def built(example: Path, engine: dict[str, str]) -> Path:
    code, _, err = orch(example, "lock")
    assert code == 0, err
    code, out, err = orch(example, "build", "--base", engine["BASE"])
    assert code == 0, err
    assert len(out.splitlines()) >= 3, out
    return example


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.parametrize("service", ["gateway", "orders"])
def test_http_services_answer_health(built: Path, service: str) -> None:
    port = free_port()
    name = f"orch-test-{service}-{port}"
    docker("run", "-d", "--rm", "--name", name, "--network", "host", "-e", "HOST=127.0.0.1",
           "-e", f"PORT={port}", image(built, service))
    try:
        health = wait_for(f"http://127.0.0.1:{port}/health")
        assert health["service"] == service
        assert health["status"] == "ok"
    finally:
        docker("rm", "-f", name, check=False)


def test_worker_runs_its_one_shot_command(built: Path) -> None:
    out = docker("run", "--rm", "--network", "none", image(built, "worker"))
    assert json.loads(out.splitlines()[-1])["fulfilled"] == 0


def test_image_is_lean_and_unprivileged(built: Path) -> None:
    ref = image(built, "orders")
    script = ("id -u; test ! -e /opt/venv/bin/pip && echo no-pip; "
              "/opt/venv/bin/python -c 'import importlib.util as u; "
              "print(\"pip\" if u.find_spec(\"pip\") else \"no-pip-module\")'; "
              "for c in gcc cc g++ make; do command -v $c; done; test ! -e /context && "
              "echo no-context")
    out = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", ref, "-c", script)
    assert out.splitlines() == ["10001", "no-pip", "no-pip-module", "no-context"]
    labels = inspect(ref)["Config"]["Labels"]
    assert labels["org.opencontainers.image.title"] == "orders"
    assert labels["org.opencontainers.image.version"] == "0.4.1"
    assert labels["dev.orchestrator.lock-digest"].startswith("sha256:")
    assert len(labels["org.opencontainers.image.revision"]) == 40
    env = inspect(ref)["Config"]["Env"]
    assert "VIRTUAL_ENV=/opt/venv" in env
    assert any(e.startswith("PATH=/opt/venv/bin:") for e in env)


def test_the_image_holds_its_sbom_and_its_digest_label(built: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    from orchestrator.lock import read_lock, select
    from orchestrator.models import Target

    ref = image(built, "orders")
    text = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "cat",
                           ref, "/opt/venv/sbom.cdx.json"], capture_output=True, text=True,
                          check=True, env=docker_infra.docker_env()).stdout
    labels = inspect(ref)["Config"]["Labels"]
    assert labels["dev.orchestrator.sbom-digest"] == (
        "sha256:" + hashlib.sha256(text.encode()).hexdigest())
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    assert bom["metadata"]["component"]["name"] == "orders"
    platform = inspect(ref)["Os"] + "/" + inspect(ref)["Architecture"]
    installed = select(read_lock(built / "services/orders/pylock.toml"),
                       [Target("3.11", platform)], ())  # what the image installs
    assert sorted(c["name"] for c in bom["components"]) == sorted(s.name for s in installed)


def test_nothing_changed_nothing_rebuilt(built: Path, engine: dict[str, str]) -> None:
    before = {s: inspect(image(built, s))["Id"] for s in ("gateway", "orders", "worker")}
    code, out, err = orch(built, "build", "--base", engine["BASE"])
    assert code == 0, err
    assert out.count("up to date (same inputs)") == 3
    assert {s: inspect(image(built, s))["Id"] for s in before} == before


def test_build_json_reports_every_service(built: Path, engine: dict[str, str]) -> None:
    code, out, err = orch(built, "build", "--base", engine["BASE"], "--json")
    assert code == 0, err
    services = json.loads(out)["services"]
    assert sorted(s["service"] for s in services) == ["gateway", "orders", "worker"]
    for entry in services:
        assert entry["built"] is False  # nothing changed since the fixture built them
        assert entry["image_id"] == inspect(image(built, entry["service"]))["Id"]
        assert entry["tags"][0] == image(built, entry["service"])
        assert entry["layers"] == len(layers(image(built, entry["service"])))
        assert entry["pushed"] == {}


def test_code_change_rebuilds_only_the_service_layer(built: Path,
                                                     engine: dict[str, str]) -> None:
    before = {s: layers(image(built, s)) for s in ("gateway", "worker")}
    app = built / "services/worker/src/worker/main.py"
    app.write_text(app.read_text() + "\n# a code-only change\n")
    code, out, err = orch(built, "build", "--base", engine["BASE"])
    assert code == 0, err
    assert "worker:" in out
    assert "built in" in next(line for line in out.splitlines() if line.startswith("worker:"))
    assert "up to date" in next(line for line in out.splitlines()
                                if line.startswith("gateway:"))
    after = layers(image(built, "worker"))
    assert len(after) == len(before["worker"])
    assert after[:-1] == before["worker"][:-1]  # base, venv, deps, libs: same digests
    assert after[-1] != before["worker"][-1]
    assert layers(image(built, "gateway")) == before["gateway"]


def test_lock_change_changes_the_dependency_layer(built: Path, engine: dict[str, str]) -> None:
    before = layers(image(built, "worker"))
    code, _, err = orch(built, "add", "worker", "six", "--no-sync")
    assert code == 0, err
    code, _, err = orch(built, "build", "worker", "--base", engine["BASE"])
    assert code == 0, err
    after = layers(image(built, "worker"))
    assert after[:2] == before[:2]  # base and venv skeleton
    assert after[2] != before[2]  # the third-party layer holds six now


def test_push_remove_pull_by_digest_and_run(built: Path, engine: dict[str, str]) -> None:
    if docker_infra.registry() is None:
        pytest.skip(docker_infra.skip_reason("registry"))
    code, out, err = orch(built, "build", "worker", "--base", engine["BASE"], "--push")
    assert code == 0, err
    pushed = [line.split() for line in out.splitlines() if line.strip().startswith("pushed")]
    assert pushed, out
    ref, digest = pushed[0][1], pushed[0][2]
    assert digest.startswith("sha256:")
    repo = ref.rsplit(":", 1)[0]
    image_id = inspect(ref)["Id"]
    docker("rmi", "-f", image_id)
    docker("pull", f"{repo}@{digest}")
    out = docker("run", "--rm", "--network", "none", f"{repo}@{digest}")
    assert json.loads(out.splitlines()[-1])["fulfilled"] == 0


def test_dockerfile_context_builds_with_plain_docker(built: Path, tmp_path: Path,
                                                     engine: dict[str, str]) -> None:
    context = tmp_path / "ctx"
    code, out, err = orch(built, "dockerfile", "gateway", "--context", str(context),
                          "--base", engine["BASE"])
    assert code == 0, err
    assert sorted(p.name for p in context.iterdir()) == [
        ".dockerignore", "Dockerfile", "deps", "libs", "sbom.cdx.json", "service"]
    assert not list(context.rglob("*.py"))  # wheels only: never the monorepo's sources
    tag = f"orch-test-plain-{os.getpid()}"
    docker("build", "-q", "--network", "none", "-t", tag, str(context))
    try:
        out = docker("run", "--rm", "--network", "none", "--entrypoint", "python", tag, "-c",
                     "import gateway.app, common; print('ok')")
        assert out == "ok"
    finally:
        docker("rmi", "-f", tag, check=False)


# -- bad input --------------------------------------------------------------------------


def test_no_daemon(built: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    code, _, err = orch(built, "build", "worker")
    assert code == 1
    assert err.startswith(f"error: no Docker engine answers at unix://{tmp_path}/nothing.sock")
    assert err.endswith("hint: start one (scripts/docker-up.sh does, as root) and set "
                        "DOCKER_HOST to its socket\n")


def test_missing_and_stale_lock(built: Path, engine: dict[str, str]) -> None:
    lock = built / "services/gateway/pylock.toml"
    saved = lock.read_bytes()
    lock.unlink()
    try:
        code, _, err = orch(built, "build", "gateway", "--base", engine["BASE"])
        assert code == 1
        assert err == ("error: cannot build gateway: its lock is out of date "
                       "(services/gateway/pylock.toml does not exist)\n"
                       "hint: run `orchestrator lock gateway` first\n")
    finally:
        lock.write_bytes(saved)
    pyproject = built / "services/gateway/pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('"uvicorn>=0.30"', '"uvicorn>=0.31"'))
    try:
        code, _, err = orch(built, "build", "gateway", "--base", engine["BASE"])
        assert code == 1
        assert "its dependencies or dependency groups changed" in err
    finally:
        pyproject.write_text(text)


def test_missing_base_image(built: Path) -> None:
    code, _, err = orch(built, "build", "worker", "--base", "orchestrator-test/no-such:1")
    assert code == 1
    assert err.startswith("error: the base image orchestrator-test/no-such:1 is not on this "
                          "engine and cannot be pulled (")
    assert "hint: set image.base in workspace.yaml (or --base)" in err


def test_service_without_command(built: Path, engine: dict[str, str]) -> None:
    pyproject = built / "services/worker/pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('command = ["acme-worker", "--once"]\n', "")
                         .replace('acme-worker = "worker.main:main"',
                                  'acme-worker = "worker.main:main"\nw2 = "worker.main:main"'))
    try:
        code, _, err = orch(built, "build", "worker", "--base", engine["BASE"])
        assert code == 1
        assert err == (
            "error: worker has no command for its image ([project.scripts]: acme-worker, w2)\n"
            "hint: set `command = [...]` under [tool.orchestrator] in services/worker/"
            "pyproject.toml, or define exactly one [project.scripts] entry\n")
    finally:
        pyproject.write_text(text)


def test_failing_step_is_named(built: Path, engine: dict[str, str], tmp_path: Path) -> None:
    """A base without Python: the engine's error inside the build stream names the step."""
    tag = f"orch-test-nopython-{os.getpid()}:1"
    (tmp_path / "Dockerfile").write_text(
        f"FROM {engine['BASE']}\nRUN rm -f /usr/bin/python3 /usr/bin/python3.*\n")
    docker("build", "-q", "--network", "none", "-t", tag, str(tmp_path))
    try:
        code, _, err = orch(built, "build", "worker", "--base", tag, "--rebuild")
        assert code == 1
        assert err.splitlines()[-1] == (
            "hint: fix the cause above and run `orchestrator build` again")
        failure = next(line for line in err.splitlines() if line.startswith("error: "))
        assert failure.startswith("error: building worker failed at step 4/")
        assert "(RUN python3 -m venv /opt/installer && python3 -m venv --without-pip /opt/venv)" \
            in failure
        assert "returned a non-zero code: 127" in failure
    finally:
        docker("rmi", "-f", tag, check=False)
