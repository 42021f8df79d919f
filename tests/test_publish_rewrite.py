"""Workspace dependencies rewritten into version ranges before a release build."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from orchestrator.errors import PublishError
from orchestrator.models import Member, MemberOptions, WorkspaceConstraint
from orchestrator.publish.rewrite import Rewrite, constrain, rewrite_pyproject, version_range

VERSIONS = {"acme-common": "1.4.0", "acme-zero": "0.3.2"}


@pytest.mark.parametrize(("version", "rule", "expected"), [
    ("1.4.0", "compatible", ">=1.4.0,<2"),
    ("2.0", "compatible", ">=2.0,<3"),
    ("0.3.2", "compatible", ">=0.3.2,<0.4"),
    ("0.0.3", "compatible", ">=0.0.3,<0.1"),
    ("1.4.0rc1", "compatible", ">=1.4.0rc1,<2"),
    ("1.4.0", "exact", "==1.4.0"),
    ("1.4.0", "minimum", ">=1.4.0"),
])
def test_version_range_by_rule(version: str, rule: WorkspaceConstraint, expected: str) -> None:
    assert version_range(version, rule) == expected


@given(st.lists(st.integers(0, 30), min_size=1, max_size=4),
       st.sampled_from(["exact", "compatible", "minimum"]))
def test_the_range_admits_the_current_version_and_not_the_next_breaking_one(
    release: list[int], rule: WorkspaceConstraint
) -> None:
    version = ".".join(map(str, release))
    spec = SpecifierSet(version_range(version, rule))
    assert spec.contains(version, prereleases=True)
    if rule == "compatible":
        major, minor = release[0], release[1] if len(release) > 1 else 0
        breaking = f"{major + 1}.0" if major >= 1 else f"0.{minor + 1}"
        assert not spec.contains(breaking)
        assert Version(breaking) > Version(version)


@pytest.mark.parametrize(("written", "expected"), [
    ("acme-common", "acme-common>=1.4.0,<2"),
    ("Acme_Common", "Acme_Common>=1.4.0,<2"),
    ("acme-zero", "acme-zero>=0.3.2,<0.4"),
    ("acme-common[yaml,cli]", "acme-common[cli,yaml]>=1.4.0,<2"),
    ('acme-common ; python_version >= "3.11"', 'acme-common>=1.4.0,<2; python_version >= "3.11"'),
    ("acme-common @ file:///work/libs/common", "acme-common>=1.4.0,<2"),
    ('acme-common[x] @ file:../common ; sys_platform == "linux"',
     'acme-common[x]>=1.4.0,<2; sys_platform == "linux"'),
])
def test_constrain_keeps_extras_and_markers_and_drops_urls(written: str, expected: str) -> None:
    assert constrain(written, VERSIONS, "compatible", where="k", member="m") == expected


def test_constrain_leaves_other_packages_and_written_specifiers() -> None:
    assert constrain("httpx>=0.27", VERSIONS, "compatible", where="k", member="m") is None
    assert constrain("acme-common>=1.2", VERSIONS, "exact", where="k", member="m") is None


def test_a_written_specifier_that_excludes_the_member_is_an_error() -> None:
    with pytest.raises(PublishError) as caught:
        constrain("acme-common<1.3", VERSIONS, "compatible", where="project.dependencies[1]",
                  member="orders")
    err = caught.value
    assert err.message == ("orders: project.dependencies[1]: 'acme-common<1.3' excludes "
                           "acme-common 1.4.0, the version in this workspace")
    assert err.hint == ("widen the specifier to admit 1.4.0, or drop it and let publish write "
                        "the range")
    assert (err.member, err.package, err.key, err.expected, err.actual) == (
        "orders", "acme-common", "project.dependencies[1]", "<1.3", "1.4.0")


PYPROJECT = """\
[project]
name = "orders"
version = "2.0.0"
dependencies = [
    "acme-common",  # the shared settings
    "httpx>=0.27",
]

[project.optional-dependencies]
events = ["acme-zero[fast]; python_version >= '3.11'"]
self = ["orders[events]"]

[dependency-groups]
test = ["pytest>=8", "acme-common"]
dev = [{include-group = "test"}]

[tool.uv.sources]
acme-common = { path = "../../libs/common", editable = true }
httpx = { index = "internal" }
"""


def member(name: str = "orders") -> Member:
    return Member(name=name, display_name=name, path=Path("/w/services/orders"),
                  relpath="services/orders", version="2.0.0", description=None,
                  requires_python=None, dependencies=(), groups={}, optional={}, scripts={},
                  options=MemberOptions(kind="service"))


def test_rewrite_pyproject_keeps_comments_and_rewrites_every_section() -> None:
    versions = {**VERSIONS, "orders": "2.0.0"}
    text, changes = rewrite_pyproject(PYPROJECT, member(), versions, "compatible")

    assert '"acme-common>=1.4.0,<2",  # the shared settings' in text
    data = tomllib.loads(text)
    assert data["project"]["dependencies"] == ["acme-common>=1.4.0,<2", "httpx>=0.27"]
    assert data["project"]["optional-dependencies"] == {
        "events": ['acme-zero[fast]>=0.3.2,<0.4; python_version >= "3.11"'],
        "self": ["orders[events]"],  # a member's extra naming itself stays as written
    }
    assert data["dependency-groups"] == {"test": ["pytest>=8", "acme-common>=1.4.0,<2"],
                                         "dev": [{"include-group": "test"}]}
    assert data["tool"]["uv"]["sources"] == {"httpx": {"index": "internal"}}
    assert changes == (
        Rewrite("project.dependencies[0]", "acme-common", "acme-common>=1.4.0,<2"),
        Rewrite("project.optional-dependencies.events[0]",
                "acme-zero[fast]; python_version >= '3.11'",
                'acme-zero[fast]>=0.3.2,<0.4; python_version >= "3.11"'),
        Rewrite("dependency-groups.test[1]", "acme-common", "acme-common>=1.4.0,<2"),
        Rewrite("tool.uv.sources.acme-common",
                "{'path': '../../libs/common', 'editable': True}", ""),
    )


def test_rewrite_pyproject_without_workspace_dependencies_changes_nothing() -> None:
    text = '[project]\nname = "solo"\nversion = "1.0"\ndependencies = ["click"]\n'
    assert rewrite_pyproject(text, member("solo"), VERSIONS, "exact") == (text, ())
