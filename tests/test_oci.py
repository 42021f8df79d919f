"""`build --engine oci`: reproducible layers and images with no daemon.

Members are built by hatchling, served with its dependencies by a local index
from the machine's wheelhouse (as tests/test_dynamic_version.py does); the base
is a small OCI layout written here whose only layer holds ``usr/bin/python3.11``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.utils import canonicalize_name, parse_wheel_filename

from orchestrator import image
from orchestrator.cli import cli
from orchestrator.oci.layers import LAYER_GZIP, LAYER_ZSTD, write_tar
from orchestrator.oci.layout import CONFIG, INDEX, MANIFEST, BlobStore, write_layout
from tests.conftest import MANIFEST as MANIFEST_TEXT
from tests.conftest import MakeWorkspace, index_manifest
from tests.support import docker_infra
from tests.support.git import git
from tests.support.indexserver import IndexServer

PLACES = (os.environ.get("ORCHESTRATOR_TEST_WHEELHOUSE", ""), "/opt/wheels", "/opt/pypi/files")
BACKEND = ("hatchling", "packaging", "pathspec", "pluggy", "trove-classifiers", "tomlkit")
# An ELF header: magic, 64-bit, little-endian, version 1, ET_DYN, then e_machine.
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"\x03\x00"
MACHINES = {"linux/amd64": (62, "manylinux_2_17_x86_64"),
            "linux/arm64": (183, "manylinux_2_17_aarch64")}


def wheelhouse(project: str) -> Path | None:
    for place in filter(None, PLACES):
        if Path(place).is_dir():
            found = [p for p in Path(place).glob("*.whl")
                     if canonicalize_name(parse_wheel_filename(p.name)[0]) == project]
            if found:
                return max(found, key=lambda p: parse_wheel_filename(p.name)[1])
    return None


def backend_wheels() -> list[Path]:
    """The build backend's wheels from this machine's wheelhouse; skips the test without them."""
    wheels = {name: wheelhouse(name) for name in BACKEND}
    missing = [name for name, path in wheels.items() if path is None]
    if missing:
        pytest.skip(f"no wheel of {', '.join(missing)} on this machine")
    return [path for path in wheels.values() if path is not None]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IndexServer]:
    wheels = backend_wheels()
    with IndexServer(tmp_path / "index", pep658=False) as served:
        for path in wheels:
            served.add_file(path)
        served.add_wheel("attrs", "24.2.0")
        served.add_wheel("bigdep", "2.0", files={"bigdep/data.bin": os.urandom(64 * 1024)})
        for machine, tag in MACHINES.values():
            served.add_wheel("native", "1.0", tag=f"cp311-cp311-{tag}", files={
                "native/_speedups.cpython-311.so": ELF + machine.to_bytes(2, "little")
                + b"\0" * 64})
        yield served


MEMBER = """\
[project]
name = "{name}"
version = "1.0.0"
requires-python = ">=3.11"
dependencies = [{deps}]

[project.scripts]
{name} = "{module}.main:run"

[tool.orchestrator]
kind = "{kind}"
ports = [8000]

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""


def member(root: Path, rel: str, name: str, deps: list[str], kind: str = "service") -> None:
    module = name.replace("-", "_")
    (root / rel / "src" / module).mkdir(parents=True)
    (root / rel / "src" / module / "__init__.py").write_text("")
    (root / rel / "src" / module / "main.py").write_text("def run() -> None:\n    print('hi')\n")
    (root / rel / "pyproject.toml").write_text(MEMBER.format(
        name=name, deps=", ".join(f'"{d}"' for d in deps), module=module, kind=kind))


def base_layout(root: Path, python: str = "3.11") -> Path:
    """An OCI layout of a tiny two-platform "base image": a python binary's path, and PATH."""
    tree = root / "tree"
    (tree / "usr" / "bin").mkdir(parents=True)
    (tree / "usr" / "bin" / f"python{python}").write_text("#!/bin/false\n")
    store = BlobStore(root / "layout")
    buffer = io.BytesIO()
    blob = write_tar(tree, buffer, mtime=0)
    layer = store.put_bytes(buffer.getvalue(), blob.media_type)
    manifests = []
    for arch in ("amd64", "arm64"):
        config = store.put_json({"architecture": arch, "os": "linux",
                                 "config": {"Env": ["PATH=/usr/bin:/bin"]},
                                 "rootfs": {"type": "layers", "diff_ids": [blob.diff_id]},
                                 "history": [{"created_by": "test base"}]}, CONFIG)
        manifest = store.put_json({"schemaVersion": 2, "mediaType": MANIFEST,
                                   "config": config.as_dict(), "layers": [layer.as_dict()]},
                                  MANIFEST)
        manifests.append({**manifest.as_dict(),
                          "platform": {"os": "linux", "architecture": arch}})
    index = store.put_json({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests},
                           INDEX)
    write_layout(store, root / "layout", index, ["base"])
    return root / "layout"


@pytest.fixture
def workspace(tmp_path: Path, server: IndexServer, make_workspace: MakeWorkspace,
              monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_workspace({}, manifest=index_manifest(
        server, "[linux/amd64, linux/arm64]") + "image:\n  registry: 127.0.0.1:5000/t\n")
    member(root, "libs/common", "common", ["attrs"], kind="library")
    member(root, "services/api", "api", ["common", "bigdep", "native"])
    member(root, "services/web", "web", ["bigdep"])
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "ws")
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "lock-cache"))
    run(root, "lock")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "locks")
    # A 64 KiB wheel counts as big here, so bigdep gets a layer of its own.
    monkeypatch.setattr(image, "LARGE_WHEEL", 32 * 1024)
    return root


def run(root: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["-w", str(root), *args])
    assert result.exit_code == 0, result.output + str(result.exception)
    return result.stdout


def build(root: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, base: Path,
          *extra: str) -> dict[str, dict[str, object]]:
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(cache))
    out = run(root, "build", "--engine", "oci", "--base", f"oci:{base}:base", "--json", *extra)
    return {s["service"]: s for s in json.loads(out)["services"]}


def layers_of(result: dict[str, object], platform: str = "linux/amd64") -> dict[str, str]:
    platforms = result["platforms"]
    assert isinstance(platforms, dict)
    return {entry["holds"].split(":")[0]: entry["digest"]
            for entry in platforms[platform]["layers"]}


def test_same_commit_two_empty_caches_same_digests(workspace: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    base = base_layout(tmp_path / "base")
    first = build(workspace, tmp_path / "cache-a", monkeypatch, base,
                  "--oci-layout", str(tmp_path / "a"))
    time.sleep(1.1)  # a different wall-clock time must not show in any byte
    for path in workspace.rglob("*.py"):  # nor a checkout's file times
        os.utime(path, (time.time(), time.time()))
    second = build(workspace, tmp_path / "cache-b", monkeypatch, base,
                   "--oci-layout", str(tmp_path / "b"))
    assert {s: r["digest"] for s, r in first.items()} == \
        {s: r["digest"] for s, r in second.items()}
    assert first["api"]["built"] and second["api"]["built"]
    assert (tmp_path / "a/index.json").read_bytes() == (tmp_path / "b/index.json").read_bytes()


def test_services_share_the_big_wheel_layer(workspace: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    results = build(workspace, tmp_path / "cache", monkeypatch, base_layout(tmp_path / "b"))
    api, web = layers_of(results["api"]), layers_of(results["web"])
    assert list(api) == ["venv at /opt/venv for /usr/bin/python3.11", "deps-bigdep", "deps",
                         "libs", "sbom", "service"]
    assert api["deps-bigdep"] == web["deps-bigdep"]
    assert api["venv at /opt/venv for /usr/bin/python3.11"] == \
        web["venv at /opt/venv for /usr/bin/python3.11"]
    assert api["service"] != web["service"]


def _layer_tar(store: Path, digest: str) -> tarfile.TarFile:
    data = gzip.decompress((store / "blobs" / digest.replace(":", "/")).read_bytes())
    return tarfile.open(fileobj=io.BytesIO(data))


def test_layers_are_deterministic_tars(workspace: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    layout = tmp_path / "out"
    results = build(workspace, tmp_path / "cache", monkeypatch, base_layout(tmp_path / "b"),
                    "--oci-layout", str(layout))
    service = layers_of(results["api"])["service"]
    with _layer_tar(layout, service) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == \
            {(0, 0, "", "", 0)}
        script = tar.extractfile("opt/venv/bin/api")
        assert script is not None
        assert script.read().startswith(b"#!/opt/venv/bin/python\n")
        assert "opt/venv/lib/python3.11/site-packages/api-1.0.0.dist-info/RECORD" in names
        pyc = tar.extractfile("opt/venv/lib/python3.11/site-packages/api/__pycache__/"
                              "main.cpython-311.pyc")
        assert pyc is not None
        assert pyc.read(8)[4:8] == b"\x01\0\0\0"  # PEP 552: hash-based, not checked
    venv = layers_of(results["api"])["venv at /opt/venv for /usr/bin/python3.11"]
    with _layer_tar(layout, venv) as tar:
        assert tar.getmember("opt/venv/bin/python").linkname == "/usr/bin/python3.11"
        cfg = tar.extractfile("opt/venv/pyvenv.cfg")
        assert cfg is not None and b"home = /usr/bin\n" in cfg.read()
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / index["manifests"][0]["digest"]
                           .replace(":", "/")).read_text())
    config = json.loads((layout / "blobs" / manifest["config"]["digest"]
                         .replace(":", "/")).read_text())
    assert config["config"]["User"] == "10001:10001"
    assert config["config"]["Cmd"] == ["api"]
    assert config["config"]["ExposedPorts"] == {"8000/tcp": {}}
    assert config["config"]["Env"][0] == "PATH=/opt/venv/bin:/usr/bin:/bin"
    assert "org.opencontainers.image.base.digest" in config["config"]["Labels"]
    assert [h["created_by"] for h in config["history"]][-3:] == [
        "orchestrator: libs: common 1.0.0", "orchestrator: sbom: /opt/venv/sbom.cdx.json",
        "orchestrator: service: api 1.0.0"]
    sbom = layers_of(results["api"])["sbom"]
    with _layer_tar(layout, sbom) as tar:
        document = tar.extractfile("opt/venv/sbom.cdx.json")
        assert document is not None
        data = document.read()
    assert config["config"]["Labels"]["dev.orchestrator.sbom-digest"] == \
        "sha256:" + hashlib.sha256(data).hexdigest()
    assert {c["name"] for c in json.loads(data)["components"]} >= {"attrs", "bigdep"}


def test_no_change_is_found_by_fingerprint(workspace: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    base = base_layout(tmp_path / "b")
    first = build(workspace, tmp_path / "cache", monkeypatch, base)
    again = build(workspace, tmp_path / "cache", monkeypatch, base)
    assert again["api"]["built"] is False
    assert again["api"]["digest"] == first["api"]["digest"]
    # another gzip implementation writes other bytes: not the recorded image, a new digest
    from orchestrator.oci import layers

    layers.gzip_deflate.cache_clear()
    monkeypatch.setenv(layers.GZIP_VAR, "zlib")
    try:
        other = build(workspace, tmp_path / "cache", monkeypatch, base)
    finally:
        layers.gzip_deflate.cache_clear()
    assert other["api"]["built"] is True
    assert other["api"]["digest"] != first["api"]["digest"]


def test_multi_platform_index_has_aarch64_extensions(workspace: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "b"
    layout = base_layout(base)
    results = build(workspace, tmp_path / "cache", monkeypatch, layout,
                    "--platform", "linux/amd64", "--platform", "linux/arm64",
                    "--oci-layout", str(tmp_path / "out"))
    store = tmp_path / "out"
    index = json.loads((store / "blobs" / str(results["api"]["digest"]).replace(":", "/"))
                       .read_text())
    assert [m["platform"] for m in index["manifests"]] == [
        {"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"}]
    for platform, (machine, _tag) in MACHINES.items():
        deps = layers_of(results["api"], platform)["deps"]
        with _layer_tar(store, deps) as tar:
            so = tar.extractfile(
                "opt/venv/lib/python3.11/site-packages/native/_speedups.cpython-311.so")
            assert so is not None
            header = so.read(20)
        assert header[:4] == b"\x7fELF"
        assert int.from_bytes(header[18:20], "little") == machine, platform


def registry_prefix(workspace: Path, name: str) -> str:
    """Point *workspace*'s image.registry at a fresh repository prefix of the test registry."""
    registry = docker_infra.registry()
    if registry is None:
        pytest.skip(docker_infra.skip_reason("registry"))
    text = (workspace / "workspace.yaml").read_text()
    prefix = f"{registry}/{name}-{os.getpid()}-{time.monotonic_ns()}"
    (workspace / "workspace.yaml").write_text(text.replace("127.0.0.1:5000/t", prefix))
    return prefix


def test_multi_platform_index_is_pushed(workspace: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    registry = registry_prefix(workspace, "oci-test").split("/", 1)[0]
    base = base_layout(tmp_path / "b")
    results = build(workspace, tmp_path / "cache", monkeypatch, base,
                    "api", "--platform", "linux/amd64", "--platform", "linux/arm64", "--push")
    tag = str(results["api"]["tags"][0])  # type: ignore[index]
    repository = tag.split("/", 1)[1].rsplit(":", 1)[0]
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag.rsplit(':', 1)[1]}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    with urllib.request.urlopen(request) as response:
        index = json.loads(response.read())
        assert response.headers["Docker-Content-Digest"] == results["api"]["digest"]
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    again = build(workspace, tmp_path / "cache", monkeypatch, base,
                  "api", "--platform", "linux/amd64", "--platform", "linux/arm64", "--push",
                  "--rebuild")
    assert (again["api"]["built"], again["api"]["digest"]) == (True, results["api"]["digest"])


def test_an_image_the_registry_has_is_tagged_not_built(workspace: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = registry_prefix(workspace, "oci-reuse")
    registry, _, repository = prefix.partition("/")
    base = base_layout(tmp_path / "b")
    first = build(workspace, tmp_path / "cache-a", monkeypatch, base, "web", "--push")
    assert first["web"]["built"] is True and first["web"]["reused_from"] is None
    # Another runner, nothing cached: the fingerprint tag is found, nothing is assembled.
    other = build(workspace, tmp_path / "cache-b", monkeypatch, base, "web", "--push",
                  "--tag", "extra")
    assert other["web"]["built"] is False
    assert str(other["web"]["reused_from"]).startswith(f"{prefix}/web:fp-")
    assert other["web"]["digest"] == first["web"]["digest"]
    assert not (tmp_path / "cache-b" / "oci-v1" / "layers").exists()
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/web/manifests/extra",
        method="HEAD", headers={"Accept": MANIFEST})
    with urllib.request.urlopen(request) as response:
        assert response.headers["Docker-Content-Digest"] == first["web"]["digest"]
    # --rebuild builds anyway, to the same digest
    again = build(workspace, tmp_path / "cache-b", monkeypatch, base, "web", "--push",
                  "--rebuild")
    assert (again["web"]["built"], again["web"]["digest"]) == (True, first["web"]["digest"])


def test_base_with_another_python_is_refused(workspace: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    base = base_layout(tmp_path / "b", python="3.12")
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(cli, ["-w", str(workspace), "build", "web", "--engine", "oci",
                                      "--base", f"oci:{base}:base"])
    assert result.exit_code == 1
    assert (f"error: the base image oci:{base}:base has python 3.12 (/usr/bin/python3.12), "
            "the workspace targets python 3.11") in result.output


@pytest.mark.parametrize("tool", ["skopeo", "umoci"])
def test_layout_is_accepted_by_oci_tools(workspace: Path, tmp_path: Path, tool: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/oci-tools.sh installs it)")
    layout = tmp_path / "out"
    build(workspace, tmp_path / "cache", monkeypatch, base_layout(tmp_path / "b"),
          "--oci-layout", str(layout))
    if tool == "skopeo":
        proc = subprocess.run(["skopeo", "inspect", f"oci:{layout}:1.0.0"], check=True,
                              capture_output=True, text=True)
        assert json.loads(proc.stdout)["Labels"]["dev.orchestrator.service"] in ("api", "web")
    else:
        subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:1.0.0",
                        str(tmp_path / "bundle")], check=True, capture_output=True)
        assert (tmp_path / "bundle/rootfs/opt/venv/pyvenv.cfg").is_file()


def test_zstd_layers_are_accepted_by_oci_tools(workspace: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("zstandard", reason="the zstd extra (zstandard) is not installed")
    layout = tmp_path / "out"
    base = base_layout(tmp_path / "b")
    results = build(workspace, tmp_path / "cache", monkeypatch, base,
                    "web", "--compression", "zstd", "--oci-layout", str(layout))
    again = build(workspace, tmp_path / "cache-2", monkeypatch, base,
                  "web", "--compression", "zstd")
    assert again["web"]["digest"] == results["web"]["digest"]  # reproducible, too
    manifest = json.loads((layout / "blobs" / str(results["web"]["digest"]).replace(":", "/"))
                          .read_text())
    ours = [x["mediaType"] for x in manifest["layers"][1:]]  # the base's is gzip
    assert set(ours) == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    service = layers_of(results["web"])["service"]
    import zstandard

    data = zstandard.ZstdDecompressor().stream_reader(
        (layout / "blobs" / service.replace(":", "/")).read_bytes()).read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert "opt/venv/bin/web" in tar.getnames()
    # skopeo reads zstd layers; umoci 0.4.7 and Docker 20.10 (Debian 12's) do not.
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed (scripts/oci-tools.sh installs it)")
    proc = subprocess.run(["skopeo", "inspect", f"oci:{layout}:1.0.0"], check=True,
                          capture_output=True, text=True)
    assert json.loads(proc.stdout)["Layers"][-1] == service
    # skopeo copies it, checking every digest
    subprocess.run(["skopeo", "copy", f"oci:{layout}:1.0.0", f"dir:{tmp_path / 'copied'}"],
                   check=True, capture_output=True)
    assert (tmp_path / "copied" / service.split(":")[1]).is_file()


def _layer_types(layout: Path, digest: object) -> set[str]:
    manifest = json.loads((layout / "blobs" / str(digest).replace(":", "/")).read_text())
    return {x["mediaType"] for x in manifest["layers"][1:]}  # [0]: the base's, as it was


def test_image_compression_key_and_the_option_that_wins(workspace: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("zstandard", reason="the zstd extra (zstandard) is not installed")
    base = base_layout(tmp_path / "b")
    layout = tmp_path / "out"
    gzipped = build(workspace, tmp_path / "cache", monkeypatch, base, "web",
                    "--oci-layout", str(layout))["web"]
    assert _layer_types(layout, gzipped["digest"]) == {LAYER_GZIP}  # the default
    manifest = workspace / "workspace.yaml"
    manifest.write_text(manifest.read_text() + "  compression: zstd\n")  # under image:
    keyed = build(workspace, tmp_path / "cache", monkeypatch, base, "web",
                  "--oci-layout", str(layout))["web"]
    assert keyed["built"] and keyed["digest"] != gzipped["digest"]
    assert _layer_types(layout, keyed["digest"]) == {LAYER_ZSTD}
    again = build(workspace, tmp_path / "cache", monkeypatch, base, "web", "--compression",
                  "zstd")["web"]
    assert again["digest"] == keyed["digest"] and not again["built"]  # key = option: same
    option = build(workspace, tmp_path / "cache", monkeypatch, base, "web", "--compression",
                   "gzip", "--oci-layout", str(layout))["web"]
    assert option["digest"] == gzipped["digest"]  # the option wins over the key
    assert _layer_types(layout, option["digest"]) == {LAYER_GZIP}


@pytest.mark.parametrize(("value", "got"), [("brotli", "string 'brotli'"),
                                            ("[zstd]", "list ['zstd']")])
def test_image_compression_key_must_be_gzip_or_zstd(make_workspace: MakeWorkspace, value: str,
                                                    got: str) -> None:
    from orchestrator.errors import WorkspaceError
    from orchestrator.oci.layers import COMPRESSIONS
    from orchestrator.workspace import IMAGE_COMPRESSIONS, load_workspace

    assert IMAGE_COMPRESSIONS == COMPRESSIONS  # what the key takes, the builder writes
    root = make_workspace({}, manifest=MANIFEST_TEXT + f"image:\n  compression: {value}\n")
    assert load_workspace(make_workspace({}, manifest=MANIFEST_TEXT, root=root.parent / "d")
                          ).image.compression == "gzip"
    with pytest.raises(WorkspaceError) as info:
        load_workspace(root)
    assert info.value.file == root / "workspace.yaml"
    assert info.value.key == "image.compression"
    message = str(info.value)
    assert f"workspace.yaml: image.compression: expected one of gzip, zstd, got {got}" \
        in message
    assert "hint: write image: {compression: gzip}" in message


def test_zstd_without_the_extra_is_a_clear_error(workspace: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if it were not installed
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(cli, ["-w", str(workspace), "build", "web", "--engine", "oci",
                                      "--base", f"oci:{base_layout(tmp_path / 'b')}:base",
                                      "--compression", "zstd"])
    assert result.exit_code == 1
    assert "error: zstd layers need the zstandard package, which is not installed" \
        in result.output
    assert "pip install 'orchestrator[zstd]'" in result.output


def test_oci_outputs_need_the_oci_engine(workspace: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["-w", str(workspace), "build", "--archive",
                                      str(tmp_path / "x.tar")])
    assert result.exit_code == 2
    assert "--oci-layout, --archive, --platform, --compression and --pull need --engine oci" \
        in result.output


def test_source_date_epoch_and_a_new_commit(workspace: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    base = base_layout(tmp_path / "b")
    first = build(workspace, tmp_path / "cache", monkeypatch, base, "web")
    (workspace / "README.md").write_text("a commit that touches no member\n")
    git(workspace, "add", "README.md")
    git(workspace, "commit", "-qm", "docs")
    second = build(workspace, tmp_path / "cache", monkeypatch, base, "web")
    # Same layers, a new config: the revision label names the new commit.
    assert layers_of(second["web"]) == layers_of(first["web"])
    assert second["web"]["digest"] != first["web"]["digest"]
    platforms = second["web"]["platforms"]
    assert isinstance(platforms, dict)
    assert platforms["linux/amd64"]["layers_written"] == 0
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    layout = tmp_path / "out"
    pinned = build(workspace, tmp_path / "cache", monkeypatch, base, "web",
                   "--oci-layout", str(layout))
    with _layer_tar(layout, layers_of(pinned["web"])["service"]) as tar:
        assert {m.mtime for m in tar.getmembers()} == {1700000000}


def test_a_base_for_another_architecture_is_refused(workspace: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    layout = base_layout(tmp_path / "b")
    index = json.loads((layout / "index.json").read_text())["manifests"][0]
    children = json.loads((layout / "blobs" / index["digest"].replace(":", "/")).read_text())
    amd64 = children["manifests"][0]
    one = tmp_path / "amd64-only"
    shutil.copytree(layout, one)
    (one / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**amd64, "annotations": {"org.opencontainers.image.ref.name": "base"}}]}))
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(cli, ["-w", str(workspace), "build", "web", "--engine", "oci",
                                      "--base", f"oci:{one}:base", "--platform", "linux/arm64"])
    assert result.exit_code == 1
    assert f"error: the base image oci:{one}:base is for amd64, not linux/arm64" in result.output


def test_layers_are_capped_by_merging_the_smallest_big_wheels(tmp_path: Path) -> None:
    from orchestrator.image import Layer, Wheel
    from orchestrator.oci.build import cap_layers

    def wheel(name: str, size: int) -> Wheel:
        path = tmp_path / f"{name}.whl"
        path.write_bytes(b"x" * size)
        return Wheel(name, "1", "0" * 64, path)

    plan = (Layer("deps-a", (wheel("a", 30),)), Layer("deps-b", (wheel("b", 10),)),
            Layer("deps-c", (wheel("c", 20),)), Layer("service", (wheel("s", 1),)))
    capped = cap_layers(plan, 3)
    assert [(x.name, [w.name for w in x.wheels]) for x in capped] == [
        ("deps-a", ["a"]), ("deps", ["b", "c"]), ("service", ["s"])]
    assert cap_layers(plan, 10) == plan
