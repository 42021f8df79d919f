"""The tool's own packaging: a real wheel holds every module and template, and no caches.

The wheel is built offline by pip, with the setuptools wheel that virtualenv (a dependency)
bundles, from a copy of the sources in tmp_path, so the checkout gets no build/ directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from virtualenv.seed.wheels.embed import BUNDLE_FOLDER

from orchestrator.resources import BUNDLED_TEMPLATES, bundled_templates

REPO = Path(__file__).parents[1]
SOURCES = ("pyproject.toml", "README.md", "orchestrator", "templates")
PACKAGE_DIR = BUNDLED_TEMPLATES.replace(".", "/")  # where importlib.resources looks


def source_files(root: Path) -> set[str]:
    """Files under *root*, relative and /-separated, without compiled caches."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, tree / name)
        else:
            shutil.copy2(REPO / name, tree / name)
    # what an earlier install or test run may leave in the templates; it must not ship
    cache = tree / "templates" / "new" / "service" / "src" / "__module__" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "main.cpython-311.pyc").write_bytes(b"\x00")
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}  # not this machine's indexes
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir",
         "--no-index", "--find-links", str(BUNDLE_FOLDER), "-w", str(out), str(tree)],
        env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (found,) = out.glob("orchestrator-*.whl")
    return found


@pytest.mark.slow
def test_wheel_holds_every_template_where_importlib_resources_looks(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = source_files(REPO / "templates")
    assert templates >= {"docker/Dockerfile.tmpl", "new/service/pyproject.toml",
                         "new/library/src/__module__/__init__.py"}
    shipped = {n.removeprefix(PACKAGE_DIR + "/") for n in names if n.startswith(PACKAGE_DIR + "/")}
    assert shipped == templates


@pytest.mark.slow
def test_wheel_holds_every_module_and_no_caches(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {f"orchestrator/{rel}" for rel in source_files(REPO / "orchestrator")}
    missing = sorted(modules - names)
    assert not missing, f"add their packages to [tool.setuptools] packages: {missing}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


@pytest.mark.slow
def test_installed_wheel_finds_its_templates(wheel: Path, tmp_path: Path) -> None:
    """Unpacked as pip would, the package finds its templates through importlib.resources."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import orchestrator, orchestrator.resources as s; "
             "print(orchestrator.__file__); print(s.bundled_templates())")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(site)}, text=True, check=True)
    module, templates = (Path(line) for line in proc.stdout.splitlines())
    assert module == site / "orchestrator" / "__init__.py"
    assert templates == site / PACKAGE_DIR
    assert source_files(templates) == source_files(REPO / "templates")


def test_source_tree_templates_through_importlib_resources() -> None:
    """Run from this checkout (editable) or its install, the bundled templates are templates/."""
    assert source_files(bundled_templates()) == source_files(REPO / "templates")
