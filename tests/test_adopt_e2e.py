"""A small Poetry monorepo adopted end to end against the public index and a Docker engine.

`init --from poetry` converts a library (``attrs = "^23.1"``) and a service
(``click = "^8.1"``, the library as ``{path = "../../libs/greetlib", develop =
true}``, a pytest dev group); then `lock` resolves from the public index,
`sync` makes the venvs, the service's own tests pass through `run`, and the
build context `dockerfile --context` writes builds with `docker build` and
runs. The image part needs an engine and the local base image
(tests/support/docker_infra.py) and is skipped cleanly without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from tests.support import docker_infra
from tests.support.git import git

pytestmark = [pytest.mark.network, pytest.mark.slow]

FILES = {
    "pyproject.toml": """\
        [tool.poetry]
        name = "greetings"
        version = "0.0.0"
        package-mode = false
        """,
    "libs/greetlib/pyproject.toml": """\
        [tool.poetry]
        name = "greetlib"
        version = "0.3.0"
        description = "How to greet"
        authors = ["Greeters <greet@example.com>"]

        [tool.poetry.dependencies]
        python = "^3.11"
        attrs = "^23.1"

        [build-system]
        requires = ["poetry-core>=1.0.0"]
        build-backend = "poetry.core.masonry.api"
        """,
    "libs/greetlib/greetlib/__init__.py": """\
        \"\"\"How to greet.\"\"\"

        import attrs


        @attrs.frozen
        class Greeting:
            name: str

            def text(self) -> str:
                return f"hello, {self.name}"
        """,
    "services/greeter/pyproject.toml": """\
        [tool.poetry]
        name = "greeter"
        version = "1.0.0"
        description = "Greets from the command line"
        authors = ["Greeters <greet@example.com>"]

        [tool.poetry.dependencies]
        python = "^3.11"
        click = "^8.1"
        greetlib = {path = "../../libs/greetlib", develop = true}

        [tool.poetry.group.dev.dependencies]
        pytest = "^8.0"

        [tool.poetry.scripts]
        greeter = "greeter.cli:main"

        [build-system]
        requires = ["poetry-core>=1.0.0"]
        build-backend = "poetry.core.masonry.api"
        """,
    "services/greeter/greeter/__init__.py": '"""Greets from the command line."""\n',
    "services/greeter/greeter/cli.py": """\
        \"\"\"The greeter command.\"\"\"

        import click

        from greetlib import Greeting


        @click.command()
        @click.argument("name", default="world")
        def main(name: str) -> None:
            click.echo(Greeting(name).text())
        """,
    "services/greeter/tests/test_cli.py": """\
        from click.testing import CliRunner

        from greeter.cli import main


        def test_greets() -> None:
            assert CliRunner().invoke(main, ["ada"]).output == "hello, ada\\n"
        """,
}


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The monorepo in a git repository, adopted, locked against the public index, synced."""
    root = tmp_path_factory.mktemp("greetings")
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "a Poetry monorepo")
    for args in (["init", str(root), "--from", "poetry"], ["-w", str(root), "lock"],
                 ["-w", str(root), "sync"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return root


def test_the_service_is_converted_locked_and_synced(adopted: Path) -> None:
    project = tomllib.loads((adopted / "services/greeter/pyproject.toml").read_text())
    assert project["project"]["dependencies"] == ["click>=8.1,<9.0", "greetlib"]
    assert project["dependency-groups"] == {"dev": ["pytest>=8.0,<9.0"]}
    lock = tomllib.loads((adopted / "services/greeter/pylock.toml").read_text())
    versions = {p["name"]: p["version"] for p in lock["packages"]}
    assert versions["greetlib"] == "0.3.0"
    assert versions["attrs"].startswith("23.")  # ^23.1 keeps attrs 24 out
    assert versions["click"].startswith("8.")
    assert "pytest" in versions


def test_the_service_tests_pass_in_its_venv(adopted: Path) -> None:
    # `run` replaces its process with the command, so it runs in a child here.
    proc = subprocess.run([sys.executable, "-m", "orchestrator", "-w", str(adopted), "run",
                           "greeter", "--", "pytest", "-q", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


@pytest.mark.docker
def test_the_build_context_builds_and_runs(adopted: Path, tmp_path: Path) -> None:
    if not docker_infra.docker_available():
        pytest.skip(docker_infra.skip_reason("docker"))
    base = docker_infra.base_image()
    if base is None:
        pytest.skip(docker_infra.skip_reason("base_image"))
    context = tmp_path / "context"
    saved = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = docker_infra.docker_host()
    try:
        result = CliRunner().invoke(cli, ["-w", str(adopted), "dockerfile", "greeter",
                                          "--context", str(context), "--base", base])
    finally:
        if saved is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = saved
    assert result.exit_code == 0, result.stderr
    tag = f"orchestrator-test-greeter:{os.getpid()}"
    env = docker_infra.docker_env()
    try:
        subprocess.run(["docker", "build", "-q", "-t", tag, str(context)], check=True,
                       env=env, capture_output=True, text=True)
        out = subprocess.run(["docker", "run", "--rm", "--network", "none", tag, "greeter",
                              "grace"], check=True, env=env, capture_output=True,
                             text=True).stdout
        assert out == "hello, grace\n"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], env=env, capture_output=True,
                       check=False)
