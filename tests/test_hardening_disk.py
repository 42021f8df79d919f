"""A full disk and a read-only cache: clear errors naming the path, nothing half-written.

Needs root to mount small tmpfs file systems (skipped otherwise): as root,
a read-only *directory* stops nobody, so a read-only mount stands in for it.
"""

from __future__ import annotations

import gc
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.indexserver import IndexServer

Mount = Callable[..., Path]


@pytest.fixture
def mount() -> Iterator[Mount]:
    """mount(dir, size='1m', ro=False): a tmpfs at *dir*, unmounted in teardown."""
    mounted: list[Path] = []

    def do(directory: Path, size: str = "1m", *, ro: bool = False) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if ro else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
                              capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(directory)
        return directory

    yield do
    for directory in reversed(mounted):
        subprocess.run(["umount", "-l", str(directory)], check=False)


def remount(directory: Path, options: str) -> None:
    gc.collect()  # the caches of earlier in-process runs hold lock files open
    done = subprocess.run(["mount", "-o", f"remount,{options}", str(directory)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def run(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["-w", str(root), *args])
    return result.exit_code, result.stderr


@pytest.fixture
def big_shop(make_workspace: MakeWorkspace, index: IndexServer) -> Path:
    # 2 MB that does not compress: more than the 1 MB tmpfs holds
    blob = os.urandom(2 << 20)
    index.add_wheel("big", "1.0", files={"big/__init__.py": "", "big/blob.bin": blob})
    root = make_workspace({"services/api": pyproject("api", ["big", "attrs"])},
                          manifest=index_manifest(index))
    code, err = run(root, "lock")
    assert code == 0, err
    return root


def _temps(directory: Path) -> list[Path]:
    return list(directory.rglob(".tmp-*")) if directory.is_dir() else []


def test_a_full_cache_disk_is_a_clear_error_and_leaves_no_temp_file(
    big_shop: Path, mount: Mount, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = mount(tmp_path / "small-cache")
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(cache))
    code, err = run(big_shop, "sync", "api")
    assert code == 1
    assert "internal error" not in err
    assert "error: cannot write the cache while downloading big-1.0-py3-none-any.whl: " in err
    assert "No space left on device" in err
    assert "hint: the disk is full: free space" in err
    assert _temps(cache) == []
    venv = big_shop / "services/api/.venv"
    assert not list(venv.glob("lib/python3*/site-packages/big*"))
    verify = CliRunner().invoke(cli, ["-w", str(big_shop), "cache", "verify"])
    assert verify.exit_code == 0 and verify.stdout.endswith(": 0 damaged\n"), verify.stdout


def test_a_read_only_cache_is_a_clear_error_and_clean_too(
    big_shop: Path, mount: Mount, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = mount(tmp_path / "ro-cache", "64m")
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(cache))
    code, err = run(big_shop, "sync", "api")  # fills the cache
    assert code == 0, err
    remount(cache, "ro")
    # everything needed is cached: a read-only cache still syncs a fresh venv
    venv = big_shop / "services/api/.venv"
    subprocess.run(["rm", "-rf", str(venv)], check=True)
    code, err = run(big_shop, "sync", "api")
    assert code == 0, err
    code, err = run(big_shop, "cache", "clean")
    assert code == 1
    assert "internal error" not in err
    assert "error: cannot write the cache while cleaning it: " in err
    assert "Read-only file system" in err
    assert "hint: the file system is read-only: set ORCHESTRATOR_CACHE_DIR" in err
    # something not cached yet must be fetched: refused the same way
    remount(cache, "rw")
    code, err = run(big_shop, "cache", "clean")
    assert code == 0, err
    remount(cache, "ro")
    subprocess.run(["rm", "-rf", str(venv)], check=True)
    code, err = run(big_shop, "sync", "api")
    assert code == 1
    assert "internal error" not in err
    assert "Read-only file system" in err
    assert err.count("error: ") == 1


def test_a_full_venv_disk_mid_sync_is_marked_for_repair_and_repaired(
    big_shop: Path, mount: Mount
) -> None:
    member = big_shop / "services/api"
    text = (member / "pyproject.toml").read_bytes()
    lock = (member / "pylock.toml").read_bytes()
    mount(member, "1m")  # the member's directory, venv and all, on a tiny disk
    (member / "pyproject.toml").write_bytes(text)
    (member / "pylock.toml").write_bytes(lock)
    code, err = run(big_shop, "sync", "api")
    assert code == 1
    assert "internal error" not in err
    assert "No space left on device; the venv is marked for repair and the next sync " \
        "completes it" in err
    assert "hint: the disk is full" in err
    remount(member, "size=64m")
    code, err = run(big_shop, "sync", "api")
    assert code == 0, err
    assert "repaired" in err
    verify = CliRunner().invoke(cli, ["-w", str(big_shop), "cache", "verify"])
    assert verify.exit_code == 0 and verify.stdout.endswith(": 0 damaged\n"), verify.stdout
    probe = subprocess.run([str(member / ".venv/bin/python"), "-c", "import big, attrs"],
                           capture_output=True, text=True, check=False)
    assert probe.returncode == 0, probe.stderr


def test_a_read_only_member_directory_is_a_clear_error_when_locking(
    make_workspace: MakeWorkspace, index: IndexServer, mount: Mount
) -> None:
    root = make_workspace({}, manifest=index_manifest(index))
    member = mount(root / "services/api", "1m")
    (member / "pyproject.toml").write_text(pyproject("api", ["attrs"]))
    remount(member, "ro")
    code, err = run(root, "lock")
    assert code == 1
    assert "internal error" not in err
    assert f"error: cannot write {member}/pylock.toml: Read-only file system\n" in err
    assert err.endswith(
        "hint: the file system is read-only: run where the workspace is writable\n"
    )
    assert sorted(p.name for p in member.iterdir()) == ["pyproject.toml"]
