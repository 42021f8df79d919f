"""Commands that edit members: add, remove, version, new."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli.app import App, pass_app
from orchestrator.errors import WorkspaceError

if TYPE_CHECKING:
    from orchestrator.pyproject import EditResult


@click.command()
@click.argument("member")
@click.argument("rule", required=False)
@click.option("--dry-run", is_flag=True, help="Print the new version without writing it.")
@pass_app
def version(app: App, member: str, rule: str | None, dry_run: bool) -> None:
    """Show MEMBER's version, or bump it: patch, minor, major, pre, or X.Y.Z."""
    from orchestrator.pyproject import PyprojectEdit, bump

    session = app.session()
    chosen = session.member(member)
    if chosen.dynamic_version:
        from orchestrator.versions import cannot_bump, member_version

        if rule is not None:
            raise cannot_bump(chosen)
        click.echo(f"{chosen.name} {member_version(session, chosen)}")
        return
    edit = PyprojectEdit.load(chosen.pyproject)
    current = edit.version()
    if current is None:
        raise WorkspaceError(f"{chosen.relpath}/pyproject.toml has no static "
                             "[project].version", hint="set project.version to a string",
                             file=chosen.pyproject, key="project.version", member=chosen.name)
    if rule is None:
        click.echo(f"{chosen.name} {current}")
        return
    new = bump(current, rule)
    if not dry_run:
        edit.set_version(new)
        edit.save()
    click.echo(f"{chosen.name} {current} -> {new}{' (dry run)' if dry_run else ''}")


# add and remove are deliberately parallel (same options, same edit-relock-sync flow);
# what differs lives in pyproject.add / pyproject.remove.
@click.command()
@click.argument("member")
@click.argument("requirements", nargs=-1, required=True)
@click.option("--group", "-g", help="Add to this dependency group instead of the main list.")
@click.option("--no-sync", is_flag=True, help="Only edit and re-lock; leave the venv alone.")
@pass_app
def add(app: App, member: str, requirements: tuple[str, ...], group: str | None,
        no_sync: bool) -> None:
    """Add REQUIREMENTS to MEMBER's pyproject.toml, then re-lock (and sync)."""
    from orchestrator.pyproject import add as run_add

    session = app.session()
    _report_edit(app, run_add(session, session.member(member), requirements, group), no_sync)


@click.command()
@click.argument("member")
@click.argument("packages", nargs=-1, required=True)
@click.option("--group", "-g", help="Remove from this dependency group.")
@click.option("--no-sync", is_flag=True, help="Only edit and re-lock; leave the venv alone.")
@pass_app
def remove(app: App, member: str, packages: tuple[str, ...], group: str | None,
           no_sync: bool) -> None:
    """Remove PACKAGES from MEMBER's pyproject.toml, then re-lock (and sync)."""
    from orchestrator.pyproject import remove as run_remove

    session = app.session()
    _report_edit(app, run_remove(session, session.member(member), packages, group), no_sync)


def _report_edit(app: App, result: EditResult, no_sync: bool) -> None:
    from orchestrator.cli.env import sync_and_report
    from orchestrator.sync import venv_path

    for change in result.changes:
        click.echo(f"{result.member}: {change}")
    app.info(f"re-locked: {', '.join(result.relocked)}")
    # The edit reloaded the session's workspace; a venv that exists is brought up to
    # date (a later `sync` creates a missing one).
    chosen = app.session().member(result.member)
    if not no_sync and venv_path(chosen).exists():
        sync_and_report(app, [chosen], frozen=True)


@click.command()
@click.argument("kind", type=click.Choice(["service", "library"]))
@click.argument("name")
@click.option("--path", type=click.Path(path_type=Path),
              help="Directory to create (default: where the workspace keeps its services or "
              "libraries, else services/NAME or libs/NAME).")
@pass_app
def new(app: App, kind: str, name: str, path: Path | None) -> None:
    """Create a new service or library from templates/new/KIND, laid out like the others."""
    from orchestrator.scaffold import new_member

    ws = app.session().workspace
    created = new_member(ws, "service" if kind == "service" else "library", name, path)
    where = created.path.relative_to(ws.root.resolve()).as_posix()
    click.echo(f"created {kind} {created.name} in {where}")
    app.info(f"placed there because {created.reason}")
    app.info(f"next: orchestrator lock {created.name} && orchestrator sync {created.name}")


COMMANDS = (add, remove, version, new)
