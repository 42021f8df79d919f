"""Lock commands: lock, update, export."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli.app import App, pass_app
from orchestrator.errors import LockError
from orchestrator.models import LOCK_FILENAME, Member

if TYPE_CHECKING:
    from orchestrator.lock import LockResult


def run_lock(app: App, names: Sequence[str], *, upgrade: bool | Sequence[str],
             refresh: bool) -> None:
    from orchestrator.lock import lock_members, staleness, unchanged_result

    session = app.session(refresh=refresh)
    ws = session.workspace
    members = session.members(names)
    started = time.monotonic()
    # A lock whose inputs' fingerprint matches is trusted as it is (uv trusts a satisfied
    # uv.lock the same way): no resolution and no index request for it. `update` and
    # `--refresh` ask for the index's current state, so they resolve every member.
    current = set() if upgrade is not False or refresh else {
        m.name for m in members if staleness(ws, m) is None}
    stale = [m for m in members if m.name not in current]
    app.info(f"locking {len(stale)} of {len(members)} member(s) for "
             f"{', '.join(f'{t.python} {t.platform}' for t in ws.targets)}")
    resolved = {r.member.name: r for r in (
        lock_members(ws, stale, session.index, upgrade=upgrade, progress=app.info)
        if stale else [])}
    results = [resolved[m.name] if m.name in resolved else unchanged_result(m)
               for m in members]
    for warning in dict.fromkeys(w for r in results for w in r.warnings):
        click.echo(f"warning: {warning}", err=True)
    for result in results:
        state = "updated" if result.written else "unchanged"
        click.echo(f"{result.member.name}: {result.packages} packages, {state}"
                   f"{'' if result.changes.empty else ' (' + result.changes.summary() + ')'}")
        for line in pin_summary(result, ws.root):
            click.echo(f"  {line}")
    app.info(f"locked in {time.monotonic() - started:.2f}s")
    if not stale and upgrade is False and not refresh:
        from orchestrator import noop

        noop.vouch(ws, [m.lockfile for m in members])  # nothing resolved, nothing written


def pin_summary(result: LockResult, root: Path) -> list[str]:
    """What became of the pins the lock kept: always after adoption, else when some moved."""
    source = result.pins_from
    if source is None or (source.name == LOCK_FILENAME and not result.moved):
        return []
    try:
        shown = source.relative_to(root.resolve()).as_posix()
    except ValueError:
        shown = str(source)
    kept = f"kept {result.kept} pin{'' if result.kept == 1 else 's'} from {shown}"
    if not result.moved:
        return [kept]
    return [f"{kept}, moved {len(result.moved)}:", *(f"  {m.summary()}" for m in result.moved)]


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
    from orchestrator import noop

    noop.vouch(session.workspace, [m.lockfile for m in chosen])


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
@click.option("--extra", "extras", multiple=True, metavar="EXTRA",
              help="Include this extra of the member (repeatable).")
@click.option("--all-extras", is_flag=True, help="Include every extra of the member.")
@click.option("--no-workspace", is_flag=True, help="Leave out workspace members.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write to FILE.")
@pass_app
def export(app: App, member: str, fmt: str, no_dev: bool, groups: tuple[str, ...],
           extras: tuple[str, ...], all_extras: bool, no_workspace: bool,
           output: Path | None) -> None:
    """Export MEMBER's lock as requirements.txt (with hashes) or pylock.toml."""
    from orchestrator.atomic import write_text
    from orchestrator.export import export as run_export
    from orchestrator.sync import member_extras, member_groups

    session = app.session()
    chosen = session.member(member)
    chosen_groups = member_groups(chosen, groups=list(groups) or None, only_groups=(),
                                  no_dev=no_dev)
    chosen_extras = member_extras(chosen, extras, all_extras=all_extras)
    require_fresh_lock(app, chosen)
    text = run_export(session.workspace, chosen, fmt=fmt, groups=chosen_groups,
                      extras=chosen_extras, workspace_members=not no_workspace,
                      output_dir=output.resolve().parent if output else None)
    if output is None:
        click.echo(text, nl=False)
    else:
        write_text(output, text)
        app.info(f"wrote {output}")


COMMANDS = (lock, update, export)
