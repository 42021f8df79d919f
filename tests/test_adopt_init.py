"""`orchestrator init` on realistic monorepos, then `check` and `lock`, offline.

Each fixture under tests/fixtures/monorepos/ (Poetry, uv workspace, pdm,
plain PEP 621) is copied into a fresh git repository, adopted with `init`,
checked, and locked against two local index servers: "public" stands in for
PyPI and "private" for the repositories' own indexes (Poetry's internal and
corp sources, uv's explicit internal index, pdm's private source). A package
pinned to a private index is also served, in a newer version, on the public
one: the lock proves the pin by taking the private one.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from orchestrator.adopt.validate import project_metadata
from orchestrator.cli import cli
from tests.support.git import git
from tests.support.indexserver import IndexServer

FIXTURES = Path(__file__).parent / "fixtures" / "monorepos"

Releases = dict[str, list[tuple[str, list[str]]]]  # name: [(version, requires_dist)]
PUBLIC: Releases = {
    "attrs": [("23.2.0", []), ("24.2.0", [])],
    "tomli": [("2.0.1", [])],
    "typing-extensions": [("4.12.2", [])],
    "psycopg": [("3.1.18", ["psycopg-binary==3.1.18; extra == 'binary'"])],
    "psycopg-binary": [("3.1.18", [])],
    "msgpack": [("1.0.8", []), ("2.0.0", [])],
    "protobuf": [("4.25.3", []), ("5.27.0", [])],
    "fastapi": [("0.110.3", []), ("0.111.0", [])],
    "uvicorn": [("0.29.0", ["h11>=0.8", "websockets>=10.4; extra == 'standard'"])],
    "h11": [("0.14.0", [])],
    "websockets": [("12.0", [])],
    "uvloop": [("0.19.0", [])],
    "click": [("8.1.7", []), ("8.2.0", [])],
    "requests": [("2.32.3", ["idna>=2.5"])],
    "idna": [("3.7", [])],
    "numpy": [("1.26.4", []), ("2.0.0", [])],
    "pytest": [("8.3.0", ["pluggy<2"])],
    "pluggy": [("1.5.0", [])],
    "httpx": [("0.27.0", ["idna>=3"])],
    "ruff": [("0.5.0", [])],
    "sqlalchemy": [("2.0.30", []), ("2.1.0", [])],
    "babel": [("2.14.0", [])],
    # decoys: a pinned package must not come from here
    "corp-auth": [("1.9.0", [])],
    "internal-sdk": [("1.5.0", [])],
    "finance-rates": [("1.9.0", [])],
}
PRIVATE: Releases = {
    "shop-telemetry": [("0.4.2", [])],
    "corp-auth": [("1.2.5", [])],
    "internal-sdk": [("1.0.1", [])],
    "finance-rates": [("1.0.3", [])],
}


@dataclass(frozen=True)
class Indexes:
    public: IndexServer
    private: IndexServer


@pytest.fixture
def indexes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Indexes]:
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    with IndexServer(tmp_path / "public") as public, IndexServer(tmp_path / "private") as private:
        for server, table in ((public, PUBLIC), (private, PRIVATE)):
            for name, releases in table.items():
                for version, requires in releases:
                    server.add_wheel(name, version, requires_dist=requires)
        yield Indexes(public, private)


def repository(tmp_path: Path, fixture: str) -> Path:
    """A copy of a fixture monorepo as a committed git repository."""
    root = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "before adoption")
    return root


def orch(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def tree(root: Path) -> dict[str, str]:
    """Every file under *root* (but .git) and its sha256: what "nothing written" compares."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts}


def locked(root: Path, member: str) -> dict[str, tuple[str, str | None]]:
    """name -> (version, index URL) of a member's pylock.toml."""
    data = tomllib.loads((root / member / "pylock.toml").read_text())
    return {p["name"]: (p["version"], p.get("index")) for p in data["packages"]}


# (fixture, extra init arguments naming private indexes, expected members in workspace.yaml)
CASES = {
    "poetry": (["--index", "internal=PRIVATE", "--index", "corp=PRIVATE"],
               ["libs/*", "services/*"]),
    "uv": (["--index", "internal=PRIVATE"], ["apps/*", "libs/*"]),
    "pdm": (["--index", "private=PRIVATE"], ["packages/*"]),
    "plain": ([], ["packages/*", "services/web"]),
}


def adopt(tmp_path: Path, indexes: Indexes, fixture: str) -> Path:
    root = repository(tmp_path, fixture)
    extra, _ = CASES[fixture]
    args = [a.replace("PRIVATE", indexes.private.url) for a in extra]
    code, out, err = orch("init", str(root), "--index", f"pypi={indexes.public.url}", *args)
    assert code == 0, err
    assert out.endswith("pyproject.toml file(s)\n")
    return root


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_init_then_check_then_lock(tmp_path: Path, indexes: Indexes, fixture: str) -> None:
    root = adopt(tmp_path, indexes, fixture)
    manifest = yaml.safe_load((root / "workspace.yaml").read_text())
    assert manifest["members"] == CASES[fixture][1]
    assert manifest["indexes"][0] == {"name": "pypi", "url": indexes.public.url}
    code, out, err = orch("-w", str(root), "check")
    assert code == 0, out + err
    code, out, err = orch("-w", str(root), "lock")
    assert code == 0, err
    code, out, err = orch("-w", str(root), "lock", "--check")
    assert code == 0, err
    for pyproject in root.rglob("pyproject.toml"):
        data = tomllib.loads(pyproject.read_text())
        if "project" in data:
            project_metadata(data["project"], str(pyproject))


def test_poetry_monorepo_locks_what_its_constraints_allowed(tmp_path: Path,
                                                            indexes: Indexes) -> None:
    root = adopt(tmp_path, indexes, "poetry")
    code, _, err = orch("-w", str(root), "lock")
    assert code == 0, err
    common = locked(root, "libs/common")
    assert common["attrs"][0] == "23.2.0"  # ^23.1 keeps 24 out
    assert common["tomli"][0] == "2.0.1"  # python < 3.11 holds on the 3.10 target
    assert common["shop-telemetry"] == ("0.4.2", indexes.private.url)
    events = locked(root, "libs/events")
    assert (events["msgpack"][0], events["protobuf"][0]) == ("1.0.8", "4.25.3")
    api = locked(root, "services/api")
    assert api["corp-auth"] == ("1.2.5", indexes.private.url)  # pinned to corp, not public
    assert api["fastapi"][0] == "0.110.3"
    assert {"websockets", "psycopg", "psycopg-binary", "uvloop", "ruff"} <= set(api)
    worker = locked(root, "services/worker")
    assert worker["numpy"][0] == "1.26.4"  # the python < 3.12 entry of the list
    assert worker["click"][0] == "8.1.7"  # ~8.1
    code, out, _ = orch("-w", str(root), "list")
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["common", "library"], ["events", "library"], ["api", "service"],
        ["worker", "service"]]


def test_uv_workspace_keeps_its_layout_and_pins(tmp_path: Path, indexes: Indexes) -> None:
    root = adopt(tmp_path, indexes, "uv")
    manifest = yaml.safe_load((root / "workspace.yaml").read_text())
    assert (manifest["name"], manifest["python"], manifest["exclude"]) == (
        "acme-platform", "3.11", ["libs/legacy"])
    code, _, err = orch("-w", str(root), "lock")
    assert code == 0, err
    gateway = locked(root, "apps/gateway")
    assert gateway["internal-sdk"] == ("1.0.1", indexes.private.url)
    assert gateway["sqlalchemy"][0] == "2.0.30"
    jobs = tomllib.loads((root / "apps/jobs/pyproject.toml").read_text())
    assert jobs["tool"]["orchestrator"] == {"kind": "service",
                                            "command": ["python", "-m", "acme.jobs"]}
    db = tomllib.loads((root / "libs/db/pyproject.toml").read_text())
    assert db["dependency-groups"] == {"dev": ["pytest>=8.0"]}
    assert db["tool"]["uv"] == {"sources": {"acme-core": {"workspace": True}}}
    code, out, _ = orch("-w", str(root), "list", "--services")
    assert [line.split()[0] for line in out.splitlines()] == ["acme-gateway", "acme-jobs"]


def test_pdm_monorepo_references_become_names(tmp_path: Path, indexes: Indexes) -> None:
    root = adopt(tmp_path, indexes, "pdm")
    billing = tomllib.loads((root / "packages/billing/pyproject.toml").read_text())
    assert billing["project"]["dependencies"] == ["ledger[money]", "click>=8.1",
                                                  "finance-rates>=1.0"]
    assert billing["dependency-groups"] == {"test": ["pytest>=8.0", "ledger"]}
    assert billing["tool"]["orchestrator"]["sources"] == {"finance-rates": "private"}
    code, _, err = orch("-w", str(root), "lock")
    assert code == 0, err
    assert locked(root, "packages/billing")["finance-rates"] == ("1.0.3", indexes.private.url)


def test_plain_monorepo_gets_only_a_manifest(tmp_path: Path, indexes: Indexes) -> None:
    root = repository(tmp_path, "plain")
    before = tree(root)
    code, out, err = orch("init", str(root), "--index", f"pypi={indexes.public.url}")
    assert code == 0, err
    after = tree(root)
    assert set(after) - set(before) == {"workspace.yaml"}
    assert {k: v for k, v in after.items() if k != "workspace.yaml"} == before
    assert "  services/web    web (plain, unchanged)  service: has [project.scripts] 'web'" \
        in out.splitlines()
    assert "python: 3.10 (the lowest of 3.9-3.14 every member admits (packages/alpha: " \
        ">=3.9; packages/beta: >=3.10; services/web: >=3.10))" in out.splitlines()
    manifest = yaml.safe_load((root / "workspace.yaml").read_text())
    assert manifest["exclude"] == ["packages/docs"]


# -- discovery ---------------------------------------------------------------------------


def test_venvs_builds_and_git_ignored_projects_are_not_members(tmp_path: Path) -> None:
    root = repository(tmp_path, "plain")
    stray = '[project]\nname = "{}"\nversion = "1"\ndependencies = ["x"]\n'
    for rel in ("node_modules/pkg", "packages/alpha/build/lib", "dist/old", ".tox/py311",
                "venv/lib/site", "generated/client"):
        (root / rel).mkdir(parents=True)
        (root / rel / "pyproject.toml").write_text(stray.format(rel.replace("/", "-")))
    (root / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / ".gitignore").write_text("generated/\n")
    code, out, err = orch("init", str(root), "--dry-run")
    assert code == 0, err
    assert out.splitlines()[0].endswith(": plain PEP 621 projects, 3 member(s)")
    skipped = [line for line in out.splitlines() if line.startswith("  skipped ")]
    assert skipped == ["  skipped .: no [project] or [tool.poetry] name",
                       "  skipped generated/client: ignored by git"]


def test_root_project_with_dependencies_is_a_member(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "libs" / "a").mkdir(parents=True)
    (root / "libs" / "b").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "1.0"\ndependencies = ["a", "b"]\n'
        '[project.scripts]\napp = "app:main"\n')
    for name in ("a", "b"):
        (root / "libs" / name / "pyproject.toml").write_text(
            f'[project]\nname = "{name}"\nversion = "1.0"\n')
    code, out, err = orch("init", str(root), "--dry-run")
    assert code == 0, err
    manifest = yaml.safe_load(out.split("--- workspace.yaml (new)\n")[1].split("\n\n")[0])
    assert manifest["members"] == [".", "libs/*"]
    assert manifest["name"] == "app"
    assert "  .       app (plain, converted)  service: has [project.scripts] 'app'" \
        in out.splitlines()
    code, _, err = orch("init", str(root))
    assert code == 0, err
    code, out, err = orch("-w", str(root), "check")
    assert code == 0, out + err
    assert "    app [service] .: 2 dependencies; lock stale" in out.splitlines()


# -- writing: dry run, re-run, force, errors -------------------------------------------------


def test_dry_run_writes_nothing_and_prints_everything(tmp_path: Path) -> None:
    root = repository(tmp_path, "poetry")
    before = tree(root)
    code, out, err = orch("init", str(root), "--dry-run")
    assert code == 0, err
    assert tree(root) == before
    assert "--- workspace.yaml (new)\n# Written by `orchestrator init` from a Poetry " \
        "monorepo" in out
    for member in ("libs/common", "libs/events", "services/api", "services/worker"):
        assert f"--- a/{member}/pyproject.toml\n+++ b/{member}/pyproject.toml\n" in out
    assert "+    \"attrs>=23.1,<24.0\",\n" in out
    assert out.endswith("dry run: nothing written (4 pyproject.toml file(s) and "
                        "workspace.yaml would be)\n")


def test_running_init_again_needs_force(tmp_path: Path) -> None:
    root = repository(tmp_path, "poetry")
    code, _, err = orch("init", str(root))
    assert code == 0, err
    after_first = tree(root)
    code, out, err = orch("init", str(root))
    assert code == 1
    assert err == (f"error: {root / 'workspace.yaml'} already exists: this directory already "
                   "is a workspace\nhint: edit it by hand, or pass --force to write it again "
                   "from the pyproject.toml files\n")
    assert tree(root) == after_first
    code, out, err = orch("init", str(root), "--force", "--python", "3.12")
    assert code == 0, err
    assert yaml.safe_load((root / "workspace.yaml").read_text())["python"] == "3.12"
    assert "(poetry" not in out  # the pyprojects are PEP 621 now: nothing left to convert
    assert tree(root)["libs/common/pyproject.toml"] == after_first["libs/common/pyproject.toml"]


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).mkdir(parents=True, exist_ok=True)
    (root / rel / "pyproject.toml").write_text(text)


POETRY_LIB = '[tool.poetry]\nname = "lib"\nversion = "1.0"\n\n[tool.poetry.dependencies]\n'


@pytest.mark.parametrize(("files", "args", "message"), [
    ({"libs/lib": POETRY_LIB + 'foo = ">=1,<2 || >=3"\n'}, [],
     "libs/lib/pyproject.toml: tool.poetry.dependencies.foo: the constraint on 'foo' "
     "(member 'lib'): '>=1,<2 || >=3' is a union ('||'), which one PEP 440 specifier cannot "
     "express"),
    ({"libs/lib": POETRY_LIB + "foo = 3\n"}, [],  # a converter's error without its own hint
     "libs/lib/pyproject.toml: tool.poetry.dependencies.foo: expected a version string or a "
     'table such as {version = "^1.2"}'),
    ({"libs/lib": POETRY_LIB + 'foo = {git = "https://example.com/foo.git"}\n'}, [],
     "libs/lib/pyproject.toml: tool.poetry.dependencies.foo: 'foo' is a git dependency "
     "('https://example.com/foo.git'); direct references are not supported yet"),
    ({"libs/lib": POETRY_LIB + 'foo = {path = "../../vendor/foo"}\n'}, [],
     "libs/lib/pyproject.toml: tool.poetry.dependencies.foo: 'foo' is a path dependency on "
     "'../../vendor/foo', which is not a workspace member; direct references are not "
     "supported yet"),
    ({"libs/lib": POETRY_LIB + 'foo = {version = "^1", source = "nowhere"}\n'}, [],
     "libs/lib/pyproject.toml: tool.orchestrator.sources: 'foo' names the source 'nowhere', "
     "which no pyproject.toml declares"),
    ({"libs/lib": POETRY_LIB}, ["--from", "plain"],
     "libs/lib/pyproject.toml: project: missing; every member needs a PEP 621 [project] "
     "table"),
    ({"libs/lib": "[project\nname = 'x'\n"}, [],
     "libs/lib/pyproject.toml: invalid TOML (Expected ']' at the end of a table declaration "
     "(at line 1, column 9))"),
    ({"libs/a": '[project]\nname = "Same"\nversion = "1"\n',
      "libs/b": '[project]\nname = "same"\nversion = "1"\n'}, [],
     "two members are named 'same': libs/a and libs/b"),
    ({"libs/a": '[project]\nname = "a"\nversion = "1"\nrequires-python = "<3.9"\n'}, [],
     "no Python from 3.9 to 3.14 satisfies every member's requires-python (libs/a: <3.9)"),
    ({"libs/a": '[project]\nname = "a"\nversion = "1"\nrequires-python = ">=3.12"\n'},
     ["--python", "3.11"],
     "--python 3.11 is excluded by the requires-python of libs/a (>=3.12)"),
    ({"libs/a": '[project]\nname = "a"\nversion = "1"\n'}, ["--python", "3.1x"],
     "--python '3.1x' is not a CPython version like 3.11"),
    ({"libs/a": '[project]\nname = "a"\nversion = "not a version"\n'}, [],
     "libs/a/pyproject.toml: [project] is not valid core metadata ('not a version' is "
     "invalid for 'version')"),
    ({"docs": "[tool.black]\nline-length = 100\n"}, [],
     "no project found under ROOT: no pyproject.toml there has a [project] or [tool.poetry] "
     "name (skipped: docs: no [project] or [tool.poetry] name)"),
    ({"libs/lib": POETRY_LIB + '[[tool.poetry.source]]\nname = "corp"\n'
      'url = "https://me:pw@corp.example/simple"\n'}, [],
     "the index 'corp' has credentials in its URL; credentials never live in workspace.yaml"),
])
def test_bad_input_is_one_clear_error_and_nothing_is_written(
        tmp_path: Path, files: dict[str, str], args: list[str], message: str) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    for rel, text in files.items():
        write(root, rel, text)
    before = tree(root)
    code, out, err = orch("init", str(root), *args)
    assert code == 1, out + err
    lines = err.splitlines()
    assert lines[0] == "error: " + message.replace("ROOT", str(root))
    assert len(lines) == 2 and lines[1].startswith("hint: ")  # every error says what to do
    assert "Traceback" not in err
    assert tree(root) == before


def test_a_failed_write_puts_back_what_it_replaced(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator import atomic
    from orchestrator.adopt import plan as plan_module

    root = repository(tmp_path, "poetry")
    before = tree(root)
    real = atomic.write_text
    calls = []

    def failing(path: Path, text: str) -> None:
        calls.append(path)
        if path.name == "workspace.yaml":
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(plan_module, "write_text", failing)
    plan = plan_module.plan_init(root, plan_module.InitOptions())
    with pytest.raises(OSError):
        plan_module.write_plan(plan)
    assert len(calls) == 5 + 4  # 4 pyprojects and the manifest, then the 4 put back
    assert tree(root) == before


def test_the_readme_before_and_after_is_what_init_writes(tmp_path: Path) -> None:
    import re

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    match = re.search(r"A Poetry member before:\n\n```toml\n(.*?)```\n\nand after "
                      r"`orchestrator init`:\n\n```toml\n(.*?)```", readme, re.DOTALL)
    assert match is not None
    root = tmp_path / "repo"
    write(root, "services/api", match[1])
    write(root, "libs/events", '[project]\nname = "events"\nversion = "1.0"\n')
    code, _, err = orch("init", str(root))
    assert code == 0, err
    assert (root / "services/api/pyproject.toml").read_text() == match[2]


def test_uv_namespace_members_import_after_sync(tmp_path: Path, indexes: Indexes) -> None:
    """acme.jobs and acme.core live in src/acme without an __init__.py: both import."""
    root = adopt(tmp_path, indexes, "uv")
    code, _, err = orch("-w", str(root), "sync", "acme-jobs")
    assert code == 0, err
    python = root / "apps/jobs/.venv/bin/python"
    proc = subprocess.run([str(python), "-c", "import acme.core, acme.jobs; print('ok')"],
                          capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == "ok", proc.stderr
    proc = subprocess.run([str(python), "-m", "acme.jobs"], capture_output=True, text=True,
                          check=False)
    assert proc.stdout.strip() == "jobs", proc.stderr
