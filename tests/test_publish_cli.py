"""package and publish through the CLI: options and the errors that come before any build."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import MANIFEST, MakeWorkspace, pyproject
from tests.support.cli import run

REPOSITORY = ("publish:\n  repositories:\n"
              "    - {name: local, upload-url: 'http://127.0.0.1:9/'}\n")


def test_both_help_texts(shop: Path) -> None:
    code, out, _ = run(shop, "--help")
    assert code == 0
    assert "  package " in out and "  publish " in out
    code, out, _ = run(shop, "publish", "--help")
    assert "--skip-existing" in out and "--dry-run" in out and "--images" in out


def test_nothing_to_build_is_a_usage_error(shop: Path) -> None:
    code, _, err = run(shop, "package", "--no-sdist", "--no-wheel")
    assert code == 2
    assert "--no-sdist and --no-wheel leave nothing to build" in err


def test_since_goes_with_affected(shop: Path) -> None:
    assert "--affected needs --since REF" in run(shop, "publish", "--affected")[2]
    assert "--since only goes with --affected" in run(shop, "package", "--since", "main")[2]


def test_publish_without_a_repository_says_how_to_add_one(
    make_workspace: MakeWorkspace
) -> None:
    root = make_workspace({"libs/common": pyproject("common")})
    code, out, err = run(root, "publish")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "error: workspace.yaml configures no repository to publish to",
        "hint: add `publish: {repositories: [{name: pypi, upload-url: "
        "https://upload.pypi.org/legacy/}]}` to workspace.yaml"]


def test_an_unknown_repository_lists_the_known_ones(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/common": pyproject("common")}, MANIFEST + REPOSITORY)
    code, _, err = run(root, "publish", "--repository", "pypi")
    assert code == 1
    assert err.splitlines() == [
        "error: no repository named 'pypi' in workspace.yaml (known: local)",
        "hint: pass one of those to --repository, or add it under publish.repositories"]


def test_a_dependency_that_is_never_published_stops_the_release(
    make_workspace: MakeWorkspace
) -> None:
    root = make_workspace({
        "libs/common": pyproject("common", tool="publish = false"),
        "libs/client": pyproject("client", ["common>=1"]),
    }, MANIFEST + REPOSITORY)
    code, _, err = run(root, "publish")
    assert code == 1
    assert err.splitlines() == [
        "error: client depends on common, which is not published as a package "
        "(publish = false), so its users could not install it",
        "hint: set `publish = true` in libs/common/pyproject.toml, or drop the dependency "
        "from client"]


def test_no_member_to_publish(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"services/api": pyproject("api")}, MANIFEST + REPOSITORY)
    code, out, err = run(root, "publish")
    assert (code, out) == (0, "")
    assert err == "no member to publish as a package\n"
