"""Lock commands: lock, update, export."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import click

from orchestrator.cli.app import App, pass_app
from orchestrator.errors import LockError
from orchestrator.models import Member


def run_lock(app: App, names: Sequence[str], *, upgrade: bool | Sequence[str],
             refresh: bool) -> None:
    from orchestrator.lock import lock_members

    session = app.session(refresh=refresh)
    ws = session.workspace
    members = session.members(names)
    started = time.monotonic()
    app.info(f"locking {len(members)} member(s) for "
             f"{', '.join(f'{t.python} {t.platform}' for t in ws.targets)}")
    results = lock_members(ws, members, session.index, upgrade=upgrade, progress=app.info)
    for result in results:
        state = "updated" if result.written else "unchanged"
        click.echo(f"{result.member.name}: {result.packages} packages, {state}"
                   f"{'' if result.changes.empty else ' (' + result.changes.summary() + ')'}")
    app.info(f"locked in {time.monotonic() - started:.2f}s")


@click.command()
@click.argument("members", nargs=-1)
@click.option("--check", is_flag=True,
              help="Exit 1 if a lock is missing or stale; offline, no resolution.")
@click.option("--refresh", is_flag=True, help="Re-fetch index pages, ignoring their TTL.")
@pass_app
def lock(app: App, members: tuple[str, ...], check: bool, refresh: bool) -> None:
    """Write pylock.toml for every member (or those named), keeping existing pins."""
    if not check:
        run_lock(app, members, upgrade=False, refresh=refresh)
        return
    from orchestrator.lock import stale_members

    session = app.session()
    chosen = session.members(members)
    stale = stale_members(session.workspace, chosen)
    for item in stale:
        click.echo(f"{item.member.name}: stale: {item.reason}", err=True)
    if stale:
        raise LockError(
            f"{len(stale)} of {len(chosen)} lock(s) are out of date: "
            + ", ".join(s.member.name for s in stale),
            hint="run `orchestrator lock` and commit the pylock.toml files")
    click.echo(f"{len(chosen)} lock(s) up to date")


@click.command()
@click.argument("members", nargs=-1)
@click.option("--package", "-p", "packages", multiple=True, metavar="PKG",
              help="Upgrade only this package (repeatable); default: everything.")
@click.option("--refresh/--no-refresh", default=True, show_default=True,
              help="Re-fetch index pages so new releases are seen.")
@pass_app
def update(app: App, members: tuple[str, ...], packages: tuple[str, ...], refresh: bool) -> None:
    """Re-resolve allowing upgrades, for all packages or those named with --package."""
    run_lock(app, members, upgrade=list(packages) if packages else True, refresh=refresh)


def require_fresh_lock(app: App, member: Member) -> None:
    from orchestrator.lock import staleness

    stale = staleness(app.session().workspace, member)
    if stale is not None:
        raise LockError(f"the lock of {member.name} is out of date: {stale.reason}",
                        hint=f"run `orchestrator lock {member.name}`", member=member.name)


@click.command()
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

    session = app.session()
    chosen = session.member(member)
    require_fresh_lock(app, chosen)
    chosen_groups = member_groups(chosen, groups=list(groups) or None, only_groups=(),
                                  no_dev=no_dev)
    text = run_export(session.workspace, chosen, fmt=fmt, groups=chosen_groups,
                      workspace_members=not no_workspace,
                      output_dir=output.resolve().parent if output else None)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text(output, text)
        app.info(f"wrote {output}")


COMMANDS = (lock, update, export)
