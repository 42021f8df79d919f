"""The command line: parse options, ask the session's stages for results, print them.

One module per command group: ``plan`` (list, graph, affected, matrix,
check), ``locking`` (lock, update, export), ``env`` (sync, run, show,
cache), ``edit`` (add, remove, version, new), ``images`` (dockerfile,
build), ``adopt`` (init), ``publish`` (package, publish), ``governance``
(audit, licenses, sbom) and ``ci`` (ci generate, ci check); ``app`` holds what they share
(global options, the Session, error mapping, output helpers). A new command
goes into the module of its group and its COMMANDS tuple, and its name into
``COMMANDS`` below (tests/test_cli.py checks the two agree); the work it does
goes into a stage module, never here.
Commands are registered lazily: running one imports its module alone, and
heavy libraries are imported inside commands, so that a no-op (`lock
--check`, `sync` with nothing to do) and `orchestrator --help` start fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from orchestrator import __version__
from orchestrator.cli.app import EXIT_USAGE, EXIT_USER_ERROR, App, LazyGroup

__all__ = ["COMMANDS", "EXIT_USAGE", "EXIT_USER_ERROR", "cli", "main"]

# command name -> "module:attribute"; each module's COMMANDS tuple holds the same commands
COMMANDS = {
    "init": "orchestrator.cli.adopt:init",
    "list": "orchestrator.cli.plan:list_cmd",
    "graph": "orchestrator.cli.plan:graph",
    "affected": "orchestrator.cli.plan:affected_cmd",
    "matrix": "orchestrator.cli.plan:matrix",
    "check": "orchestrator.cli.plan:check",
    "lock": "orchestrator.cli.locking:lock",
    "update": "orchestrator.cli.locking:update",
    "export": "orchestrator.cli.locking:export",
    "add": "orchestrator.cli.edit:add",
    "remove": "orchestrator.cli.edit:remove",
    "version": "orchestrator.cli.edit:version",
    "new": "orchestrator.cli.edit:new",
    "sync": "orchestrator.cli.env:sync",
    "run": "orchestrator.cli.env:run",
    "show": "orchestrator.cli.env:show",
    "cache": "orchestrator.cli.env:cache",
    "dockerfile": "orchestrator.cli.images:dockerfile",
    "build": "orchestrator.cli.images:build",
    "package": "orchestrator.cli.publish:package",
    "publish": "orchestrator.cli.publish:publish",
    "audit": "orchestrator.cli.governance:audit",
    "licenses": "orchestrator.cli.governance:licenses",
    "sbom": "orchestrator.cli.governance:sbom",
    "ci": "orchestrator.cli.ci:ci",
}


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
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


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="orchestrator")
