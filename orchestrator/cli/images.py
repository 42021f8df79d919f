"""Image commands: dockerfile, build."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli.app import App, echo_json, pass_app, size

if TYPE_CHECKING:
    from orchestrator.image import BuildResult
    from orchestrator.models import Member


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
@click.option("--pull", is_flag=True,
              help="With --engine oci: ask the registry for the base image's tag again "
              "(default: a tag resolved in the last 10 minutes is used as it was).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document of the results (ids, tags, pushed digests).")
@click.option("--engine", type=click.Choice(["docker", "oci"]), default="docker",
              show_default=True, help="docker: through the engine; oci: no daemon, "
              "reproducible layers written from the wheel cache.")
@click.option("--oci-layout", "oci_layout", type=click.Path(path_type=Path),
              help="With --engine oci: add the images to this OCI layout directory.")
@click.option("--archive", type=click.Path(path_type=Path),
              help="With --engine oci: write a `docker load` archive ({service} is replaced).")
@click.option("--platform", "platforms", multiple=True,
              help="With --engine oci: target platform (repeatable; default: this machine's).")
@click.option("--compression", type=click.Choice(["gzip", "zstd"]), default=None,
              help="With --engine oci: layer compression (default: image.compression from "
              "workspace.yaml, else gzip; zstd needs the "
              "zstandard extra and a runtime that reads zstd layers, e.g. Docker 23+).")
@pass_app
def build(app: App, services: tuple[str, ...], affected: bool, since: str | None,
          tags: tuple[str, ...], push: bool, jobs: int, base: str | None,
          rebuild: bool, pull: bool, as_json: bool, engine: str, oci_layout: Path | None,
          archive: Path | None, platforms: tuple[str, ...], compression: str | None) -> None:
    """Build a layered image per service (all, named, or affected), in graph order."""
    if affected and not since:
        raise click.UsageError("--affected needs --since REF")
    session = app.session()
    ws = session.workspace
    chosen = session.members(services, services_only=True)
    if affected:
        from orchestrator.graph import affected_since

        hit = {a.member.name for a in affected_since(ws, since)}
        chosen = [m for m in chosen if m.name in hit]
        if not chosen:
            app.info(f"no service is affected by changes since {since}")
            if as_json:
                echo_json({"services": []})
            return
    from orchestrator.graph import member_order

    order = {name: i for i, name in enumerate(member_order(ws))}
    chosen.sort(key=lambda m: order[m.name])  # graph order; the pool runs them side by side
    if engine != "oci" and (oci_layout or archive or platforms or compression or pull):
        raise click.UsageError("--oci-layout, --archive, --platform, --compression and --pull "
                               "need --engine oci")
    if engine == "oci":
        _build_oci(app, chosen, tags, push, base, as_json, oci_layout, archive, platforms,
                   rebuild, compression, pull)
        return
    from concurrent.futures import ThreadPoolExecutor

    from orchestrator.engine import connect
    from orchestrator.image import BuildRequest, build_service

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


def _build_oci(app: App, chosen: list[Member], tags: tuple[str, ...], push: bool,
               base: str | None, as_json: bool, layout: Path | None, archive: Path | None,
               platforms: tuple[str, ...], rebuild: bool, compression: str | None,
               pull: bool) -> None:
    from orchestrator.oci.build import OciRequest, build_service

    if archive is not None and len(chosen) > 1 and "{service}" not in str(archive):
        raise click.UsageError("--archive for several services needs {service} in its name")
    session = app.session()
    request = OciRequest(base=base, platforms=platforms, layout=layout, archive=archive,
                         push=push, extra_tags=tags, rebuild=rebuild, compression=compression,
                         pull=pull)
    results = []
    for member in chosen:  # one at a time: layers of shared wheels are written once
        result = build_service(session, member, request, note=app.info)
        results.append(result)
        if not as_json:
            state = (f"assembled in {result.seconds:.2f}s" if result.built
                     else "up to date (same inputs)")
            if result.reused_from is not None:
                state = f"reused from {result.reused_from} (same inputs)"
            click.echo(f"{result.service}: {result.tags[0]} {result.digest}, {state}")
            for ref, digest in result.pushed.items():
                click.echo(f"  pushed {ref} {digest}")
    if as_json:
        echo_json({"services": [r.as_dict() for r in results]})


def _print_build(result: BuildResult) -> None:
    outcome = result.outcome
    state = (f"built in {outcome.seconds:.1f}s, {outcome.layers_reused} steps cached"
             if outcome.built else "up to date (same inputs)")
    if result.reused_from is not None:
        state = f"reused from {result.reused_from} (same inputs)"
    click.echo(f"{outcome.service}: {outcome.tags[0]} {size(outcome.size)}, "
               f"{outcome.layers} layers, {state}")
    for tag in outcome.tags[1:]:
        click.echo(f"  also tagged {tag}")
    for ref, digest in result.pushed.items():
        click.echo(f"  pushed {ref} {digest}")


COMMANDS = (dockerfile, build)
