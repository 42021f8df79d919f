"""add, remove and version: pyproject edits that keep formatting, all-or-nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from orchestrator.errors import WorkspaceError
from orchestrator.pyproject import PyprojectEdit, bump
from tests.support.cli import run
from tests.support.indexserver import IndexServer

COMMENTED = """\
[project]
name = "api"   # the public API
version = "1.0.0"
dependencies = [
    # shared code first
    "common",
    "httpx",  # HTTP client
]

[dependency-groups]
test = ["pytest"]
"""


@pytest.mark.parametrize(
    ("current", "rule", "expected"),
    [
        ("1.2.3", "patch", "1.2.4"),
        ("1.2.3", "minor", "1.3.0"),
        ("1.2.3", "major", "2.0.0"),
        ("1.2", "patch", "1.2.1"),
        ("1.3.0rc1", "patch", "1.3.0"),
        ("1.3.0rc1", "minor", "1.3.0"),
        ("2.0.0a1", "major", "2.0.0"),
        ("1.2.3", "pre", "1.2.4a1"),
        ("1.2.4a1", "pre", "1.2.4a2"),
        ("1.2.3", "4.0.0.post1", "4.0.0.post1"),
    ],
)
def test_bump(current: str, rule: str, expected: str) -> None:
    assert bump(current, rule) == expected


def test_bump_rejects_nonsense() -> None:
    with pytest.raises(WorkspaceError) as info:
        bump("1.0", "bigger")
    assert str(info.value) == (
        "'bigger' is neither a bump rule nor a valid version\n"
        "hint: use patch, minor, major, pre, or a PEP 440 version such as 1.4.0"
    )


def test_edits_keep_comments(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(COMMENTED)
    edit = PyprojectEdit.load(path)
    assert edit.add_requirement("attrs>=24") is None
    assert edit.add_requirement("httpx>=0.28") == "httpx"
    assert edit.remove_requirement("common") == "common"
    assert edit.add_requirement("ruff", "lint") is None
    edit.save()
    text = path.read_text()
    assert 'name = "api"   # the public API' in text
    assert "    # shared code first\n" in text
    assert '"httpx>=0.28",  # HTTP client' in text
    data = tomllib.loads(text)
    assert data["project"]["dependencies"] == ["httpx>=0.28", "attrs>=24"]
    assert data["dependency-groups"] == {"test": ["pytest"], "lint": ["ruff"]}


def test_version_command(locked_shop: Path) -> None:
    assert run(locked_shop, "version", "api") == (0, "api 1.0.0\n", "")
    assert run(locked_shop, "version", "api", "minor", "--dry-run")[1] == (
        "api 1.0.0 -> 1.1.0 (dry run)\n")
    assert run(locked_shop, "version", "api", "major")[1] == "api 1.0.0 -> 2.0.0\n"
    data = tomllib.loads((locked_shop / "services/api/pyproject.toml").read_text())
    assert data["project"]["version"] == "2.0.0"


def test_add_bounds_new_requirement_and_relocks(locked_shop: Path, index: IndexServer) -> None:
    assert run(locked_shop, "lock")[0] == 0
    code, out, err = run(locked_shop, "add", "common", "idna", "--no-sync")
    assert code == 0, err
    assert out == "common: added idna>=3.7\n"
    data = tomllib.loads((locked_shop / "libs/common/pyproject.toml").read_text())
    assert data["project"]["dependencies"] == ["attrs>=23", "idna>=3.7"]
    # the library and the service using it were both re-locked, and are current
    assert run(locked_shop, "lock", "--check")[0] == 0
    lock = tomllib.loads((locked_shop / "libs/common/pylock.toml").read_text())
    assert "idna" in {p["name"] for p in lock["packages"]}


def test_add_to_group(locked_shop: Path) -> None:
    code, out, _ = run(locked_shop, "add", "api", "attrs<24", "--group", "test", "--no-sync")
    assert code == 0
    assert out == "api: added attrs<24\n"
    data = tomllib.loads((locked_shop / "services/api/pyproject.toml").read_text())
    assert data["dependency-groups"]["test"] == ["pytest", "attrs<24"]


def test_impossible_add_changes_no_file(locked_shop: Path) -> None:
    assert run(locked_shop, "lock")[0] == 0
    files = [locked_shop / p for p in ("services/api/pyproject.toml", "services/api/pylock.toml",
                                       "libs/common/pyproject.toml", "libs/common/pylock.toml")]
    before = [f.read_bytes() for f in files]
    code, _, err = run(locked_shop, "add", "common", "attrs<20", "--no-sync")
    assert code == 1
    assert err.startswith("error: cannot lock ")
    assert [f.read_bytes() for f in files] == before


def test_add_unknown_package_changes_no_file(locked_shop: Path) -> None:
    before = (locked_shop / "services/api/pyproject.toml").read_bytes()
    code, _, err = run(locked_shop, "add", "api", "no-such-pkg", "--no-sync")
    assert code == 1
    assert "no-such-pkg" in err
    assert (locked_shop / "services/api/pyproject.toml").read_bytes() == before
    assert not (locked_shop / "services/api/pylock.toml").exists()


def test_remove(locked_shop: Path) -> None:
    code, out, _ = run(locked_shop, "remove", "api", "httpx", "--no-sync")
    assert code == 0
    assert out == "api: removed httpx\n"
    lock = tomllib.loads((locked_shop / "services/api/pylock.toml").read_text())
    assert "httpx" not in {p["name"] for p in lock["packages"]}
    assert "idna" not in {p["name"] for p in lock["packages"]}


def test_remove_missing_names_where_it_is(locked_shop: Path) -> None:
    code, _, err = run(locked_shop, "remove", "api", "pytest", "--no-sync")
    assert code == 1
    assert err == (
        "error: api has no requirement on pytest in project.dependencies\n"
        "hint: it is required in dependency-groups.test; pass --group accordingly\n"
    )
