"""PEP 517 builds of sdists in isolated environments, cached per target.

The sdists come from tests/support/wheels.build_sdist and name ``flit_core``
as their backend. The index the builds install it from is a local
IndexServer serving:

* a stand-in ``flit_core`` 3.9.0 wheel built here (``FAKE_BACKEND``): a real
  PEP 517 backend in 60 lines, so every test runs offline and fast; and
* for ``test_real_flit_core_builds_the_sdist`` only (marked ``network``), a
  real flit_core < 4 wheel: from this machine's wheel directories
  (``$ORCHESTRATOR_TEST_WHEELHOUSE``, /opt/wheels, /opt/pypi/files) when they
  hold one, else downloaded by pip (``pypiserver.wheelhouse``); skipped only
  when neither works.

Every build needs a Python matching the host's (to create build envs) and
pip's wheel bundled with virtualenv; nothing else reaches the network.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from orchestrator import venv as venv_module
from orchestrator.build import MemberBuilder, SdistBuilder, create_build_env, host_platform
from orchestrator.cache import BUILT, WheelCache
from orchestrator.errors import BuildError, VenvError
from orchestrator.models import CoreMetadata, Target
from tests.support.indexserver import IndexServer
from tests.support.pypiserver import wheelhouse
from tests.support.wheels import build_sdist, sha256_of

PY = f"{sys.version_info.major}.{sys.version_info.minor}"
HOST = Target(PY, host_platform())

# A minimal PEP 517 backend. Its behaviour is steered by files in the source
# tree: PLATFORM_TAG makes a platform wheel, NO_PREPARE hides the metadata hook,
# BAD_NAMES makes both hooks report names of things they did not write.
FAKE_BACKEND = """
import base64, hashlib, os, tomllib, zipfile

def _project():
    with open("pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]

def _tag():
    if os.path.exists("PLATFORM_TAG"):
        return open("PLATFORM_TAG").read().strip()
    return "py3-none-any"

def _metadata(project):
    lines = [f"Metadata-Version: 2.1", f"Name: {project['name']}",
             f"Version: {project['version']}"]
    lines += [f"Requires-Dist: {r}" for r in project.get("dependencies", [])]
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    return "\\n".join(lines) + "\\n\\n"

def _dist(project):
    return project["name"].replace("-", "_").replace(".", "_").lower()

def get_requires_for_build_wheel(config_settings=None):
    return []

def _prepare(metadata_directory, config_settings=None):
    if os.path.exists("BAD_NAMES"):
        return "nothing.dist-info"
    project = _project()
    name = f"{_dist(project)}-{project['version']}.dist-info"
    os.makedirs(os.path.join(metadata_directory, name))
    with open(os.path.join(metadata_directory, name, "METADATA"), "w") as f:
        f.write(_metadata(project))
    return name

if not os.path.exists("NO_PREPARE"):
    prepare_metadata_for_build_wheel = _prepare

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    if os.path.exists("BAD_NAMES"):
        open(os.path.join(wheel_directory, "notes.txt"), "w").close()
        return "notes.txt"
    project = _project()
    dist, version, tag = _dist(project), project["version"], _tag()
    files = {}
    for root, _, names in os.walk(dist):
        for n in names:
            path = os.path.join(root, n)
            files[path.replace(os.sep, "/")] = open(path, "rb").read()
    info = f"{dist}-{version}.dist-info"
    files[f"{info}/METADATA"] = _metadata(project).encode()
    files[f"{info}/WHEEL"] = (f"Wheel-Version: 1.0\\nGenerator: fake\\n"
                              f"Root-Is-Purelib: {str(tag.endswith('any')).lower()}\\n"
                              f"Tag: {tag}\\n").encode()
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\\n"
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\\n").encode()
    name = f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return name
"""


def add_to_sdist(sdist: Path, name: str, data: str) -> None:
    """Rewrite *sdist* with one more file in its top-level directory."""
    with tarfile.open(sdist) as tf:
        members = [(m, tf.extractfile(m)) for m in tf.getmembers()]
        contents = [(m, f.read() if f else b"") for m, f in members]
    top = contents[0][0].name.split("/")[0]
    with tarfile.open(sdist, "w:gz") as tf:
        for member, payload in contents:
            tf.addfile(member, io.BytesIO(payload))
        info = tarfile.TarInfo(f"{top}/{name}")
        info.size = len(data.encode())
        tf.addfile(info, io.BytesIO(data.encode()))


@pytest.fixture
def index(tmp_path: Path) -> Iterator[IndexServer]:
    with IndexServer(tmp_path / "index") as server:
        server.add_wheel(
            "flit_core",
            "3.9.0",
            files={"flit_core/__init__.py": "", "flit_core/buildapi.py": FAKE_BACKEND},
        )
        yield server


@pytest.fixture
def builder(tmp_path: Path, index: IndexServer) -> SdistBuilder:
    return SdistBuilder(WheelCache(tmp_path / "cache"), [index.url])


def test_build_wheel_once_per_target_and_cache_it(
    tmp_path: Path, builder: SdistBuilder, index: IndexServer
) -> None:
    sdist = build_sdist(tmp_path / "src", "Hello.World", "1.2", requires_dist=["attrs>=21"])
    sha = sha256_of(sdist)

    built = builder.build_wheel(sdist, HOST)

    assert built.path.name == "hello_world-1.2-py3-none-any.whl"
    assert built.sdist_sha256 == sha and built.target == HOST
    assert built.path.is_relative_to(builder.cache.root / "wheels-v1")
    record = builder.cache.root / BUILT / sha / f"{HOST.key}.json"
    assert record.exists()
    with zipfile.ZipFile(built.path) as zf:
        assert zf.read("hello_world/__init__.py").startswith(b'"""Hello.World."""')
    requests = index.count()
    again = builder.build_wheel(sdist, HOST)
    assert again == built
    assert index.count() == requests  # no new build environment


def test_build_ignores_the_machines_pip_configuration(
    tmp_path: Path, builder: SdistBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad_config = tmp_path / "pip.conf"
    bad_config.write_text("[global]\nindex-url = http://127.0.0.1:9/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(bad_config))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")

    built = builder.build_wheel(build_sdist(tmp_path / "src", "iso", "1.0"), HOST)

    assert built.path.name == "iso-1.0-py3-none-any.whl"


def test_missing_build_requirement_names_it_and_the_index(tmp_path: Path) -> None:
    with IndexServer(tmp_path / "empty") as empty:
        builder = SdistBuilder(WheelCache(tmp_path / "cache"), [empty.url])
        sdist = build_sdist(tmp_path / "src", "needy", "1.0")
        with pytest.raises(BuildError) as info:
            builder.build_wheel(sdist, HOST)
    message = info.value.message
    assert message.startswith(
        "needy-1.0.tar.gz: installing the [build-system] requirements (flit_core>=3.2,<4) "
        f"from {empty.url} failed:\n"
    )
    assert "No matching distribution found for flit_core" in message
    assert info.value.hint == (
        "make the build requirements available on the workspace's indexes, or publish a "
        "wheel of this package so no build is needed"
    )


def test_prepare_metadata_uses_the_hook_and_is_cached(
    tmp_path: Path, builder: SdistBuilder, index: IndexServer
) -> None:
    sdist = build_sdist(
        tmp_path / "src", "meta", "0.3", requires_dist=["idna", "attrs>=1"], requires_python=">=3.9"
    )

    metadata = builder.prepare_metadata(sdist)

    assert metadata == CoreMetadata(
        "meta", "0.3", requires_dist=("idna", "attrs>=1"), requires_python=">=3.9"
    )
    sha = sha256_of(sdist)
    assert (builder.cache.root / BUILT / sha / "METADATA").exists()
    assert not (builder.cache.root / BUILT / sha / f"{HOST.key}.json").exists()  # no wheel
    requests = index.count()
    assert builder.prepare_metadata(sdist) == metadata
    assert index.count() == requests


def test_prepare_metadata_falls_back_to_building_the_wheel(
    tmp_path: Path, builder: SdistBuilder
) -> None:
    sdist = build_sdist(tmp_path / "src", "nometa", "2.0", requires_dist=["idna"])
    add_to_sdist(sdist, "NO_PREPARE", "")

    metadata = builder.prepare_metadata(sdist)

    assert (metadata.name, metadata.version, metadata.requires_dist) == ("nometa", "2.0", ("idna",))
    record = builder.cache.root / BUILT / sha256_of(sdist) / f"{HOST.key}.json"
    assert record.exists()  # the wheel built on the way is kept for installs


def test_hooks_reporting_what_they_did_not_write_are_build_errors(
    tmp_path: Path, builder: SdistBuilder
) -> None:
    sdist = build_sdist(tmp_path / "src", "liar", "1.0")
    add_to_sdist(sdist, "BAD_NAMES", "")

    with pytest.raises(BuildError) as caught:
        builder.build_wheel(sdist, HOST)
    assert caught.value.message == (
        "liar-1.0.tar.gz: the build backend flit_core.buildapi reported 'notes.txt', but wrote "
        "no .whl file of that name")
    assert caught.value.hint == "the package's build backend is broken; report it to the project"
    with pytest.raises(BuildError) as caught:
        builder.prepare_metadata(sdist)
    assert caught.value.message == (
        "liar-1.0.tar.gz: the build backend flit_core.buildapi reported 'nothing.dist-info' "
        "from prepare_metadata_for_build_wheel, but wrote no METADATA in it")


def test_platform_wheel_cannot_be_cross_built(tmp_path: Path, builder: SdistBuilder) -> None:
    other = "linux/arm64" if host_platform() != "linux/arm64" else "linux/amd64"
    sdist = build_sdist(tmp_path / "src", "native", "1.0")
    add_to_sdist(sdist, "PLATFORM_TAG", f"cp{PY.replace('.', '')}-cp{PY.replace('.', '')}-x")

    with pytest.raises(BuildError) as info:
        builder.build_wheel(sdist, Target(PY, other))

    wheel = f"native-1.0-cp{PY.replace('.', '')}-cp{PY.replace('.', '')}-x.whl"
    assert info.value.message == (
        f"native-1.0.tar.gz builds a platform-specific wheel ({wheel}), which cannot be "
        f"cross-built for {other} and Python {PY} on this {host_platform()} host with "
        f"Python {PY}"
    )
    assert info.value.hint == (
        f"publish a {other} wheel of it to your index, or run the build on a {other} "
        f"machine with Python {PY}"
    )
    assert builder.build_wheel(sdist, HOST).path.name == wheel  # fine for the host


def test_pure_sdist_builds_for_another_platform(tmp_path: Path, builder: SdistBuilder) -> None:
    other = Target(PY, "linux/arm64" if host_platform() != "linux/arm64" else "linux/amd64")
    built = builder.build_wheel(build_sdist(tmp_path / "src", "pure", "1.0"), other)
    assert built.path.name == "pure-1.0-py3-none-any.whl"
    assert (builder.cache.root / BUILT / built.sdist_sha256 / f"{other.key}.json").exists()


def test_unsafe_sdist_is_rejected(tmp_path: Path, builder: SdistBuilder) -> None:
    sdist = tmp_path / "evil-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(BuildError, match=r"^evil-1.0.tar.gz: cannot unpack the source"):
        builder.build_wheel(sdist, HOST)


def zip_sdist(tar_sdist: Path, extra: dict[str, bytes] | None = None) -> Path:
    """The .tar.gz sdist *tar_sdist* rewritten as a .zip (old setuptools made those)."""
    path = tar_sdist.with_name(tar_sdist.name.removesuffix(".tar.gz") + ".zip")
    with tarfile.open(tar_sdist) as tf, zipfile.ZipFile(path, "w") as zf:
        for member in tf.getmembers():
            handle = tf.extractfile(member)
            zf.writestr(member.name, handle.read() if handle else b"")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def test_zip_sdist_builds(tmp_path: Path, builder: SdistBuilder) -> None:
    sdist = zip_sdist(build_sdist(tmp_path / "src", "zipped", "1.0"))
    assert builder.build_wheel(sdist, HOST).path.name == "zipped-1.0-py3-none-any.whl"


def test_zip_sdist_with_a_path_leaving_the_tree_is_rejected(
    tmp_path: Path, builder: SdistBuilder
) -> None:
    sdist = zip_sdist(build_sdist(tmp_path / "src", "evil", "1.0"), {"../escape.txt": b"x"})
    with pytest.raises(VenvError, match=r"^evil-1.0.zip: unsafe path '../escape.txt' in"):
        builder.build_wheel(sdist, HOST)
    assert not (tmp_path / "escape.txt").exists()


def test_a_dangling_symlink_in_a_member_is_hashed_by_its_target_name(
    tmp_path: Path, builder: SdistBuilder
) -> None:
    member = write_member(tmp_path / "ws", "svc")
    (member / "settings.local").symlink_to("nowhere")  # was a FileNotFoundError traceback
    members = MemberBuilder(builder)
    first = members.build(member, HOST)
    assert members.build(member, HOST) == first
    (member / "settings.local").unlink()
    (member / "settings.local").symlink_to("elsewhere")
    members.build(member, HOST)  # another link is another source: recorded anew
    assert len(list((builder.cache.root / "members-v1").glob("*.json"))) == 2


def test_backend_path_must_stay_in_the_source_tree(tmp_path: Path, builder: SdistBuilder) -> None:
    member = write_member(tmp_path / "ws", "svc")
    pyproject = member / "pyproject.toml"
    text = pyproject.read_text()

    def backend_path(entry: str) -> None:  # the line after `requires = [...]`
        pyproject.write_text(text.replace("]\n", f']\nbackend-path = ["{entry}"]\n', 1))

    backend_path(".")
    assert MemberBuilder(builder).build(member, HOST)[0].name == "svc-1.0-py3-none-any.whl"
    backend_path("..")
    with pytest.raises(BuildError) as info:
        MemberBuilder(builder).build(member, HOST)
    assert info.value.message == (
        f"svc: [build-system] backend-path {str((tmp_path / 'ws').resolve())!r} leaves the "
        "source tree"
    )


@pytest.mark.parametrize("system", ['build-system = "flit_core"',
                                    '[build-system]\nbuild-backend = "flit_core.buildapi"',
                                    '[build-system]\nrequires = []\nbackend-path = "."'])
def test_a_malformed_build_system_is_a_build_error(tmp_path: Path, builder: SdistBuilder,
                                                   system: str) -> None:
    member = write_member(tmp_path / "ws", "svc")
    pyproject = member / "pyproject.toml"
    pyproject.write_text(system + "\n\n[project]\nname = \"svc\"\nversion = \"1.0\"\n")
    with pytest.raises(BuildError) as info:
        MemberBuilder(builder).build(member, HOST)
    assert info.value.message == (
        "svc: pyproject.toml's [build-system] needs `requires` (a list), and `build-backend` "
        "and `backend-path` when given must be a string and a list of strings")
    # A member's owner can fix the file; only an sdist's user is told to avoid it.
    assert info.value.hint == "fix [build-system] in svc/pyproject.toml (PEP 518)"


def test_build_environment_is_a_venv_holding_only_pip(tmp_path: Path) -> None:
    from virtualenv.seed.wheels.embed import get_embed_wheel

    cache = WheelCache(tmp_path / "cache")
    python = create_build_env("demo", Path(sys.executable), tmp_path / "env", cache)

    assert python == tmp_path / "env" / "bin" / "python"
    assert "\norchestrator = " in (tmp_path / "env" / "pyvenv.cfg").read_text()  # create_venv's
    dists = venv_module.installed(tmp_path / "env")
    assert sorted(dists) == ["pip"]
    embedded = get_embed_wheel("pip", PY)
    assert embedded is not None
    bundled = parse_wheel_filename(Path(embedded.path).name)[1]
    assert dists["pip"].version == str(bundled)  # the pip virtualenv would have seeded
    out = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith(f"pip {bundled} from {tmp_path / 'env'}")


def test_interpreter_is_asked_once_per_binary_across_builders(
    tmp_path: Path, builder: SdistBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Target(PY, "linux/arm64" if host_platform() != "linux/arm64" else "linux/amd64")
    sdist = build_sdist(tmp_path / "src", "native", "1.0")
    add_to_sdist(sdist, "PLATFORM_TAG", f"cp{PY.replace('.', '')}-cp{PY.replace('.', '')}-x")
    monkeypatch.setattr(venv_module, "_FACTS", {})  # forget what earlier tests asked
    builder.build_wheel(sdist, HOST)

    def never(*args: object) -> None:
        raise AssertionError("the interpreter was asked again")

    monkeypatch.setattr(venv_module, "_FACTS", {})  # a new process: only the cache remembers
    monkeypatch.setattr(venv_module, "_ask_interpreter", never)
    fresh = SdistBuilder(builder.cache, builder.index_urls)
    with pytest.raises(BuildError, match="cannot be cross-built"):  # asks the Python version
        fresh.build_wheel(sdist, other)


def test_builder_needs_an_index(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="needs at least one package index"):
        SdistBuilder(WheelCache(tmp_path / "cache"), [])


@pytest.mark.network
def test_real_flit_core_builds_the_sdist(tmp_path: Path) -> None:
    wheels = wheelhouse(tmp_path / "wheelhouse", ["flit_core>=3.2,<4"])
    if wheels is None:
        pytest.skip("no flit_core>=3.2,<4 wheel on this machine, and pip could not fetch one")
    flit = next(wheels.glob("flit_core-*.whl"))
    # pep658=False: the server's .metadata for this wheel is the vendored tomli's.
    with IndexServer(tmp_path / "index", pep658=False) as server:
        server.add_file(flit)
        builder = SdistBuilder(WheelCache(tmp_path / "cache"), [server.url])
        sdist = build_sdist(tmp_path / "src", "realflit", "1.0", requires_dist=["idna"])
        built = builder.build_wheel(sdist, HOST)
        metadata = builder.prepare_metadata(sdist)
    assert built.path.name == "realflit-1.0-py2.py3-none-any.whl"
    assert (metadata.name, metadata.requires_dist) == ("realflit", ("idna",))


def test_built_wheel_installs(tmp_path: Path, builder: SdistBuilder) -> None:
    from orchestrator.venv import WantedDist, create_venv, sync_venv

    built = builder.build_wheel(build_sdist(tmp_path / "src", "usable", "1.0"), HOST)
    venv = create_venv(tmp_path / "venv", PY)
    wanted = WantedDist("usable", "1.0", wheel=built.path, sha256=built.sha256)
    report = sync_venv(venv.path, [wanted], builder.cache)
    assert [c.name for c in report.installed] == ["usable"]


# -- workspace members ---------------------------------------------------------------------


def write_member(root: Path, name: str, version: str = "1.0") -> Path:
    """A member directory built by the stand-in flit_core backend."""
    member = root / name
    (member / name).mkdir(parents=True, exist_ok=True)
    (member / name / "__init__.py").write_text(f'"""{name}."""\n')
    (member / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["flit_core>=3.2,<4"]\nbuild-backend = "flit_core.buildapi"'
        f'\n\n[project]\nname = "{name}"\nversion = "{version}"\ndescription = "m"\n')
    (member / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return member


def test_member_wheel_is_built_once_until_its_sources_change(
    tmp_path: Path, builder: SdistBuilder, index: IndexServer
) -> None:
    members = MemberBuilder(builder)
    member = write_member(tmp_path / "ws", "svc")

    path, sha = members.build(member, HOST)

    assert path.name == "svc-1.0-py3-none-any.whl"
    assert path.is_relative_to(builder.cache.root / "wheels-v1")
    assert sha == sha256_of(path)
    requests = index.count()
    (member / "svc" / "__pycache__").mkdir()  # build debris does not count as a change
    (member / "svc" / "__pycache__" / "x.pyc").write_bytes(b"")
    assert members.build(member, HOST) == (path, sha)
    assert index.count() == requests  # the build environment was kept, nothing fetched
    (member / "svc" / "extra.py").write_text("X = 1\n")
    rebuilt, new_sha = members.build(member, HOST)
    assert new_sha != sha
    with zipfile.ZipFile(rebuilt) as zf:
        assert "svc/extra.py" in zf.namelist()
