"""A linux/arm64 image built on this (amd64) machine with no emulation, then run under qemu.

``build --engine oci --platform linux/arm64`` assembles the image from the lock's
aarch64 wheels; the Docker engine runs it through qemu-user-static, registered
in binfmt_misc (scripts/oci-tools.sh), on the arm64 Debian base of
``scripts/base-image.sh --arch arm64``. The service's native wheel holds a real
aarch64 extension module (the base's own ``_json``, renamed into a package), so
importing it proves the loader of the arm64 python took the wheel's ELF file.
Skipped, saying which, without the engine, the emulation or the arm64 base.
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MakeWorkspace, index_manifest
from tests.support import docker_infra
from tests.support.git import git
from tests.support.indexserver import IndexServer
from tests.test_oci import backend_wheels, run

pytestmark = pytest.mark.docker

ARM64_BASE_VAR = "ORCHESTRATOR_TEST_BASE_IMAGE_ARM64"
BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
EXTENSION = "usr/lib/python3.11/lib-dynload/_json.cpython-311-aarch64-linux-gnu.so"
APP = """\
import platform


def run() -> None:
    from native import _json  # the wheel's aarch64 extension module

    print(platform.machine(), _json.__file__, _json.encode_basestring_ascii("h\\u00e9"))
"""


def _arm64_base() -> str:
    """The arm64 base tag, or a skip naming what is missing."""
    if not docker_infra.docker_available():
        pytest.skip(docker_infra.skip_reason("docker"))
    if platform.machine() != "aarch64":
        enabled = BINFMT.is_file() and BINFMT.read_text().splitlines()[:1] == ["enabled"]
        if not enabled:
            pytest.skip(f"no arm64 emulation: {BINFMT} is not registered "
                        "(scripts/oci-tools.sh registers qemu-aarch64 where permitted)")
    tag = docker_infra.setting(ARM64_BASE_VAR)
    if not tag:
        pytest.skip(f"{ARM64_BASE_VAR} is not set; run scripts/infra-up.sh "
                    "(scripts/base-image.sh --arch arm64)")
    if subprocess.run(["docker", "image", "inspect", tag], env=docker_infra.docker_env(),
                      capture_output=True).returncode != 0:
        pytest.skip(f"the arm64 base {tag} is not in the engine; run "
                    "scripts/base-image.sh --arch arm64")
    return tag


def docker(*args: str) -> str:
    proc = subprocess.run(["docker", *args], env=docker_infra.docker_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def _member_file(archive: Path, name: str) -> bytes:
    """*name* from the (single, plain) layer of a ``docker save`` archive of the base."""
    with tarfile.open(archive) as outer:
        manifest = json.loads(outer.extractfile("manifest.json").read())  # type: ignore[union-attr]
        for layer in manifest[0]["Layers"]:
            handle = outer.extractfile(layer)
            assert handle is not None
            with tarfile.open(fileobj=handle, mode="r|*") as inner:
                for member in inner:
                    if member.name.lstrip("./") == name:
                        data = inner.extractfile(member)
                        assert data is not None
                        return data.read()
    raise AssertionError(f"{name} is not in {archive}")


@pytest.fixture
def arm64_workspace(tmp_path: Path, make_workspace: MakeWorkspace,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    base = _arm64_base()
    archive = tmp_path / "base.tar"
    docker("save", base, "-o", str(archive))
    wheels = backend_wheels()
    with IndexServer(tmp_path / "index", pep658=False) as served:
        for path in wheels:
            served.add_file(path)
        served.add_wheel("native", "1.0", tag="cp311-cp311-manylinux_2_17_aarch64", files={
            "native/__init__.py": "", "native/_json.cpython-311-aarch64-linux-gnu.so":
            _member_file(archive, EXTENSION)})
        prefix = f"127.0.0.1:5000/arm64-{os.getpid()}-{time.monotonic_ns()}"
        root = make_workspace({}, manifest=index_manifest(served, "[linux/arm64]")
                              + f"image:\n  registry: {prefix}\n")
        src = root / "services" / "api" / "src" / "api"
        src.mkdir(parents=True)
        (src / "__init__.py").write_text("")
        (src / "main.py").write_text(APP)
        (root / "services" / "api" / "pyproject.toml").write_text(
            '[project]\nname = "api"\nversion = "1.0.0"\nrequires-python = ">=3.11"\n'
            'dependencies = ["native"]\n\n[project.scripts]\napi = "api.main:run"\n\n'
            '[tool.orchestrator]\nkind = "service"\n\n[build-system]\n'
            'requires = ["hatchling"]\nbuild-backend = "hatchling.build"\n')
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "ws")
        monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
        run(root, "lock")
        yield root, archive


def test_arm64_image_runs_under_qemu_and_imports_its_native_wheel(
        arm64_workspace: tuple[Path, Path], tmp_path: Path) -> None:
    root, base = arm64_workspace
    out = tmp_path / "api.tar"
    result = json.loads(run(root, "build", "api", "--engine", "oci", "--platform",
                            "linux/arm64", "--base", f"docker-archive:{base}",
                            "--archive", str(out), "--json"))["services"][0]
    tag = result["tags"][0]
    assert list(result["platforms"]) == ["linux/arm64"]
    loaded = docker("load", "-i", str(out))
    try:
        assert tag in loaded
        assert docker("image", "inspect", "--format", "{{.Architecture}}", tag).strip() == \
            "arm64"
        machine = docker("run", "--rm", "--platform", "linux/arm64", "--network", "host",
                         tag, "python", "-c", "import platform; print(platform.machine())")
        assert machine.strip() == "aarch64"
        said = docker("run", "--rm", "--platform", "linux/arm64", "--network", "host", tag)
        arch, where, encoded = said.split()
        assert arch == "aarch64"
        assert where == ("/opt/venv/lib/python3.11/site-packages/native/"
                         "_json.cpython-311-aarch64-linux-gnu.so")
        assert encoded == '"h\\u00e9"'
        uid = docker("run", "--rm", "--platform", "linux/arm64", "--network", "host", tag,
                     "python", "-c", "import os; print(os.getuid())")
        assert uid.strip() == "10001"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], env=docker_infra.docker_env(),
                       capture_output=True)


def test_arm64_extension_in_the_image_is_an_aarch64_elf(arm64_workspace: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    root, base = arm64_workspace
    layout = tmp_path / "layout"
    result = json.loads(run(root, "build", "api", "--engine", "oci", "--platform",
                            "linux/arm64", "--base", f"docker-archive:{base}",
                            "--oci-layout", str(layout), "--json"))["services"][0]
    deps = next(x["digest"] for x in result["platforms"]["linux/arm64"]["layers"]
                if x["holds"].startswith("deps:"))
    import gzip

    data = gzip.decompress((layout / "blobs" / deps.replace(":", "/")).read_bytes())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        so = tar.extractfile("opt/venv/lib/python3.11/site-packages/native/"
                             "_json.cpython-311-aarch64-linux-gnu.so")
        assert so is not None
        header = so.read(20)
    assert header[:4] == b"\x7fELF"
    assert int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
