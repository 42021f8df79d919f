"""The command line: a thin layer that parses options, calls the library, prints.

Only this module talks to the terminal and decides exit codes: 0 success,
1 a user error (an OrchestratorError, printed without a traceback unless
--verbose), 2 a usage error. Heavy libraries are imported inside commands so
that `orchestrator --help` starts fast.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from orchestrator import __version__
from orchestrator.errors import OrchestratorError
from orchestrator.models import Member, Workspace

EXIT_USER_ERROR = 1
EXIT_USAGE = 2


@dataclass
class App:
    """Global options and the lazily loaded workspace."""

    workspace_path: Path | None = None
    verbose: bool = False
    quiet: bool = False
    _workspace: Workspace | None = field(default=None, repr=False)

    def workspace(self) -> Workspace:
        if self._workspace is None:
            from orchestrator.workspace import load_workspace

            self._workspace = load_workspace(self.workspace_path)
        return self._workspace

    def info(self, message: str) -> None:
        """Progress and summaries for people: stderr, silenced by --quiet."""
        if not self.quiet:
            click.echo(message, err=True)

    def members(self, names: Sequence[str], *, services_only: bool = False) -> list[Member]:
        from orchestrator.graph import select

        ws = self.workspace()
        chosen = select(ws, names) if names else list(ws.members)
        if services_only:
            if names:
                for member in chosen:
                    if member.kind != "service":
                        raise OrchestratorError(
                            f"{member.name} is a library, not a service",
                            hint="only services have images; list services with "
                            "`orchestrator list`")
            chosen = [m for m in chosen if m.kind == "service"]
        return chosen


class OrchestratorGroup(click.Group):
    """Maps library errors to a short message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OrchestratorError as exc:
            app = ctx.find_object(App)
            _fail(exc, verbose=bool(app and app.verbose))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug: still no traceback unless asked for
            app = ctx.find_object(App)
            if app and app.verbose:
                raise
            click.secho(f"error: internal error: {type(exc).__name__}: {exc}", err=True,
                        fg="red")
            click.echo("hint: run again with --verbose for the traceback, and report it",
                       err=True)
            sys.exit(EXIT_USER_ERROR)


def _fail(exc: OrchestratorError, *, verbose: bool) -> NoReturn:
    if verbose:
        traceback.print_exc()
    click.secho(f"error: {exc.message}", err=True, fg="red")
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    sys.exit(EXIT_USER_ERROR)


pass_app = click.make_pass_decorator(App)


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


# -- planning -----------------------------------------------------------------


@cli.command("list")
@click.option("--services", "services_only", is_flag=True, help="Only services.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_cmd(app: App, services_only: bool, as_json: bool) -> None:
    """List the workspace members."""
    ws = app.workspace()
    members = [m for m in ws.members if m.kind == "service" or not services_only]
    if as_json:
        import json

        rows = [{"name": m.name, "kind": m.kind, "version": m.version, "path": m.relpath}
                for m in members]
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(m.name) for m in members), default=0)
    for m in members:
        click.echo(f"{m.name:<{width}}  {m.kind:<8}  {m.version or '-':<10}  {m.relpath}")


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "dot", "mermaid", "json"]),
              default="text", show_default=True)
@pass_app
def graph(app: App, fmt: str) -> None:
    """Show the member dependency graph and the build stages."""
    from orchestrator import report
    from orchestrator.graph import build_generations, build_graph, member_edges

    ws = app.workspace()
    g = build_graph(ws)
    edges = member_edges(ws)
    if fmt == "dot":
        click.echo(report.graph_dot(ws, edges))
    elif fmt == "mermaid":
        click.echo(report.graph_mermaid(ws, edges))
    elif fmt == "json":
        click.echo(report.graph_json(ws, edges, build_generations(g)))
    else:
        click.echo(report.graph_text(ws, edges, build_generations(g)))


def _affected(app: App, since: str | None, committed_only: bool) -> list[Any]:
    from orchestrator.graph import Affected, affected, build_graph, build_order

    ws = app.workspace()
    g = build_graph(ws)
    if since is None:
        by_name = {m.name: m for m in ws.members}
        return [Affected(by_name[n], "all members") for n in build_order(g)]
    from orchestrator.vcs import changed_files

    return affected(ws, g, changed_files(ws.root, since, committed_only=committed_only))


@cli.command("affected")
@click.option("--since", required=True, metavar="REF",
              help="Compare with the merge base of REF and HEAD (e.g. origin/main).")
@click.option("--committed-only", is_flag=True, help="Ignore uncommitted changes.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@pass_app
def affected_cmd(app: App, since: str, committed_only: bool, fmt: str) -> None:
    """List the members a change since REF affects, in build order."""
    result = _affected(app, since, committed_only)
    if fmt == "json":
        import json

        rows = [{"name": a.member.name, "kind": a.member.kind, "path": a.member.relpath,
                 "reason": a.reason} for a in result]
        click.echo(json.dumps(rows, indent=2))
        return
    if not result:
        app.info(f"no member is affected by changes since {since}")
    for a in result:
        click.echo(f"{a.member.name}\t{a.reason}")


@cli.command()
@click.option("--since", metavar="REF", help="Only services affected since REF.")
@click.option("--all", "all_", is_flag=True, help="Every service.")
@click.option("--committed-only", is_flag=True, help="Ignore uncommitted changes.")
@click.option("--format", "fmt", type=click.Choice(["github", "gitlab", "json"]),
              default="github", show_default=True)
@pass_app
def matrix(app: App, since: str | None, all_: bool, committed_only: bool, fmt: str) -> None:
    """Print a CI matrix of the services to build."""
    from orchestrator import report

    if bool(since) == all_:
        raise click.UsageError("pass exactly one of --since REF or --all")
    entries = report.matrix_entries(app.workspace(), _affected(app, since, committed_only))
    render = {"github": report.matrix_github, "gitlab": report.matrix_gitlab,
              "json": report.matrix_json}[fmt]
    click.echo(render(entries).rstrip("\n"))


@cli.command()
@pass_app
def check(app: App) -> None:
    """Validate the workspace and report what was found."""
    from orchestrator.graph import build_graph

    ws = app.workspace()
    build_graph(ws)
    services = sum(1 for m in ws.members if m.kind == "service")
    libraries = len(ws.members) - services
    click.echo(f"workspace {ws.name} ({ws.manifest})")
    click.echo(f"  python {ws.python} on {', '.join(ws.platforms)}")
    click.echo(f"  indexes: {', '.join(f'{i.name} ({i.url})' for i in ws.indexes)}")
    click.echo(f"  members: {len(ws.members)} ({services} services, {libraries} libraries)")
    from orchestrator.lock import staleness

    for m in ws.members:
        groups = f", groups: {', '.join(m.groups)}" if m.groups else ""
        stale = staleness(ws, m)
        lock_state = "lock current" if stale is None else f"lock stale: {stale.reason}"
        click.echo(f"    {m.name} [{m.kind}] {m.relpath}: {len(m.dependencies)} dependencies"
                   f"{groups}; {lock_state}")
    click.echo("ok: no problems found")


# -- locking ----------------------------------------------------------------------


def _sources(members: Sequence[Member]) -> dict[str, str]:
    """The union of the members' package -> index pins; conflicting pins are an error."""
    merged: dict[str, tuple[str, str]] = {}
    for member in members:
        for package, index in member.options.sources.items():
            seen = merged.setdefault(package, (index, member.name))
            if seen[0] != index:
                raise OrchestratorError(
                    f"{package} is pinned to index {seen[0]!r} by {seen[1]} but to {index!r} "
                    f"by {member.name}",
                    hint="pin the package to the same index in [tool.orchestrator.sources] of "
                    "both members")
    return {package: index for package, (index, _m) in merged.items()}


def _index_client(app: App, *, refresh: bool = False, offline: bool = False) -> Any:
    from orchestrator.index import IndexClient

    ws = app.workspace()
    cache_dir = ws.resolved_cache_dir()

    def sdist_metadata(path: Path) -> Any:
        """Metadata of a package that only has an sdist: a PEP 517 build, cached."""
        from orchestrator.build import SdistBuilder
        from orchestrator.cache import WheelCache

        return SdistBuilder(WheelCache(cache_dir), [i.url for i in ws.indexes]
                            ).prepare_metadata(path)

    return IndexClient(ws.indexes, cache_dir, sources=_sources(ws.members),
                       refresh=refresh, offline=offline, sdist_metadata=sdist_metadata)


def _run_lock(app: App, names: Sequence[str], *, upgrade: bool | Sequence[str],
              refresh: bool) -> None:
    import time

    from orchestrator.lock import lock_members

    ws = app.workspace()
    members = app.members(names)
    started = time.monotonic()
    app.info(f"locking {len(members)} member(s) for "
             f"{', '.join(f'{t.python} {t.platform}' for t in ws.targets)}")
    with _index_client(app, refresh=refresh) as client:
        results = lock_members(ws, members, client, upgrade=upgrade, progress=app.info)
    for result in results:
        state = "updated" if result.written else "unchanged"
        click.echo(f"{result.member.name}: {result.packages} packages, {state}"
                   f"{'' if result.changes.empty else ' (' + result.changes.summary() + ')'}")
    app.info(f"locked in {time.monotonic() - started:.2f}s")


@cli.command()
@click.argument("members", nargs=-1)
@click.option("--check", is_flag=True,
              help="Exit 1 if a lock is missing or stale; offline, no resolution.")
@click.option("--refresh", is_flag=True, help="Re-fetch index pages, ignoring their TTL.")
@pass_app
def lock(app: App, members: tuple[str, ...], check: bool, refresh: bool) -> None:
    """Write pylock.toml for every member (or those named), keeping existing pins."""
    if check:
        from orchestrator.lock import stale_members

        ws = app.workspace()
        chosen = app.members(members)
        stale = stale_members(ws, chosen)
        for item in stale:
            click.echo(f"{item.member.name}: stale: {item.reason}", err=True)
        if stale:
            raise OrchestratorError(
                f"{len(stale)} of {len(chosen)} lock(s) are out of date: "
                + ", ".join(s.member.name for s in stale),
                hint="run `orchestrator lock` and commit the pylock.toml files")
        click.echo(f"{len(chosen)} lock(s) up to date")
        return
    _run_lock(app, members, upgrade=False, refresh=refresh)


@cli.command()
@click.argument("members", nargs=-1)
@click.option("--package", "-p", "packages", multiple=True, metavar="PKG",
              help="Upgrade only this package (repeatable); default: everything.")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="Re-fetch index pages so new releases are seen.")
@pass_app
def update(app: App, members: tuple[str, ...], packages: tuple[str, ...], refresh: bool) -> None:
    """Re-resolve allowing upgrades, for all packages or those named with --package."""
    _run_lock(app, members, upgrade=list(packages) if packages else True, refresh=refresh)


# -- everyday commands --------------------------------------------------------------


@cli.command()
@click.argument("member")
@click.option("--format", "fmt", type=click.Choice(["requirements.txt", "pylock.toml"]),
              default="requirements.txt", show_default=True)
@click.option("--no-dev", is_flag=True, help="Leave out dependency groups (main only).")
@click.option("--group", "-g", "groups", multiple=True, help="Include this group (repeatable).")
@click.option("--no-workspace", is_flag=True, help="Leave out workspace members.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write to FILE.")
@pass_app
def export(app: App, member: str, fmt: str, no_dev: bool, groups: tuple[str, ...],
           no_workspace: bool, output: Path | None) -> None:
    """Export MEMBER's lock as requirements.txt (with hashes) or pylock.toml."""
    from orchestrator.atomic import write_text
    from orchestrator.export import export as run_export
    from orchestrator.sync import member_groups

    ws = app.workspace()
    (chosen,) = app.members([member])
    _require_fresh_lock(app, chosen)
    chosen_groups = member_groups(chosen, groups=list(groups) or None, only_groups=(),
                                  no_dev=no_dev)
    text = run_export(ws, chosen, fmt=fmt, groups=chosen_groups,
                      workspace_members=not no_workspace,
                      output_dir=output.resolve().parent if output else None)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text(output, text)
        app.info(f"wrote {output}")


@cli.command()
@click.argument("member")
@click.argument("rule", required=False)
@click.option("--dry-run", is_flag=True, help="Print the new version without writing it.")
@pass_app
def version(app: App, member: str, rule: str | None, dry_run: bool) -> None:
    """Show MEMBER's version, or bump it: patch, minor, major, pre, or X.Y.Z."""
    from orchestrator.pyproject import PyprojectEdit, bump

    (chosen,) = app.members([member])
    edit = PyprojectEdit.load(chosen.pyproject)
    current = edit.version()
    if current is None:
        raise OrchestratorError(f"{chosen.relpath}/pyproject.toml has no static "
                                "[project].version", hint="set project.version to a string")
    if rule is None:
        click.echo(f"{chosen.name} {current}")
        return
    new = bump(current, rule)
    if not dry_run:
        edit.set_version(new)
        edit.save()
    click.echo(f"{chosen.name} {current} -> {new}{' (dry run)' if dry_run else ''}")


@cli.command()
@click.argument("member")
@click.argument("requirements", nargs=-1, required=True)
@click.option("--group", "-g", help="Add to this dependency group instead of the main list.")
@click.option("--no-sync", is_flag=True, help="Only edit and re-lock; leave the venv alone.")
@pass_app
def add(app: App, member: str, requirements: tuple[str, ...], group: str | None,
        no_sync: bool) -> None:
    """Add REQUIREMENTS to MEMBER's pyproject.toml, then re-lock (and sync)."""
    from orchestrator.pyproject import add as run_add

    (chosen,) = app.members([member])
    with _index_client(app) as client:
        result = run_add(app.workspace(), chosen, requirements, group, client)
    _report_edit(app, result, no_sync)


@cli.command()
@click.argument("member")
@click.argument("packages", nargs=-1, required=True)
@click.option("--group", "-g", help="Remove from this dependency group.")
@click.option("--no-sync", is_flag=True, help="Only edit and re-lock; leave the venv alone.")
@pass_app
def remove(app: App, member: str, packages: tuple[str, ...], group: str | None,
           no_sync: bool) -> None:
    """Remove PACKAGES from MEMBER's pyproject.toml, then re-lock (and sync)."""
    from orchestrator.pyproject import remove as run_remove

    (chosen,) = app.members([member])
    with _index_client(app) as client:
        result = run_remove(app.workspace(), chosen, packages, group, client)
    _report_edit(app, result, no_sync)


def _report_edit(app: App, result: Any, no_sync: bool) -> None:
    for change in result.changes:
        click.echo(f"{result.member}: {change}")
    app.info(f"re-locked: {', '.join(result.relocked)}")
    if not no_sync:
        _sync_after_edit(app, result.member)


def _sync_after_edit(app: App, member: str) -> None:
    """Bring the member's venv up to date, if it has one (a later `sync` creates it)."""
    fresh = App(app.workspace_path, app.verbose, app.quiet)  # the edit changed the workspace
    chosen = fresh.members([member])
    if (chosen[0].path / ".venv").exists():
        _sync_members(fresh, chosen, groups=None, no_dev=False, frozen=True)


@cli.command()
@click.argument("member")
@click.option("--tree", is_flag=True, help="Show the dependency tree.")
@click.option("--why", "why", metavar="PKG", help="Show why PKG is in the lock.")
@click.option("--outdated", is_flag=True, help="Show locked packages with newer releases.")
@pass_app
def show(app: App, member: str, tree: bool, why: str | None, outdated: bool) -> None:
    """Show MEMBER's locked packages, tree, outdated packages, or why one is there."""
    from orchestrator import report
    from orchestrator.lock import read_lock
    from orchestrator.names import normalize

    (chosen,) = app.members([member])
    lock = read_lock(chosen.lockfile)
    if why:
        chains = report.show_why(chosen, lock, normalize(why))
        if not chains:
            raise OrchestratorError(f"{normalize(why)} is not in {chosen.name}'s lock",
                                    hint=f"see `orchestrator show {chosen.name}`")
        for chain in chains:
            click.echo(" -> ".join([chosen.name, *chain]))
    elif tree:
        click.echo(report.show_tree(chosen, lock))
    elif outdated:
        _show_outdated(app, lock)
    else:
        click.echo(report.show_list(chosen, lock, _installed_versions(chosen)))


def _installed_versions(member: Member) -> dict[str, str] | None:
    venv_dir = member.path / ".venv"
    if not venv_dir.exists():
        return None
    from orchestrator.venv import installed

    return {name: dist.version for name, dist in installed(venv_dir).items()}


def _filename_version(filename: str) -> Any:
    """The version in a wheel or sdist filename; None for eggs and other leftovers."""
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _show_outdated(app: App, lock: Any) -> None:
    from packaging.version import Version

    with _index_client(app, refresh=True) as client:
        names = [str(p.name) for p in lock.packages if p.version and p.directory is None]
        client.prefetch_projects(names)
        rows = []
        for pkg in lock.packages:
            if pkg.directory is not None or pkg.version is None:
                continue
            versions: list[Version] = []
            for f in client.files(str(pkg.name)):
                parsed = _filename_version(f.filename)
                if f.yanked is None and parsed is not None and not parsed.is_prerelease:
                    versions.append(parsed)
            newest = max(versions, default=pkg.version)
            if newest > pkg.version:
                rows.append((str(pkg.name), str(pkg.version), str(newest)))
    if not rows:
        click.echo("every locked package is at its newest release")
    for name, current, newest in rows:
        click.echo(f"{name}  {current} -> {newest}")


@cli.command()
@click.argument("kind", type=click.Choice(["service", "library"]))
@click.argument("name")
@click.option("--path", type=click.Path(path_type=Path),
              help="Directory to create (default: services/NAME or libs/NAME).")
@pass_app
def new(app: App, kind: str, name: str, path: Path | None) -> None:
    """Create a new service or library from templates/new/KIND."""
    from orchestrator.scaffold import new_member

    ws = app.workspace()
    created = new_member(ws, "service" if kind == "service" else "library", name, path)
    click.echo(f"created {kind} {name} in {created.relative_to(ws.root.resolve()).as_posix()}")
    app.info(f"next: orchestrator lock {name} && orchestrator sync {name}")


# -- environments ---------------------------------------------------------------------


def _clients(app: App, index: Any) -> Any:
    from orchestrator.build import SdistBuilder
    from orchestrator.cache import WheelCache
    from orchestrator.sync import Clients

    ws = app.workspace()
    cache = WheelCache(ws.resolved_cache_dir())
    return Clients(index=index, cache=cache,
                   builder=SdistBuilder(cache, [i.url for i in ws.indexes]))


def _fetch_progress(app: App) -> Any:
    """Downloads on stderr: one updating line on a terminal, plain lines otherwise."""
    if app.quiet:
        return None
    import threading

    tty = sys.stderr.isatty()
    lock = threading.Lock()  # events arrive from the download threads

    def show(event: Any) -> None:
        with lock:
            if event.status == "corrupt":
                click.echo(f"  {event.file.filename}: cached copy failed its hash check; "
                           "fetching again", err=True)
            elif event.status == "downloaded" and tty:
                end = "\n" if event.done == event.total else ""
                click.echo(f"\r\033[K  downloaded {event.done}/{event.total}: "
                           f"{event.file.filename}{end}", err=True, nl=False)
            elif event.status == "downloaded":
                click.echo(f"  [{event.done}/{event.total}] {event.file.filename}", err=True)

    return show


def _sync_members(app: App, members: Sequence[Member], *, groups: Sequence[str] | None,
                  no_dev: bool, frozen: bool, only_groups: Sequence[str] = (),
                  python: str | None = None) -> None:
    from orchestrator.lock import stale_members
    from orchestrator.sync import member_groups, sync_member

    ws = app.workspace()
    stale = stale_members(ws, members)
    if stale and frozen:
        raise OrchestratorError(
            "--frozen: the lock of " + ", ".join(f"{s.member.name} ({s.reason})" for s in stale)
            + " is out of date", hint="run `orchestrator lock`, or drop --frozen")
    with _index_client(app) as client:
        if stale:
            from orchestrator.lock import lock_members

            app.info(f"locking first: {', '.join(s.member.name for s in stale)}")
            lock_members(ws, [s.member for s in stale], client)
        clients = _clients(app, client)
        for member in members:
            chosen = member_groups(member, groups=groups, only_groups=only_groups,
                                   no_dev=no_dev)
            report = sync_member(ws, member, chosen, clients, python=python,
                                 only_groups=bool(only_groups),
                                 progress=_fetch_progress(app))
            _print_sync(app, member, report)


def _print_sync(app: App, member: Member, report: Any) -> None:
    """Sync results go to stderr, so `run` leaves stdout to the command it runs."""
    if not report.changed:
        app.info(f"{member.name}: up to date ({len(report.unchanged)} packages)")
        return
    parts = [f"+{len(report.installed)}", f"~{len(report.upgraded)}", f"-{len(report.removed)}"]
    if report.repaired:
        parts.append(f"repaired {len(report.repaired)}")
    app.info(f"{member.name}: synced {member.relpath}/.venv ({' '.join(parts)})")
    if app.verbose:
        for change in [*report.installed, *report.upgraded, *report.removed, *report.repaired]:
            app.info(f"  {change.name}: {change.old or '-'} -> {change.new or '-'}")


@cli.command()
@click.argument("members", nargs=-1)
@click.option("--group", "-g", "groups", multiple=True,
              help="With --no-dev: install this group too (repeatable).")
@click.option("--only-group", "only_groups", multiple=True,
              help="Install only this group's packages (repeatable).")
@click.option("--no-dev", is_flag=True, help="Main dependencies only (plus --group).")
@click.option("--frozen", is_flag=True, help="Fail instead of locking when a lock is stale.")
@click.option("--python", help="Interpreter for new venvs (path or X.Y); default: workspace's.")
@pass_app
def sync(app: App, members: tuple[str, ...], groups: tuple[str, ...],
         only_groups: tuple[str, ...], no_dev: bool, frozen: bool, python: str | None) -> None:
    """Make each member's .venv match its lock exactly (all groups by default)."""
    _sync_members(app, app.members(members), groups=list(groups) if groups else None,
                  no_dev=no_dev, frozen=frozen, only_groups=only_groups, python=python)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("member")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@click.option("--frozen", is_flag=True, help="Fail instead of locking when the lock is stale.")
@pass_app
def run(app: App, member: str, command: tuple[str, ...], frozen: bool) -> None:
    """Run COMMAND in MEMBER's venv (synced first); its exit code is passed through.

    Use `--` before the command: orchestrator run orders -- pytest -q
    """
    import os
    import shutil

    from orchestrator.sync import venv_path

    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise click.UsageError("give a command to run after --")
    (chosen,) = app.members([member])
    _sync_members(app, [chosen], groups=None, no_dev=False, frozen=frozen)
    venv = venv_path(chosen)
    bin_dir = venv / "bin"
    env = dict(os.environ, VIRTUAL_ENV=str(venv), PATH=f"{bin_dir}{os.pathsep}"
               f"{os.environ.get('PATH', '')}")
    env.pop("PYTHONHOME", None)
    program = shutil.which(command[0], path=env["PATH"])
    if program is None:
        raise OrchestratorError(f"{command[0]}: command not found in {chosen.name}'s venv or "
                                "on PATH", hint=f"add it with `orchestrator add {chosen.name} "
                                f"{command[0]} --group dev`, or check [project.scripts]")
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(chosen.path)
    os.execve(program, [program, *command[1:]], env)


@cli.group()
def cache() -> None:
    """Inspect and clean the shared wheel cache."""


@cache.command("info")
@pass_app
def cache_info(app: App) -> None:
    """Show where the cache is and how big each bucket is."""
    from orchestrator.cache import WheelCache

    info = WheelCache(app.workspace().resolved_cache_dir()).info()
    click.echo(f"cache: {info.root}")
    for bucket in info.buckets:
        click.echo(f"  {bucket.name:<14} {bucket.files:>6} files  {_size(bucket.bytes):>10}")
    click.echo(f"  {'total':<14} {'':>6}        {_size(info.total_bytes):>10}")


@cache.command("clean")
@pass_app
def cache_clean(app: App) -> None:
    """Remove everything from the cache."""
    from orchestrator.cache import WheelCache

    report = WheelCache(app.workspace().resolved_cache_dir()).clean()
    click.echo(f"removed {report.removed} entries, freed {_size(report.freed_bytes)}")


@cache.command("prune")
@pass_app
def cache_prune(app: App) -> None:
    """Remove cached wheels that no member's lock refers to."""
    from orchestrator.cache import WheelCache
    from orchestrator.lock import archive_hashes, read_lock

    ws = app.workspace()
    keep: set[str] = set()
    for member in ws.members:
        if member.lockfile.exists():
            for pkg in read_lock(member.lockfile).packages:
                keep.update(archive_hashes(pkg))
    report = WheelCache(ws.resolved_cache_dir()).prune(keep)
    click.echo(f"removed {report.removed} entries, freed {_size(report.freed_bytes)}")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"


# -- images ------------------------------------------------------------------------------


@cli.command()
@click.argument("service")
@click.option("--context", "context", type=click.Path(path_type=Path),
              help="Write a complete build context to DIR instead of printing.")
@click.option("--base", help="Base image (default: image.base from workspace.yaml).")
@click.option("--platform", "platform_", default=None,
              help="Target platform (default: this machine's).")
@pass_app
def dockerfile(app: App, service: str, context: Path | None, base: str | None,
               platform_: str | None) -> None:
    """Print SERVICE's Dockerfile, or write a build context `docker build DIR` accepts."""
    import tempfile

    from orchestrator.image import image_target, write_context
    from orchestrator.report import image_name
    from orchestrator.sync import host_target

    ws = app.workspace()
    (chosen,) = app.members([service], services_only=True)
    target = image_target(ws, platform_ or host_target(ws.python).platform)
    repository = image_name(ws, chosen)
    with _index_client(app) as client, tempfile.TemporaryDirectory() as tmp:
        dest = context or Path(tmp) / "context"
        plan = write_context(ws, chosen, dest, base=base or ws.image.base,
                             fingerprint_value="(not built by orchestrator)", target=target,
                             clients=_clients(app, client), repository=repository,
                             tags=[f"{repository}:{chosen.version or '0'}"])
        if context is None:
            click.echo((dest / "Dockerfile").read_text(), nl=False)
        else:
            layers = ", ".join(layer.name for layer in plan.layers)
            click.echo(f"wrote {context}: Dockerfile and layers {layers}")
            app.info(f"build it with: docker build {context}")


@cli.command()
@click.argument("services", nargs=-1)
@click.option("--affected", is_flag=True, help="Only services affected since --since REF.")
@click.option("--since", metavar="REF", help="With --affected: compare with REF.")
@click.option("--tag", "tags", multiple=True, help="Extra tag (repeatable).")
@click.option("--push", is_flag=True, help="Push every tag to the registry.")
@click.option("--jobs", "-j", default=2, show_default=True, help="Services built at once.")
@click.option("--base", help="Base image (default: image.base from workspace.yaml).")
@click.option("--rebuild", is_flag=True, help="Build even if an identical image exists.")
@pass_app
def build(app: App, services: tuple[str, ...], affected: bool, since: str | None,
          tags: tuple[str, ...], push: bool, jobs: int, base: str | None,
          rebuild: bool) -> None:
    """Build a layered image per service (all, named, or affected), in graph order."""
    from concurrent.futures import ThreadPoolExecutor

    from orchestrator.engine import BuildRequest, build_service, connect

    if affected and not since:
        raise click.UsageError("--affected needs --since REF")
    chosen = app.members(services, services_only=True)
    if affected:
        hit = {a.member.name for a in _affected(app, since, committed_only=False)}
        chosen = [m for m in chosen if m.name in hit]
        if not chosen:
            app.info(f"no service is affected by changes since {since}")
            return
    ws = app.workspace()
    from orchestrator.graph import build_graph, build_order

    order = {name: i for i, name in enumerate(build_order(build_graph(ws)))}
    chosen.sort(key=lambda m: order[m.name])  # graph order; the pool runs them side by side
    client = connect()
    request = BuildRequest(base=base, extra_tags=tags, push=push, rebuild=rebuild)
    log = app.info if app.verbose else None
    with _index_client(app) as index:
        clients = _clients(app, index)
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(build_service, ws, m, client, clients, request, log=log,
                                   note=app.info) for m in chosen]
            for future in futures:
                outcome, digests = future.result()
                _print_build(outcome, digests)


def _print_build(outcome: Any, digests: dict[str, str]) -> None:
    state = (f"built in {outcome.seconds:.1f}s, {outcome.layers_reused} steps cached"
             if outcome.built else "up to date (same inputs)")
    click.echo(f"{outcome.service}: {outcome.tags[0]} {_size(outcome.size)}, "
               f"{outcome.layers} layers, {state}")
    for tag in outcome.tags[1:]:
        click.echo(f"  also tagged {tag}")
    for ref, digest in digests.items():
        click.echo(f"  pushed {ref} {digest}")


def _require_fresh_lock(app: App, member: Member) -> None:
    from orchestrator.lock import staleness

    stale = staleness(app.workspace(), member)
    if stale is not None:
        raise OrchestratorError(f"the lock of {member.name} is out of date: {stale.reason}",
                                hint=f"run `orchestrator lock {member.name}`")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="orchestrator")
