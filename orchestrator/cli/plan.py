"""Planning commands: list, graph, affected, matrix, check."""

from __future__ import annotations

import click

from orchestrator.cli.app import App, echo_json, pass_app


@click.command("list")
@click.option("--services", "services_only", is_flag=True, help="Only services.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_cmd(app: App, services_only: bool, as_json: bool) -> None:
    """List the workspace members."""
    ws = app.session().workspace
    members = [m for m in ws.members if m.kind == "service" or not services_only]
    if as_json:
        echo_json([{"name": m.name, "kind": m.kind, "version": m.version, "path": m.relpath}
                   for m in members])
        return
    width = max((len(m.name) for m in members), default=0)
    for m in members:
        click.echo(f"{m.name:<{width}}  {m.kind:<8}  {m.version or '-':<10}  {m.relpath}")


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
@click.option("--format", "fmt", type=click.Choice(["github", "gitlab", "json"]),
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
              "json": report.matrix_json}[fmt]
    click.echo(render(entries).rstrip("\n"))


@click.command()
@pass_app
def check(app: App) -> None:
    """Validate the workspace and report what was found."""
    from orchestrator.graph import build_graph
    from orchestrator.lock import staleness

    ws = app.session().workspace
    build_graph(ws)
    services = len(ws.services)
    click.echo(f"workspace {ws.name} ({ws.manifest})")
    click.echo(f"  python {ws.python} on {', '.join(ws.platforms)}")
    click.echo(f"  indexes: {', '.join(f'{i.name} ({i.url})' for i in ws.indexes)}")
    click.echo(f"  members: {len(ws.members)} ({services} services, "
               f"{len(ws.members) - services} libraries)")
    for m in ws.members:
        groups = f", groups: {', '.join(m.groups)}" if m.groups else ""
        stale = staleness(ws, m)
        lock_state = "lock current" if stale is None else f"lock stale: {stale.reason}"
        click.echo(f"    {m.name} [{m.kind}] {m.relpath}: {len(m.dependencies)} dependencies"
                   f"{groups}; {lock_state}")
    click.echo("ok: no problems found")


COMMANDS = (list_cmd, graph, affected_cmd, matrix, check)
