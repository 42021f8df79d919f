"""Locking end to end: a real local index, the real resolver, pylock.toml on disk."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.markers import Marker
from packaging.pylock import Package, PackageDirectory, PackageSdist, PackageWheel, Pylock
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from orchestrator.cli import cli
from orchestrator.lock import read_lock, render
from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.indexserver import IndexServer


@pytest.fixture
def shop(locked_shop: Path) -> Path:
    return locked_shop


def run(root: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["-w", str(root), *args])
    return result.exit_code, result.stdout, result.stderr


def packages(root: Path, member: str) -> dict[str, dict[str, object]]:
    data = tomllib.loads((root / member / "pylock.toml").read_text())
    return {p["name"]: p for p in data["packages"]}


def test_lock_writes_valid_pep751(shop: Path, index: IndexServer) -> None:
    code, out, err = run(shop, "lock")
    assert code == 0, err
    assert "api: 6 packages, updated" in out
    lock = read_lock(shop / "services/api/pylock.toml")
    assert isinstance(lock, Pylock)
    assert lock.dependency_groups == ["test"]
    pkgs = packages(shop, "services/api")
    assert {n: p.get("version") for n, p in pkgs.items()} == {
        "attrs": "24.2.0", "common": "1.0.0", "httpx": "0.27.0", "idna": "3.7",
        "pluggy": "1.5.0", "pytest": "8.3.0",
    }
    assert pkgs["common"]["directory"] == {"path": "../../libs/common", "editable": True}
    assert pkgs["pytest"]["marker"] == '"test" in dependency_groups'
    assert "marker" not in pkgs["attrs"]
    wheel = pkgs["httpx"]["wheels"][0]  # type: ignore[index]
    assert wheel["url"] == f"{index.base_url}/files/httpx-0.27.0-py3-none-any.whl"
    assert len(wheel["hashes"]["sha256"]) == 64
    assert pkgs["httpx"]["index"] == index.url


def test_lock_is_deterministic(shop: Path) -> None:
    run(shop, "lock")
    first = (shop / "services/api/pylock.toml").read_bytes()
    code, out, _ = run(shop, "lock")
    assert code == 0
    assert "api: 6 packages, unchanged" in out
    assert (shop / "services/api/pylock.toml").read_bytes() == first


def test_check_is_offline_and_names_stale_members(shop: Path, index: IndexServer) -> None:
    assert run(shop, "lock")[0] == 0
    index.reset()
    code, out, _ = run(shop, "lock", "--check")
    assert (code, out) == (0, "2 lock(s) up to date\n")
    (shop / "libs/common/pyproject.toml").write_text(pyproject("common", ["attrs>=24"]))
    code, _, err = run(shop, "lock", "--check")
    assert code == 1
    assert err == (
        "api: stale: a workspace library it depends on changed its requirements\n"
        "common: stale: its dependencies or dependency groups changed\n"
        "error: 2 of 2 lock(s) are out of date: api, common\n"
        "hint: run `orchestrator lock` and commit the pylock.toml files\n"
    )
    assert index.count() == 0


def test_check_missing_lock(shop: Path) -> None:
    code, _, err = run(shop, "lock", "--check", "common")
    assert code == 1
    assert err.startswith("common: stale: libs/common/pylock.toml does not exist\n")


def test_relock_keeps_pins_update_upgrades(shop: Path, index: IndexServer) -> None:
    index.add_wheel("attrs", "23.1.0")  # already there; harmless
    (shop / "libs/common/pyproject.toml").write_text(pyproject("common", ["attrs>=23,<24"]))
    assert run(shop, "lock")[0] == 0
    (shop / "libs/common/pyproject.toml").write_text(pyproject("common", ["attrs>=23"]))
    index.add_wheel("idna", "3.8")
    code, out, _ = run(shop, "lock", "--refresh")
    assert code == 0
    assert packages(shop, "services/api")["attrs"]["version"] == "23.1.0"  # kept
    assert packages(shop, "services/api")["idna"]["version"] == "3.7"  # kept
    code, out, _ = run(shop, "update", "api", "--package", "idna")
    assert code == 0, out
    assert "api: 6 packages, updated (idna 3.7 -> 3.8)" in out
    assert packages(shop, "services/api")["attrs"]["version"] == "23.1.0"
    code, out, _ = run(shop, "update")
    assert packages(shop, "services/api")["attrs"]["version"] == "24.2.0"


def test_unsatisfiable_changes_nothing(shop: Path) -> None:
    assert run(shop, "lock")[0] == 0
    before = (shop / "services/api/pylock.toml").read_bytes()
    (shop / "libs/common/pyproject.toml").write_text(pyproject("common", ["attrs>=24"]))
    (shop / "services/api/pyproject.toml").write_text(
        pyproject("api", ["common", "httpx", "attrs<24"]))
    code, out, err = run(shop, "-q", "lock")
    assert code == 1
    assert out == ""
    assert err == (
        "error: cannot lock api for cpython 3.11 linux/amd64: conflicting requirements on attrs\n"
        "  api -> attrs<24\n"
        "  api -> common -> attrs>=24\n"
        "hint: no version of attrs satisfies all of these; loosen one of them, or require "
        "another version of a package that brings it\n"
    )
    assert (shop / "services/api/pylock.toml").read_bytes() == before


def test_unknown_package(make_workspace: MakeWorkspace, index: IndexServer) -> None:
    root = make_workspace({"services/api": pyproject("api", ["no-such-thing"])},
                          manifest=index_manifest(index))
    code, _, err = run(root, "lock")
    assert code == 1
    assert "no-such-thing" in err
    assert "local" in err


def test_two_platforms(make_workspace: MakeWorkspace, index: IndexServer) -> None:
    index.add_wheel("fastlib", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    index.add_wheel("fastlib", "1.0", tag="cp311-cp311-manylinux_2_17_aarch64")
    root = make_workspace({"services/api": pyproject("api", ["fastlib"])},
                          manifest=index_manifest(index, "[linux/amd64, linux/arm64]"))
    code, _, err = run(root, "lock")
    assert code == 0, err
    lock = read_lock(root / "services/api/pylock.toml")
    assert len(lock.environments or []) == 2
    wheels = packages(root, "services/api")["fastlib"]["wheels"]
    assert sorted(w["name"] for w in wheels) == [  # type: ignore[attr-defined]
        "fastlib-1.0-cp311-cp311-manylinux_2_17_aarch64.whl",
        "fastlib-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    ]


def test_render_writes_every_lock_shape_as_readable_pep751() -> None:
    uploaded = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    lock = Pylock(
        lock_version=Version("1.0"),
        environments=[Marker("sys_platform == 'linux'")],
        requires_python=SpecifierSet(">=3.11"),
        dependency_groups=["dev"],
        default_groups=[],
        created_by="orchestrator",
        packages=[
            Package(
                name=canonicalize_name("a-b"),
                version=Version("1.0"),
                marker=Marker("'dev' in dependency_groups"),
                dependencies=[{"name": "c"}],
                index="https://i.example/simple",
                sdist=PackageSdist(name="a_b-1.0.tar.gz", url='https://x/a b"q\\.tar.gz',
                                   upload_time=uploaded, size=3, hashes={"sha256": "ab"}),
            ),
            Package(name=canonicalize_name("d"), version=Version("2"), wheels=[
                PackageWheel(name="d-2-py3-none-any.whl", url="https://x/d.whl",
                             upload_time=None, size=None, hashes={"sha256": "cd"}),
            ]),
            Package(name=canonicalize_name("e"),
                    directory=PackageDirectory(path="../e", editable=True)),
        ],
        tool={"orchestrator": {"member": "m\u00e9\x7f\t", "n": 1, "inputs": {"x": "y"}}},
    )
    text = render(lock)
    assert Pylock.from_dict(tomllib.loads(text)) == lock
    assert tomllib.loads(text) == lock.to_dict()
    assert text.startswith("# This file is @generated by orchestrator; do not edit by hand.\n")
    wheel = '{name = "d-2-py3-none-any.whl", url = "https://x/d.whl", hashes = {sha256 = "cd"}}'
    assert f"wheels = [\n    {wheel},\n]\n" in text
    assert "upload-time = 2024-01-02T03:04:05.123456Z\n" in text
    assert "\n[packages.directory]\npath = \"../e\"\neditable = true\n" in text
    assert text.endswith('[tool.orchestrator.inputs]\nx = "y"\n')
