"""A tampered cache: unpacked trees are verified, read-only, and repaired from the wheel."""

from __future__ import annotations

import gc
import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from orchestrator.errors import VenvError
from orchestrator.installer import unpack
from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.cli import run
from tests.support.indexserver import IndexServer
from tests.support.wheels import build_wheel


@pytest.fixture
def two_services(make_workspace: MakeWorkspace, index: IndexServer) -> Path:
    root = make_workspace({"services/a": pyproject("a", ["attrs==24.2.0"]),
                           "services/b": pyproject("b", ["attrs==24.2.0"])},
                          manifest=index_manifest(index))
    code, _, err = run(root, "sync", "a")
    assert code == 0, err
    return root


def _module(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages")) / "attrs/__init__.py"


def _cached(cache: Path) -> Path:
    return next((cache / "unpacked-v1").glob("*/*/attrs/__init__.py"))


ORIGINAL = '__version__ = "24.2.0"\n'


def test_venv_files_are_read_only_hard_links(two_services: Path) -> None:
    installed = _module(two_services / "services/a/.venv")
    st = installed.stat()
    assert st.st_nlink >= 2  # shared with the cache
    assert st.st_mode & 0o222 == 0  # nobody may write it in place
    if os.geteuid() != 0:  # root writes read-only files anyway: the mtime check covers that
        with pytest.raises(PermissionError):
            installed.open("a")


def test_a_tampered_unpacked_file_is_detected_and_replaced(
    two_services: Path, tmp_path: Path
) -> None:
    cached = _cached(tmp_path / "cache")
    cached.chmod(0o644)
    cached.write_text("import os; os.system('evil')\n")
    code, _, err = run(two_services, "sync", "b")
    assert code == 0, err
    assert _module(two_services / "services/b/.venv").read_text() == ORIGINAL
    assert _cached(tmp_path / "cache").read_text() == ORIGINAL  # re-unpacked from the wheel
    code, out, err = run(two_services, "cache", "verify")
    assert (code, err) == (0, "")
    assert out == "verified 1 wheels and 1 unpacked trees: 0 damaged\n"


def test_an_edit_through_a_venv_hard_link_is_repaired_by_sync_verify(
    two_services: Path, tmp_path: Path
) -> None:
    venv = two_services / "services/a/.venv"
    installed = _module(venv)
    installed.chmod(0o644)
    time.sleep(0.01)
    installed.write_text("tampered = True\n")  # as root, or after a chmod: the cache changes too
    code, _, err = run(two_services, "sync", "a")
    assert err == "a: up to date (2 packages)\n"  # the fast path trusts the venv...
    code, _, err = run(two_services, "sync", "a", "--verify")  # ...--verify does not
    assert code == 0, err
    assert "repaired 1" in err
    assert _module(venv).read_text() == ORIGINAL
    assert _module(venv).stat().st_mode & 0o222 == 0
    code, out, _ = run(two_services, "cache", "verify")
    assert out.endswith(": 0 damaged\n")


def test_cache_verify_discards_damaged_wheels_and_trees(
    two_services: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    wheel = next((cache / "wheels-v1").glob("*/*/attrs-24.2.0-py3-none-any.whl"))
    with wheel.open("ab") as f:
        f.write(b"junk")
    cached = _cached(cache)
    cached.chmod(0o644)
    cached.write_text("x = 1\n")
    stale = cache / "wheels-v1" / ".tmp-killed"
    stale.write_bytes(b"half a download")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    code, out, err = run(two_services, "cache", "verify")
    assert code == 0, err
    assert out.endswith(": 2 damaged (discarded; fetched or unpacked again when next needed)\n")
    assert err.count("discarded ") == 2
    assert not stale.exists()
    code, _, err = run(two_services, "sync", "b")
    assert code == 0, err
    assert _module(two_services / "services/b/.venv").read_text() == ORIGINAL
    assert run(two_services, "cache", "verify")[1].endswith(": 0 damaged\n")


def test_a_wheel_whose_record_lies_is_refused_when_unpacked(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "liar", "1.0")
    patched = tmp_path / "liar-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(patched, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "liar/__init__.py":
                data = b"evil = True\n"
            out.writestr(info, data)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(VenvError) as refused:
        unpack(patched, dest)
    assert str(refused.value).startswith(
        "liar-1.0-py3-none-any.whl: liar/__init__.py does not match its RECORD entry"
    )


@pytest.mark.parametrize("mode", ["copy", "reflink"])
def test_link_mode_copy_and_reflink_give_the_venv_its_own_writable_files(
    make_workspace: MakeWorkspace, index: IndexServer, mode: str
) -> None:
    root = make_workspace({"services/a": pyproject("a", ["attrs==24.2.0"])},
                          manifest=index_manifest(index))
    code, _, err = run(root, "sync", "a", "--link-mode", mode)
    assert code == 0, err
    installed = _module(root / "services/a/.venv")
    st = installed.stat()
    assert st.st_nlink == 1  # not shared with the cache (a reflink shares blocks, not inodes)
    assert st.st_mode & 0o200
    assert installed.read_text() == ORIGINAL
    installed.write_text("mine = True\n")  # editing it touches nothing else
    assert run(root, "cache", "verify")[1].endswith(": 0 damaged\n")


def test_temp_files_of_killed_runs_go_when_no_live_process_writes_the_bucket(
    make_workspace: MakeWorkspace, index: IndexServer, tmp_path: Path
) -> None:
    from orchestrator.cache import WheelCache

    cache = tmp_path / "cache"
    root = make_workspace({"services/a": pyproject("a", ["attrs==24.2.0"])},
                          manifest=index_manifest(index))
    assert run(root, "lock")[0] == 0
    live = WheelCache(cache)
    live._bucket("wheels-v1")  # a live process writing wheels-v1: its temp files stay
    (cache / "wheels-v1" / ".tmp-live").mkdir()  # fresh: age does not matter, liveness does
    (cache / "unpacked-v1" / ".tmp-killed").mkdir(parents=True)
    code, _, err = run(root, "sync", "a")
    assert code == 0, err
    assert (cache / "wheels-v1" / ".tmp-live").exists()
    assert not (cache / "unpacked-v1" / ".tmp-killed").exists()
    del live  # that process is gone now: the next run that writes wheels-v1 cleans up
    gc.collect()  # and so are the earlier in-process runs' caches (each CLI run is a process)
    shutil.rmtree(root / "services/a/.venv")
    for entry in (cache / "wheels-v1").glob("??/*"):
        shutil.rmtree(entry)
    code, _, err = run(root, "sync", "a")
    assert code == 0, err
    assert not (cache / "wheels-v1" / ".tmp-live").exists()


def test_cache_prune_removes_temp_files_of_killed_runs(two_services: Path, tmp_path: Path) -> None:
    gc.collect()  # the earlier in-process runs' caches (each CLI run is its own process)
    cache = tmp_path / "cache"
    (cache / "wheels-v1" / ".tmp-killed").write_bytes(b"half a download")
    (cache / "unpacked-v1" / ".tmp-killed").mkdir()
    code, _, err = run(two_services, "cache", "prune")
    assert code == 0, err
    assert not (cache / "wheels-v1" / ".tmp-killed").exists()
    assert not (cache / "unpacked-v1" / ".tmp-killed").exists()
    assert run(two_services, "cache", "verify")[1].endswith(": 0 damaged\n")
