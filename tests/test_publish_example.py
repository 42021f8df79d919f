"""The example workspace published to a real pypiserver on 127.0.0.1, then installed from it.

The workspace (workspace.yaml, libs/, services/) is copied into a fresh git
repository whose only index is the pypiserver, which also serves the wheels
of hatchling (the members' backend) and click (the worker's one third-party
dependency), gathered by ``tests.support.pypiserver.wheelhouse``. So the
builds, the uploads and the installs after them touch nothing but loopback.
The worker service opts in to being published (``publish = true``); the
other services keep the default and are not. The last test (marked docker)
also builds and pushes an image through the local engine and registry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from tests.support import docker_infra
from tests.support.archives import archive_files
from tests.support.git import git
from tests.support.pypiserver import PypiServer, wheelhouse

REPO = Path(__file__).parents[1]
pytestmark = pytest.mark.slow

LIBRARY_FILES = ["acme_common-0.3.0.tar.gz", "acme_common-0.3.0-py3-none-any.whl",
                 "acme_events-0.2.0.tar.gz", "acme_events-0.2.0-py3-none-any.whl"]
RELEASE_FILES = [*LIBRARY_FILES, "worker-0.9.0.tar.gz", "worker-0.9.0-py3-none-any.whl"]


@pytest.fixture(scope="module")
def pypi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PypiServer]:
    # pytest: the example's test groups, which `lock` resolves for the docker test.
    wheels = wheelhouse(tmp_path_factory.mktemp("wheelhouse"),
                        ["hatchling>=1.24", "click>=8.1", "pytest>=8"])
    if wheels is None:
        pytest.skip("no wheels of hatchling, click and pytest on this machine or its index")
    with PypiServer(tmp_path_factory.mktemp("pypi")) as server:
        for wheel in wheels.iterdir():
            server.add(wheel)
        yield server


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory, pypi: PypiServer) -> Path:
    """The example workspace in a git repository, indexed and published on *pypi*."""
    root = tmp_path_factory.mktemp("example")
    shutil.copy(REPO / "workspace.yaml", root)
    for part in ("services", "libs"):
        shutil.copytree(REPO / part, root / part,
                        ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    manifest = (root / "workspace.yaml").read_text()
    manifest = re.sub(r"url: https://pypi.org/simple", f"url: '{pypi.simple_url}'", manifest)
    manifest += ("publish:\n  repositories:\n"
                 f"    - {{name: local, upload-url: '{pypi.upload_url}',"
                 f" index-url: '{pypi.simple_url}'}}\n")
    (root / "workspace.yaml").write_text(manifest)
    worker = root / "services" / "worker" / "pyproject.toml"
    worker.write_text(worker.read_text().replace('kind = "service"',
                                                 'kind = "service"\npublish = true'))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "example")
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


Outputs: list[str] = []  # everything any command printed, searched for the password at the end


def orch(root: Path, cache: Path, *args: str, pypi: PypiServer | None = None,
         password: str | None = None) -> tuple[int, str, str]:
    env = {"ORCHESTRATOR_CACHE_DIR": str(cache), "SOURCE_DATE_EPOCH": None}
    if pypi is not None:
        env["ORCHESTRATOR_PUBLISH_LOCAL_USERNAME"] = pypi.username
        env["ORCHESTRATOR_PUBLISH_LOCAL_PASSWORD"] = password or pypi.password
    result = CliRunner(env=env).invoke(cli, ["-w", str(root), *args])
    Outputs.extend([result.stdout, result.stderr])
    return result.exit_code, result.stdout, result.stderr


def pip_env() -> Mapping[str, str]:
    """No pip configuration and no PIP_* variables of this machine (its find-links)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def fresh_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def pip_install(python: Path, index: str, *requirements: str) -> subprocess.CompletedProcess[str]:
    """pip (this one, driving the fresh venv's interpreter) installing from *index* alone."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-cache-dir",
         "--index-url", index, *requirements],
        capture_output=True, text=True, env=pip_env(), check=False)


def installed_metadata(python: Path, name: str) -> str:
    code = f"import importlib.metadata as m; print(m.metadata({name!r}).as_string())"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          check=True).stdout


def test_publish_uploads_the_libraries_then_the_service_that_needs_them(
    example: Path, cache: Path, pypi: PypiServer
) -> None:
    code, out, err = orch(example, cache, "publish", pypi=pypi)

    assert code == 0, err
    uploaded = [line.split()[1] for line in out.splitlines()]
    assert uploaded == RELEASE_FILES  # dependency order, each sdist before its wheel
    assert all(re.fullmatch(r"uploaded \S+ to local  [\d.]+ KiB  sha256:[0-9a-f]{64}", line)
               for line in out.splitlines()), out
    assert set(RELEASE_FILES) <= set(pypi.files())
    assert "acme-events: project.dependencies[0]: 'acme-common' -> 'acme-common>=0.3.0,<0.4'" \
        in err.splitlines()
    assert "worker: project.dependencies[1]: 'acme-events' -> 'acme-events>=0.2.0,<0.3'" \
        in err.splitlines()


def test_a_library_installs_from_the_index_alone(tmp_path: Path, pypi: PypiServer,
                                                 example: Path, cache: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    proc = pip_install(python, pypi.simple_url, "acme-common")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check = subprocess.run([str(python), "-c", "import common; print(common.__all__[0])"],
                           capture_output=True, text=True, check=True)
    assert check.stdout == "HealthReport\n"


def test_the_service_installs_from_the_index_alone_with_the_rewritten_ranges(
    tmp_path: Path, pypi: PypiServer, example: Path, cache: Path
) -> None:
    python = fresh_venv(tmp_path / "venv")
    proc = pip_install(python, pypi.simple_url, "worker")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Successfully installed acme-common-0.3.0 acme-events-0.2.0 click-" in proc.stdout
    worker = installed_metadata(python, "worker")
    assert "Requires-Dist: acme-common<0.4,>=0.3.0\n" in worker
    assert "Requires-Dist: acme-events<0.3,>=0.2.0\n" in worker
    events = installed_metadata(python, "acme-events")
    assert "Requires-Dist: acme-common<0.4,>=0.3.0\n" in events
    run = subprocess.run([str(tmp_path / "venv" / "bin" / "acme-worker"), "--once"],
                         capture_output=True, text=True, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["fulfilled"] == 0


def test_publishing_the_same_versions_again_fails_unless_skip_existing(
    example: Path, cache: Path, pypi: PypiServer
) -> None:
    before = pypi.files()
    code, out, err = orch(example, cache, "publish", pypi=pypi)
    assert code == 1
    assert out == ""
    assert err.splitlines()[-2:] == [
        f"error: acme_common-0.3.0.tar.gz already exists on repository 'local' "
        f"({pypi.upload_url})",
        "hint: a published version cannot be replaced: raise the member's version "
        "(`orchestrator version`), or pass --skip-existing to leave the files already there"]

    code, out, err = orch(example, cache, "publish", "--skip-existing", pypi=pypi)
    assert code == 0, err
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["skipped", f"{name}:"] for name in RELEASE_FILES]
    assert out.splitlines()[0].startswith("skipped acme_common-0.3.0.tar.gz: already on local  ")
    assert pypi.files() == before


def test_a_wrong_password_is_a_clear_error_that_does_not_show_it(
    example: Path, cache: Path, pypi: PypiServer
) -> None:
    wrong = "Wr0ng-pa55word-41"
    code, out, err = orch(example, cache, "publish", "acme-common", pypi=pypi, password=wrong)
    assert code == 1
    assert err.splitlines()[-2:] == [
        f"error: repository 'local' ({pypi.upload_url}) refused the upload of "
        "acme_common-0.3.0.tar.gz with the credentials from ORCHESTRATOR_PUBLISH_LOCAL_USERNAME "
        "and _PASSWORD (403 Forbidden)",
        "hint: check the username and password (or token) for 'local' and that they may "
        "upload this project"]
    assert wrong not in out + err


def test_dry_run_builds_and_checks_and_uploads_nothing(example: Path, cache: Path,
                                                       pypi: PypiServer) -> None:
    before = pypi.files()
    code, out, err = orch(example, cache, "publish", "--dry-run", pypi=pypi)
    assert code == 0, err
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["checked", name] for name in RELEASE_FILES]
    assert "  acme_common-0.3.0.tar.gz: long description not declared" in err.splitlines()
    assert ("  acme_common-0.3.0.tar.gz: warning: no long description (readme) is declared"
            in err.splitlines())
    assert err.splitlines()[-1] == "dry run: nothing was uploaded to local"
    assert pypi.files() == before


def test_naming_a_service_that_is_not_published_is_an_error(example: Path, cache: Path) -> None:
    code, _out, err = orch(example, cache, "publish", "--dry-run", "orders")
    assert code == 1
    assert err.splitlines() == [
        "error: orders is not published as a package (publish = false, the default for "
        "services)",
        "hint: set `publish = true` under [tool.orchestrator] in services/orders/pyproject.toml "
        "to publish it"]


def test_with_images_a_named_service_is_published_as_an_image(example: Path,
                                                              cache: Path) -> None:
    code, out, err = orch(example, cache, "publish", "--dry-run", "--images", "worker", "orders")
    assert code == 0, err
    assert [line.split("  ")[0] for line in out.splitlines()] == [
        *(f"checked {name}" for name in RELEASE_FILES[4:]),
        "would build and push the image of orders",
        "would build and push the image of worker",
    ]


def package_into(example: Path, out: Path, cache: Path, tmp: Path,
                 monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # where the builds unpack and run
    code, stdout, err = orch(example, cache, "package", "--out", str(out), "--json")
    assert code == 0, err
    data: dict[str, object] = json.loads(stdout)
    return data


def test_two_package_runs_give_identical_files(tmp_path: Path, example: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    one = package_into(example, tmp_path / "one", tmp_path / "cache1", tmp_path / "tmp1",
                       monkeypatch)
    two = package_into(example, tmp_path / "two", tmp_path / "cache2", tmp_path / "tmp2",
                       monkeypatch)

    def digests(data: dict[str, object]) -> dict[str, str]:
        packages = data["packages"]
        assert isinstance(packages, list)
        return {a["file"]: a["sha256"] for p in packages for a in p["artifacts"]}

    assert list(digests(one)) == RELEASE_FILES
    assert digests(one) == digests(two)
    for name in RELEASE_FILES:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_no_published_file_holds_a_path_or_a_file_url(example: Path, pypi: PypiServer) -> None:
    needles = [b"file:", str(example).encode(), str(REPO).encode(),
               str(example.resolve()).encode(), b"../../libs"]
    found: list[str] = []
    for name in RELEASE_FILES:
        for inner, data in archive_files(pypi.packages / name).items():
            found.extend(f"{name}: {inner}: {needle!r}" for needle in needles if needle in data)
    assert found == []


def test_affected_since_packages_what_a_change_reaches(tmp_path: Path, example: Path,
                                                       cache: Path) -> None:
    changed = example / "libs" / "events" / "src" / "events" / "__init__.py"
    original = changed.read_text()
    changed.write_text(original + "\n# a change\n")
    try:
        code, out, err = orch(example, cache, "package", "--affected", "--since", "HEAD",
                              "--out", str(tmp_path / "dist"))
    finally:
        changed.write_text(original)
    assert code == 0, err
    assert [line.split()[0].rsplit("/", 1)[-1] for line in out.splitlines()] == RELEASE_FILES[2:]


@pytest.mark.docker
def test_publish_images_pushes_the_service_image_after_its_packages(
    tmp_path: Path, example: Path, cache: Path, pypi: PypiServer,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    if not docker_infra.docker_available() or docker_infra.base_image() is None:
        pytest.skip(docker_infra.skip_reason("docker"))
    monkeypatch.setenv("DOCKER_HOST", docker_infra.docker_host())
    root = tmp_path / "ws"
    shutil.copytree(example, root)
    manifest = (root / "workspace.yaml").read_text()
    registry = f"{docker_infra.registry() or '127.0.0.1:5000'}/p{os.getpid()}"
    manifest = re.sub(r"(?m)^(\s*registry:).*$", rf"\1 {registry}", manifest)
    manifest = re.sub(r"(?m)^(\s*base:).*$", rf"\1 {docker_infra.base_image()}", manifest)
    (root / "workspace.yaml").write_text(manifest)
    # Only the worker's third-party wheels are on the pypiserver, so only its locks.
    code, _, err = orch(root, cache, "lock", "worker", "acme-common", "acme-events")
    assert code == 0, err

    code, out, err = orch(root, cache, "publish", "worker", "--images", "--skip-existing",
                          pypi=pypi)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [
        ["skipped", "worker-0.9.0.tar.gz:"], ["skipped", "worker-0.9.0-py3-none-any.whl:"]]
    assert re.fullmatch(rf"pushed {re.escape(registry)}/worker:0\.9\.0 sha256:[0-9a-f]{{64}}",
                        lines[2]), out


def test_no_command_printed_the_password(pypi: PypiServer) -> None:
    assert Outputs
    assert not [text for text in Outputs if pypi.password in text]


def test_publish_json_names_no_path_of_a_directory_that_is_gone(
        example: Path, cache: Path, pypi: PypiServer, tmp_path: Path) -> None:
    code, out, err = orch(example, cache, "publish", "--dry-run", "--json", pypi=pypi)
    assert code == 0, err
    data = json.loads(out)
    assert data["files"] and all(f["path"] is None for f in data["files"])
    assert all(a["path"] is None for p in data["packages"] for a in p["artifacts"])
    kept = tmp_path / "dist"
    code, out, err = orch(example, cache, "publish", "--dry-run", "--json", "--out", str(kept),
                          pypi=pypi)
    assert code == 0, err
    assert all(Path(f["path"]).is_file() for f in json.loads(out)["files"])
