"""What every command shares: the App (global options and the Session), error mapping, output.

Only the cli package talks to the terminal and decides exit codes: 0 success,
1 a user error (an OrchestratorError, printed without a traceback unless
--verbose), 2 a usage error.
"""

from __future__ import annotations

import errno
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from orchestrator import __version__
from orchestrator.cli import COMMANDS
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.cache import FetchEvent, Progress
    from orchestrator.models import LoadWarning
    from orchestrator.session import Session

EXIT_USER_ERROR = 1
EXIT_USAGE = 2


@dataclass
class App:
    """Global options, and the Session the command works through (made on first use)."""

    workspace_path: Path | None = None
    verbose: bool = False
    quiet: bool = False
    _sessions: list[Session] = field(default_factory=list, repr=False)

    def session(self, *, refresh: bool = False, offline: bool = False) -> Session:
        """The command's session; the first call decides *refresh* and *offline*."""
        if not self._sessions:
            from orchestrator.session import Session

            self._sessions.append(Session(self.workspace_path, refresh=refresh,
                                          offline=offline, warn=self.warn))
        return self._sessions[0]

    def close(self) -> None:
        for session in self._sessions:
            session.close()

    def warn(self, warning: LoadWarning) -> None:
        """A warning from loading the workspace: stderr, even with --quiet."""
        click.secho(f"warning: {warning.message}", err=True, fg="yellow")
        if warning.hint:
            click.echo(f"hint: {warning.hint}", err=True)

    def info(self, message: str) -> None:
        """Progress and summaries for people: stderr, silenced by --quiet."""
        if not self.quiet:
            click.echo(message, err=True)

    def fetch_progress(self) -> Progress | None:
        """Downloads on stderr: one updating line on a terminal, plain lines otherwise."""
        if self.quiet:
            return None
        return _FetchProgress(sys.stderr.isatty())


class _FetchProgress:
    def __init__(self, tty: bool) -> None:
        self._tty = tty
        self._lock = threading.Lock()  # events arrive from the download threads

    def __call__(self, event: FetchEvent, /) -> None:
        with self._lock:
            name = event.file.filename
            if event.status == "corrupt":
                click.echo(f"  {name}: cached copy failed its hash check; fetching again",
                           err=True)
            elif event.status == "downloaded" and self._tty:
                end = "\n" if event.done == event.total else ""
                click.echo(f"\r\033[K  downloaded {event.done}/{event.total}: {name}{end}",
                           err=True, nl=False)
            elif event.status == "downloaded":
                click.echo(f"  [{event.done}/{event.total}] {name}", err=True)


_USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                          errno.ENAMETOOLONG})


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space, then run again",
    errno.EDQUOT: "the disk quota is used up: free space, then run again",
    errno.EROFS: "the file system is read-only: run where the workspace is writable",
    errno.ENAMETOOLONG: "the path is too long: move the workspace to a shorter path",
}


class OrchestratorGroup(click.Group):
    """Maps library errors to a short message and exit code 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OrchestratorError as exc:
            app = ctx.find_object(App)
            fail(exc, verbose=bool(app and app.verbose))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except OSError as exc:
            # A full disk, a read-only or forbidden directory, a too-long path met
            # where no stage names it better: the user's to fix, not a bug
            if exc.errno not in _USER_ERRNOS:
                raise
            app = ctx.find_object(App)
            where = exc.filename or "a file"
            hint = _OS_HINTS.get(exc.errno or 0, "make the directory writable, then run again")
            fail(OrchestratorError(f"cannot write {where}: {exc.strerror or exc}", hint=hint,
                                   file=Path(exc.filename) if exc.filename else None),
                 verbose=bool(app and app.verbose))
        except Exception as exc:  # a bug: still no traceback unless asked for
            app = ctx.find_object(App)
            if app and app.verbose:
                raise
            click.secho(f"error: internal error: {type(exc).__name__}: {exc}", err=True,
                        fg="red")
            click.echo("hint: run again with --verbose for the traceback, and report it",
                       err=True)
            sys.exit(EXIT_USER_ERROR)
        finally:
            app = ctx.find_object(App)
            if app is not None:
                app.close()


class LazyGroup(OrchestratorGroup):
    """A group that imports a command's module only when the command is asked for.

    *lazy* maps each command name to ``"module:attribute"``. Running one
    command imports its module alone; ``--help`` (which lists every command
    with its short help), shell completion of command names and the
    "did you mean" of an unknown command see every name without importing
    anything until a command itself is needed.
    """

    def __init__(self, *args: object, lazy: Mapping[str, str] | None = None,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            import importlib

            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # click >= 8.4 suggests close names from the loaded commands: from all of them
            no_such = getattr(click.exceptions, "NoSuchCommand", None)
            if no_such is None or not isinstance(exc, no_such):
                raise
            raise no_such(exc.command_name, possibilities=self.list_commands(ctx),
                          ctx=ctx) from None


def fail(exc: OrchestratorError, *, verbose: bool) -> NoReturn:
    if verbose:
        import traceback

        traceback.print_exc()
    click.secho(f"error: {exc.message}", err=True, fg="red")
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    sys.exit(EXIT_USER_ERROR)


pass_app = click.make_pass_decorator(App)


def echo_json(data: object) -> None:
    import json

    click.echo(json.dumps(data, indent=2))


def size(n: int) -> str:
    """Bytes for people: 512 B, 1.5 KiB, 3.2 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"



# The group: `orchestrator.cli` serves it (``cli``) on first use, after the no-op fast path.
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
