"""Members whose version their build backend computes (`dynamic = ["version"]`).

A realistic layout, as adopted repositories have it: services under apps/,
libraries under packages/, each built by a real backend from PyPI:

* apps/api: hatchling, the version in ``[tool.hatch.version] path`` (what
  hatch-vcs users fall back to without git), inside a namespace package
  (src/acme/api, no src/acme/__init__.py);
* packages/core: setuptools, ``version = {attr = "acme_core.__version__"}``;
* packages/flitlib: flit_core, the module's ``__version__`` and docstring;
* packages/plain: a static version, which must never cause a build.

The backends are real wheels served by a local IndexServer from a wheelhouse
on this machine ($ORCHESTRATOR_TEST_WHEELHOUSE, /opt/wheels, /opt/pypi/files),
the approach of tests/test_build.py: nothing reaches the network, and the
tests are skipped when a wheel is missing. Fetch them once with
``pip download hatchling setuptools flit_core -d $ORCHESTRATOR_TEST_WHEELHOUSE``.
Build environments are kept in one cache for the module, as a developer's are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from orchestrator import build
from orchestrator.models import Target
from orchestrator.session import Session
from orchestrator.venv import installed
from orchestrator.versions import member_version
from tests.support.cli import run as orch
from tests.support.git import git
from tests.support.indexserver import IndexServer

PLACES = (os.environ.get("ORCHESTRATOR_TEST_WHEELHOUSE", ""), "/opt/wheels", "/opt/pypi/files")
BACKEND_WHEELS = ("hatchling", "packaging", "pathspec", "pluggy", "trove-classifiers", "tomlkit",
                  "setuptools", "flit-core", "hatch-vcs", "setuptools-scm", "vcs-versioning")


def _wheelhouse_wheel(project: str) -> Path | None:
    for place in filter(None, PLACES):
        if not Path(place).is_dir():
            continue
        found = [p for p in Path(place).glob("*.whl")
                 if canonicalize_name(parse_wheel_filename(p.name)[0]) == project]
        if found:
            return max(found, key=lambda p: parse_wheel_filename(p.name)[1])
    return None


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """A local index serving the real backends, and one build cache for the module."""
    wheels = {name: _wheelhouse_wheel(name) for name in BACKEND_WHEELS}
    missing = [name for name, path in wheels.items() if path is None]
    if missing:
        pytest.skip(f"no wheel of {', '.join(missing)} on this machine")
    # pep658=False: a served .metadata would be read from the first dist-info found,
    # which for flit_core is its vendored tomli's.
    with IndexServer(tmp_path_factory.mktemp("index"), pep658=False) as server, \
            pytest.MonkeyPatch.context() as patch:
        for path in wheels.values():
            assert path is not None
            server.add_file(path)
        patch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield server


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


API = """\
[project]
name = "api"
dynamic = ["version"]
requires-python = ">=3.11"
dependencies = ["acme-core"]

[project.scripts]
api = "acme.api.main:run"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.version]
path = "src/acme/api/__about__.py"

[tool.hatch.build.targets.wheel]
packages = ["src/acme"]

[tool.orchestrator]
kind = "service"
"""

CORE = """\
[project]
name = "acme-core"
dynamic = ["version"]
dependencies = []

[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[tool.setuptools.dynamic]
version = {attr = "acme_core.__version__"}

[tool.setuptools.packages.find]
where = ["src"]
"""

FLITLIB = """\
[project]
name = "flitlib"
dynamic = ["version", "description"]
dependencies = []

[build-system]
requires = ["flit_core>=3.4"]
build-backend = "flit_core.buildapi"
"""

PLAIN = """\
[project]
name = "plain"
version = "1.4.0"
dependencies = []
"""


def dynamic_workspace(root: Path, index: IndexServer) -> Path:
    write(root / "workspace.yaml", "version: 1\nname: acme\npython: \"3.11\"\n"
          f"indexes:\n  - {{name: local, url: '{index.url}'}}\n"
          "members: [apps/*, packages/*]\n")
    write(root / "apps/api/pyproject.toml", API)
    write(root / "apps/api/src/acme/api/__init__.py", "")
    write(root / "apps/api/src/acme/api/__about__.py", '__version__ = "0.1.0"\n')
    write(root / "apps/api/src/acme/api/main.py", "def run() -> None:\n    print('api')\n")
    write(root / "packages/core/pyproject.toml", CORE)
    write(root / "packages/core/src/acme_core/__init__.py", '__version__ = "3.2.1"\n')
    write(root / "packages/flitlib/pyproject.toml", FLITLIB)
    write(root / "packages/flitlib/flitlib.py", '"""A flit library."""\n__version__ = "2.1.0"\n')
    write(root / "packages/plain/pyproject.toml", PLAIN)
    return root


@pytest.fixture
def acme(tmp_path: Path, backends: IndexServer) -> Path:
    return dynamic_workspace(tmp_path / "acme", backends)


def no_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any PEP 517 hook call fail the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a build ran")

    monkeypatch.setattr(build._BuildSession, "__init__", refuse)


LISTED = (
    "api        service   0.1.0       apps/api\n"
    "acme-core  library   3.2.1       packages/core\n"
    "flitlib    library   2.1.0       packages/flitlib\n"
    "plain      library   1.4.0       packages/plain\n"
)


def test_list_shows_the_versions_the_backends_report(acme: Path) -> None:
    code, out, err = orch(acme, "list")
    assert (code, out, err) == (0, LISTED, "")
    code, out, _ = orch(acme, "list", "--json")
    assert [(m["name"], m["version"]) for m in json.loads(out)] == [
        ("api", "0.1.0"), ("acme-core", "3.2.1"), ("flitlib", "2.1.0"), ("plain", "1.4.0")]


def test_a_second_list_runs_no_build_until_a_source_changes(
        acme: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert orch(acme, "list")[0] == 0
    with monkeypatch.context() as patch:
        no_builds(patch)
        assert orch(acme, "list") == (0, LISTED, "")
    write(acme / "apps/api/src/acme/api/__about__.py", '__version__ = "0.2.0"\n')
    code, out, _ = orch(acme, "list")
    assert (code, out.splitlines()[0]) == (0, "api        service   0.2.0       apps/api")


def test_static_versions_never_touch_the_builder(
        acme: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_builds(monkeypatch)
    with Session(acme) as session:
        plain = session.member("plain")
        assert (plain.version, plain.dynamic_version) == ("1.4.0", False)
        assert member_version(session, plain) == "1.4.0"
        assert "member_builder" not in session.__dict__  # not even made
        api = session.member("api")
        assert (api.version, api.dynamic, api.dynamic_version) == (None, ("version",), True)


def test_version_shows_a_dynamic_version_and_refuses_to_bump_it(acme: Path) -> None:
    assert orch(acme, "version", "api") == (0, "api 0.1.0\n", "")
    assert orch(acme, "version", "flitlib") == (0, "flitlib 2.1.0\n", "")
    before = (acme / "apps/api/pyproject.toml").read_text()
    code, out, err = orch(acme, "version", "api", "minor")
    assert (code, out) == (1, "")
    assert err == (
        "error: apps/api/pyproject.toml: project.dynamic: cannot bump the version of api: it is "
        "dynamic, computed by its build backend from [tool.hatch.version] path = "
        "\"src/acme/api/__about__.py\"\n"
        "hint: edit it where it comes from ([tool.hatch.version] path = "
        "\"src/acme/api/__about__.py\"), or make it static: set project.version and remove "
        "\"version\" from project.dynamic\n")
    assert (acme / "apps/api/pyproject.toml").read_text() == before
    code, _, err = orch(acme, "version", "acme-core", "1.0.0", "--dry-run")
    assert code == 1
    assert err.startswith(
        "error: packages/core/pyproject.toml: project.dynamic: cannot bump the version of "
        "acme-core: it is dynamic, computed by its build backend from [tool.setuptools.dynamic] "
        "version = {attr = \"acme_core.__version__\"}\n")
    code, _, err = orch(acme, "version", "flitlib", "patch")
    assert code == 1
    assert "computed by its build backend from the module's __version__ (flit)" in err


def test_sync_installs_members_under_their_backend_versions(acme: Path) -> None:
    code, _, err = orch(acme, "lock", "api")
    assert code == 0, err
    code, _, err = orch(acme, "sync", "api")
    assert code == 0, err
    found = installed(acme / "apps/api/.venv")
    assert (found["api"].version, found["acme-core"].version) == ("0.1.0", "3.2.1")


def test_image_context_pins_each_member_to_its_built_wheel(acme: Path, tmp_path: Path) -> None:
    assert orch(acme, "lock", "api")[0] == 0
    context = tmp_path / "context"
    code, _, err = orch(acme, "dockerfile", "api", "--context", str(context))
    assert code == 0, err
    for layer, wheel, pin in (("service", "api-0.1.0-py3-none-any.whl", "api==0.1.0"),
                              ("libs", "acme_core-3.2.1-py3-none-any.whl", "acme-core==3.2.1")):
        directory = context / layer
        assert sorted(p.name for p in directory.iterdir()) == sorted(["requirements.txt", wheel])
        assert (directory / "requirements.txt").read_text().startswith(f"{pin} --hash=sha256:")
        # What the Dockerfile's install stage runs, offline: pip accepts the pin and the hash.
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes",
             "--no-index", "--find-links", str(directory), "--target", str(tmp_path / layer),
             "-r", str(directory / "requirements.txt")],
            capture_output=True, text=True, check=False,
            env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
        assert proc.returncode == 0, proc.stderr
    dockerfile = (context / "Dockerfile").read_text()
    assert '"org.opencontainers.image.version"="0.1.0"' in dockerfile


NO_PREPARE_BACKEND = """\
import os, zipfile

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    version = open("VERSION").read().strip()
    name = f"nohook-{version}-py3-none-any.whl"
    info = f"nohook-{version}.dist-info"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        zf.writestr(f"{info}/METADATA",
                    f"Metadata-Version: 2.1\\nName: nohook\\nVersion: {version}\\n\\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\n"
                    "Tag: py3-none-any\\n")
        zf.writestr(f"{info}/RECORD", "")
    return name
"""


def test_a_backend_without_the_prepare_hook_builds_the_wheel_once(
        acme: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    member = acme / "packages/nohook"
    write(member / "pyproject.toml", '[project]\nname = "nohook"\ndynamic = ["version"]\n\n'
          '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["_build"]\n')
    write(member / "_build/backend.py", NO_PREPARE_BACKEND)
    write(member / "VERSION", "5.0.1\n")
    with Session(acme) as session:
        assert member_version(session, session.member("nohook")) == "5.0.1"
        target = Target(f"{sys.version_info[0]}.{sys.version_info[1]}", build.host_platform())
        with monkeypatch.context() as patch:
            no_builds(patch)  # the wheel built for the version is the one an image gets
            wheel, _sha = session.member_builder.build(member, target)
    assert wheel.name == "nohook-5.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        assert "nohook-5.0.1.dist-info/METADATA" in zf.namelist()


def test_a_version_from_git_tags_follows_a_new_tag(acme: Path) -> None:
    api = acme / "apps/api/pyproject.toml"
    api.write_text(API.replace('requires = ["hatchling"]', 'requires = ["hatchling", "hatch-vcs"]')
                   .replace('path = "src/acme/api/__about__.py"',  # as monorepos set it
                            'source = "vcs"\nraw-options = {root = "../.."}'))
    git(acme, "init", "-q", "-b", "main")
    git(acme, "add", ".")
    git(acme, "commit", "-qm", "first")
    git(acme, "tag", "v1.2.0")
    assert orch(acme, "version", "api") == (0, "api 1.2.0\n", "")
    git(acme, "commit", "-q", "--allow-empty", "-m", "second")
    git(acme, "tag", "v1.3.0")  # no source file changed, only git
    assert orch(acme, "version", "api") == (0, "api 1.3.0\n", "")
    code, _, err = orch(acme, "version", "api", "patch")
    assert code == 1
    assert err == (
        "error: apps/api/pyproject.toml: project.dynamic: cannot bump the version of api: it is "
        "dynamic, computed by its build backend from git tags, through hatch-vcs "
        "([tool.hatch.version] source = \"vcs\")\n"
        "hint: tag a new release in git, or make it static: set project.version and remove "
        "\"version\" from project.dynamic\n")


def test_a_broken_backend_is_one_clear_error(acme: Path) -> None:
    write(acme / "packages/core/src/acme_core/__init__.py", "__version__ = undefined_name\n")
    code, out, err = orch(acme, "list")
    assert (code, out) == (1, "")
    assert err.startswith("error: core: the build backend setuptools.build_meta failed in "
                          "get_requires_for_build_wheel:\n")
    assert "NameError: name 'undefined_name' is not defined" in err
    assert err.count("\nhint: ") == 1
    assert err.endswith("hint: fix the package's build (the output above says why), or publish "
                        "a wheel of it so no build is needed\n")
