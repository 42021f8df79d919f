"""`orchestrator new`: scaffold from templates/new and register in workspace.yaml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import resources
from orchestrator.errors import WorkspaceError
from orchestrator.image import templates
from orchestrator.resources import bundled_templates, templates_dir
from orchestrator.workspace import load_workspace
from tests.conftest import MakeWorkspace, pyproject
from tests.support.cli import run

REPO = Path(__file__).parents[1]


def test_new_service_covered_by_glob(shop: Path) -> None:
    code, out, err = run(shop, "new", "service", "billing")
    assert code == 0, err
    assert out == "created service billing in services/billing\n"
    member = load_workspace(shop).find("billing")
    assert member is not None
    assert member.kind == "service"
    assert member.scripts == {"billing": "billing.main:main"}
    assert "test" in member.groups
    assert (shop / "services/billing/src/billing/main.py").is_file()
    assert (shop / "services/billing/tests/test_billing.py").is_file()
    assert (shop / "workspace.yaml").read_text().count("billing") == 0  # glob covers it


def test_new_library_is_registered(make_workspace: MakeWorkspace) -> None:
    manifest = "version: 1\nname: d\nmembers:\n  - services/api  # the API\n"
    root = make_workspace({"services/api": pyproject("api")}, manifest=manifest)
    code, _, err = run(root, "new", "library", "shared-utils")
    assert code == 0, err
    assert (root / "workspace.yaml").read_text() == (
        "version: 1\nname: d\nmembers:\n  - services/api  # the API\n  - libs/shared-utils\n")
    assert load_workspace(root).find("shared-utils") is not None


def test_new_flow_list_registration(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"services/api": pyproject("api")},
                          manifest="version: 1\nname: d\nmembers: [services/api]\n")
    assert run(root, "new", "service", "web")[0] == 0
    assert "members: [services/api, services/web]" in (root / "workspace.yaml").read_text()


def test_new_rejects_existing_member(shop: Path) -> None:
    code, _, err = run(shop, "new", "library", "Common")
    assert code == 1
    assert err == "error: the workspace already has a member named 'common'\n"


def test_scaffolded_code_passes_its_own_test(shop: Path) -> None:
    assert run(shop, "new", "service", "billing")[0] == 0
    member = shop / "services/billing"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=member, env={"PYTHONPATH": str(member / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compiled_template_files_are_not_copied(shop: Path, tmp_path: Path) -> None:
    """An installer may compile the templates' .py files; those caches stay behind."""
    templates = shop / "templates"
    shutil.copytree(REPO / "templates", templates)
    cache = templates / "new" / "service" / "src" / "__module__" / "__pycache__"
    cache.mkdir()
    (cache / "main.cpython-311.pyc").write_bytes(b"\x00\xff not text")
    assert run(shop, "new", "service", "billing")[0] == 0
    assert not list((shop / "services/billing").rglob("__pycache__"))


def test_workspace_templates_override_directory_by_directory(shop: Path) -> None:
    """A workspace with only its own templates/docker/ still scaffolds from the bundled ones."""
    own = shop / "templates" / "docker"
    shutil.copytree(REPO / "templates" / "docker", own)
    workspace = load_workspace(shop)
    assert templates(workspace) == own
    assert templates_dir(workspace, "new", "service") == bundled_templates() / "new" / "service"
    assert run(shop, "new", "service", "billing")[0] == 0
    assert (shop / "services/billing/src/billing/main.py").is_file()


def test_bundled_templates_are_the_docker_and_new_trees() -> None:
    root = bundled_templates()
    assert (root / "docker" / "Dockerfile.tmpl").is_file()
    assert sorted(p.name for p in (root / "new").iterdir() if p.is_dir()) == ["library",
                                                                              "service"]


def test_missing_bundled_templates_is_a_workspace_error(
        shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "BUNDLED_TEMPLATES", "orchestrator._no_such_templates")
    with pytest.raises(WorkspaceError) as info:
        templates(load_workspace(shop))
    assert info.value.message == ("orchestrator's own templates (orchestrator._no_such_templates) "
                                  "are not installed")
    assert info.value.hint == ("install orchestrator with `pip install` (or `pip install -e` "
                               "for a checkout), or give the workspace its own templates/")


# -- following the workspace's own layout ----------------------------------------------------

UV_LAYOUT = "version: 1\nname: d\nmembers: [apps/*, packages/*]\n"


def test_new_goes_where_members_of_its_kind_live(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"apps/api": pyproject("api", tool='kind = "service"'),
                           "packages/core": pyproject("core")}, manifest=UV_LAYOUT)
    code, out, err = run(root, "new", "service", "web")
    assert (code, out) == (0, "created service web in apps/web\n")
    assert err == ("placed there because apps/ holds the workspace's services\n"
                   "next: orchestrator lock web && orchestrator sync web\n")
    code, out, _ = run(root, "new", "library", "utils")
    assert (code, out) == (0, "created library utils in packages/utils\n")
    ws = load_workspace(root)
    assert [(m.name, m.kind, m.relpath) for m in ws.members] == [
        ("api", "service", "apps/api"), ("web", "service", "apps/web"),
        ("core", "library", "packages/core"), ("utils", "library", "packages/utils")]
    assert (root / "workspace.yaml").read_text() == UV_LAYOUT  # the globs cover both


def test_new_follows_a_name_prefix(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/common": pyproject("acme-common"),
                           "libs/events": pyproject("acme-events"),
                           "services/orders": pyproject("orders")})
    code, out, err = run(root, "new", "library", "billing")
    assert (code, out) == (0, "created library acme-billing in libs/billing\n")
    assert err.startswith("placed there because libs/ holds the workspace's libraries; named "
                          "acme-* like them\nnext: orchestrator lock acme-billing")
    code, out, _ = run(root, "new", "library", "acme-audit")  # the prefix is not doubled
    assert (code, out) == (0, "created library acme-audit in libs/audit\n")
    member = load_workspace(root).find("acme-billing")
    assert member is not None and member.relpath == "libs/billing"
    assert (root / "libs/billing/src/acme_billing/__init__.py").is_file()
    code, _, err = run(root, "new", "library", "common")
    assert (code, err) == (1, "error: the workspace already has a member named 'acme-common'\n")


def test_new_reads_the_globs_when_no_member_of_the_kind_exists(
        make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"packages/core": pyproject("core")},
                          manifest="version: 1\nname: d\nmembers: [packages/*, apps/*]\n")
    code, out, err = run(root, "new", "service", "api")
    assert (code, out) == (0, "created service api in apps/api\n")
    assert err.startswith("placed there because members: apps/* in workspace.yaml\n")


def test_new_falls_back_to_services_and_libs(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"tools/x": pyproject("x")},
                          manifest="version: 1\nname: d\nmembers: [tools/*]\n")
    code, out, err = run(root, "new", "service", "api")
    assert (code, out) == (0, "created service api in services/api\n")
    assert err.startswith("placed there because the default for services: the workspace has "
                          "none yet\n")
    assert "members: [tools/*, services/api]" in (root / "workspace.yaml").read_text()
