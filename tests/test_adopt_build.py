"""Converted members build with their real backends, into the metadata init promised.

The backends (poetry-core, hatchling, setuptools, pdm-backend) are downloaded
from the public index once per run, which is why this module is marked
``network``; the builds themselves then run with ``--no-index`` from that
directory, in pip's isolated build environments. Each wheel's METADATA must be
valid core metadata and say what the converted ``[project]`` says: the same
name, version, Requires-Python, extras and requirements.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from packaging.metadata import Metadata
from packaging.requirements import Requirement

from orchestrator.adopt.validate import project_metadata
from orchestrator.cli import cli
from tests.test_adopt_init import repository

pytestmark = [pytest.mark.network, pytest.mark.slow]
BACKENDS = ("poetry-core>=2", "hatchling", "setuptools>=69", "pdm-backend")


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("backends")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:",
                    "-d", str(directory), *BACKENDS], check=True)
    return directory


def build(member: Path, backends: Path, out: Path) -> Metadata:
    """The member's wheel built offline from *backends*; its METADATA, validated."""
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}  # only the downloaded backends
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                    "--find-links", str(backends), "-w", str(out), str(member)],
                   check=True, env=env, capture_output=True)
    wheel = next(out.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return Metadata.from_email(zf.read(name), validate=True)


def requirements(texts: list[Requirement] | None) -> set[str]:
    return {str(r) for r in texts or []}


@pytest.mark.parametrize(("fixture", "args"), [
    ("poetry", []),
    ("poetry", ["--build-backend", "hatchling"]),
    ("uv", []),
    ("pdm", []),
    ("plain", []),
])
def test_converted_members_build_with_their_backend(tmp_path: Path, backends: Path,
                                                    fixture: str, args: list[str]) -> None:
    root = repository(tmp_path, fixture)
    result = CliRunner().invoke(cli, ["init", str(root), *args])
    assert result.exit_code == 0, result.stderr
    members = [p.parent for p in sorted(root.rglob("pyproject.toml"))
               if "project" in tomllib.loads(p.read_text()) and p.parent != root
               and "legacy" not in p.parts]
    assert members
    for member in members:
        project = tomllib.loads((member / "pyproject.toml").read_text())["project"]
        promised = project_metadata(project)
        built = build(member, backends, tmp_path / "wheels" / member.name)
        assert (built.name, str(built.version)) == (promised.name, str(promised.version))
        assert str(built.requires_python or "") == str(promised.requires_python or "")
        assert set(built.provides_extra or []) == set(promised.provides_extra or [])
        assert requirements(built.requires_dist) == requirements(promised.requires_dist), \
            member
