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
The group itself (``cli``) lives in ``app`` and is imported on first use:
``main`` first asks ``orchestrator.noop`` whether a stamp answers the
command (a repeated no-op), and only otherwise imports click.
"""

from __future__ import annotations

import sys

# typing costs 3 ms of a 25 ms no-op; mypy reads any TYPE_CHECKING as true
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Sequence

    from orchestrator.cli.app import EXIT_USAGE, EXIT_USER_ERROR, App, LazyGroup, cli

__all__ = ["COMMANDS", "EXIT_USAGE", "EXIT_USER_ERROR", "App", "LazyGroup", "cli", "main"]

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

_FROM_APP = ("cli", "App", "LazyGroup", "EXIT_USAGE", "EXIT_USER_ERROR")


def __getattr__(name: str) -> object:
    """``cli`` and the names re-exported from ``app``, imported (with click) when first used."""
    if name in _FROM_APP:
        from orchestrator.cli import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: a stamped no-op is answered before click is imported."""
    args = list(sys.argv[1:] if argv is None else argv)
    from orchestrator import noop

    code = noop.answer(args)
    if code is not None:
        raise SystemExit(code)
    recorder = noop.Recorder.start(args)
    from orchestrator.cli.app import cli

    try:
        cli.main(args=args, prog_name="orchestrator")
    except SystemExit as exc:
        if recorder is not None:
            recorder.finish(exc.code)
        raise
    finally:
        if recorder is not None:
            recorder.stop()
