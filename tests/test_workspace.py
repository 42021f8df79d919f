from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from orchestrator.errors import WorkspaceError
from orchestrator.workspace import Inspection, find_manifest, inspect_workspace, load_workspace
from tests.conftest import MANIFEST, MakeWorkspace, pyproject


def error(root: Path) -> WorkspaceError:
    with pytest.raises(WorkspaceError) as info:
        load_workspace(root)
    return info.value


def error_of(root: Path) -> str:
    return str(error(root))


def fields(exc: WorkspaceError) -> tuple[Path | None, str | None, str | None, str | None]:
    return exc.file, exc.key, exc.expected, exc.actual


def test_loads_members_and_defaults(shop: Path) -> None:
    ws = load_workspace(shop)
    assert [m.name for m in ws.members] == ["api", "solo", "web", "common"]
    assert ws.python == "3.11"
    assert ws.platforms == ("linux/amd64",)
    assert ws.indexes[0].url == "https://pypi.org/simple"
    assert ws.image.base == "python:3.11-slim"
    by = {m.name: m for m in ws.members}
    assert by["api"].kind == "service"
    assert by["solo"].kind == "service"  # inferred from services/
    assert by["common"].kind == "library"
    assert by["web"].groups == {"dev": ("common", "pytest")}


def test_finds_manifest_walking_up(shop: Path) -> None:
    deep = shop / "services" / "api" / "src" / "pkg"
    deep.mkdir(parents=True)
    assert find_manifest(deep) == shop / "workspace.yaml"


def test_no_manifest(tmp_path: Path) -> None:
    assert error_of(tmp_path) == (
        f"no workspace.yaml found in {tmp_path} or any parent directory\n"
        "hint: run inside a workspace, pass --workspace PATH, or create workspace.yaml"
    )


def test_include_group_and_normalized_names(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/My_Lib": """
[project]
name = "My_Lib"
version = "1"
[dependency-groups]
Test = ["pytest"]
dev = [{include-group = "test"}, "ruff"]
"""})
    member = load_workspace(root).members[0]
    assert member.name == "my-lib"
    assert member.display_name == "My_Lib"
    assert member.groups == {"test": ("pytest",), "dev": ("pytest", "ruff")}


def test_include_group_cycle(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": """
[project]
name = "a"
[dependency-groups]
x = [{include-group = "y"}]
y = [{include-group = "x"}]
"""})
    assert error_of(root) == (
        "libs/a/pyproject.toml: dependency-groups.x: include-group cycle: x -> y -> x"
    )


def test_manifest_not_a_mapping(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({}, manifest="- just\n- a list\n")
    assert error_of(root) == (
        f"{root}/workspace.yaml: expected a mapping of keys (version, name, members, ...), "
        "got a list\nhint: see the workspace.yaml reference in README.md"
    )


def test_malformed_yaml(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({}, manifest="version: 1\nname: [unclosed\n")
    message = error_of(root)
    assert message.startswith(f"{root}/workspace.yaml: line 3, column 1: invalid YAML")
    assert message.endswith("hint: fix the syntax at that position")


def test_unknown_key_suggests(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({}, manifest=MANIFEST + "platfroms: [linux/amd64]\n")
    assert error_of(root) == (
        f"{root}/workspace.yaml: platfroms: unknown key\nhint: did you mean 'platforms'?"
    )


@pytest.mark.parametrize(
    ("line", "expected", "data"),
    [
        ("python: 3.10", "python: got the number 3.1; quote it, e.g. python: \"3.11\"",
         ("python", None, "the number 3.1")),
        ("python: \"2.7\"", "python: expected a CPython version like \"3.11\", "
         "got string '2.7'", ("python", 'a CPython version like "3.11"', "string '2.7'")),
        ("platforms: [windows/amd64]", "platforms[0]: unknown platform 'windows/amd64'; "
         "expected one of linux/amd64, linux/arm64",
         ("platforms[0]", "one of linux/amd64, linux/arm64", "'windows/amd64'")),
        ("version: 2", "version: expected 1, got 2\n"
         "hint: this orchestrator reads workspace.yaml version 1", ("version", "1", "2")),
        ("members: services/*", "members: expected a non-empty list of strings, got "
         "string 'services/*'", ("members", "a non-empty list of strings", "string 'services/*'")),
    ],
)
def test_bad_values(
    make_workspace: MakeWorkspace, line: str, expected: str, data: tuple[str, str | None, str]
) -> None:
    key = line.split(":")[0]
    manifest = "\n".join(ln for ln in MANIFEST.splitlines() if not ln.startswith(key + ":"))
    root = make_workspace({}, manifest=manifest + "\n" + line + "\n")
    exc = error(root)
    assert str(exc) == f"{root}/workspace.yaml: {expected}"
    assert fields(exc) == (root / "workspace.yaml", *data)


def test_missing_key_has_no_actual_value(make_workspace: MakeWorkspace) -> None:
    manifest = "\n".join(ln for ln in MANIFEST.splitlines() if not ln.startswith("name:"))
    root = make_workspace({}, manifest=manifest)
    exc = error(root)
    assert str(exc) == f"{root}/workspace.yaml: name: missing; expected a string"
    assert fields(exc) == (root / "workspace.yaml", "name", "a string", None)


def test_member_without_pyproject(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("a")})
    (root / "services" / "empty").mkdir(parents=True)
    exc = error(root)
    assert str(exc) == (
        f"{root}/workspace.yaml: members[0]: member directory services/empty has no "
        "pyproject.toml\nhint: add services/empty/pyproject.toml, or add services/empty to "
        "`exclude`"
    )
    assert fields(exc) == (root / "workspace.yaml", "members[0]", None, None)


def test_exclude_skips_directory(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("a")}, manifest=MANIFEST + "exclude: [services/x]\n")
    (root / "services" / "x").mkdir(parents=True)
    assert [m.name for m in load_workspace(root).members] == ["a"]


def test_duplicate_member_names(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("shared"), "services/b": pyproject("Shared")})
    exc = error(root)
    assert str(exc) == (
        "two members are named 'shared': services/b and libs/a\n"
        "hint: rename one of them in its pyproject.toml [project].name"
    )
    assert (exc.member, exc.file, exc.key) == ("shared", root / "libs/a/pyproject.toml",
                                               "project.name")


def test_member_outside_root(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({}, manifest=MANIFEST.replace("[services/*, libs/*]", "[../other]"))
    assert error_of(root) == (
        f"{root}/workspace.yaml: members[0]: '../other' points outside the workspace root\n"
        "hint: members must live under the directory holding workspace.yaml"
    )


def test_symlink_outside_root(make_workspace: MakeWorkspace, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "pyproject.toml").write_text(pyproject("x"))
    root = make_workspace({"libs/a": pyproject("a")})
    (root / "services").mkdir()
    (root / "services" / "link").symlink_to(outside)
    message = error_of(root)
    assert message == (
        f"{root}/workspace.yaml: members[0]: {root}/services/link resolves outside the "
        f"workspace root ({outside})"
    )


def test_invalid_requirement(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("a", ["requests>=>2"])})
    exc = error(root)
    assert str(exc).startswith(
        "libs/a/pyproject.toml: project.dependencies[0]: invalid requirement 'requests>=>2': "
    )
    assert str(exc).endswith('hint: write a PEP 508 requirement such as "httpx>=0.27"')
    file = root / "libs" / "a" / "pyproject.toml"
    assert fields(exc) == (file, "project.dependencies[0]", None, "'requests>=>2'")


def test_invalid_group_requirement(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("a", groups={"dev": ["ok", "bad req!"]})})
    assert error_of(root).startswith(
        "libs/a/pyproject.toml: dependency-groups.dev[1]: invalid requirement 'bad req!': "
    )


def test_missing_project_table(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": "[tool.x]\ny = 1\n"})
    exc = error(root)
    assert str(exc) == (
        "libs/a/pyproject.toml: project: missing; every member needs a PEP 621 [project] table\n"
        "hint: add a [project] table with name, version and dependencies"
    )
    assert fields(exc) == (root / "libs" / "a" / "pyproject.toml", "project", None, None)


def test_bad_toml(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": "[project\n"})
    assert error_of(root).startswith("libs/a/pyproject.toml: invalid TOML (")


def test_tool_options(make_workspace: MakeWorkspace) -> None:
    tool = ('kind = "service"\ncommand = "app --port 80"\nports = [80]\n'
            'env = {A = "1"}\nsources = {Private_Pkg = "pypi"}\nhealth = "/healthz"')
    root = make_workspace({"services/s": pyproject("s", tool=tool)})
    options = load_workspace(root).members[0].options
    assert options.command == ("app", "--port", "80")
    assert options.ports == (80,)
    assert options.env == {"A": "1"}
    assert options.sources == {"private-pkg": "pypi"}
    assert options.health == "/healthz"


@pytest.mark.parametrize(
    ("tool", "expected", "data"),
    [
        ('kind = "daemon"', "tool.orchestrator.kind: expected \"service\" or \"library\", "
         "got string 'daemon'",
         ("tool.orchestrator.kind", '"service" or "library"', "string 'daemon'")),
        ("ports = [70000]", "tool.orchestrator.ports[0]: expected a port number 1-65535, "
         "got number 70000",
         ("tool.orchestrator.ports[0]", "a port number 1-65535", "number 70000")),
        ('sources = {x = "nope"}', "tool.orchestrator.sources.x: no index named 'nope' in "
         "workspace.yaml (known: pypi)", ("tool.orchestrator.sources.x", None, "'nope'")),
        ('comand = "x"', "tool.orchestrator.comand: unknown key\nhint: did you mean 'command'?",
         ("tool.orchestrator.comand", None, None)),
    ],
)
def test_bad_tool_options(
    make_workspace: MakeWorkspace, tool: str, expected: str,
    data: tuple[str, str | None, str | None],
) -> None:
    root = make_workspace({"services/s": pyproject("s", tool=tool)})
    exc = error(root)
    assert str(exc) == f"services/s/pyproject.toml: {expected}"
    assert fields(exc) == (root / "services" / "s" / "pyproject.toml", *data)


def test_index_credentials_rejected(make_workspace: MakeWorkspace) -> None:
    manifest = MANIFEST + "indexes:\n  - {name: corp, url: 'https://u:p@corp.example/simple'}\n"
    root = make_workspace({}, manifest=manifest)
    exc = error(root)
    assert str(exc) == (
        f"{root}/workspace.yaml: indexes[0].url: holds credentials; credentials never live in "
        "workspace.yaml\nhint: set ORCHESTRATOR_INDEX_CORP_USERNAME and _PASSWORD, or use "
        "~/.netrc"
    )
    assert (exc.file, exc.key) == (root / "workspace.yaml", "indexes[0].url")


def test_example_workspace_loads() -> None:
    ws = load_workspace(Path(__file__).parents[1])
    assert {m.name for m in ws.services} == {"gateway", "orders", "worker"}
    for service in ws.services:
        assert service.scripts, f"{service.name} has no [project.scripts]"
        assert "test" in service.groups


# -- real layouts: the root as a member, globs pathlib trips over ---------------------------


ROOT_PROJECT = pyproject("monorepo", ["common"])


@pytest.mark.parametrize("pattern", [".", "./", "'.//'"])
def test_the_root_as_a_member(make_workspace: MakeWorkspace, pattern: str) -> None:
    root = make_workspace({"libs/common": pyproject("common")},
                          manifest=MANIFEST.replace("[services/*, libs/*]",
                                                    f"[{pattern}, libs/*]"))
    (root / "pyproject.toml").write_text(ROOT_PROJECT)
    ws = load_workspace(root)
    assert [(m.name, m.relpath, m.path) for m in ws.members] == [
        ("monorepo", ".", root.resolve()), ("common", "libs/common", root / "libs/common")]
    assert ws.members[0].kind == "library"


def test_a_root_member_needs_a_project_table(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({}, manifest=MANIFEST.replace("[services/*, libs/*]", "[.]"))
    (root / "pyproject.toml").write_text("[tool.uv.workspace]\nmembers = [\"libs/*\"]\n")
    exc = error(root)
    assert str(exc) == (
        "pyproject.toml: project: missing; every member needs a PEP 621 [project] table\n"
        "hint: add a [project] table with name, version and dependencies")
    assert (exc.file, exc.key) == (root / "pyproject.toml", "project")


@pytest.mark.parametrize(
    ("pattern", "expected", "hint"),
    [
        ("'libs/**foo'", "'libs/**foo' is not a valid glob: `**` must be a whole path component",
         "write libs/** (every project below libs) or libs/*"),
        ("'/abs/*'", "'/abs/*' points outside the workspace root",
         "members must live under the directory holding workspace.yaml"),
        ("'libs/../../x'", "'libs/../../x' points outside the workspace root",
         "members must live under the directory holding workspace.yaml"),
    ],
)
def test_bad_member_globs_name_their_entry(make_workspace: MakeWorkspace, pattern: str,
                                           expected: str, hint: str) -> None:
    root = make_workspace({"libs/a": pyproject("a")},
                          manifest=MANIFEST.replace("[services/*, libs/*]",
                                                    f"[libs/*, {pattern}]"))
    exc = error(root)
    assert str(exc) == f"{root}/workspace.yaml: members[1]: {expected}\nhint: {hint}"
    assert (exc.file, exc.key) == (root / "workspace.yaml", "members[1]")


@pytest.mark.parametrize("item", ["''", "'  '", "7"])
def test_an_empty_or_non_string_glob(make_workspace: MakeWorkspace, item: str) -> None:
    manifest = MANIFEST.replace("[services/*, libs/*]", f"[libs/*, {item}]")
    root = make_workspace({}, manifest=manifest)
    exc = error(root)
    shown = {"''": "string ''", "'  '": "string '  '", "7": "number 7"}[item]
    assert str(exc) == (f"{root}/workspace.yaml: members[1]: expected a directory glob such as "
                        f"services/*, got {shown}")


def test_a_recursive_glob_takes_every_project_below(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("a"), "libs/group/b": pyproject("b")},
                          manifest=MANIFEST.replace("[services/*, libs/*]", "[libs/**]"))
    (root / "libs/a/src/a").mkdir(parents=True)  # no pyproject.toml: not a member, no error
    assert [m.relpath for m in load_workspace(root).members] == ["libs/a", "libs/group/b"]


def test_member_globs_are_normalized(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": pyproject("a")},
                          manifest=MANIFEST.replace("[services/*, libs/*]",
                                                    "['./libs/*/', 'libs//a']"))
    assert [m.relpath for m in load_workspace(root).members] == ["libs/a"]


# -- every member problem, collected -----------------------------------------------------------


def test_every_member_problem_is_collected(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({
        "libs/good": pyproject("good"),
        "libs/bad": pyproject("bad", ["requests ^2.31", "ok", "x>=>1"],
                              groups={"dev": ["pytest ~8.1"]}, tool='kind = "daemon"'),
        "libs/worse": "[project\n",
    })
    inspection = inspect_workspace(root)
    assert [m.name for m in inspection.workspace.members] == ["good"]
    assert inspection.broken == {"bad", "libs/worse"}
    assert [(p.key, p.member) for p in inspection.problems] == [
        ("project.dependencies[0]", "bad"), ("project.dependencies[2]", "bad"),
        ("dependency-groups.dev[0]", "bad"), ("tool.orchestrator.kind", "bad"),
        (None, None)]
    with pytest.raises(WorkspaceError) as info:
        load_workspace(root)
    assert info.value is not inspection.problems[0]  # a fresh load
    assert info.value.message == inspection.problems[0].message


@pytest.mark.parametrize(
    ("requirement", "pep508"),
    [
        ("requests ^2.31", "requests>=2.31,<3.0"),
        ("requests ~2.31", "requests>=2.31,<2.32"),
        ("requests (^1.2.3)", "requests>=1.2.3,<2.0.0"),
        ("attrs ^0.2.3", "attrs>=0.2.3,<0.3.0"),
        ("httpx[http2] ~1; python_version < '3.12'",
         "httpx[http2]>=1,<2; python_version < '3.12'"),
        ("click 8.1.7", "click==8.1.7"),
    ],
)
def test_poetry_syntax_in_project_gets_the_pep_508_form(
        make_workspace: MakeWorkspace, requirement: str, pep508: str) -> None:
    root = make_workspace({"libs/a": pyproject("a", [requirement])})
    exc = error(root)
    assert exc.message.startswith(
        f"libs/a/pyproject.toml: project.dependencies[0]: invalid requirement {requirement!r}: ")
    assert exc.hint == f"this is Poetry syntax; in PEP 508 it reads \"{pep508}\""
    assert (exc.key, exc.member, exc.actual) == ("project.dependencies[0]", "a", repr(requirement))


def test_poetry_requires_python_gets_the_pep_440_form(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": '[project]\nname = "a"\nrequires-python = "^3.11"\n'})
    exc = error(root)
    assert str(exc) == (
        "libs/a/pyproject.toml: project.requires-python: '^3.11' is not a valid version "
        "specifier\nhint: this is Poetry syntax; in PEP 440 it reads \">=3.11,<4.0\"")


def test_a_poetry_only_member_points_at_init(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/a": '[tool.poetry]\nname = "a"\nversion = "1.0"\n\n'
                           '[tool.poetry.dependencies]\npython = "^3.11"\n'})
    exc = error(root)
    assert str(exc) == (
        "libs/a/pyproject.toml: project: missing; every member needs a PEP 621 [project] table\n"
        "hint: this is a Poetry project: convert it with `orchestrator init --from poetry`")


def test_direct_references(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({
        "libs/common": pyproject("common"),
        "services/api": pyproject("api", ["common @ file:../../libs/common",
                                          "tool @ https://example.com/tool-1.0.tar.gz"]),
    })
    first, second = inspect_workspace(root).problems
    file = root / "services/api/pyproject.toml"
    assert str(first) == (
        "services/api/pyproject.toml: project.dependencies[0]: 'common @ file:../../libs/common' "
        "is a direct reference to the workspace member 'common'\n"
        "hint: write the bare member name \"common\": the workspace links its members itself")
    assert (first.file, first.key, first.member, first.package) == (
        file, "project.dependencies[0]", "api", "common")
    assert str(second) == (
        "services/api/pyproject.toml: project.dependencies[1]: direct references are not "
        "supported yet: 'tool @ https://example.com/tool-1.0.tar.gz'\n"
        "hint: depend on a release of 'tool' from one of the workspace's indexes instead")
    assert (second.key, second.package) == ("project.dependencies[1]", "tool")


POETRY_AND_PROJECT = """\
[project]
name = "api"
version = "1.0"
dependencies = ["httpx>=0.27"]

[dependency-groups]
test = ["pytest"]

[tool.poetry.dependencies]
python = "^3.11"
httpx = "^0.27"
pydantic = "^2.6"
Requests = {version = "^2.31", source = "corp"}

[tool.poetry.group.test.dependencies]
pytest = "^8"
pytest-cov = "*"
"""


def test_dependencies_only_poetry_reads_are_a_warning(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"services/api": POETRY_AND_PROJECT})
    ws = load_workspace(root)  # loads: a warning is no error
    assert ws.members[0].dependencies == ("httpx>=0.27",)
    file = root / "services/api/pyproject.toml"
    assert [(w.message, w.hint, w.file, w.key, w.member) for w in ws.warnings] == [
        ("services/api/pyproject.toml: tool.poetry.dependencies: Requests, pydantic not in "
         "[project].dependencies; ignored",
         "declare them in [project].dependencies (PEP 508), or convert the member with "
         "`orchestrator init --from poetry`", file, "tool.poetry.dependencies", "api"),
        ("services/api/pyproject.toml: tool.poetry.group.test.dependencies: pytest-cov not in "
         "[dependency-groups].test; ignored",
         "declare them in [dependency-groups].test (PEP 508), or convert the member with "
         "`orchestrator init --from poetry`", file, "tool.poetry.group.test.dependencies",
         "api"),
    ]


def test_dynamic_fields(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({
        "libs/a": '[project]\nname = "a"\ndynamic = ["version", "readme"]\n',
        "libs/b": '[project]\nname = "b"\nversion = "1.0"\ndynamic = ["version"]\n',
        "libs/c": '[project]\nname = "c"\ndynamic = ["name"]\n',
    })
    inspection = inspect_workspace(root)
    (a,) = inspection.workspace.members
    assert (a.version, a.dynamic, a.dynamic_version) == (None, ("version", "readme"), True)
    assert [str(p) for p in inspection.problems] == [
        "libs/b/pyproject.toml: project.version: is set and also listed in project.dynamic\n"
        "hint: remove one: a static version, or \"version\" in dynamic for the build backend "
        "to compute",
        "libs/c/pyproject.toml: project.dynamic: lists 'name', which PEP 621 requires to be "
        "static",
    ]


# -- the load cache: a parsed workspace kept while its inputs are unchanged ---------------

@pytest.fixture
def full_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The manifests loaded from their files (not from the load cache), in order."""
    from orchestrator import workspace as module

    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(module._LoadCache, "RACY_SECONDS", 0.05)
    loads: list[Path] = []
    original = module._Loader.load

    def load(self: module._Loader) -> Inspection:
        loads.append(self.manifest)
        return original(self)

    monkeypatch.setattr(module._Loader, "load", load)
    return loads


def settle() -> None:
    """Let the files age past the racy window, so that a load may be kept."""
    time.sleep(0.1)


def test_an_unchanged_workspace_is_loaded_once(shop: Path, full_loads: list[Path]) -> None:
    settle()
    first = load_workspace(shop)
    second = load_workspace(shop)
    assert len(full_loads) == 1
    assert second == first
    assert [m.name for m in second.members] == [m.name for m in first.members]
    assert list((shop.parent / "cache" / "workspaces-v1").glob("*.pickle"))


def test_a_workspace_just_written_is_not_kept(shop: Path, full_loads: list[Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator import workspace as module

    monkeypatch.setattr(module._LoadCache, "RACY_SECONDS", 60.0)
    load_workspace(shop)
    load_workspace(shop)
    assert len(full_loads) == 2


def _same_size_edit(path: Path, old: str, new: str) -> None:
    assert len(old) == len(new)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("change", [
    "manifest", "member", "member-keeping-mtime", "new-member", "removed-member",
    "exclude", "renamed-member-dir",
])
def test_any_change_of_an_input_is_seen(
    change: str, shop: Path, full_loads: list[Path],
) -> None:
    settle()
    before = load_workspace(shop)
    assert load_workspace(shop) == before and len(full_loads) == 1
    if change == "manifest":
        _same_size_edit(shop / "workspace.yaml", "name: demo", "name: dema")
    elif change == "member":
        _same_size_edit(shop / "libs/common/pyproject.toml", '"attrs"', '"idna2"')
    elif change == "member-keeping-mtime":  # cp -p, an archive tool: the ctime still moves
        path = shop / "libs/common/pyproject.toml"
        stat = path.stat()
        _same_size_edit(path, '"attrs"', '"idna2"')
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    elif change == "new-member":
        (shop / "services/extra").mkdir()
        (shop / "services/extra/pyproject.toml").write_text(pyproject("extra"))
    elif change == "removed-member":
        shutil.rmtree(shop / "services/solo")
    elif change == "exclude":
        text = (shop / "workspace.yaml").read_text()
        (shop / "workspace.yaml").write_text(text + "exclude: [services/solo]\n")
    elif change == "renamed-member-dir":
        (shop / "services/solo").rename(shop / "services/alone")
    after = load_workspace(shop)
    assert len(full_loads) == 2
    common, extra, solo = (after.find(n) for n in ("common", "extra", "solo"))
    if change == "manifest":
        assert after.name == "dema"
    elif change.startswith("member"):
        assert common is not None and common.dependencies == ("idna2",)
    elif change == "new-member":
        assert extra is not None
    elif change in ("removed-member", "exclude"):
        assert solo is None
    else:
        assert solo is not None and solo.relpath == "services/alone"
    settle()
    assert load_workspace(shop) == after  # kept again (at once when no file changed)
    loads = len(full_loads)
    assert load_workspace(shop) == after and len(full_loads) == loads


def test_a_new_directory_without_pyproject_is_a_problem_not_a_hit(
    shop: Path, full_loads: list[Path],
) -> None:
    settle()
    load_workspace(shop)
    (shop / "services/empty").mkdir()
    with pytest.raises(WorkspaceError, match=r"member directory services/empty has no "
                       r"pyproject\.toml"):
        load_workspace(shop)
    with pytest.raises(WorkspaceError):  # a load with problems is never kept
        load_workspace(shop)
    assert len(full_loads) == 3


def test_a_damaged_or_foreign_cache_entry_is_a_miss(shop: Path, full_loads: list[Path]) -> None:
    settle()
    first = load_workspace(shop)
    (entry,) = (shop.parent / "cache" / "workspaces-v1").glob("*.pickle")
    for damage in (b"", b"garbage", entry.read_bytes()[:40]):
        entry.write_bytes(damage)
        assert load_workspace(shop) == first
    assert len(full_loads) == 4
    assert load_workspace(shop) == first and len(full_loads) == 4  # rewritten


class _Planted:
    """What an attacker who can write the cache directory would plant."""

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (os.system, ("touch planted-by-cache",))


def test_a_planted_cache_entry_runs_no_code(shop: Path, full_loads: list[Path],
                                            tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    settle()
    first = load_workspace(shop)
    (entry,) = (shop.parent / "cache" / "workspaces-v1").glob("*.pickle")
    monkeypatch.chdir(tmp_path)
    entry.write_bytes(pickle.dumps(_Planted()))
    assert load_workspace(shop) == first
    real = pickle.loads(entry.read_bytes())  # rewritten by the full load: a real entry
    entry.write_bytes(pickle.dumps((*real[:4], _Planted())))
    assert load_workspace(shop) == first
    assert not (tmp_path / "planted-by-cache").exists()
    assert len(full_loads) == 3


def test_a_read_only_cache_directory_only_costs_the_cache(
    shop: Path, full_loads: list[Path], tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        settle()
        first = load_workspace(shop)
        assert load_workspace(shop) == first
    finally:
        cache.chmod(0o700)
    # root writes into a 0o500 directory anyway, so there the second load is a hit
    assert len(full_loads) == (1 if os.geteuid() == 0 else 2)


def test_requirement_head_reads_what_packaging_reads() -> None:
    from packaging.requirements import Requirement

    from orchestrator.models import requirement_head

    for text in ["django>=5", "uvicorn[standard]>=0.30", "a", "foo @ https://x/y.whl",
                 "A.B-c_d [ x , y ] ; python_version<'3.12'", "foo(>=1.0)", "foo ( >=1.0 )",
                 "foo[]", "foo[ ]>=1", "foo;extra=='x'", "boto3>=1.34,<2", "  lead>=1",
                 "x[a,b,c]", "name_with.dots-and_more[Ex_1]==2; sys_platform=='linux'"]:
        parsed = Requirement(text)
        assert requirement_head(text) == (parsed.name, frozenset(parsed.extras)), text
    for text in ["-e .", "foo[a b]", "[x]", "foo bar"]:
        assert requirement_head(text) is None, text
