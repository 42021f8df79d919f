"""The `publish:` section of workspace.yaml and the members' `publish` option."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import WorkspaceError
from orchestrator.models import PublishSpec, RepositorySpec
from orchestrator.workspace import load_workspace
from tests.conftest import MANIFEST, MakeWorkspace, pyproject

MEMBERS = {
    "libs/common": pyproject("common"),
    "libs/internal": pyproject("internal", tool="publish = false"),
    "services/api": pyproject("api", ["common"]),
    "services/sdk": pyproject("sdk", tool="publish = true"),
}


def error(root: Path) -> WorkspaceError:
    with pytest.raises(WorkspaceError) as info:
        load_workspace(root)
    return info.value


def test_defaults_without_a_publish_section(make_workspace: MakeWorkspace) -> None:
    ws = load_workspace(make_workspace(MEMBERS))
    assert ws.publish == PublishSpec("compatible", ())
    assert ws.publish.repository(None) is None
    assert {m.name: m.options.publish for m in ws.members} == {
        "api": False, "sdk": True, "common": True, "internal": False}


def test_publish_section_is_read(make_workspace: MakeWorkspace) -> None:
    root = make_workspace(MEMBERS, MANIFEST + (
        "publish:\n"
        "  workspace-constraint: exact\n"
        "  repositories:\n"
        "    - {name: internal, upload-url: 'https://pkgs.example.invalid/legacy/',"
        " index-url: 'https://pkgs.example.invalid/simple/'}\n"
        "    - {name: pypi, upload-url: 'https://upload.pypi.org/legacy/'}\n"))
    spec = load_workspace(root).publish
    assert spec == PublishSpec("exact", (
        RepositorySpec("internal", "https://pkgs.example.invalid/legacy/",
                       "https://pkgs.example.invalid/simple/"),
        RepositorySpec("pypi", "https://upload.pypi.org/legacy/", None)))
    assert spec.repository(None) == spec.repositories[0]
    assert spec.repository("pypi") == spec.repositories[1]
    assert spec.repository("nope") is None


@pytest.mark.parametrize(("publish", "message", "key", "hint"), [
    ("{workspace-constraint: caret}",
     "publish.workspace-constraint: expected one of exact, compatible, minimum, got string "
     "'caret'", "publish.workspace-constraint", None),
    ("{repositories: [{name: x, upload_url: 'https://a.invalid/'}]}",
     "publish.repositories[0].upload_url: unknown key", "publish.repositories[0].upload_url",
     "did you mean 'upload-url'?"),
    ("{repository: []}", "publish.repository: unknown key", "publish.repository",
     "did you mean 'repositories'?"),
    ("{repositories: [{name: x}]}",
     "publish.repositories[0].upload-url: missing; expected a string",
     "publish.repositories[0].upload-url", None),
    ("{repositories: [{name: x, upload-url: 'ftp://a.invalid/'}]}",
     "publish.repositories[0].upload-url: expected an http(s) URL, got 'ftp://a.invalid/'",
     "publish.repositories[0].upload-url", None),
    ("{repositories: [{name: x, upload-url: 'https://u:pw@a.invalid/'}]}",
     "publish.repositories[0].upload-url: holds credentials; credentials never live in "
     "workspace.yaml", "publish.repositories[0].upload-url",
     "set ORCHESTRATOR_PUBLISH_X_USERNAME and _PASSWORD (or _TOKEN), or use ~/.pypirc"),
    ("{repositories: [{name: x, upload-url: 'https://a.invalid/'},"
     " {name: x, upload-url: 'https://b.invalid/'}]}",
     "publish.repositories[1].name: repository name 'x' is used twice",
     "publish.repositories[1].name", None),
    ("[pypi]", "publish: expected a mapping with workspace-constraint and repositories, got "
     "list ['pypi']", "publish", None),
])
def test_publish_section_errors_name_the_key(make_workspace: MakeWorkspace, publish: str,
                                             message: str, key: str, hint: str | None) -> None:
    root = make_workspace(MEMBERS, MANIFEST + f"publish: {publish}\n")
    err = error(root)
    assert err.message == f"{root / 'workspace.yaml'}: {message}"
    assert (err.key, err.hint, err.file) == (key, hint, root / "workspace.yaml")


def test_the_member_option_must_be_a_boolean(make_workspace: MakeWorkspace) -> None:
    root = make_workspace({"libs/common": pyproject("common", tool='publish = "yes"')})
    err = error(root)
    assert err.message == ("libs/common/pyproject.toml: tool.orchestrator.publish: expected "
                           "true or false, got string 'yes'")
    assert err.key == "tool.orchestrator.publish"
