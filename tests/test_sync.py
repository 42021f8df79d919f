"""sync and run: the member's venv matches its lock exactly; run passes exit codes through."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.cli import run
from tests.support.indexserver import IndexServer


def dists(venv: Path) -> list[str]:
    site = next((venv / "lib").glob("python3*/site-packages"))
    return sorted(p.name.removesuffix(".dist-info") for p in site.glob("*.dist-info"))


def executable() -> str:
    return str(Path(sys.executable).parent / "orchestrator")


def test_sync_installs_exactly_the_lock(locked_shop: Path) -> None:
    code, out, err = run(locked_shop, "sync", "api")
    assert code == 0, err
    assert out == ""
    assert err.splitlines()[0] == "locking first: api"
    assert err.splitlines()[-1] == "api: synced services/api/.venv (+7 ~0 -0)"
    venv = locked_shop / "services/api/.venv"
    assert dists(venv) == ["api-1.0.0", "attrs-24.2.0", "common-1.0.0", "httpx-0.27.0",
                           "idna-3.7", "pluggy-1.5.0", "pytest-8.3.0"]
    # the library is editable: its source directory is on the path
    probe = subprocess.run([str(venv / "bin/python"), "-c", "import attrs, httpx, idna"],
                           capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr


def test_no_dev_and_only_group(locked_shop: Path) -> None:
    assert run(locked_shop, "sync", "api", "--no-dev")[0] == 0
    venv = locked_shop / "services/api/.venv"
    assert "pytest-8.3.0" not in dists(venv)
    assert run(locked_shop, "sync", "api", "--only-group", "test")[0] == 0
    assert dists(venv) == ["pluggy-1.5.0", "pytest-8.3.0"]
    code, _, err = run(locked_shop, "sync", "api", "--only-group", "docs")
    assert code == 1
    assert err == "error: api has no dependency group 'docs'\nhint: its groups: test\n"


def test_resync_is_a_noop_then_follows_lock_changes(locked_shop: Path) -> None:
    assert run(locked_shop, "sync", "api")[0] == 0
    code, out, err = run(locked_shop, "sync", "api")
    assert (code, out) == (0, "")
    assert err == "api: up to date (7 packages)\n"
    # pin an older attrs: sync locks first (stale lock), then downgrades
    (locked_shop / "libs/common/pyproject.toml").write_text(pyproject("common", ["attrs<24"]))
    code, out, err = run(locked_shop, "sync", "api")
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0] == "locking first: api"
    assert lines[1].endswith("] attrs-23.1.0-py3-none-any.whl")  # the one new download
    assert lines[2:] == ["api: synced services/api/.venv (+0 ~2 -0)"]
    assert "attrs-23.1.0" in dists(locked_shop / "services/api/.venv")


def test_noop_sync_reads_no_lock_and_imports_no_installer(locked_shop: Path) -> None:
    assert run(locked_shop, "sync", "api")[0] == 0
    heavy = ("packaging.pylock", "orchestrator.index", "httpx", "orchestrator.resolver",
             "orchestrator.installer")
    code = ("import sys\nfrom orchestrator.cli import main\n"
            f"try:\n    main(['-w', {str(locked_shop)!r}, 'sync', 'api'])\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            f"print('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stderr == "api: up to date (7 packages)\n"
    assert proc.stdout.splitlines()[-1] == "HEAVY="


def test_noop_fast_path_gives_way_to_a_touched_venv_or_other_groups(
        locked_shop: Path) -> None:
    assert run(locked_shop, "sync", "api")[0] == 0
    venv = locked_shop / "services/api/.venv"
    site = next((venv / "lib").glob("python3*/site-packages"))
    # removed by hand (as `pip uninstall` would): the dir's mtime moves, so inspect again
    shutil.rmtree(site / "attrs-24.2.0.dist-info")
    code, _, err = run(locked_shop, "sync", "api")
    assert (code, err) == (0, "api: synced services/api/.venv (+1 ~0 -0)\n")
    assert "attrs-24.2.0" in dists(venv)
    code, _, err = run(locked_shop, "sync", "api", "--no-dev")
    assert code == 0, err
    assert "pytest-8.3.0" not in dists(venv)
    code, _, err = run(locked_shop, "sync", "api")
    assert (code, err.splitlines()[-1]) == (0, "api: synced services/api/.venv (+2 ~0 -0)")


@pytest.fixture
def extras_shop(make_workspace: MakeWorkspace, index: IndexServer) -> Path:
    index.add_wheel("redis", "5.0.0")
    api = pyproject("api", ["httpx"], groups={"test": ["pytest"]})
    return make_workspace({"services/api": api + "\n[project.optional-dependencies]\n"
                           'Redis = ["redis>=5"]\nall = ["api[redis]", "attrs"]\n'},
                          manifest=index_manifest(index))


def test_extras_are_installed_only_when_asked_for(extras_shop: Path) -> None:
    venv = extras_shop / "services/api/.venv"
    assert run(extras_shop, "sync", "api")[0] == 0
    assert dists(venv) == ["api-1.0.0", "httpx-0.27.0", "idna-3.7", "pluggy-1.5.0",
                           "pytest-8.3.0"]
    code, _, err = run(extras_shop, "sync", "api", "--extra", "REDIS")
    assert code == 0, err
    assert err.splitlines()[-1] == "api: synced services/api/.venv (+1 ~0 -0)"
    assert "redis-5.0.0" in dists(venv)
    assert run(extras_shop, "sync", "api", "--all-extras")[0] == 0
    assert {"attrs-24.2.0", "redis-5.0.0"} <= set(dists(venv))
    assert run(extras_shop, "sync", "api", "--no-dev", "--extra", "all")[0] == 0
    assert dists(venv) == ["api-1.0.0", "attrs-24.2.0", "httpx-0.27.0", "idna-3.7",
                           "redis-5.0.0"]
    assert run(extras_shop, "sync", "api", "--only-group", "test", "--extra", "redis")[0] == 0
    assert dists(venv) == ["pluggy-1.5.0", "pytest-8.3.0", "redis-5.0.0"]
    assert run(extras_shop, "sync", "api")[0] == 0
    assert "redis-5.0.0" not in dists(venv)


def test_an_unknown_extra_names_the_members_extras(extras_shop: Path) -> None:
    code, _, err = run(extras_shop, "sync", "api", "--extra", "postgres")
    assert code == 1
    assert err == (
        "error: api has no extra 'postgres'\n"
        "hint: its extras: all, redis (see [project.optional-dependencies] in "
        "services/api/pyproject.toml)\n")
    assert not (extras_shop / "services/api/pylock.toml").exists()  # checked before locking


def test_a_member_without_extras(locked_shop: Path) -> None:
    code, _, err = run(locked_shop, "sync", "common", "--extra", "redis")
    assert code == 1
    assert err.startswith("error: common has no extra 'redis'\nhint: its extras: none (")


def test_run_syncs_the_extras_asked_for(extras_shop: Path) -> None:
    code, _, err = run(extras_shop, "-q", "sync", "api")
    assert code == 0, err
    proc = subprocess.run(
        [executable(), "-q", "run", "--extra", "redis", "api", "--", "python", "-c",
         "import redis"], cwd=extras_shop, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_sync_removes_what_the_lock_dropped(locked_shop: Path) -> None:
    assert run(locked_shop, "sync", "api")[0] == 0
    assert run(locked_shop, "remove", "api", "httpx")[0] == 0  # re-locks and re-syncs
    assert "httpx-0.27.0" not in dists(locked_shop / "services/api/.venv")
    assert "idna-3.7" not in dists(locked_shop / "services/api/.venv")


def test_frozen_refuses_a_stale_lock(locked_shop: Path) -> None:
    code, _, err = run(locked_shop, "sync", "--frozen", "api")
    assert code == 1
    assert err == (
        "error: --frozen: the lock of api (services/api/pylock.toml does not exist) is out "
        "of date\nhint: run `orchestrator lock`, or drop --frozen\n")


def test_corrupt_cache_file_is_refetched(locked_shop: Path, tmp_path: Path) -> None:
    assert run(locked_shop, "sync", "api")[0] == 0
    wheel = next((tmp_path / "cache/wheels-v1").rglob("idna-3.7-*.whl"))
    wheel.write_bytes(b"not a wheel")
    venv = locked_shop / "services/api/.venv"
    subprocess.run(["rm", "-rf", str(venv)], check=True)
    code, _, err = run(locked_shop, "sync", "api")
    assert code == 0, err
    assert "idna-3.7-py3-none-any.whl: cached copy failed its hash check; fetching again" in err
    assert "idna-3.7" in dists(venv)


def test_run_passes_exit_code_and_uses_the_venv(locked_shop: Path, index: IndexServer) -> None:
    root = locked_shop
    proc = subprocess.run(
        [executable(), "-q", "run", "api", "--", "python", "-c",
         "import sys, httpx; print(sys.prefix); sys.exit(3)"],
        cwd=root, capture_output=True, text=True, check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip() == str((root / "services/api/.venv").resolve())


def test_run_unknown_command(locked_shop: Path) -> None:
    code, _, err = run(locked_shop, "-q", "run", "api", "--", "no-such-tool")
    assert code == 1
    assert err == (
        "error: no-such-tool: command not found in api's venv or on PATH\n"
        "hint: add it with `orchestrator add api no-such-tool --group dev`, or check "
        "[project.scripts]\n")


@pytest.mark.network
@pytest.mark.slow
def test_example_service_runs_its_own_tests(tmp_path: Path) -> None:
    """The real lock of an example service, synced, runs the service's test suite."""
    import shutil

    repo = Path(__file__).parents[1]
    root = tmp_path / "ws"
    root.mkdir()
    shutil.copy(repo / "workspace.yaml", root)
    for part in ("services", "libs"):
        shutil.copytree(repo / part, root / part,
                        ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    for service in ("orders", "worker"):
        proc = subprocess.run([executable(), "run", "--frozen", service, "--", "pytest", "-q",
                               "-p", "no:cacheprovider"],
                              cwd=root, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert " passed" in proc.stdout


def test_members_of_one_command_finish_in_order_and_a_failure_keeps_the_done_one(
        locked_shop: Path) -> None:
    # sync_members plans the next member while the last one's installs run: each is still
    # reported in order, and one that fails to start leaves the finished ones complete
    code, _, err = run(locked_shop, "sync", "api", "common")
    assert code == 0, err
    assert err.splitlines()[-2:] == ["api: synced services/api/.venv (+7 ~0 -0)",
                                     "common: synced libs/common/.venv (+2 ~0 -0)"]
    shutil.rmtree(locked_shop / "services/api/.venv")
    (locked_shop / "libs/common/.venv/pyvenv.cfg").unlink()  # no venv any more, not empty
    code, _, err = run(locked_shop, "sync", "api", "common")
    assert code == 1
    assert "api: synced services/api/.venv (+7 ~0 -0)" in err
    assert "is not a virtual environment; refusing to replace it" in err
    assert run(locked_shop, "sync", "api") == (0, "", "api: up to date (7 packages)\n")


def test_a_new_checkout_reuses_the_plan_memo_until_a_wheel_is_gone(
        locked_shop: Path, tmp_path: Path) -> None:
    assert run(locked_shop, "sync", "api")[0] == 0
    memos = list((tmp_path / "cache" / "plans-v1").glob("*/*.json"))
    assert len(memos) == 1
    assert "://" not in memos[0].read_text()  # wheels by file name and sha256, no URL
    # a new clone (same files, no venv): the memo answers, no lock is parsed or selected
    clone = tmp_path / "clone"
    shutil.copytree(locked_shop, clone, ignore=shutil.ignore_patterns(".venv"))
    code = ("import sys\nfrom orchestrator.cli import main\n"
            f"try:\n    main(['-w', {str(clone)!r}, 'sync', 'api'])\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print('RESOLVER=' + str('orchestrator.resolver' in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stderr == "api: synced services/api/.venv (+7 ~0 -0)\n"
    assert proc.stdout.splitlines()[-1] == "RESOLVER=False"
    assert dists(clone / "services/api/.venv") == dists(locked_shop / "services/api/.venv")
    # a wheel the memo names left the cache: the full plan fetches it again
    for wheel in (tmp_path / "cache" / "wheels-v1").glob("*/*/attrs-*.whl"):
        shutil.rmtree(wheel.parent)
    again = tmp_path / "again"
    shutil.copytree(clone, again, ignore=shutil.ignore_patterns(".venv"))
    code_, _, err = run(again, "sync", "api")
    assert code_ == 0, err
    assert err.splitlines()[0].endswith("] attrs-24.2.0-py3-none-any.whl")
    assert dists(again / "services/api/.venv") == dists(locked_shop / "services/api/.venv")


def test_a_memo_naming_a_wheel_the_lock_does_not_is_not_followed(
        locked_shop: Path, tmp_path: Path) -> None:
    # CI restores caches from shared storage: a planted memo (its key is computable from
    # the lock) must not put a wheel into the venv that the lock does not name
    import hashlib
    import json

    from orchestrator.cache import WheelCache
    from tests.support.wheels import build_wheel

    assert run(locked_shop, "sync", "api")[0] == 0
    expected = dists(locked_shop / "services/api/.venv")
    (memo,) = (tmp_path / "cache" / "plans-v1").glob("*/*.json")
    evil = build_wheel(tmp_path / "w", "evil", "1.0")
    sha256 = hashlib.sha256(evil.read_bytes()).hexdigest()
    cache = WheelCache(tmp_path / "cache")
    entry = cache.entry_dir("wheels-v1", sha256)
    entry.mkdir(parents=True)
    shutil.copy(evil, entry / evil.name)
    cache._write_marker(entry, evil.name)  # a cache hit, as a planted entry would be
    assert cache.cached_wheel(evil.name, sha256) is not None
    data = json.loads(memo.read_text())
    data["wanted"].append({"name": "evil", "version": "1.0", "file": evil.name,
                           "sha256": sha256})
    memo.write_text(json.dumps(data))
    clone = tmp_path / "clone"
    shutil.copytree(locked_shop, clone, ignore=shutil.ignore_patterns(".venv"))
    code, _, err = run(clone, "sync", "api")
    assert code == 0, err
    assert dists(clone / "services/api/.venv") == expected
    assert "evil" not in json.dumps(dists(clone / "services/api/.venv"))
