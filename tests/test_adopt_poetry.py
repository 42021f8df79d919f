"""A Poetry member's pyproject.toml converted to PEP 621 + PEP 735, table by table."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path
from typing import Literal

import pytest

from orchestrator.adopt import poetry, tomledit
from orchestrator.adopt.context import Conversion, MemberRefs, Where
from orchestrator.adopt.validate import project_metadata
from orchestrator.errors import WorkspaceError

FIXTURES = Path(__file__).parent / "fixtures" / "monorepos"


def convert(tmp_path: Path, text: str, *, backend: Literal["hatchling"] | None = None,
            members: dict[str, str] | None = None) -> tuple[str, Conversion]:
    """Convert *text* as services/api/pyproject.toml; *members* maps relpath -> name."""
    directory = tmp_path / "services" / "api"
    directory.mkdir(parents=True, exist_ok=True)
    names = {directory.resolve(): "api"}
    for rel, name in (members or {}).items():
        (tmp_path / rel).mkdir(parents=True, exist_ok=True)
        names[(tmp_path / rel).resolve()] = name
    where = Where(directory / "pyproject.toml", "services/api/pyproject.toml", "api")
    text = textwrap.dedent(text)
    result = poetry.convert(text, tomllib.loads(text), where, MemberRefs(names),
                            backend=backend)
    return tomledit.dumps(result.doc), result


def test_the_common_library_of_the_fixture(tmp_path: Path) -> None:
    text = (FIXTURES / "poetry" / "libs" / "common" / "pyproject.toml").read_text()
    where = Where(tmp_path / "pyproject.toml", "libs/common/pyproject.toml", "common")
    result = poetry.convert(text, tomllib.loads(text), where, MemberRefs({}))
    data = tomllib.loads(tomledit.dumps(result.doc))
    assert data["project"] == {
        "name": "common",
        "version": "1.4.0",
        "description": "Shared models and settings",
        "readme": "README.md",
        "requires-python": ">=3.9,<4.0",
        "license": {"text": "MIT"},
        "authors": [{"name": "Ada Lovelace", "email": "ada@shop.example"},
                    {"name": "Shop Team"}],
        "maintainers": [{"name": "Grace Hopper", "email": "grace@shop.example"}],
        "keywords": ["shop", "models"],
        "classifiers": ["Typing :: Typed"],
        "dependencies": [
            "attrs>=23.1,<24.0",
            'tomli>=2.0,<2.1; python_version < "3.11"',
            "typing-extensions>=4.6,<5; python_version < '3.12'",
            "shop-telemetry>=0.4,<0.5",
        ],
        "urls": {"Homepage": "https://shop.example",
                 "Repository": "https://git.shop.example/shop/common",
                 "Bug Tracker": "https://git.shop.example/shop/common/issues"},
        "optional-dependencies": {"postgres": ["psycopg[binary]>=3.1.12,<4.0.0"]},
    }
    assert data["dependency-groups"] == {"test": ["pytest>=8.0,<9.0"]}
    # packages stay for poetry-core; everything converted is gone from [tool.poetry]
    assert data["tool"]["poetry"] == {"packages": [{"include": "common", "from": "src"}]}
    assert data["build-system"] == {"requires": ["poetry-core>=2.0.0,<3.0.0"],
                                    "build-backend": "poetry.core.masonry.api"}
    assert result.pins == {"shop-telemetry": "internal"}
    project_metadata(data["project"])  # valid core metadata


def test_comments_and_untouched_tables_are_kept(tmp_path: Path) -> None:
    out, _ = convert(tmp_path, """\
        # The API service.
        [tool.poetry]
        name = "api"
        version = "1.0.0"

        [tool.poetry.dependencies]
        python = "^3.11"
        # the web framework
        fastapi = "^0.110"  # keep below 0.111
        click = "^8"

        [tool.poetry.group.dev.dependencies]
        # test runner
        pytest = "^8.0"

        [tool.black]
        line-length = 100   # as in CI

        [build-system]
        requires = ["poetry-core>=2.0"]
        build-backend = "poetry.core.masonry.api"

        [tool.ruff]
        select = ["E", "F"]  # pyflakes too
        """)
    assert out == textwrap.dedent("""\
        # The API service.
        [project]
        name = "api"
        version = "1.0.0"
        requires-python = ">=3.11,<4.0"
        dependencies = [
            # the web framework
            # keep below 0.111
            "fastapi>=0.110,<0.111",
            "click>=8,<9",
        ]

        [dependency-groups]
        dev = [
            # test runner
            "pytest>=8.0,<9.0",
        ]

        [tool.black]
        line-length = 100   # as in CI

        [build-system]
        requires = ["poetry-core>=2.0"]
        build-backend = "poetry.core.masonry.api"

        [tool.ruff]
        select = ["E", "F"]  # pyflakes too
        """)


def test_groups_legacy_dev_dependencies_and_include_groups(tmp_path: Path) -> None:
    out, _ = convert(tmp_path, """\
        [tool.poetry]
        name = "api"
        version = "1.0.0"

        [tool.poetry.dependencies]
        python = "^3.11"

        [tool.poetry.dev-dependencies]
        coverage = "^7"

        [tool.poetry.group.dev.dependencies]
        pytest = "^8.0"

        [tool.poetry.group.docs]
        optional = true
        include-groups = ["dev"]

        [tool.poetry.group.docs.dependencies]
        mkdocs = "~1.5"
        """)
    assert tomllib.loads(out)["dependency-groups"] == {
        "dev": ["pytest>=8.0,<9.0", "coverage>=7,<8"],
        "docs": [{"include-group": "dev"}, "mkdocs>=1.5,<1.6"],
    }


def test_scripts_plugins_and_file_scripts(tmp_path: Path) -> None:
    out, result = convert(tmp_path, """\
        [tool.poetry]
        name = "api"
        version = "1.0.0"

        [tool.poetry.scripts]
        api = "api.main:run"
        api-admin = {callable = "api.admin:main", extras = ["admin"]}
        setup-db = {reference = "bin/setup-db.sh", type = "file"}

        [tool.poetry.plugins."api.handlers"]
        orders = "api.handlers:orders"
        """)
    data = tomllib.loads(out)
    assert data["project"]["scripts"] == {"api": "api.main:run", "api-admin": "api.admin:main"}
    assert data["project"]["entry-points"] == {"api.handlers":
                                               {"orders": "api.handlers:orders"}}
    assert data["tool"]["poetry"]["scripts"] == {
        "setup-db": {"reference": "bin/setup-db.sh", "type": "file"}}
    assert "script 'api-admin': its extras have no [project.scripts] form and are dropped" \
        in result.notes


def test_an_optional_dependency_in_no_extra_is_left_out(tmp_path: Path) -> None:
    out, result = convert(tmp_path, """\
        [tool.poetry]
        name = "api"
        version = "1.0.0"

        [tool.poetry.dependencies]
        orjson = {version = "^3", optional = true}
        """)
    assert tomllib.loads(out)["project"]["dependencies"] == []
    assert ("the optional dependency 'orjson' is in no extra; Poetry never installed it, so "
            "it is left out") in result.notes


def test_build_system_is_raised_to_poetry_core_2_or_added(tmp_path: Path) -> None:
    out, _ = convert(tmp_path, """\
        [tool.poetry]
        name = "api"
        version = "1.0.0"

        [build-system]
        requires = ["poetry>=0.12", "setuptools-scm"]
        build-backend = "poetry.masonry.api"
        """)
    assert tomllib.loads(out)["build-system"] == {
        "requires": ["poetry-core>=2.0.0,<3.0.0", "setuptools-scm"],
        "build-backend": "poetry.core.masonry.api"}
    out, result = convert(tmp_path, """\
        [tool.poetry]
        name = "api"
        version = "1.0.0"
        """)
    assert tomllib.loads(out)["build-system"]["requires"] == ["poetry-core>=2.0.0,<3.0.0"]
    assert "added [build-system] poetry-core>=2.0.0,<3.0.0" in result.notes


def test_hatchling_switch_maps_packages(tmp_path: Path) -> None:
    out, result = convert(tmp_path, """\
        [tool.poetry]
        name = "api"
        version = "1.0.0"
        packages = [{include = "api", from = "src"}, {include = "api_extras"}]

        [build-system]
        requires = ["poetry-core>=1.0.0"]
        build-backend = "poetry.core.masonry.api"
        """, backend="hatchling")
    data = tomllib.loads(out)
    assert data["build-system"] == {"requires": ["hatchling"],
                                    "build-backend": "hatchling.build"}
    assert data["tool"] == {"hatch": {"build": {"targets": {"wheel": {
        "packages": ["src/api", "api_extras"]}}}}}
    assert "[build-system] switched to hatchling" in result.notes


def test_hatchling_switch_refuses_what_it_cannot_map(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError) as caught:
        convert(tmp_path, """\
            [tool.poetry]
            name = "api"
            version = "1.0.0"
            include = ["CHANGELOG.md"]
            """, backend="hatchling")
    assert caught.value.message == ("services/api/pyproject.toml: tool.poetry.include: has no "
                                    "exact hatchling form")
    assert caught.value.hint == ("keep poetry-core (drop --build-backend), or move those "
                                 "files into the package")


@pytest.mark.parametrize(("body", "message"), [
    ('version = "1"', "services/api/pyproject.toml: tool.poetry.name: missing; a Poetry "
                      "project needs a name"),
    ('name = "api"\nreadme = ["README.md", "CHANGES.md"]',
     "services/api/pyproject.toml: tool.poetry.readme: lists 2 files; [project] takes one "
     "readme"),
    ('name = "api"\nauthors = ["<>"]',
     "services/api/pyproject.toml: tool.poetry.authors[0]: '<>' is not \"Name <email>\""),
    ('name = "api"\n[tool.poetry.extras]\nfast = ["orjson"]',
     "services/api/pyproject.toml: tool.poetry.extras.fast: names 'orjson', which is not an "
     "optional dependency"),
    ('name = "api"\n[tool.poetry.dependencies]\npython = "^3.8 || ^4"',
     "services/api/pyproject.toml: tool.poetry.dependencies.python: the constraint on "
     "'python' (member 'api'): '^3.8 || ^4' is a union ('||'), which one PEP 440 specifier "
     "cannot express"),
])
def test_bad_tables_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(WorkspaceError) as caught:
        convert(tmp_path, "[tool.poetry]\n" + body + "\n")
    assert caught.value.message == message


def test_path_dependencies_on_members_become_names(tmp_path: Path) -> None:
    out, _ = convert(tmp_path, """\
        [tool.poetry]
        name = "api"
        version = "1.0.0"

        [tool.poetry.dependencies]
        events = {path = "../../libs/events", develop = true}

        [tool.poetry.group.dev.dependencies]
        testing = {path = "../../libs/testing-kit"}
        """, members={"libs/events": "events", "libs/testing-kit": "testing-kit"})
    data = tomllib.loads(out)
    assert data["project"]["dependencies"] == ["events"]
    assert data["dependency-groups"] == {"dev": ["testing-kit"]}


def test_poetry_2_file_with_project_keeps_it(tmp_path: Path) -> None:
    out, result = convert(tmp_path, """\
        [project]
        name = "api"
        version = "1.0.0"
        requires-python = ">=3.11"
        dependencies = ["events", "corp-auth>=1.2"]

        [tool.poetry.dependencies]
        events = {path = "../../libs/events", develop = true}
        corp-auth = {source = "corp"}
        leftover = "^1"

        [tool.poetry.group.dev.dependencies]
        pytest = "^8.0"

        [[tool.poetry.source]]
        name = "corp"
        url = "https://pypi.corp.example/simple"
        priority = "explicit"

        [build-system]
        requires = ["poetry-core>=2.0.0,<3.0.0"]
        build-backend = "poetry.core.masonry.api"
        """, members={"libs/events": "events"})
    data = tomllib.loads(out)
    assert data["project"]["dependencies"] == ["events", "corp-auth>=1.2"]
    assert data["dependency-groups"] == {"dev": ["pytest>=8.0,<9.0"]}
    assert "tool" not in data
    assert result.pins == {"corp-auth": "corp"}
    assert result.notes == ("[tool.poetry.dependencies] entries not in [project].dependencies "
                            "are dropped, as Poetry ignores them: leftover",)


def test_poetry_2_dynamic_dependencies_come_from_tool_poetry(tmp_path: Path) -> None:
    out, _ = convert(tmp_path, """\
        [project]
        name = "api"
        version = "1.0.0"
        dynamic = ["dependencies"]

        [tool.poetry.dependencies]
        python = "^3.11"
        attrs = "^23.1"
        """)
    project = tomllib.loads(out)["project"]
    assert project["dependencies"] == ["attrs>=23.1,<24.0"]
    assert project["requires-python"] == ">=3.11,<4.0"
    assert "dynamic" not in project
