"""Poetry constraints and dependency entries as exact PEP 440 / PEP 508 strings.

Every translation rule has a row here with the string it must give: the
converted pyproject.toml is what a team reviews, so "equivalent" is not enough.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.adopt import tomledit
from orchestrator.adopt.constraints import (
    ConstraintError,
    and_markers,
    platform_marker,
    python_marker,
    specifier,
)
from orchestrator.adopt.context import MemberRefs, Where
from orchestrator.adopt.poetry import _Reader
from orchestrator.errors import WorkspaceError


@pytest.mark.parametrize(("poetry", "pep440"), [
    # caret: the first non-zero part of the precision written may not change
    ("^1.2.3", ">=1.2.3,<2.0.0"),
    ("^1.2", ">=1.2,<2.0"),
    ("^1", ">=1,<2"),
    ("^0.2.3", ">=0.2.3,<0.3.0"),
    ("^0.2", ">=0.2,<0.3"),
    ("^0.0.3", ">=0.0.3,<0.0.4"),
    ("^0.0", ">=0.0,<0.1"),
    ("^0", ">=0,<1"),
    ("^0.0.0", ">=0.0.0,<0.0.1"),
    ("^1.2.3.4", ">=1.2.3.4,<2.0.0.0"),
    ("^2.0.0b1", ">=2.0.0b1,<3.0.0"),
    # tilde: ~1 the major series, ~1.2 and ~1.2.3 the minor one
    ("~1.2", ">=1.2,<1.3"),
    ("~1", ">=1,<2"),
    ("~1.2.3", ">=1.2.3,<1.3.0"),
    ("~0.9", ">=0.9,<0.10"),
    # PEP 440's own compatible release passes through
    ("~=1.4", "~=1.4"),
    # wildcards
    ("1.*", "==1.*"),
    ("1.2.*", "==1.2.*"),
    ("==1.2.*", "==1.2.*"),
    ("!=1.3.*", "!=1.3.*"),
    ("*", ""),
    ("", ""),
    # exact versions: bare, = and ==
    ("1.2.3", "==1.2.3"),
    ("=1.2.3", "==1.2.3"),
    ("==1.2.3", "==1.2.3"),
    # comparison lists, with commas or spaces, spacing normalized
    (">=1,<2", ">=1,<2"),
    (">= 1.2, < 2.0", ">=1.2,<2.0"),
    (">=1.2 <2.0", ">=1.2,<2.0"),
    (">1.0,!=1.5.0,<=3", ">1.0,!=1.5.0,<=3"),
    ("^1.2,!=1.4.1", ">=1.2,<2.0,!=1.4.1"),
    ("<2", "<2"),
])
def test_version_constraints(poetry: str, pep440: str) -> None:
    assert specifier(poetry) == pep440


@pytest.mark.parametrize(("poetry", "problem"), [
    (">=1,<2 || >=3", "'>=1,<2 || >=3' is a union ('||'), which one PEP 440 specifier "
                      "cannot express"),
    ("^1 | ^2", "'^1 | ^2' is a union ('||'), which one PEP 440 specifier cannot express"),
    ("^banana", "'^banana': 'banana' is not a version"),
    (">=1.*", "'>=1.*': a wildcard only goes with == or !="),
    ("latest please", "'latest please': '==latest' is not a PEP 440 comparison"),
    (">=", "cannot read the version constraint '>='"),
])
def test_constraints_without_a_pep440_form_are_refused(poetry: str, problem: str) -> None:
    with pytest.raises(ConstraintError) as caught:
        specifier(poetry)
    assert caught.value.problem == problem
    assert caught.value.hint


@pytest.mark.parametrize(("poetry", "marker"), [
    ("^3.8", 'python_version >= "3.8" and python_version < "4.0"'),
    (">=3.9", 'python_version >= "3.9"'),
    ("<3.11", 'python_version < "3.11"'),
    ("~3.10", 'python_version >= "3.10" and python_version < "3.11"'),
    (">=3.8.1,<4", 'python_full_version >= "3.8.1" and python_version < "4"'),
    ("3.11.*", 'python_version == "3.11.*"'),
    ("<3.8 || >=3.10", 'python_version < "3.8" or python_version >= "3.10"'),
    ("~3.8 || >=3.11", '(python_version >= "3.8" and python_version < "3.9") or '
                       'python_version >= "3.11"'),
    ("*", None),
])
def test_python_restrictions_become_markers(poetry: str, marker: str | None) -> None:
    assert python_marker(poetry) == marker


@pytest.mark.parametrize(("platform", "marker"), [
    ("linux", 'sys_platform == "linux"'),
    ("darwin || win32", 'sys_platform == "darwin" or sys_platform == "win32"'),
])
def test_platforms_become_sys_platform_markers(platform: str, marker: str) -> None:
    assert platform_marker(platform) == marker


def test_bad_platform_is_refused() -> None:
    with pytest.raises(ConstraintError, match=r"is not a sys\.platform value"):
        platform_marker("linux; rm")


def test_markers_are_joined_with_parentheses_around_or() -> None:
    assert and_markers(['python_version < "3.10"', None,
                        'sys_platform == "linux" or sys_platform == "darwin"']) == (
        'python_version < "3.10" and (sys_platform == "linux" or sys_platform == "darwin")')
    assert and_markers([None, ""]) is None


# -- whole dependency entries --------------------------------------------------------------


def convert_dependency(name: str, value: object, where: Where, refs: MemberRefs) -> list[str]:
    """The PEP 508 requirements `convert` writes for one [tool.poetry.dependencies] entry."""
    reader = _Reader(where, refs, tomledit.parse(""))
    return [r.text for r in reader.requirements(name, value, f"tool.poetry.dependencies.{name}")]


@pytest.fixture
def where(tmp_path: Path) -> Where:
    (tmp_path / "services" / "api").mkdir(parents=True)
    return Where(tmp_path / "services" / "api" / "pyproject.toml",
                 "services/api/pyproject.toml", "api")


@pytest.fixture
def refs(tmp_path: Path) -> MemberRefs:
    (tmp_path / "libs" / "Shared_Lib").mkdir(parents=True)
    return MemberRefs({(tmp_path / "libs" / "Shared_Lib").resolve(): "shared-lib"})


@pytest.mark.parametrize(("name", "entry", "requirements"), [
    ("attrs", "^23.1", ["attrs>=23.1,<24.0"]),
    ("attrs", {"version": "^23.1"}, ["attrs>=23.1,<24.0"]),
    ("click", "*", ["click"]),
    ("tomli", {"version": "~2.0", "python": "<3.11"},
     ['tomli>=2.0,<2.1; python_version < "3.11"']),
    ("uvloop", {"version": "^0.19", "platform": "linux"},
     ['uvloop>=0.19,<0.20; sys_platform == "linux"']),
    ("pywin32", {"version": ">=306", "markers": "sys_platform == 'win32'"},
     ["pywin32>=306; sys_platform == 'win32'"]),
    ("uvicorn", {"version": "^0.29", "extras": ["standard", "http2"]},
     ["uvicorn[standard,http2]>=0.29,<0.30"]),
    ("cryptography", {"version": "^42", "python": "^3.9", "platform": "linux",
                      "markers": "platform_machine == 'x86_64'"},
     ['cryptography>=42,<43; python_version >= "3.9" and python_version < "4.0" and '
      "sys_platform == \"linux\" and platform_machine == 'x86_64'"]),
    ("numpy", [{"version": "^1.26", "python": "<3.12"}, {"version": "^2.0", "python": ">=3.12"}],
     ['numpy>=1.26,<2.0; python_version < "3.12"',
      'numpy>=2.0,<3.0; python_version >= "3.12"']),
    ("psycopg", {"version": "^3.1", "optional": True, "extras": ["binary"]},
     ["psycopg[binary]>=3.1,<4.0"]),
    ("corp-auth", {"version": "^1.2", "source": "corp"}, ["corp-auth>=1.2,<2.0"]),
    # a path dependency on a member is the member's own (normalized) name
    ("shared", {"path": "../../libs/Shared_Lib", "develop": True}, ["shared-lib"]),
    ("shared", {"path": "../../libs/Shared_Lib", "extras": ["fast"]}, ["shared-lib[fast]"]),
    ("shared", {"path": "../../libs/Shared_Lib", "python": ">=3.10"},
     ['shared-lib; python_version >= "3.10"']),
])
def test_dependency_entries(name: str, entry: object, requirements: list[str], where: Where,
                            refs: MemberRefs) -> None:
    assert convert_dependency(name, entry, where, refs) == requirements


@pytest.mark.parametrize(("name", "entry", "message"), [
    ("foo", ">=1,<2 || >=3",
     "services/api/pyproject.toml: tool.poetry.dependencies.foo: the constraint on 'foo' "
     "(member 'api'): '>=1,<2 || >=3' is a union ('||'), which one PEP 440 specifier cannot "
     "express"),
    ("foo", {"git": "https://github.com/x/foo.git", "branch": "main"},
     "services/api/pyproject.toml: tool.poetry.dependencies.foo: 'foo' is a git dependency "
     "('https://github.com/x/foo.git'); direct references are not supported yet"),
    ("foo", {"url": "https://example.com/foo-1.0.tar.gz"},
     "services/api/pyproject.toml: tool.poetry.dependencies.foo: 'foo' is a url dependency "
     "('https://example.com/foo-1.0.tar.gz'); direct references are not supported yet"),
    ("foo", {"path": "../../vendor/foo"},
     "services/api/pyproject.toml: tool.poetry.dependencies.foo: 'foo' is a path dependency "
     "on '../../vendor/foo', which is not a workspace member; direct references are not "
     "supported yet"),
    ("foo", {"version": "^1", "colour": "red"},
     "services/api/pyproject.toml: tool.poetry.dependencies.foo: unknown key 'colour' in "
     "the dependency on 'foo'"),
    ("foo", {"version": "^1", "markers": "python_version >> '3'"},
     "services/api/pyproject.toml: tool.poetry.dependencies.foo.markers: \"python_version >> "
     "'3'\" is not a PEP 508 marker (Expected a marker variable or quoted string)"),
    ("foo", 3, "services/api/pyproject.toml: tool.poetry.dependencies.foo: expected a version "
               "string or a table such as {version = \"^1.2\"}"),
    ("foo", [], "services/api/pyproject.toml: tool.poetry.dependencies.foo: an empty list of "
                "constraints"),
])
def test_entries_without_an_exact_form_are_refused(name: str, entry: object, message: str,
                                                   where: Where, refs: MemberRefs) -> None:
    with pytest.raises(WorkspaceError) as caught:
        convert_dependency(name, entry, where, refs)
    error = caught.value
    assert error.message == message
    assert (error.member, error.package) == ("api", "foo")
    assert error.file == where.file
