"""export and show over a lock made against the local index."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.cli import run
from tests.support.indexserver import IndexServer


@pytest.fixture
def shop(locked_shop: Path) -> Path:
    assert run(locked_shop, "lock")[0] == 0
    return locked_shop


def test_requirements_export(shop: Path, index: IndexServer) -> None:
    code, out, _ = run(shop, "export", "api")
    assert code == 0
    lines = out.splitlines()
    assert lines[2].startswith("attrs==24.2.0 \\")
    assert [ln.split(" ")[0] for ln in lines if "==" in ln] == [
        "attrs==24.2.0", "httpx==0.27.0", "idna==3.7", "pluggy==1.5.0", "pytest==8.3.0"]
    assert lines[-1] == "# common @ ../../libs/common"
    # What is left out is asserted on a successful export: a failed one prints nothing.
    code, no_dev, err = run(shop, "export", "api", "--no-dev", "--no-workspace")
    assert code == 0, err
    assert [ln.split(" ")[0] for ln in no_dev.splitlines() if "==" in ln] == [
        "attrs==24.2.0", "httpx==0.27.0", "idna==3.7"]
    assert "pytest" not in no_dev
    assert "common" not in no_dev


def test_requirements_export_installs_with_require_hashes(shop: Path, index: IndexServer,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "requirements.txt"
    assert run(shop, "export", "api", "-o", str(out))[0] == 0
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--isolated", "--no-cache-dir", "--require-hashes", "--no-deps", "--index-url",
         index.url, "-r", str(out)],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert sorted(p.name for p in site.glob("*.dist-info")) == [
        "attrs-24.2.0.dist-info", "httpx-0.27.0.dist-info", "idna-3.7.dist-info",
        "pluggy-1.5.0.dist-info", "pytest-8.3.0.dist-info"]


def test_pylock_export_rewrites_member_paths(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "pylock.toml"
    out.parent.mkdir()
    assert run(shop, "export", "api", "--format", "pylock.toml", "-o", str(out))[0] == 0
    from orchestrator.lock import read_lock

    lock = read_lock(out)
    common = next(p for p in lock.packages if p.name == "common")
    assert common.directory is not None
    assert (out.parent / common.directory.path).resolve() == (shop / "libs/common").resolve()


def test_export_refuses_stale_lock(shop: Path) -> None:
    (shop / "services/api/pyproject.toml").write_text(
        (shop / "services/api/pyproject.toml").read_text().replace('"httpx"', '"httpx>=0.27"'))
    code, _, err = run(shop, "export", "api")
    assert code == 1
    assert err == (
        "error: the lock of api is out of date: its dependencies or dependency groups changed\n"
        "hint: run `orchestrator lock api`\n")


def test_show_list_tree_why(shop: Path) -> None:
    code, out, _ = run(shop, "show", "api")
    assert code == 0
    assert out.splitlines()[0].split() == ["attrs", "24.2.0"]
    assert "* httpx   0.27.0" in out
    tree = run(shop, "show", "api", "--tree")[1]
    assert tree.splitlines()[:3] == ["api 1.0.0", "├── common 1.0.0", "│   └── attrs 24.2.0"]
    assert run(shop, "show", "api", "--why", "idna")[1] == "api -> httpx -> idna\n"
    code, _, err = run(shop, "show", "api", "--why", "numpy")
    assert code == 1
    assert err.startswith("error: numpy is not in api's lock")


def test_show_outdated(shop: Path, index: IndexServer) -> None:
    index.add_wheel("idna", "3.9")
    assert run(shop, "show", "api", "--outdated")[1] == "idna  3.7 -> 3.9\n"


def test_export_unknown_group(shop: Path) -> None:
    code, _, err = run(shop, "export", "api", "--no-dev", "--group", "docs")
    assert code == 1
    assert err == "error: api has no dependency group 'docs'\nhint: its groups: test\n"


def test_export_with_extras(make_workspace: MakeWorkspace, index: IndexServer) -> None:
    index.add_wheel("redis", "5.0.0")
    root = make_workspace({"services/api": pyproject("api", ["httpx"])
                           + '\n[project.optional-dependencies]\nredis = ["redis>=5"]\n'},
                          manifest=index_manifest(index))
    assert run(root, "lock")[0] == 0
    code, plain, err = run(root, "export", "api")
    assert code == 0, err
    assert [ln.split(" ")[0] for ln in plain.splitlines() if "==" in ln] == [
        "httpx==0.27.0", "idna==3.7"]
    code, out, _ = run(root, "export", "api", "--extra", "redis")
    assert code == 0
    assert [ln.split(" ")[0] for ln in out.splitlines() if "==" in ln] == [
        "httpx==0.27.0", "idna==3.7", "redis==5.0.0"]
    assert run(root, "export", "api", "--all-extras")[1] == out
    text = run(root, "export", "api", "--format", "pylock.toml", "--extra", "redis")[1]
    assert 'extras = ["redis"]' in text
    assert 'marker = "\\"redis\\" in extras"' in text
    code, _, err = run(root, "export", "api", "--extra", "cache")
    assert code == 1
    assert err.startswith("error: api has no extra 'cache'\nhint: its extras: redis (")
