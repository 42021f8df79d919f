"""Locking end to end: a real local index, the real resolver, pylock.toml on disk."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.markers import Marker
from packaging.pylock import Package, PackageDirectory, PackageSdist, PackageWheel, Pylock
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from orchestrator.errors import LockError
from orchestrator.index import client as index_client
from orchestrator.lock import (
    build_pylock,
    lock_table,
    read_lock,
    render,
    render_table,
    select,
    table_pins,
    toml_dict,
    write_lock,
)
from orchestrator.models import DistFile, Target
from orchestrator.resolver.environment import TargetEnvironment
from orchestrator.workspace import load_workspace
from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.cli import run
from tests.support.indexserver import IndexServer
from tests.support.recorded_index import (
    REPO,
    RecordedIndex,
    copy_example_workspace,
    example_locks,
)


@pytest.fixture
def shop(locked_shop: Path) -> Path:
    return locked_shop


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


def test_noop_lock_opens_no_connection_and_keeps_the_bytes(shop: Path,
                                                           index: IndexServer) -> None:
    assert run(shop, "lock")[0] == 0
    locks = {p: p.read_bytes() for p in shop.rglob("pylock.toml")}
    index.reset()
    code, out, err = run(shop, "lock")
    assert code == 0, err
    assert "api: 6 packages, unchanged" in out
    assert index.count() == 0  # no page, no metadata: nothing was resolved
    assert {p: p.read_bytes() for p in shop.rglob("pylock.toml")} == locks


def test_lock_resolves_only_the_stale_members(shop: Path, index: IndexServer) -> None:
    assert run(shop, "lock")[0] == 0
    api = (shop / "services/api/pylock.toml").read_bytes()
    (shop / "services/api/pyproject.toml").write_text(
        pyproject("api", ["common", "httpx", "idna"], groups={"test": ["pytest"]}))
    code, out, err = run(shop, "lock")
    assert code == 0, err
    assert "locking 1 of 2 member(s)" in err
    assert "common: 1 packages, unchanged" in out
    assert (shop / "services/api/pylock.toml").read_bytes() != api
    assert run(shop, "lock", "--check")[:2] == (0, "2 lock(s) up to date\n")


def test_refresh_and_update_resolve_even_current_locks(shop: Path, index: IndexServer) -> None:
    assert run(shop, "lock")[0] == 0
    for args in (("lock", "--refresh"), ("update",)):
        index.reset()
        code, _, err = run(shop, *args)
        assert code == 0, err
        assert index.count() > 0, args


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


# -- selecting what to install ----------------------------------------------------------

AMD64 = Target("3.11", "linux/amd64")
ARM64 = Target("3.11", "linux/arm64")
ENVIRONMENTS = {
    AMD64: "sys_platform == 'linux' and platform_machine == 'x86_64'",
    ARM64: "sys_platform == 'linux' and platform_machine == 'aarch64'",
}


def wheel(filename: str) -> PackageWheel:
    return PackageWheel(name=filename, url=f"https://x/{filename}", hashes={"sha256": filename})


def entry(name: str, *files: str, marker: str | None = None, sdist: bool = False) -> Package:
    return Package(
        name=canonicalize_name(name), version=Version("1.0"),
        marker=Marker(marker) if marker else None,
        wheels=[wheel(f) for f in files] or None,
        sdist=PackageSdist(name=f"{name}-1.0.tar.gz", url=f"https://x/{name}-1.0.tar.gz",
                           hashes={"sha256": "s"}) if sdist else None)


def made_lock(*packages: Package, targets: Sequence[Target] = (AMD64, ARM64)) -> Pylock:
    lock = Pylock(
        lock_version=Version("1.0"), created_by="test", packages=list(packages),
        environments=[Marker(ENVIRONMENTS[t]) for t in targets],
        dependency_groups=["dev"], default_groups=[],
        tool={"orchestrator": {"targets": [f"{t.python} {t.platform}" for t in targets]}})
    lock.validate()
    return lock


def old_ranking(package: Package, target: Target) -> str:
    """The choice lock.py made before Pylock.select: best-ranked tag, then filename."""
    env = TargetEnvironment.for_target(target)
    ranked = [(rank, w.filename) for w in package.wheels or ()
              if (rank := env.best_rank(parse_wheel_filename(w.filename)[3])) is not None]
    return min(ranked)[1]


def test_select_picks_each_platforms_best_wheel() -> None:
    fast = entry("fast",
                 "fast-1.0-cp311-cp311-manylinux_2_17_aarch64.whl",
                 "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                 "fast-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
                 "fast-1.0-cp311-abi3-manylinux_2_34_x86_64.whl",
                 "fast-1.0-py3-none-any.whl")
    lock = made_lock(fast, entry("pure", "pure-1.0-py3-none-any.whl"),
                     entry("armonly", "armonly-1.0-py3-none-any.whl",
                           marker="platform_machine == 'aarch64'"),
                     entry("tool", "tool-1.0-py3-none-any.whl",
                           marker="'dev' in dependency_groups"))
    chosen = select(lock, [AMD64, ARM64], ())
    assert [(s.name, s.targets) for s in chosen] == [
        ("fast", (AMD64, ARM64)), ("pure", (AMD64, ARM64)), ("armonly", (ARM64,))]
    assert chosen[0].file_for(AMD64).filename == "fast-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert chosen[0].file_for(ARM64).filename == "fast-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"
    for item in chosen:
        for target in item.targets:
            assert item.file_for(target).filename == old_ranking(item.package, target)
    assert [s.name for s in select(lock, [AMD64], ["dev"])] == ["fast", "pure", "tool"]


def test_select_breaks_ties_by_filename_whatever_the_lock_order() -> None:
    tied = entry("tied", "tied-1.0-2-py3-none-any.whl", "tied-1.0-1-py3-none-any.whl")
    (item,) = select(made_lock(tied), [AMD64], ())
    assert item.file_for(AMD64).filename == "tied-1.0-1-py3-none-any.whl"


def test_select_falls_back_to_the_sdist() -> None:
    lock = made_lock(entry("native", "native-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                           sdist=True))
    (item,) = select(lock, [AMD64, ARM64], ())
    assert item.file_for(AMD64).filename == "native-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    assert item.file_for(ARM64).filename == "native-1.0.tar.gz"


def test_select_without_a_file_for_a_platform() -> None:
    lock = made_lock(entry("pure", "pure-1.0-py3-none-any.whl"),
                     entry("native", "native-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"))
    with pytest.raises(LockError) as info:
        select(lock, [AMD64, ARM64], ())
    assert str(info.value) == (
        "the lock has no file of native 1.0 for 3.11 linux/arm64\n"
        "hint: re-lock with that platform listed under `platforms` in workspace.yaml")
    assert info.value.package == "native"


def test_select_for_a_target_the_lock_is_not_made_for() -> None:
    lock = made_lock(entry("pure", "pure-1.0-py3-none-any.whl"), targets=[AMD64])
    with pytest.raises(LockError) as info:
        select(lock, [ARM64], ())
    assert str(info.value) == (
        "the lock is made for 3.11 linux/amd64, not for 3.11 linux/arm64\n"
        "hint: re-lock with that platform listed under `platforms` in workspace.yaml")


def test_select_an_undeclared_group() -> None:
    with pytest.raises(LockError) as info:
        select(made_lock(entry("pure", "pure-1.0-py3-none-any.whl")), [AMD64], ["docs"])
    assert str(info.value) == (
        "cannot install the lock on 3.11 linux/amd64: Undeclared dependency groups: docs\n"
        "hint: re-create it with `orchestrator lock`")


def test_member_entries_have_no_file(shop: Path) -> None:
    assert run(shop, "lock")[0] == 0
    chosen = select(read_lock(shop / "services/api/pylock.toml"), [AMD64], ["test"])
    common = next(s for s in chosen if s.is_member)
    with pytest.raises(LockError) as info:
        common.file_for(AMD64)
    assert info.value.message == "the lock has no file of common 1.0.0 for 3.11 linux/amd64"


# -- the writer: any Pylock-shaped data survives render -> tomllib -> Pylock ----------------

_NAME_PART = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_NAMES = st.lists(_NAME_PART, min_size=1, max_size=3).map("-".join)
_VERSIONS = st.builds(
    lambda release, post: Version(".".join(map(str, release)) + post),
    st.lists(st.integers(0, 2**31), min_size=1, max_size=4),
    st.sampled_from(["", ".post1", ".dev3", "a2", "rc1"]))
_MARKERS = st.sampled_from([
    "'dev' in dependency_groups", '"test" in dependency_groups or "dev" in dependency_groups',
    "platform_machine == 'x86_64' and python_version == '3.11'",
    "os_name == 'a\"b' or sys_platform != 'win32'",
]).map(Marker)
_TAGS = st.sampled_from(["py3-none-any", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
                         "cp311-abi3-manylinux_2_28_aarch64"])
# Odd strings: quotes, backslashes, unicode, DEL and other controls (no lone surrogates,
# which no UTF-8 file can hold).
_TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
_TIMES = st.none() | st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                               timezone(-timedelta(hours=8))]))
_SIZES = st.none() | st.integers(0, 2**40)
_URLS = _TEXT.map(lambda text: f"https://files.example/{text}")  # PEP 751: url or path
_HASHES = st.builds(lambda h: {"sha256": h}, _TEXT)
_SCALARS = _TEXT | st.integers(-(2**63), 2**63 - 1) | st.booleans()
_TOOL: st.SearchStrategy[dict[str, object]] = st.recursive(
    st.dictionaries(_TEXT, _SCALARS, max_size=3),
    lambda inner: st.dictionaries(
        _TEXT, _SCALARS | inner | st.lists(_SCALARS, max_size=3) | st.lists(inner, max_size=2),
        max_size=3),
    max_leaves=8)


@st.composite
def _packages(draw: st.DrawFn) -> Package:
    name = canonicalize_name(draw(_NAMES))
    version = draw(_VERSIONS)
    dist = f"{name.replace('-', '_')}-{version}"
    source = draw(st.sampled_from(["wheels", "sdist", "directory"]))
    directory = PackageDirectory(path=draw(_TEXT), editable=draw(st.none() | st.booleans()))
    sdist = PackageSdist(name=f"{dist}.tar.gz", url=draw(_URLS), upload_time=draw(_TIMES),
                         size=draw(_SIZES), hashes=draw(_HASHES))
    wheels = [PackageWheel(name=f"{dist}-{tag}.whl", url=draw(_URLS), upload_time=draw(_TIMES),
                           size=draw(_SIZES), hashes=draw(_HASHES))
              for tag in draw(st.lists(_TAGS, min_size=1, max_size=3, unique=True))]
    return Package(
        name=name,
        version=None if source == "directory" else version,
        marker=draw(st.none() | _MARKERS),
        requires_python=draw(st.none() | st.sampled_from([SpecifierSet(">=3.11"),
                                                          SpecifierSet("<4,>=3.9")])),
        dependencies=draw(st.none() | st.lists(
            st.builds(lambda n: {"name": n}, _NAMES), min_size=1, max_size=3)),
        directory=directory if source == "directory" else None,
        index=None if source == "directory" else draw(st.none() | _TEXT),
        sdist=sdist if source == "sdist" else None,
        wheels=wheels if source == "wheels" else None,
        tool=draw(st.none() | _TOOL),
    )


_LOCKS = st.builds(
    lambda packages, environments, groups, created_by, tool: Pylock(
        lock_version=Version("1.0"), environments=environments, created_by=created_by,
        requires_python=SpecifierSet(">=3.11"), dependency_groups=groups,
        default_groups=[] if groups else None, packages=packages, tool=tool),
    st.lists(_packages(), max_size=4),
    st.none() | st.lists(_MARKERS, min_size=1, max_size=2),
    st.none() | st.lists(_NAMES, min_size=1, max_size=3),
    _TEXT,
    st.none() | _TOOL,
)


@settings(max_examples=200, deadline=None, database=None)
@given(_LOCKS)
def test_render_round_trips_any_lock(lock: Pylock) -> None:
    text = render(lock)
    data = tomllib.loads(text)
    assert data == lock.to_dict()
    assert Pylock.from_dict(data) == lock
    assert toml_dict(lock) == lock.to_dict()  # render's copy-free walk
    assert list(toml_dict(lock)) == list(lock.to_dict())


def test_a_member_without_dependencies_gets_a_readable_lock(
        make_workspace: MakeWorkspace, index: IndexServer) -> None:
    root = make_workspace({"libs/bare": pyproject("bare")}, manifest=index_manifest(index))
    code, out, err = run(root, "lock")
    assert (code, out) == (0, "bare: 0 packages, updated\n"), err
    assert "\npackages = []\n" in (root / "libs/bare/pylock.toml").read_text()
    assert read_lock(root / "libs/bare/pylock.toml").packages == []


# -- golden locks: the example workspace, re-locked offline, byte for byte ---------------


def test_example_workspace_relocks_to_the_committed_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = RecordedIndex.load()
    monkeypatch.setattr(index_client, "make_http_client", recorded.client)
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    root = copy_example_workspace(tmp_path / "ws", locks=False)
    code, _, err = run(root, "-q", "lock")
    assert code == 0, err
    assert recorded.missing == []  # every page and metadata file came from the recording
    assert example_locks(root) == example_locks()
    assert run(root, "lock", "--check")[:2] == (0, "5 lock(s) up to date\n")


def test_lock_check_imports_nothing_heavy() -> None:
    heavy = ("networkx", "resolvelib", "httpx", "packaging.pylock", "orchestrator.resolver")
    code = ("import sys\nfrom orchestrator.cli import main\n"
            "try:\n    main(['lock', '--check'])\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True)
    assert proc.stdout.splitlines()[-1] == "HEAVY="


# -- a member's own extras ------------------------------------------------------------------


def with_extras(text: str, extras: str) -> str:
    return text + "\n[project.optional-dependencies]\n" + extras + "\n"


@pytest.fixture
def extras_shop(make_workspace: MakeWorkspace, index: IndexServer) -> Path:
    """api has a `redis` extra; web asks for its library's `cache` extra; solo for neither."""
    index.add_wheel("redis", "5.0.0", requires_dist=["idna; extra == 'hiredis'"])
    return make_workspace({
        "libs/common": with_extras(pyproject("common", ["attrs>=23"]),
                                   'Cache = ["redis>=5"]'),
        "services/api": with_extras(
            pyproject("api", ["common", "httpx"], groups={"test": ["pytest"]}),
            'redis = ["redis>=5", "attrs"]\nall = ["api[redis]", "pytest"]'),
        "services/web": pyproject("web", ["common[cache]"]),
        "services/solo": pyproject("solo", ["common"]),
    }, manifest=index_manifest(index))


def test_a_members_extras_are_locked_with_extras_markers(extras_shop: Path) -> None:
    code, _, err = run(extras_shop, "lock")
    assert code == 0, err
    lock = read_lock(extras_shop / "services/api/pylock.toml")
    assert lock.extras == ["all", "redis"]
    pkgs = packages(extras_shop, "services/api")
    assert pkgs["redis"]["marker"] == "\"all\" in extras or \"redis\" in extras"
    assert pkgs["pytest"]["marker"] == '"test" in dependency_groups or "all" in extras'
    assert "marker" not in pkgs["attrs"]  # the main dependencies need it too
    assert [s.name for s in select(lock, [AMD64], ())] == ["attrs", "common", "httpx", "idna"]
    assert "redis" in [s.name for s in select(lock, [AMD64], (), extras=["redis"])]
    assert "pytest" in [s.name for s in select(lock, [AMD64], (), extras=["all"])]
    # the library's lock has its extra; the service asking for it gets it unconditionally
    assert read_lock(extras_shop / "libs/common/pylock.toml").extras == ["cache"]
    assert "marker" not in packages(extras_shop, "services/web")["redis"]
    assert "redis" not in packages(extras_shop, "services/solo")
    assert read_lock(extras_shop / "services/solo/pylock.toml").extras is None


def test_extras_are_lock_inputs(extras_shop: Path) -> None:
    assert run(extras_shop, "lock")[0] == 0
    common = extras_shop / "libs/common/pyproject.toml"
    common.write_text(common.read_text().replace('"redis>=5"', '"redis>=5.0"'))
    code, _, err = run(extras_shop, "lock", "--check")
    assert code == 1
    # web asks for the extra; solo does not, so its lock stays current
    assert sorted(err.splitlines()[:2]) == [
        "common: stale: its dependencies, dependency groups or extras changed",
        "web: stale: a workspace library it depends on changed its requirements",
    ]
    assert err.splitlines()[2].startswith("error: 2 of 4 lock(s) are out of date")


def test_an_extra_that_names_a_member_is_followed(make_workspace: MakeWorkspace,
                                                  index: IndexServer) -> None:
    root = make_workspace({
        "libs/common": with_extras(pyproject("common"), 'attrs = ["helpers"]'),
        "libs/helpers": pyproject("helpers", ["attrs<24"]),
        "services/web": pyproject("web", ["common[attrs]"]),
    }, manifest=index_manifest(index))
    assert run(root, "lock")[0] == 0
    assert packages(root, "services/web")["attrs"]["version"] == "23.1.0"
    (root / "libs/helpers/pyproject.toml").write_text(pyproject("helpers", ["attrs>=24"]))
    _, _, err = run(root, "lock", "--check", "web")
    assert err.startswith("web: stale: a workspace library it depends on changed")


def test_a_cold_lock_fetches_each_page_once_and_a_warm_one_nothing(
        shop: Path, index: IndexServer) -> None:
    # A cold cache: the pages of the direct dependencies go out in one burst and
    # the prefetcher walks the likely picks ahead of the resolver; neither may
    # ask twice for a page or read the metadata of a release nobody picks.
    index.add_wheel("attrs", "25.1.0", requires_dist=["idna>=3"])
    assert run(shop, "lock")[0] == 0
    cold = {p: p.read_bytes() for p in shop.rglob("pylock.toml")}
    pages = {path: n for path, n in index.counts().items() if path.startswith("/simple/")}
    assert pages == {f"/simple/{name}/": 1 for name in
                     ("attrs", "httpx", "idna", "pytest", "pluggy")}
    files = {path for path in index.counts() if path.startswith("/files/")}
    assert not any(f"attrs-{v}" in path for path in files for v in ("23", "24"))  # 25 picked
    # Warm, the locks deleted: everything is in the cache, nothing is fetched
    # ahead, and the locks come out the same.
    for path in cold:
        path.unlink()
    index.reset()
    assert run(shop, "lock")[0] == 0
    assert index.count() == 0
    assert {p: p.read_bytes() for p in shop.rglob("pylock.toml")} == cold


# -- the lock writer's table: the same bytes as through packaging.pylock ------------------


@dataclass(frozen=True)
class _Entry:  # what lock.LockablePackage asks of a resolver's package
    name: str
    version: str | None
    files: tuple[DistFile, ...] = ()
    dependencies: tuple[str, ...] = ()
    marker: str | None = None
    directory: str | None = None


def _file(name: str, **extra: Any) -> DistFile:
    return DistFile(name, f"https://files.example/{name}", "pypi", sha256="ab" * 32, **extra)


def test_lock_table_is_build_pylocks_table_and_reads_back_valid(
        make_workspace: MakeWorkspace) -> None:
    manifest = ('version: 1\nname: demo\npython: "3.11"\nplatforms: [linux/amd64, linux/arm64]\n'
                "indexes:\n  - {name: pypi, url: https://i.example/simple}\n"
                "members: [services/*, libs/*]\n")
    api = pyproject("api", ["a-b", "lib"], groups={"dev": ["d"]}).replace(
        'version = "1.0.0"', 'version = "1.0.0"\nrequires-python = "<4,>=3.11"')
    api = api.replace("\n[dependency-groups]",
                      '\n[project.optional-dependencies]\nFast_Thing = ["d"]\n'
                      "\n[dependency-groups]")
    root = make_workspace({"services/api": api, "libs/lib": pyproject("lib")}, manifest=manifest)
    ws = load_workspace(root)
    member = next(m for m in ws.members if m.name == "api")
    packages = [
        _Entry("d", "2.0-post1", (
            _file("d-2.0.post1-py3-none-any.whl", size=3,
                  upload_time="2024-01-02T03:04:05.123456Z"),
            _file("d-2.0.post1-cp311-abi3-manylinux_2_17_x86_64.whl",
                  upload_time="not a time"),
        ), ("x", "x", "a-b"), 'python_version<"3.12" and  "dev" in dependency_groups'),
        _Entry("a-b", "1.0", (_file("a_b-1.0.tar.gz"),)),
        _Entry("lib", "1.0.0", directory="libs/lib"),
    ]
    pylock = build_pylock(ws, member, packages)
    table = lock_table(ws, member, packages)
    assert table == toml_dict(pylock)
    assert list(table) == list(toml_dict(pylock))
    assert render_table(table) == render(pylock)
    assert table_pins(table) == {"a-b": "1.0", "d": "2.0.post1"}
    assert write_lock(member, table)
    assert not write_lock(member, pylock)  # the same bytes either way
    assert read_lock(member.lockfile) == pylock  # valid PEP 751, as packaging.pylock reads it
