"""CI commands: ci generate, ci child, ci check."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.app import EXIT_USER_ERROR, App, pass_app

SYSTEM_NAMES = ("github", "gitlab", "bitbucket", "jenkins")


@click.group()
def ci() -> None:
    """Generate CI pipelines for the workspace and check that they are current."""


@ci.command()
@click.argument("system", type=click.Choice(SYSTEM_NAMES))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write to FILE (default: the system's usual place under the workspace; "
              "`-` prints).")
@click.option("--python", help="Python version of the jobs (default: the workspace's).")
@click.option("--registry", help="Registry the jobs log in to (default: image.registry's host).")
@click.option("--publish", is_flag=True, help="Publish the packages on version tags.")
@pass_app
def generate(app: App, system: str, output: Path | None, python: str | None,
             registry: str | None, publish: bool) -> None:
    """Write a complete pipeline: plan, a job per affected service, publish, gate."""
    from orchestrator.atomic import write_text
    from orchestrator.ci.generate import DEFAULT_OUTPUT, SYSTEMS, CiOptions, render

    ws = app.session().workspace
    chosen = next(s for s in SYSTEMS if s == system)
    to_stdout = output is not None and str(output) == "-"
    target = ws.root / DEFAULT_OUTPUT[chosen] if output is None or to_stdout else (
        output if output.is_absolute() else Path.cwd() / output)
    try:
        relative = target.resolve().relative_to(ws.root.resolve()).as_posix()
    except ValueError:
        relative = str(target)
    options = CiOptions(chosen, relative, python=python, registry=registry, publish=publish)
    text = render(ws, options)
    if to_stdout:
        click.echo(text, nl=False)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, text)
    app.info(f"wrote {relative} ({system}); `orchestrator ci check` keeps it current")


@ci.command()
@click.option("--since", metavar="REF", help="Only services affected since REF.")
@click.option("--all", "all_", is_flag=True, help="Every service.")
@click.option("--python", help="Python version of the jobs (default: the workspace's).")
@click.option("--registry", help="Registry the jobs log in to (default: image.registry's host).")
@click.option("--publish", is_flag=True, help="Publish the packages on version tags.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="Write the child pipeline to FILE.")
@pass_app
def child(app: App, since: str | None, all_: bool, python: str | None, registry: str | None,
          publish: bool, output: Path) -> None:
    """GitLab: the child pipeline of the affected services (the plan job runs this)."""
    from orchestrator import report
    from orchestrator.atomic import write_text
    from orchestrator.ci.generate import DEFAULT_OUTPUT, CiOptions, gitlab_child
    from orchestrator.graph import affected_since

    if bool(since) == all_:
        raise click.UsageError("pass exactly one of --since REF or --all")
    ws = app.session().workspace
    entries = report.matrix_entries(ws, affected_since(ws, since))
    options = CiOptions("gitlab", DEFAULT_OUTPUT["gitlab"], python=python, registry=registry,
                        publish=publish)
    write_text(output, gitlab_child(ws, options, entries))
    app.info(f"wrote {output}: {len(entries)} service job(s)")


@ci.command("check")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.pass_context
def check_cmd(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Exit 1 when a generated pipeline file differs from what `ci generate` writes now."""
    from orchestrator.ci.check import check_file, default_files

    app = ctx.find_object(App)
    assert app is not None  # the cli group made it
    ws = app.session().workspace
    chosen = list(files) or default_files(ws)
    if not chosen:
        app.info("no generated pipeline file found; write one with `orchestrator ci generate`")
        return
    stale = 0
    for file in chosen:
        result = check_file(ws, file)
        if result.current:
            click.echo(f"ok: {file} is current")
        else:
            stale += 1
            click.secho(f"error: {file} is stale", err=True, fg="red")
            click.echo(f"hint: run `orchestrator ci generate {' '.join(result.options.argv())}`",
                       err=True)
    if stale:
        ctx.exit(EXIT_USER_ERROR)


COMMANDS = (ci,)
