"""Adopting an existing repository: init."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from orchestrator.cli.app import App, pass_app

if TYPE_CHECKING:
    from orchestrator.adopt.plan import Backend, From, InitPlan
    from orchestrator.models import IndexSpec

_INDEX = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_-]*)=(?P<url>\S+)$")


def _index(_ctx: click.Context, _param: click.Parameter,
           values: tuple[str, ...]) -> tuple[IndexSpec, ...]:
    from orchestrator.models import IndexSpec

    out = []
    for value in values:
        match = _INDEX.match(value)
        if match is None:
            raise click.BadParameter(f"{value!r} is not NAME=URL (e.g. corp=https://"
                                     "pypi.corp.example/simple)")
        out.append(IndexSpec(match["name"], match["url"]))
    return tuple(out)


@click.command()
@click.argument("directory", required=False, default=".",
                type=click.Path(path_type=Path, file_okay=False))
@click.option("--from", "source", type=click.Choice(["auto", "poetry", "uv", "pdm", "plain"]),
              default="auto", show_default=True,
              help="The tool the repository uses now (auto: read each pyproject.toml).")
@click.option("--python", metavar="X.Y", help="Target Python (default: the lowest minor "
              "every member's requires-python admits).")
@click.option("--platform", "platforms", multiple=True, metavar="P",
              type=click.Choice(["linux/amd64", "linux/arm64"]),
              help="A target platform; repeat for several (default: linux/amd64).")
@click.option("--index", "indexes", multiple=True, metavar="NAME=URL", callback=_index,
              help="Use URL for the source NAME, or add the index NAME first (then PyPI "
              "is not added); repeatable.")
@click.option("--build-backend", type=click.Choice(["hatchling"]),
              help="Switch converted Poetry members from poetry-core to this backend.")
@click.option("--dry-run", is_flag=True, help="Print workspace.yaml and the pyproject.toml "
              "diffs; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite an existing workspace.yaml.")
@pass_app
def init(app: App, directory: Path, source: str, python: str | None,
         platforms: tuple[str, ...], indexes: tuple[IndexSpec, ...],
         build_backend: str | None, dry_run: bool, force: bool) -> None:
    """Make DIRECTORY (default: .) a workspace: write workspace.yaml and convert pyprojects.

    Poetry members are converted to PEP 621 [project] and PEP 735
    [dependency-groups]; uv and pdm members get their dev groups moved. Every
    decision is printed with its reason; nothing is written on an error.
    """
    from orchestrator.adopt.plan import InitOptions, plan_init, write_plan
    from orchestrator.errors import WorkspaceError

    if python is not None and not re.fullmatch(r"3\.\d{1,2}", python):
        raise WorkspaceError(f"--python {python!r} is not a CPython version like 3.11",
                             hint="pass the major.minor version, e.g. --python 3.12",
                             actual=python)
    # click.Choice has checked both values against the Literal types.
    options = InitOptions(source=cast("From", source), python=python, platforms=platforms,
                          indexes=indexes, build_backend=cast("Backend | None", build_backend),
                          force=force)
    plan = plan_init(directory, options)
    _report(plan)
    if dry_run:
        click.echo(f"\n--- {plan.manifest_path.name} (new)" if plan.previous_manifest is None
                   else f"\n--- {plan.manifest_path.name} (replaces the existing one)")
        click.echo(plan.manifest_text, nl=False)
        for member in plan.changed:
            click.echo()
            click.echo(member.diff(), nl=False)
        click.echo(f"\ndry run: nothing written ({len(plan.changed)} pyproject.toml "
                   "file(s) and workspace.yaml would be)")
        return
    write_plan(plan)
    click.echo(f"\nwrote {plan.manifest_path.name} and {len(plan.changed)} converted "
               "pyproject.toml file(s)")
    app.info("next: review the diff, then `orchestrator check` and `orchestrator lock`")


def _report(plan: InitPlan) -> None:
    click.echo(f"{plan.root}: {plan.flavour}, {len(plan.members)} member(s)")
    width = max(len(m.relpath) for m in plan.members)
    click.echo("members:")
    for member in plan.members:
        change = "converted" if member.changed else "unchanged"
        click.echo(f"  {member.relpath:<{width}}  {member.name} ({member.flavour}, {change})"
                   f"  {member.kind.kind}: {member.kind.reason}")
    for rel, why in plan.skipped:
        click.echo(f"  skipped {rel}: {why}")
    click.echo(f"python: {plan.manifest.python} ({plan.python_reason})")
    click.echo("indexes:")
    for line in plan.index_lines:
        click.echo(f"  {line}")
    click.echo("members in workspace.yaml: " + ", ".join(plan.manifest.members)
               + (f" (exclude: {', '.join(plan.manifest.exclude)})"
                  if plan.manifest.exclude else ""))
    notes = [(m.relpath, note) for m in plan.members for note in m.notes]
    if notes:
        click.echo("notes:")
        for rel, note in notes:
            click.echo(f"  {rel}: {note}")


COMMANDS = (init,)
