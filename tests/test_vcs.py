from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import GitError
from orchestrator.graph import affected, build_graph
from orchestrator.vcs import changed_files
from orchestrator.workspace import load_workspace
from tests.support.git import git


@pytest.fixture
def repo(shop: Path) -> Path:
    git(shop, "init", "-q", "-b", "main")
    (shop / "services" / "api" / "README.md").write_text("api\n")
    git(shop, "add", "-A")
    git(shop, "commit", "-qm", "initial")
    git(shop, "checkout", "-qb", "feature")
    return shop


def commit(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(root, "add", rel)
    git(root, "commit", "-qm", f"change {rel}")


def names(root: Path, since: str = "main", committed_only: bool = False) -> list[str]:
    ws = load_workspace(root)
    changed = changed_files(root, since, committed_only=committed_only)
    return [a.member.name for a in affected(ws, build_graph(ws), changed)]


def test_library_change_marks_users(repo: Path) -> None:
    commit(repo, "libs/common/common/__init__.py", "X = 1\n")
    assert names(repo) == ["common", "api", "web"]


def test_manifest_change_marks_all(repo: Path) -> None:
    text = (repo / "workspace.yaml").read_text()
    commit(repo, "workspace.yaml", text + "# comment\n")
    assert names(repo) == ["common", "solo", "api", "web"]


def test_service_readme_marks_only_that_service(repo: Path) -> None:
    commit(repo, "services/api/README.md", "api, documented\n")
    assert names(repo) == ["api"]


def test_uncommitted_changes_count_unless_committed_only(repo: Path) -> None:
    (repo / "services" / "solo" / "new.py").write_text("print(1)\n")
    assert names(repo) == ["solo"]
    assert names(repo, committed_only=True) == []


def test_since_uses_merge_base(repo: Path) -> None:
    commit(repo, "services/solo/app.py", "a\n")
    git(repo, "checkout", "-q", "main")
    commit(repo, "services/api/app.py", "b\n")  # on main after the fork: not ours
    git(repo, "checkout", "-q", "feature")
    assert names(repo) == ["solo"]


def test_workspace_in_subdirectory(tmp_path: Path, shop: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "initial")
    (shop / "libs" / "common" / "x.py").write_text("")
    (tmp_path / "unrelated.txt").write_text("")
    assert changed_files(shop, "main") == ["libs/common/x.py"]


def test_unknown_ref(repo: Path) -> None:
    with pytest.raises(GitError) as info:
        changed_files(repo, "no-such-branch")
    assert str(info.value) == (
        "cannot compare with 'no-such-branch': no common history with HEAD\n"
        "hint: pass a branch, tag or commit that exists, e.g. --since origin/main"
    )


def test_not_a_repository(shop: Path) -> None:
    with pytest.raises(GitError) as info:
        changed_files(shop, "main")
    assert str(info.value) == (
        f"{shop} is not inside a git repository\n"
        "hint: --since needs git history; use --all instead"
    )
