"""The CLI through click's runner, and the installed executable as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.cli import cli
from tests.conftest import MakeWorkspace, pyproject

REPO = Path(__file__).parents[1]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list(shop: Path) -> None:
    code, out, _ = run("-w", str(shop), "list")
    assert code == 0
    assert out.splitlines()[0].split() == ["api", "service", "1.0.0", "services/api"]
    code, out, _ = run("-w", str(shop), "list", "--json", "--services")
    assert [m["name"] for m in json.loads(out)] == ["api", "solo", "web"]


def test_graph_formats(shop: Path) -> None:
    code, out, _ = run("-w", str(shop), "graph")
    assert code == 0
    assert out == (
        "stage 1:\n  common [library]\n  solo [service]\n"
        "stage 2:\n  api [service] -> common\n  web [service] -> common (dev)\n"
    )
    _, dot, _ = run("-w", str(shop), "graph", "--format", "dot")
    assert '"web" -> "common" [style=dashed];' in dot
    _, mermaid, _ = run("-w", str(shop), "graph", "--format", "mermaid")
    assert "  api --> common" in mermaid
    _, data, _ = run("-w", str(shop), "graph", "--format", "json")
    assert json.loads(data)["stages"] == [["common", "solo"], ["api", "web"]]


def test_matrix_all_github(shop: Path) -> None:
    code, out, _ = run("-w", str(shop), "matrix", "--all", "--format", "github")
    assert code == 0
    rows = json.loads(out)["include"]
    assert [r["service"] for r in rows] == ["solo", "api", "web"]
    assert rows[1] == {"service": "api", "path": "services/api", "image": "api",
                       "version": "1.0.0"}


def test_matrix_gitlab(shop: Path) -> None:
    _, out, _ = run("-w", str(shop), "matrix", "--all", "--format", "gitlab")
    doc = yaml.safe_load(out)
    assert doc["parallel"]["matrix"][0] == {
        "SERVICE": "solo", "SERVICE_PATH": "services/solo", "IMAGE": "solo", "VERSION": "1.0.0"}


def test_matrix_needs_since_or_all(shop: Path) -> None:
    code, _, err = run("-w", str(shop), "matrix")
    assert code == 2
    assert "pass exactly one of --since REF or --all" in err


def test_cycle_exits_1_without_traceback(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("a", ["b"]), "libs/b": pyproject("b", ["a"])})
    code, out, err = run("-w", str(root), "graph")
    assert code == 1
    assert out == ""
    assert err == (
        "error: dependency cycle between workspace members: a -> b -> a\n"
        "hint: a member cannot depend on itself through others; move the shared code into a "
        "library both can depend on\n"
    )


def test_verbose_shows_traceback(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("a", ["b"]), "libs/b": pyproject("b", ["a"])})
    code, _, err = run("-v", "-w", str(root), "graph")
    assert code == 1
    assert "Traceback (most recent call last)" in err


@pytest.mark.parametrize(
    ("members", "manifest", "expected"),
    [
        ({}, "just a string\n", "workspace.yaml: expected a mapping of keys (version, name, "
         "members, ...), got a string"),
        ({"libs/a": pyproject("a", ["ok>="])}, None,
         "libs/a/pyproject.toml: project.dependencies[0]: invalid requirement 'ok>='"),
    ],
)
def test_bad_input_messages(
    make_workspace: MakeWorkspace, members: dict[str, str], manifest: str | None, expected: str
) -> None:
    root = make_workspace(members, **({"manifest": manifest} if manifest else {}))
    code, _, err = run("-w", str(root), "check")
    assert code == 1
    assert err.startswith("error: ")
    assert expected in err
    assert "Traceback" not in err


def test_check_summary(shop: Path) -> None:
    code, out, err = run("-w", str(shop), "check")
    assert code == 0  # stale locks are warnings
    assert "  members: 4 (3 services, 1 libraries)" in out
    assert "    api [service] services/api: 2 dependencies; lock stale\n" in out
    assert out.endswith("0 errors, 4 warnings\n")
    assert err.splitlines()[:2] == [
        "warning: the lock of api is out of date: services/api/pylock.toml does not exist",
        "hint: run `orchestrator lock api`"]


def test_list_services_when_none_is_one(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"apps/api": pyproject("api"), "libs/core": pyproject("core")},
                          manifest="version: 1\nname: d\nmembers: [apps/*, libs/*]\n")
    code, out, err = run("-w", str(root), "list", "--services")
    assert (code, out) == (0, "")
    assert err == (
        "no member is a service; mark one with `kind = \"service\"` under [tool.orchestrator] "
        "in its pyproject.toml (members under services/ are services unless they say "
        "otherwise)\n")
    code, out, err = run("-w", str(root), "list", "--services", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_unknown_command_is_usage_error() -> None:
    code, _, _ = run("frobnicate")
    assert code == 2


# -- the installed executable --------------------------------------------------


def executable() -> str:
    found = shutil.which("orchestrator", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the orchestrator console script is not installed in this environment")
    return found


def test_executable_graph_on_example_workspace() -> None:
    proc = subprocess.run([executable(), "graph"], cwd=REPO / "services" / "orders",
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "orders [service] -> acme-common, acme-events" in proc.stdout


def test_executable_matrix_on_example_workspace() -> None:
    proc = subprocess.run([executable(), "matrix", "--all", "--format", "github"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    rows = json.loads(proc.stdout)["include"]
    assert sorted(r["service"] for r in rows) == ["gateway", "orders", "worker"]


def test_executable_error_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run([executable(), "list"], cwd=tmp_path, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: no workspace.yaml found in ")
    assert "Traceback" not in proc.stderr


HEAVY = ("networkx", "resolvelib", "docker", "httpx", "requests", "urllib3")


def modules_loaded_by(*args: str) -> set[str]:
    """The modules a successful ``orchestrator ARGS`` on the example workspace imports.

    Fails when the command itself fails: a command stopping early imports little and
    would pass any "imports stay light" check. The no-op fast path is off: this is what
    the command's normal path imports (tests/test_noop_fastpath.py checks the other)."""
    code = (
        "import sys\nfrom orchestrator.cli import main\n"
        f"try:\n    main({list(args)!r})\nexcept SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "print('\\nLOADED=' + ','.join(sorted(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=False,
                          env={**os.environ, "ORCHESTRATOR_NO_FAST_PATH": "1"})
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.splitlines()[-1].removeprefix("LOADED=").split(","))


@pytest.mark.parametrize("args", [["--help"], ["list"], ["check"]])
def test_startup_imports_stay_light(args: list[str]) -> None:
    assert modules_loaded_by(*args) & set(HEAVY) == set()


def test_list_of_static_versions_imports_no_build_machinery() -> None:
    """Only a member with a dynamic version makes `list` ask a build backend."""
    build = {"orchestrator.build", "orchestrator.venv", "virtualenv"}
    assert modules_loaded_by("list") & build == set()


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ("[.]", "workspace.yaml: members[0]: '.' makes the workspace root a member, but it has "
         "no pyproject.toml\nhint: add a pyproject.toml with a [project] table next to "
         "workspace.yaml, or remove '.' from members\n"),
        ("['./']", "workspace.yaml: members[0]: './' makes the workspace root a member, but it "
         "has no pyproject.toml\nhint: add a pyproject.toml with a [project] table next to "
         "workspace.yaml, or remove './' from members\n"),
        ("[libs/*, '']", "workspace.yaml: members[1]: expected a directory glob such as "
         "services/*, got string ''\n"),
        ("['libs/a**']", "workspace.yaml: members[0]: 'libs/a**' is not a valid glob: `**` must "
         "be a whole path component\nhint: write libs/** (every project below libs) or "
         "libs/*\n"),
    ],
)
def test_bad_layouts_exit_1_with_one_message(make_workspace: MakeWorkspace, members: str,
                                             expected: str) -> None:
    root = make_workspace({"libs/a": pyproject("a")},
                          manifest=f"version: 1\nname: d\nmembers: {members}\n")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    for command in ("list", "lock"):
        assert run("-w", str(root), command) == (1, "", f"error: {root}/{expected}"), command
    code, _summary, err = run("-w", str(root), "check")
    assert (code, err) == (1, f"error: {root}/{expected}")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written


# -- lazy command registration --------------------------------------------------

CLI_MODULES = ("adopt", "plan", "locking", "edit", "env", "images", "publish", "governance",
               "ci")


def test_the_lazy_registry_names_every_command_of_every_module() -> None:
    import importlib

    from orchestrator.cli import COMMANDS

    defined: dict[str, str] = {}
    for module in CLI_MODULES:
        loaded = importlib.import_module(f"orchestrator.cli.{module}")
        for command in loaded.COMMANDS:
            attribute = next(k for k, v in vars(loaded).items() if v is command)
            assert command.name is not None
            defined[command.name] = f"orchestrator.cli.{module}:{attribute}"
    assert defined == COMMANDS


def test_lock_check_imports_no_other_command_module() -> None:
    loaded = {m for m in modules_loaded_by("lock", "--check") if m.startswith("orchestrator.cli.")}
    assert loaded == {"orchestrator.cli.app", "orchestrator.cli.locking"}


def test_help_lists_every_command_and_each_command_has_its_help() -> None:
    from orchestrator.cli import COMMANDS

    code, out, _ = run("--help")
    assert code == 0
    listed = [line.split()[0] for line in out.split("Commands:\n", 1)[1].splitlines() if line]
    assert listed == sorted(COMMANDS)
    for name in COMMANDS:
        code, out, err = run(name, "--help")
        assert code == 0, err
        assert out.startswith(f"Usage: cli {name} "), out  # (CliRunner names it cli)
    code, out, _ = run("cache", "--help")
    assert "prune" in out


def test_an_unknown_command_suggests_a_lazy_one() -> None:
    code, _out, err = run("lok")
    assert code == 2
    assert "No such command 'lok'." in err
    if "Did you mean" in err:  # click >= 8.4 suggests
        assert "Did you mean 'lock'?" in err


def test_shell_completion_sees_every_command() -> None:
    env = {**os.environ, "_ORCHESTRATOR_COMPLETE": "bash_complete",
           "COMP_WORDS": "orchestrator s", "COMP_CWORD": "1"}
    proc = subprocess.run([sys.executable, "-c", "from orchestrator.cli import main; main()"],
                          env=env, capture_output=True, text=True, check=False)
    assert proc.stdout.split() == ["plain,sbom", "plain,show", "plain,sync"], proc
    env["COMP_WORDS"] = "orchestrator lock --ch"
    env["COMP_CWORD"] = "2"
    proc = subprocess.run([sys.executable, "-c", "from orchestrator.cli import main; main()"],
                          env=env, capture_output=True, text=True, check=False)
    assert proc.stdout.split() == ["plain,--check"], proc
