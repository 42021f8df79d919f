"""`check`: every problem `lock` would reject, found offline in one run, as data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from click.testing import CliRunner

from orchestrator import checks
from orchestrator.checks import CheckContext, Finding, run
from tests.conftest import MANIFEST, MakeWorkspace, pyproject

REPO = Path(__file__).parents[1]


def orch(root: Path, *args: str) -> tuple[int, str, str]:
    from orchestrator.cli import cli

    result = CliRunner().invoke(cli, ["-w", str(root), *args])
    return result.exit_code, result.stdout, result.stderr


# A freshly adopted repository, with one of each problem a real one had.
ADOPTED = {
    "libs/common": pyproject("common"),
    "libs/legacy": '[tool.poetry]\nname = "legacy"\nversion = "0.1.0"\n',
    "services/api": pyproject("api", ["common @ file:../../libs/common", "requests ^2.31"]),
    "services/new": pyproject("new", ["httpx"]).replace(
        'dependencies', 'requires-python = ">=3.12"\ndependencies'),
    "services/web": pyproject("web", ["httpx>=0.27"]) + (
        '\n[tool.poetry.dependencies]\npython = "^3.11"\npydantic = "^2"\n'),
}


def test_every_problem_in_one_run(make_workspace: MakeWorkspace) -> None:
    root = make_workspace(ADOPTED)
    report = run(root)
    assert [(f.severity, f.check, f.member, f.key) for f in report.findings] == [
        ("error", "load", "api", "project.dependencies[1]"),
        ("error", "load", "api", "project.dependencies[0]"),
        ("error", "load", None, "project"),
        ("warning", "load", "web", "tool.poetry.dependencies"),
        ("error", "requires_python", "new", "project.requires-python"),
        ("warning", "stale_lock", "new", None),
        ("warning", "stale_lock", "web", None),
        ("warning", "stale_lock", "common", None),
    ]
    assert report.broken == {"api", "libs/legacy"}
    new = report.findings[4]
    assert new == Finding(
        "error", root / "services/new/pyproject.toml", "project.requires-python", "new",
        "services/new/pyproject.toml: project.requires-python: new requires Python >=3.12, "
        "which excludes the workspace's Python 3.11",
        "widen requires-python to admit 3.11 (e.g. \">=3.11\"), or change `python` in "
        "workspace.yaml", "requires_python")
    assert report.findings[5] == Finding(
        "warning", root / "services/new/pylock.toml", None, "new",
        "the lock of new is out of date: services/new/pylock.toml does not exist",
        "run `orchestrator lock new`", "stale_lock")


def test_check_prints_every_finding_and_exits_1(make_workspace: MakeWorkspace) -> None:
    root = make_workspace(ADOPTED)
    code, out, err = orch(root, "check")
    assert code == 1
    assert out == (
        f"workspace demo ({root}/workspace.yaml)\n"
        "  python 3.11 on linux/amd64\n"
        "  indexes: pypi (https://pypi.org/simple)\n"
        "  members: 3 (2 services, 1 libraries)\n"
        "  not loaded: api, libs/legacy\n"
        "    new [service] services/new: 1 dependencies; lock stale\n"
        "    web [service] services/web: 1 dependencies; lock stale\n"
        "    common [library] libs/common: 0 dependencies; lock stale\n"
        "4 errors, 4 warnings\n"
    )
    assert err.splitlines()[:8] == [
        "error: services/api/pyproject.toml: project.dependencies[1]: invalid requirement "
        "'requests ^2.31': Expected semicolon (after name with no version specifier) or end",
        "hint: this is Poetry syntax; in PEP 508 it reads \"requests>=2.31,<3.0\"",
        "error: services/api/pyproject.toml: project.dependencies[0]: 'common @ "
        "file:../../libs/common' is a direct reference to the workspace member 'common'",
        "hint: write the bare member name \"common\": the workspace links its members itself",
        "error: libs/legacy/pyproject.toml: project: missing; every member needs a PEP 621 "
        "[project] table",
        "hint: this is a Poetry project: convert it with `orchestrator init --from poetry`",
        "warning: services/web/pyproject.toml: tool.poetry.dependencies: pydantic not in "
        "[project].dependencies; ignored",
        "hint: declare them in [project].dependencies (PEP 508), or convert the member with "
        "`orchestrator init --from poetry`",
    ]
    assert "Traceback" not in err


def test_check_json_lists_the_findings(make_workspace: MakeWorkspace) -> None:
    root = make_workspace(ADOPTED)
    code, out, _ = orch(root, "check", "--format", "json")
    assert code == 1
    findings = json.loads(out)
    assert len(findings) == 8
    assert findings[2] == {
        "severity": "error", "check": "load", "file": str(root / "libs/legacy/pyproject.toml"),
        "key": "project", "member": None,
        "message": "libs/legacy/pyproject.toml: project: missing; every member needs a PEP 621 "
        "[project] table",
        "hint": "this is a Poetry project: convert it with `orchestrator init --from poetry`"}


def test_a_bad_manifest_is_the_one_finding(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({}, manifest="version: 1\nname: [unclosed\n")
    code, out, err = orch(root, "check", "--format", "json")
    assert code == 1
    (finding,) = json.loads(out)
    assert (finding["severity"], finding["file"], finding["key"]) == (
        "error", str(root / "workspace.yaml"), None)
    assert finding["message"].startswith(f"{root}/workspace.yaml: line 3, column 1: invalid YAML")
    code, out, err = orch(root, "check")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {root}/workspace.yaml: line 3, column 1: invalid YAML")
    assert err.endswith("hint: fix the syntax at that position\n")


def test_a_cycle_is_a_finding(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("a", ["b"]), "libs/b": pyproject("b", ["c"]),
                           "libs/c": pyproject("c", ["a"])})
    cycle = [f for f in run(root).findings if f.check == "member_cycle"]
    assert cycle == [Finding(
        "error", None, None, None,
        "dependency cycle between workspace members: a -> b -> c -> a",
        "a member cannot depend on itself through others; move the shared code into a "
        "library both can depend on", "member_cycle")]


def test_a_python_patch_floor_is_excluded_as_the_resolver_sees_it(
        make_workspace: MakeWorkspace) -> None:
    """Locks are made for X.Y.0, so `>=3.11.4` cannot be locked for python 3.11."""
    root = make_workspace({"libs/a": '[project]\nname = "a"\nrequires-python = ">=3.11.4"\n',
                           "libs/b": '[project]\nname = "b"\nrequires-python = ">=3.8,<4"\n'})
    found = [f.member for f in run(root).findings if f.check == "requires_python"]
    assert found == ["a"]


def test_stale_locks_of_members_needing_a_broken_one_are_not_guessed(
        make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("a", ["b"]), "libs/b": "[project\n"})
    assert [(f.check, f.member) for f in run(root).findings] == [("load", None)]


def test_a_clean_workspace_says_ok() -> None:
    code, out, err = orch(REPO, "check")
    assert (code, err) == (0, "")
    assert out.endswith("    acme-events [library] libs/events: 1 dependencies, groups: test; "
                        "lock current\nok: no problems found\n")


def test_adding_a_check_is_one_function(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("a"), "libs/b": '[project]\nname = "b"\n'})

    def versioned(context: CheckContext) -> Iterator[Finding]:
        for member in context.workspace.members:
            if not member.version:
                yield Finding("warning", member.pyproject, "project.version", member.name,
                              f"{member.name} has no version", None, "versioned")

    report = run(root, checks=[*checks.registered(), versioned])
    assert [f.message for f in report.findings if f.check == "versioned"] == ["b has no version"]
    assert [c.__name__ for c in checks.registered()] == [
        "requires_python", "member_cycle", "stale_lock", "venv_drift", "secrets",
        "upper_bounds", "lock_sources", "audit_policy", "license_policy"]


def test_warnings_reach_every_command_on_stderr(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"services/web": ADOPTED["services/web"]},
                          manifest=MANIFEST)
    warning = ("warning: services/web/pyproject.toml: tool.poetry.dependencies: pydantic not in "
               "[project].dependencies; ignored\n"
               "hint: declare them in [project].dependencies (PEP 508), or convert the member "
               "with `orchestrator init --from poetry`\n")
    code, _, err = orch(root, "lock", "--check")
    assert code == 1
    assert err.startswith(warning)
    code, _, err = orch(root, "-q", "list")
    assert (code, err) == (0, warning)
