"""The command line: parse options, ask the session's stages for results, print them.

One module per command group: ``plan`` (list, graph, affected, matrix,
check), ``locking`` (lock, update, export), ``env`` (sync, run, show,
cache), ``edit`` (add, remove, version, new), ``images`` (dockerfile,
build), ``adopt`` (init), ``publish`` (package, publish), ``governance``
(audit, licenses, sbom) and ``ci`` (ci generate, ci check); ``app`` holds what they share
(global options, the Session, error mapping, output helpers). A new command
goes into the module of its group and its COMMANDS tuple; the work it does
goes into a stage module, never here.
Heavy libraries are imported inside commands so that `orchestrator --help`
starts fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from orchestrator import __version__
from orchestrator.cli import adopt, ci, edit, env, governance, images, locking, plan, publish
from orchestrator.cli.app import EXIT_USAGE, EXIT_USER_ERROR, App, OrchestratorGroup

__all__ = ["EXIT_USAGE", "EXIT_USER_ERROR", "cli", "main"]


@click.group(cls=OrchestratorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--workspace", "-w", "workspace_path", type=click.Path(path_type=Path),
              help="workspace.yaml, or a directory inside the workspace (default: search "
              "upwards from the current directory).")
@click.option("--verbose", "-v", is_flag=True, help="Show more detail and tracebacks.")
@click.option("--quiet", "-q", is_flag=True, help="Print only results, no progress.")
@click.version_option(__version__, prog_name="orchestrator")
@click.pass_context
def cli(ctx: click.Context, workspace_path: Path | None, verbose: bool, quiet: bool) -> None:
    """Plan, lock, install and build the services of a Python monorepo."""
    ctx.obj = App(workspace_path=workspace_path, verbose=verbose, quiet=quiet)


for _group in (adopt, plan, locking, edit, env, images, publish, governance, ci):
    for _command in _group.COMMANDS:
        cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="orchestrator")
