"""A package published only as an sdist, end to end: lock (metadata through a PEP 517
build), then sync (the sdist built into a wheel once, cached, installed)."""

from __future__ import annotations

import subprocess
import tomllib

from tests.conftest import MakeWorkspace, index_manifest, pyproject
from tests.support.cli import run
from tests.support.indexserver import IndexServer
from tests.test_build import FAKE_BACKEND


def test_lock_and_sync_a_package_that_has_only_an_sdist(
    make_workspace: MakeWorkspace, index: IndexServer
) -> None:
    index.add_wheel("flit_core", "3.9.0",
                    files={"flit_core/__init__.py": "", "flit_core/buildapi.py": FAKE_BACKEND})
    index.add_sdist("oldlib", "0.5", requires_dist=["idna>=3"])
    root = make_workspace({"services/api": pyproject("api", ["oldlib"])},
                          manifest=index_manifest(index))

    code, _, err = run(root, "lock")
    assert code == 0, err
    entry = next(p for p in tomllib.loads((root / "services/api/pylock.toml").read_text())
                 ["packages"] if p["name"] == "oldlib")
    assert entry["sdist"]["name"] == "oldlib-0.5.tar.gz"
    assert "wheels" not in entry
    assert entry["dependencies"] == [{"name": "idna"}]  # read from the built metadata

    code, _, err = run(root, "sync", "api")
    assert code == 0, err
    python = root / "services/api/.venv/bin/python"
    probe = subprocess.run([str(python), "-c", "import oldlib, idna; print(oldlib.__name__)"],
                           capture_output=True, text=True, check=False)
    assert probe.stdout.strip() == "oldlib", probe.stderr
