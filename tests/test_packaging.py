"""The tool's own packaging: every sub-package and the templates ship in a regular install."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).parents[1]


def test_every_subpackage_is_listed() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "orchestrator").rglob("__init__.py")}
    assert set(config["packages"]) == found | {"orchestrator._templates"}
    assert config["package-dir"] == {"orchestrator._templates": "templates"}


def test_template_files_are_within_the_package_data_globs() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    depth = max(g.count("/") for g in config["package-data"]["orchestrator._templates"]) + 1
    files = [p for p in (REPO / "templates").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts]
    assert files
    assert all(len(p.relative_to(REPO / "templates").parts) <= depth for p in files)
