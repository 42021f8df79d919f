"""Environment commands: sync, run, show, cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import click

from orchestrator.cli.app import App, echo_json, pass_app, size
from orchestrator.errors import LockError, VenvError
from orchestrator.models import Member


def sync_and_report(app: App, members: Sequence[Member], *, groups: Sequence[str] | None = None,
                    only_groups: Sequence[str] = (), no_dev: bool = False,
                    extras: Sequence[str] = (), all_extras: bool = False,
                    frozen: bool = False, python: str | None = None) -> bool:
    """Sync *members* and print one line each (stderr: `run` leaves stdout to its command).

    True when nothing was locked and every venv was found as its last sync left it
    (each member's no-op fast path), i.e. nothing was even inspected."""
    from orchestrator.sync import sync_members

    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        app.info(message)

    results = sync_members(app.session(), members, groups=groups, only_groups=only_groups,
                           no_dev=no_dev, extras=extras, all_extras=all_extras, frozen=frozen,
                           python=python, progress=app.fetch_progress(), note=note)
    untouched = True
    for member, report in results:
        untouched = untouched and report.fast_path and not report.changed
        if not report.changed:
            app.info(f"{member.name}: up to date ({len(report.unchanged)} packages)")
            continue
        parts = [f"+{len(report.installed)}", f"~{len(report.upgraded)}",
                 f"-{len(report.removed)}"]
        if report.repaired:
            parts.append(f"repaired {len(report.repaired)}")
        app.info(f"{member.name}: synced {member.relpath}/.venv ({' '.join(parts)})")
        if app.verbose:
            for change in [*report.installed, *report.upgraded, *report.removed,
                           *report.repaired]:
                app.info(f"  {change.name}: {change.old or '-'} -> {change.new or '-'}")
    return untouched and not notes


def _venv_inputs(member: Member) -> list[Path] | None:
    """What sync's no-op check of *member*'s venv reads or stats: pyvenv.cfg, the
    records directory and every record in it, and the lib and scripts directories
    ``venv.json`` names. None when that record cannot be read."""
    import json

    from orchestrator.sync import venv_path
    from orchestrator.venv import STATE_DIR

    venv = venv_path(member)
    records = venv / STATE_DIR
    try:
        data = json.loads((records / "venv.json").read_text("utf-8"))
        names = sorted(p.name for p in records.iterdir())
    except (OSError, ValueError):
        return None
    dirs = [data.get(k) for k in ("purelib", "platlib", "scripts")] if isinstance(
        data, dict) else [None]
    if not all(isinstance(d, str) for d in dirs):
        return None
    return [venv / "pyvenv.cfg", records, *(records / n for n in names),
            *(Path(str(d)) for d in dirs)]


@click.command()
@click.argument("members", nargs=-1)
@click.option("--group", "-g", "groups", multiple=True,
              help="With --no-dev: install this group too (repeatable).")
@click.option("--only-group", "only_groups", multiple=True,
              help="Install only this group's packages (repeatable).")
@click.option("--no-dev", is_flag=True, help="Main dependencies only (plus --group).")
@click.option("--extra", "extras", multiple=True, metavar="EXTRA",
              help="Install this extra of the member's [project.optional-dependencies] "
              "(repeatable).")
@click.option("--all-extras", is_flag=True, help="Install every extra of the member.")
@click.option("--frozen", is_flag=True, help="Fail instead of locking when a lock is stale.")
@click.option("--python", help="Interpreter for new venvs (path or X.Y); default: workspace's.")
@click.option("--verify", is_flag=True,
              help="Re-hash cached wheels, unpacked trees and installed files; repair any "
              "that changed.")
@click.option("--link-mode", type=click.Choice(["hardlink", "copy", "reflink"]),
              default="hardlink", show_default=True,
              help="How files leave the cache: shared read-only hard links, private copies, "
              "or copy-on-write reflinks (copies where the filesystem has none).")
@pass_app
def sync(app: App, members: tuple[str, ...], groups: tuple[str, ...],
         only_groups: tuple[str, ...], no_dev: bool, extras: tuple[str, ...], all_extras: bool,
         frozen: bool, python: str | None, verify: bool,
         link_mode: Literal["hardlink", "copy", "reflink"]) -> None:
    """Make each member's .venv match its lock exactly (all groups, no extras by default)."""
    chosen = app.session().members(members)
    app.session().configure_cache(link_mode=link_mode)
    if verify:
        from orchestrator.sync import venv_path
        from orchestrator.venv import forget_sync_state

        app.session().configure_cache(rehash=True)
        for member in chosen:
            forget_sync_state(venv_path(member))
    untouched = sync_and_report(app, chosen, groups=list(groups) or None,
                                no_dev=no_dev, extras=extras, all_extras=all_extras,
                                frozen=frozen, only_groups=only_groups, python=python)
    if untouched and not verify:
        from orchestrator import noop

        inputs: list[Path] = []
        for member in chosen:
            venv = _venv_inputs(member)
            if venv is None:
                return
            inputs += [member.lockfile, *venv]
        noop.vouch(app.session().workspace, inputs)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("member")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@click.option("--extra", "extras", multiple=True, metavar="EXTRA",
              help="Sync this extra of the member too (repeatable).")
@click.option("--all-extras", is_flag=True, help="Sync every extra of the member.")
@click.option("--frozen", is_flag=True, help="Fail instead of locking when the lock is stale.")
@pass_app
def run(app: App, member: str, command: tuple[str, ...], extras: tuple[str, ...],
        all_extras: bool, frozen: bool) -> None:
    """Run COMMAND in MEMBER's venv (synced first); its exit code is passed through.

    Use `--` before the command: orchestrator run orders -- pytest -q
    """
    import os
    import shutil
    import sys

    from orchestrator.sync import venv_path

    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise click.UsageError("give a command to run after --")
    chosen = app.session().member(member)
    sync_and_report(app, [chosen], extras=extras, all_extras=all_extras, frozen=frozen)
    app.close()  # exec replaces the process: let the index client's threads go first
    venv = venv_path(chosen)
    bin_dir = venv / "bin"
    env = dict(os.environ, VIRTUAL_ENV=str(venv), PATH=f"{bin_dir}{os.pathsep}"
               f"{os.environ.get('PATH', '')}")
    env.pop("PYTHONHOME", None)
    program = shutil.which(command[0], path=env["PATH"])
    if program is None:
        raise VenvError(f"{command[0]}: command not found in {chosen.name}'s venv or on PATH",
                        hint=f"add it with `orchestrator add {chosen.name} {command[0]} "
                        "--group dev`, or check [project.scripts]", member=chosen.name)
    sys.stdout.flush()
    sys.stderr.flush()
    os.chdir(chosen.path)
    os.execve(program, [program, *command[1:]], env)


@click.command()
@click.argument("member")
@click.option("--tree", is_flag=True, help="Show the dependency tree.")
@click.option("--why", "why", metavar="PKG", help="Show why PKG is in the lock.")
@click.option("--outdated", is_flag=True, help="Show locked packages with newer releases.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def show(app: App, member: str, tree: bool, why: str | None, outdated: bool,
         as_json: bool) -> None:
    """Show MEMBER's locked packages, tree, outdated packages, or why one is there."""
    from orchestrator import report
    from orchestrator import show as data
    from orchestrator.lock import read_lock
    from orchestrator.names import normalize

    if sum([tree, why is not None, outdated]) > 1:
        raise click.UsageError("pass at most one of --tree, --why, --outdated")
    session = app.session(refresh=outdated)
    chosen = session.member(member)
    lock = read_lock(chosen.lockfile)
    if why:
        chains = data.why(chosen, lock, normalize(why))
        if not chains:
            raise LockError(f"{normalize(why)} is not in {chosen.name}'s lock",
                            hint=f"see `orchestrator show {chosen.name}`", member=chosen.name,
                            package=normalize(why))
        if as_json:
            echo_json({"member": chosen.name, "package": normalize(why), "chains": chains})
        for chain in chains if not as_json else ():
            click.echo(" -> ".join([chosen.name, *chain]))
    elif tree:
        roots = data.tree(chosen, lock)
        if as_json:
            echo_json({"member": chosen.name, "version": chosen.version,
                       "dependencies": [r.as_dict() for r in roots]})
        else:
            click.echo(report.show_tree(chosen, roots))
    elif outdated:
        rows = data.outdated(lock, session.index)
        if as_json:
            echo_json({"member": chosen.name, "outdated": [r.as_dict() for r in rows]})
            return
        if not rows:
            click.echo("every locked package is at its newest release")
        for row in rows:
            click.echo(f"{row.name}  {row.current} -> {row.newest}")
    else:
        installed = data.installed_versions(chosen)
        packages = data.packages(chosen, lock, installed)
        if as_json:
            echo_json({"member": chosen.name, "venv": installed is not None,
                       "packages": [p.as_dict() for p in packages]})
        else:
            click.echo(report.show_list(packages, venv=installed is not None))


@click.group()
def cache() -> None:
    """Inspect and clean the shared wheel cache."""


@cache.command("info")
@pass_app
def cache_info(app: App) -> None:
    """Show where the cache is and how big each bucket is."""
    info = app.session().cache.info()
    click.echo(f"cache: {info.root}")
    for bucket in info.buckets:
        click.echo(f"  {bucket.name:<14} {bucket.files:>6} files  {size(bucket.bytes):>10}")
    click.echo(f"  {'total':<14} {'':>6}        {size(info.total_bytes):>10}")


@cache.command("clean")
@pass_app
def cache_clean(app: App) -> None:
    """Remove everything from the cache."""
    report = app.session().cache.clean()
    click.echo(f"removed {report.removed} entries, freed {size(report.freed_bytes)}")


@cache.command("prune")
@pass_app
def cache_prune(app: App) -> None:
    """Remove cached wheels that no member's lock refers to."""
    report = app.session().prune_cache()
    click.echo(f"removed {report.removed} entries, freed {size(report.freed_bytes)}")


@cache.command("verify")
@pass_app
def cache_verify(app: App) -> None:
    """Re-hash every cached wheel and unpacked tree; discard any that changed."""
    from orchestrator.venv import verify_cache

    report = verify_cache(app.session().cache)
    for what in report.discarded:
        app.info(f"discarded {what}: changed since it was cached")
    click.echo(f"verified {report.wheels} wheels and {report.trees} unpacked trees: "
               f"{len(report.discarded)} damaged"
               + (" (discarded; fetched or unpacked again when next needed)"
                  if report.discarded else ""))


COMMANDS = (sync, run, show, cache)

