"""Run the CLI in-process against a workspace, as the tests do."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from orchestrator.cli import cli


def run(root: Path, *args: str) -> tuple[int, str, str]:
    """`orchestrator -w ROOT ARGS...`: exit code, stdout, stderr."""
    result = CliRunner().invoke(cli, ["-w", str(root), *args])
    return result.exit_code, result.stdout, result.stderr
