"""What init decides about a tree: member globs, kinds, the Python, indexes, the manifest."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from orchestrator.adopt.discover import Found
from orchestrator.adopt.indexes import PYPI, plan_indexes, sources_of
from orchestrator.adopt.layout import choose_python, infer_kind, member_globs
from orchestrator.adopt.manifest import Manifest
from orchestrator.errors import WorkspaceError
from orchestrator.models import IndexSpec


def dirs(root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).mkdir(parents=True, exist_ok=True)


# -- globs -------------------------------------------------------------------------------


def test_a_directory_of_members_becomes_a_glob(tmp_path: Path) -> None:
    dirs(tmp_path, "services/api", "services/worker", "libs/common")
    globs = member_globs(tmp_path, ["services/api", "services/worker", "libs/common"])
    assert (globs.members, globs.exclude) == (("libs/common", "services/*"), ())


def test_other_subdirectories_are_excluded_or_stop_the_glob(tmp_path: Path) -> None:
    dirs(tmp_path, "packages/a", "packages/b", "packages/c", "packages/docs", "packages/.cache",
         "tools/x", "tools/y", "tools/scripts", "tools/data")
    globs = member_globs(tmp_path, ["packages/a", "packages/b", "packages/c",
                                    "tools/x", "tools/y"])
    # hidden directories are skipped by the loader; two others of two members: no glob
    assert globs.members == ("packages/*", "tools/x", "tools/y")
    assert globs.exclude == ("packages/docs",)


def test_the_root_and_top_level_members_are_listed_one_by_one(tmp_path: Path) -> None:
    dirs(tmp_path, "alpha", "beta")
    globs = member_globs(tmp_path, ["beta", ".", "alpha"])
    assert globs.members == (".", "alpha", "beta")


# -- kinds -------------------------------------------------------------------------------


@pytest.mark.parametrize(("rel", "files", "scripts", "kind", "reason", "command"), [
    ("libs/x", [], {"x": "x:main"}, "service", "has [project.scripts] 'x'", None),
    ("libs/x", ["src/x/__init__.py", "src/x/__main__.py"], {}, "service",
     "has src/x/__main__.py", ("python", "-m", "x")),
    ("libs/x", ["acme/x/__init__.py", "acme/x/__main__.py"], {}, "service",
     "has acme/x/__main__.py", ("python", "-m", "acme.x")),
    ("libs/x", ["tests/__main__.py"], {}, "library",
     "no scripts, __main__.py or Dockerfile, and not under services/ or apps/", None),
    ("libs/x", ["Dockerfile"], {}, "service", "has a Dockerfile", None),
    ("apps/x", [], {}, "service", "is under apps/", None),
    ("services/group/x", [], {}, "service", "is under services/", None),
    ("libs/x", [], {}, "library",
     "no scripts, __main__.py or Dockerfile, and not under services/ or apps/", None),
])
def test_kind_rules(tmp_path: Path, rel: str, files: list[str], scripts: dict[str, str],
                    kind: str, reason: str, command: tuple[str, ...] | None) -> None:
    member = tmp_path / rel
    for name in files:
        (member / name).parent.mkdir(parents=True, exist_ok=True)
        (member / name).write_text("")
    member.mkdir(parents=True, exist_ok=True)
    found = infer_kind(rel, member, scripts, "[project.scripts]", {})
    assert (found.kind, found.reason, found.command) == (kind, reason, command)


def test_a_declared_kind_wins(tmp_path: Path) -> None:
    found = infer_kind("apps/x", tmp_path, {}, "[project.scripts]", {"kind": "library"})
    assert (found.kind, found.reason) == ("library", "set in [tool.orchestrator] kind")


# -- python ------------------------------------------------------------------------------


@pytest.mark.parametrize(("requires", "python"), [
    ({"a": ">=3.9,<4.0", "b": ">=3.10"}, "3.10"),
    ({"a": ">=3.8", "b": None}, "3.9"),
    ({"a": "~=3.12"}, "3.12"),
    ({"a": ">=3.9,!=3.9.*,!=3.10.*"}, "3.11"),
    ({"a": ">=3.9.2"}, "3.10"),  # 3.9.0 is what a "3.9" target resolves for
])
def test_the_lowest_minor_every_member_admits(requires: dict[str, str | None],
                                              python: str) -> None:
    chosen, reason = choose_python(requires, None)
    assert chosen == python
    assert reason.startswith("the lowest of 3.9-3.14 every member admits (")


def test_python_default_and_given() -> None:
    assert choose_python({"a": None}, None) == (
        "3.11", "no member declares requires-python; 3.11 is the workspace default (pass "
        "--python to choose)")
    assert choose_python({"a": ">=3.9"}, "3.12") == ("3.12", "given with --python")


def test_python_nobody_or_not_everybody_admits() -> None:
    with pytest.raises(WorkspaceError) as caught:
        choose_python({"libs/a": "<3.10", "libs/b": ">=3.12"}, None)
    assert caught.value.message == ("no Python from 3.9 to 3.14 satisfies every member's "
                                    "requires-python (libs/a: <3.10; libs/b: >=3.12)")
    with pytest.raises(WorkspaceError) as caught:
        choose_python({"libs/a": ">=3.11"}, "3.10")
    assert caught.value.message == ("--python 3.10 is excluded by the requires-python of "
                                    "libs/a (>=3.11)")


# -- indexes -----------------------------------------------------------------------------


def found(text: str, rel: str = "services/api") -> Found:
    return Found(rel, Path("/repo") / rel, text, tomllib.loads(text))


def test_poetry_priorities_order_the_indexes() -> None:
    member = found("""
        [[tool.poetry.source]]
        name = "extra"
        url = "https://extra.example/simple/"
        priority = "supplemental"

        [[tool.poetry.source]]
        name = "vault"
        url = "https://vault.example/simple"
        priority = "explicit"

        [[tool.poetry.source]]
        name = "old"
        url = "https://old.example/simple"
        secondary = true
        """)
    plan = plan_indexes(sources_of(member), ())
    assert plan.indexes == (PYPI, IndexSpec("extra", "https://extra.example/simple"),
                            IndexSpec("old", "https://old.example/simple"),
                            IndexSpec("vault", "https://vault.example/simple"))
    assert plan.index_for("Vault") == "vault"


def test_a_poetry_primary_source_replaces_pypi() -> None:
    member = found("""
        [[tool.poetry.source]]
        name = "mirror"
        url = "https://mirror.example/simple"

        [[tool.poetry.source]]
        name = "PyPI"
        priority = "supplemental"
        """)
    plan = plan_indexes(sources_of(member), ())
    assert plan.indexes == (IndexSpec("mirror", "https://mirror.example/simple"), PYPI)


def test_uv_indexes_come_before_the_default() -> None:
    root = found("""
        [[tool.uv.index]]
        name = "pytorch"
        url = "https://download.pytorch.org/whl/cpu"
        explicit = true

        [[tool.uv.index]]
        name = "corp"
        url = "https://corp.example/simple"

        [[tool.uv.index]]
        name = "mirror"
        url = "https://mirror.example/simple"
        default = true
        """, ".")
    plan = plan_indexes(sources_of(root), ())
    assert [i.name for i in plan.indexes] == ["corp", "mirror", "pytorch"]


def test_pdm_sources_follow_pypi_and_pin_their_packages() -> None:
    member = found("""
        [[tool.pdm.source]]
        name = "private"
        url = "https://private.example/simple"
        include_packages = ["acme-*"]
        """)
    plan = plan_indexes(sources_of(member), ())
    assert [i.name for i in plan.indexes] == ["pypi", "private"]
    assert plan.patterns == (("acme-*", "private"),)


def test_index_overrides() -> None:
    member = found("""
        [[tool.poetry.source]]
        name = "corp"
        url = "https://corp.example/simple"
        priority = "supplemental"
        """)
    sources = sources_of(member)
    replaced = plan_indexes(sources, (IndexSpec("corp", "http://127.0.0.1:9/simple/"),))
    assert replaced.indexes == (PYPI, IndexSpec("corp", "http://127.0.0.1:9/simple"))
    added = plan_indexes(sources, (IndexSpec("local", "http://127.0.0.1:8/simple"),))
    assert [i.name for i in added.indexes] == ["local", "corp"]  # no implicit PyPI then


@pytest.mark.parametrize(("text", "message"), [
    ("""
     [[tool.poetry.source]]
     name = "corp"
     url = "https://user:secret@corp.example/simple"
     """, "the index 'corp' has credentials in its URL; credentials never live in "
          "workspace.yaml"),
    ("""
     [[tool.poetry.source]]
     name = "corp"
     url = "corp.example/simple"
     """, "the index 'corp' has the URL 'corp.example/simple', which is not an http(s) URL"),
    ("""
     [[tool.poetry.source]]
     name = "corp"
     url = "https://corp.example/simple"
     priority = "urgent"
     """, "services/api/pyproject.toml: tool.poetry.source[0].priority: unknown priority "
          "'urgent'"),
    ("""
     [[tool.pdm.source]]
     name = "wheels"
     url = "https://files.example/wheels/"
     type = "find_links"
     """, "services/api/pyproject.toml: tool.pdm.source[0].type: 'find_links' sources are not "
          "package indexes"),
])
def test_bad_sources(text: str, message: str) -> None:
    with pytest.raises(WorkspaceError) as caught:
        plan_indexes(sources_of(found(text)), ())
    assert caught.value.message == message


@pytest.mark.parametrize(("text", "message", "hint"), [
    ('[tool.uv]\nindex = "https://corp.example/simple"\n',
     "services/api/pyproject.toml: tool.uv.index: expected an array of tables",
     "write each entry as a [[tool.uv.index]] table with a name and a url"),
    ('[[tool.poetry.source]]\nname = "corp"\n',
     "services/api/pyproject.toml: tool.poetry.source[0].url: expected a non-empty string",
     "set `url` to a string in that entry"),
    ('[[tool.pdm.source]]\nname = "corp"\nurl = "https://corp.example/simple"\n'
     'include_packages = "acme-*"\n',
     "services/api/pyproject.toml: tool.pdm.source[0].include_packages: expected a list of "
     "package names",
     'write it as a list of strings, e.g. include_packages = ["acme-*"]'),
])
def test_malformed_source_tables_say_how_to_write_them(text: str, message: str,
                                                       hint: str) -> None:
    with pytest.raises(WorkspaceError) as caught:
        sources_of(found(text))
    assert (caught.value.message, caught.value.hint) == (message, hint)


def test_one_source_name_with_two_urls() -> None:
    a = found('[[tool.poetry.source]]\nname = "corp"\nurl = "https://a.example/simple"\n',
              "libs/a")
    b = found('[[tool.poetry.source]]\nname = "corp"\nurl = "https://b.example/simple"\n',
              "libs/b")
    with pytest.raises(WorkspaceError, match="the source 'corp' has two URLs"):
        plan_indexes([*sources_of(a), *sources_of(b)], ())


# -- the manifest --------------------------------------------------------------------------


def test_manifest_text_round_trips() -> None:
    manifest = Manifest(name="yes", python="3.10", platforms=("linux/amd64", "linux/arm64"),
                        indexes=(PYPI, IndexSpec("corp", "https://corp.example/simple")),
                        members=(".", "services/*", "libs/core"), exclude=("services/docs",))
    text = manifest.render("a Poetry monorepo")
    assert text == (
        "# Written by `orchestrator init` from a Poetry monorepo; see README.md, "
        "\"workspace.yaml\".\n"
        "version: 1\n"
        "name: \"yes\"\n"
        "python: \"3.10\"\n"
        "platforms: [linux/amd64, linux/arm64]\n"
        "indexes:                # searched in order; a package comes from the first that "
        "has it\n"
        "  - {name: pypi, url: \"https://pypi.org/simple\"}\n"
        "  - {name: corp, url: \"https://corp.example/simple\"}\n"
        "members:\n"
        "  - \".\"\n"
        "  - services/*\n"
        "  - libs/core\n"
        "exclude:\n"
        "  - services/docs\n")
    assert yaml.safe_load(text) == manifest.as_dict()
