"""End to end against the public index: lock the example workspace, install with pip.

These reach the network (the public package index), so they are marked; they
prove the locks are standard PEP 751 files that another installer accepts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli

REPO = Path(__file__).parents[1]
pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example workspace, freshly locked against the public index."""
    root = tmp_path_factory.mktemp("example")
    shutil.copy(REPO / "workspace.yaml", root)
    for part in ("services", "libs"):
        shutil.copytree(REPO / part, root / part,
                        ignore=shutil.ignore_patterns("pylock.toml", ".venv", "__pycache__"))
    result = CliRunner().invoke(cli, ["-w", str(root), "lock"])
    assert result.exit_code == 0, result.stderr
    return root


def test_every_member_locked_and_current(example: Path) -> None:
    result = CliRunner().invoke(cli, ["-w", str(example), "lock", "--check"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "5 lock(s) up to date\n"


def test_pip_installs_the_lock_exactly(example: Path, tmp_path: Path) -> None:
    """pip >= 26.1 installs the service's lock; installed versions equal the lock's.

    pip refuses unhashed directory entries once any entry carries hashes, so
    the workspace libraries (PEP 751 `directory` entries) are left out of the
    file pip reads, through `export --format pylock.toml --no-workspace`.
    """
    out = tmp_path / "pylock.toml"
    result = CliRunner().invoke(cli, ["-w", str(example), "export", "orders", "--no-dev",
                                      "--no-workspace", "--format", "pylock.toml", "-o",
                                      str(out)])
    assert result.exit_code == 0, result.stderr
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", "pip>=26.1"], check=True)
    subprocess.run([*pip, "install", "-q", "-r", str(out)], check=True, cwd=tmp_path)
    listed = subprocess.run([*pip, "list", "--format", "json"], check=True,
                            capture_output=True, text=True).stdout
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed)}
    locked = {p["name"]: p["version"] for p in tomllib.loads(out.read_text())["packages"]}
    assert locked, "the exported lock is empty"
    assert {n: installed.get(n) for n in locked} == locked
    assert "pytest" not in installed  # a dev-group package stays out with --no-dev
