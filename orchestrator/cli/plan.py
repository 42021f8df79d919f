"""Planning commands: list, graph, affected, matrix, check."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orchestrator.cli.app import EXIT_USER_ERROR, App, echo_json, pass_app

if TYPE_CHECKING:
    from orchestrator.checks import Report


@click.command("list")
@click.option("--services", "services_only", is_flag=True, help="Only services.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_cmd(app: App, services_only: bool, as_json: bool) -> None:
    """List the workspace members (a dynamic version is the one its build backend reports)."""
    from orchestrator.versions import member_version

    session = app.session()
    members = [m for m in session.workspace.members if m.kind == "service" or not services_only]
    if services_only and not members:
        app.info("no member is a service; mark one with `kind = \"service\"` under "
                 "[tool.orchestrator] in its pyproject.toml (members under services/ are "
                 "services unless they say otherwise)")
    versions = {m.name: member_version(session, m) for m in members}
    if as_json:
        echo_json([{"name": m.name, "kind": m.kind, "version": versions[m.name],
                    "path": m.relpath} for m in members])
        return
    width = max((len(m.name) for m in members), default=0)
    for m in members:
        click.echo(f"{m.name:<{width}}  {m.kind:<8}  {versions[m.name] or '-':<10}  {m.relpath}")


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "dot", "mermaid", "json"]),
              default="text", show_default=True)
@pass_app
def graph(app: App, fmt: str) -> None:
    """Show the member dependency graph and the build stages."""
    from orchestrator import report
    from orchestrator.graph import build_generations, build_graph, member_edges

    ws = app.session().workspace
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


@click.command("affected")
@click.option("--since", required=True, metavar="REF",
              help="Compare with the merge base of REF and HEAD (e.g. origin/main).")
@click.option("--committed-only", is_flag=True, help="Ignore uncommitted changes.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@pass_app
def affected_cmd(app: App, since: str, committed_only: bool, fmt: str) -> None:
    """List the members a change since REF affects, in build order."""
    from orchestrator.graph import affected_since

    result = affected_since(app.session().workspace, since, committed_only=committed_only)
    if fmt == "json":
        echo_json([{"name": a.member.name, "kind": a.member.kind, "path": a.member.relpath,
                    "reason": a.reason} for a in result])
        return
    if not result:
        app.info(f"no member is affected by changes since {since}")
    for a in result:
        click.echo(f"{a.member.name}\t{a.reason}")


@click.command()
@click.option("--since", metavar="REF", help="Only services affected since REF.")
@click.option("--all", "all_", is_flag=True, help="Every service.")
@click.option("--committed-only", is_flag=True, help="Ignore uncommitted changes.")
@click.option("--format", "fmt",
              type=click.Choice(["github", "gitlab", "bitbucket", "jenkins", "json"]),
              default="github", show_default=True)
@pass_app
def matrix(app: App, since: str | None, all_: bool, committed_only: bool, fmt: str) -> None:
    """Print a CI matrix of the services to build."""
    from orchestrator import report
    from orchestrator.graph import affected_since

    if bool(since) == all_:
        raise click.UsageError("pass exactly one of --since REF or --all")
    ws = app.session().workspace
    entries = report.matrix_entries(ws, affected_since(ws, since, committed_only=committed_only))
    render = {"github": report.matrix_github, "gitlab": report.matrix_gitlab,
              "bitbucket": report.matrix_bitbucket, "jenkins": report.matrix_jenkins,
              "json": report.matrix_json}[fmt]
    text = render(entries).rstrip("\n")
    if text:  # an empty plan prints nothing, not a blank line the CI would read as a service
        click.echo(text)


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: the findings as a list, on stdout.")
@click.pass_context
def check(ctx: click.Context, fmt: str) -> None:
    """Validate the workspace offline and list every problem; exit 1 on any error."""
    from orchestrator.checks import run

    app = ctx.find_object(App)
    assert app is not None  # the cli group made it
    report = run(app.workspace_path)
    if fmt == "json":
        echo_json([finding.as_dict() for finding in report.findings])
    else:
        _print_report(app, report)
    if report.errors:
        ctx.exit(EXIT_USER_ERROR)


def _print_report(app: App, report: Report) -> None:
    """The summary on stdout, each finding on stderr as `error: ...` / `hint: ...`."""
    ws = report.workspace
    if ws is not None:
        services = len(ws.services)
        click.echo(f"workspace {ws.name} ({ws.manifest})")
        click.echo(f"  python {ws.python} on {', '.join(ws.platforms)}")
        from orchestrator.index.auth import redact_url  # tokens in an index URL are masked

        click.echo(f"  indexes: {', '.join(f'{i.name} ({redact_url(i.url)})' for i in ws.indexes)}")
        click.echo(f"  members: {len(ws.members)} ({services} services, "
                   f"{len(ws.members) - services} libraries)")
        if report.broken:
            click.echo(f"  not loaded: {', '.join(sorted(report.broken))}")
        for m in ws.members:
            groups = f", groups: {', '.join(m.groups)}" if m.groups else ""
            lock_state = ("lock stale" if report.for_check("stale_lock", m.name)
                          else "lock current")
            click.echo(f"    {m.name} [{m.kind}] {m.relpath}: {len(m.dependencies)} "
                       f"dependencies{groups}; {lock_state}")
    for finding in report.findings:
        click.secho(f"{finding.severity}: {finding.message}", err=True,
                    fg="red" if finding.severity == "error" else "yellow")
        if finding.hint:
            click.echo(f"hint: {finding.hint}", err=True)
    if not report.findings:
        click.echo("ok: no problems found")
    elif ws is not None:
        errors, warnings = len(report.errors), len(report.warnings)
        click.echo(f"{_count(errors, 'error')}, {_count(warnings, 'warning')}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


COMMANDS = (list_cmd, graph, affected_cmd, matrix, check)
