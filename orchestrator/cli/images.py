"""Image commands: dockerfile, build."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli.app import App, echo_json, pass_app, size

if TYPE_CHECKING:
    from orchestrator.image import BuildResult


@click.command()
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

    from orchestrator.image import image_name, image_target, write_context

    session = app.session()
    ws = session.workspace
    chosen = session.member(service, services_only=True)
    target = image_target(ws, platform_ or session.host_target().platform)
    repository = image_name(ws, chosen)
    with tempfile.TemporaryDirectory() as tmp:
        dest = context or Path(tmp) / "context"
        plan = write_context(session, chosen, dest, base=base or ws.image.base,
                             fingerprint_value="(not built by orchestrator)", target=target,
                             repository=repository,
                             tags=[f"{repository}:{chosen.version or '0'}"])
        if context is None:
            click.echo((dest / "Dockerfile").read_text(), nl=False)
        else:
            layers = ", ".join(layer.name for layer in plan.layers)
            click.echo(f"wrote {context}: Dockerfile and layers {layers}")
            app.info(f"build it with: docker build {context}")


@click.command()
@click.argument("services", nargs=-1)
@click.option("--affected", is_flag=True, help="Only services affected since --since REF.")
@click.option("--since", metavar="REF", help="With --affected: compare with REF.")
@click.option("--tag", "tags", multiple=True, help="Extra tag (repeatable).")
@click.option("--push", is_flag=True, help="Push every tag to the registry.")
@click.option("--jobs", "-j", default=2, show_default=True, help="Services built at once.")
@click.option("--base", help="Base image (default: image.base from workspace.yaml).")
@click.option("--rebuild", is_flag=True, help="Build even if an identical image exists.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document of the results (ids, tags, pushed digests).")
@pass_app
def build(app: App, services: tuple[str, ...], affected: bool, since: str | None,
          tags: tuple[str, ...], push: bool, jobs: int, base: str | None,
          rebuild: bool, as_json: bool) -> None:
    """Build a layered image per service (all, named, or affected), in graph order."""
    from concurrent.futures import ThreadPoolExecutor

    from orchestrator.engine import connect
    from orchestrator.graph import affected_since, build_graph, build_order
    from orchestrator.image import BuildRequest, build_service

    if affected and not since:
        raise click.UsageError("--affected needs --since REF")
    session = app.session()
    ws = session.workspace
    chosen = session.members(services, services_only=True)
    if affected:
        hit = {a.member.name for a in affected_since(ws, since)}
        chosen = [m for m in chosen if m.name in hit]
        if not chosen:
            app.info(f"no service is affected by changes since {since}")
            if as_json:
                echo_json({"services": []})
            return
    order = {name: i for i, name in enumerate(build_order(build_graph(ws)))}
    chosen.sort(key=lambda m: order[m.name])  # graph order; the pool runs them side by side
    client = connect()
    request = BuildRequest(base=base, extra_tags=tags, push=push, rebuild=rebuild)
    log = app.info if app.verbose else None
    results = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(build_service, session, client, m, request, log=log,
                               note=app.info) for m in chosen]
        for future in futures:
            result = future.result()
            results.append(result)
            if not as_json:
                _print_build(result)
    if as_json:
        echo_json({"services": [r.as_dict() for r in results]})


def _print_build(result: BuildResult) -> None:
    outcome = result.outcome
    state = (f"built in {outcome.seconds:.1f}s, {outcome.layers_reused} steps cached"
             if outcome.built else "up to date (same inputs)")
    click.echo(f"{outcome.service}: {outcome.tags[0]} {size(outcome.size)}, "
               f"{outcome.layers} layers, {state}")
    for tag in outcome.tags[1:]:
        click.echo(f"  also tagged {tag}")
    for ref, digest in result.pushed.items():
        click.echo(f"  pushed {ref} {digest}")


COMMANDS = (dockerfile, build)
