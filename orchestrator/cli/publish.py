"""Release commands: package (build sdists and wheels), publish (upload them, and images)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli.app import App, echo_json, pass_app, size

if TYPE_CHECKING:
    from docker import DockerClient

    from orchestrator.models import Member
    from orchestrator.publish.package import Artifact
    from orchestrator.publish.release import PublishReport
    from orchestrator.session import Session


def _since(affected: bool, since: str | None) -> str | None:
    if affected and not since:
        raise click.UsageError("--affected needs --since REF")
    if since and not affected:
        raise click.UsageError("--since only goes with --affected")
    return since


def _shown(path: Path) -> str:
    """*path* relative to the current directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _artifact_line(artifact: Artifact) -> str:
    return f"{_shown(artifact.path)}  {size(artifact.size)}  sha256:{artifact.sha256}"


@click.command()
@click.argument("members", nargs=-1)
@click.option("--affected", is_flag=True, help="Only members affected since --since REF.")
@click.option("--since", metavar="REF", help="With --affected: compare with REF.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the files (default: dist/ at the workspace root).")
@click.option("--sdist/--no-sdist", default=True, show_default=True, help="Write the sdist.")
@click.option("--wheel/--no-wheel", default=True, show_default=True,
              help="Write the wheel (built from the sdist).")
@click.option("--json", "as_json", is_flag=True, help="Print the files as one JSON document.")
@pass_app
def package(app: App, members: tuple[str, ...], affected: bool, since: str | None,
            out: Path | None, sdist: bool, wheel: bool, as_json: bool) -> None:
    """Build sdists and wheels of members, workspace dependencies as version ranges.

    Without MEMBERS: the members marked `publish` (libraries by default). Builds are
    reproducible: the same commit gives byte-identical files.
    """
    from orchestrator.publish.package import package_members, release_members

    if not (sdist or wheel):
        raise click.UsageError("--no-sdist and --no-wheel leave nothing to build")
    session = app.session()
    chosen = release_members(session, members, since=_since(affected, since))
    if not chosen:
        app.info("no member to package")
    dest = out or session.workspace.root / "dist"
    results = package_members(session, chosen, dest, sdist=sdist, wheel=wheel,
                              note=app.info if not as_json else None)
    if as_json:
        echo_json({"packages": [r.as_dict() for r in results]})
        return
    for result in results:
        for artifact in result.artifacts:
            click.echo(_artifact_line(artifact))


@click.command()
@click.argument("members", nargs=-1)
@click.option("--affected", is_flag=True, help="Only members affected since --since REF.")
@click.option("--since", metavar="REF", help="With --affected: compare with REF.")
@click.option("--repository", "-r", metavar="NAME",
              help="A repository from publish.repositories (default: the first).")
@click.option("--dry-run", is_flag=True, help="Build and check everything; upload nothing.")
@click.option("--skip-existing", is_flag=True,
              help="Leave files the repository already has; upload the rest.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the built files in DIR (default: a temporary directory).")
@click.option("--images", is_flag=True,
              help="Also build and push the images of the chosen services (as build --push).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document.")
@pass_app
def publish(app: App, members: tuple[str, ...], affected: bool, since: str | None,
            repository: str | None, dry_run: bool, skip_existing: bool, out: Path | None,
            images: bool, as_json: bool) -> None:
    """Upload members' sdists and wheels to a package index, libraries first.

    Without MEMBERS: the members marked `publish` (libraries by default; a service opts
    in with `publish = true`). With --images, the chosen services' images too.
    """
    import tempfile

    session = app.session()
    since = _since(affected, since)
    names, services = _split(session, members, since, images=images)
    # Reach the engine before uploading anything: a missing engine should stop the
    # release before its packages are out and its images are not.
    client = _engine() if services and not dry_run else None
    with tempfile.TemporaryDirectory(prefix="orchestrator-publish-") as tmp:
        report = _publish_packages(app, session, names, since, out or Path(tmp),
                                   repository=repository, dry_run=dry_run,
                                   skip_existing=skip_existing, quiet=as_json)
    if not as_json:
        _print_report(app, report, dry_run=dry_run)
    pushed = _push_images(app, session, services, client, quiet=as_json)
    if as_json:
        data: object = {**report.as_dict(), "images": pushed}
        # Without --out the files were built in a directory that is gone now: no path.
        echo_json(data if out else _drop_paths(data))


def _drop_paths(value: object) -> object:
    """*value* (a JSON document) with every "path" key set to null."""
    if isinstance(value, dict):
        return {k: None if k == "path" else _drop_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_drop_paths(v) for v in value]
    return value


def _split(session: Session, names: tuple[str, ...], since: str | None, *,
           images: bool) -> tuple[tuple[str, ...] | None, list[Member]]:
    """(the members to publish as packages, None for none; the services to push images of).

    A named service that is not published as a package is, with --images, a
    request for its image only.
    """
    from orchestrator.graph import affected_since, member_order

    if not images:
        return names, []
    ws = session.workspace
    chosen = session.members(names) if names else list(ws.members)
    if since is not None:
        hit = {a.member.name for a in affected_since(ws, since)}
        chosen = [m for m in chosen if m.name in hit]
    order = {name: i for i, name in enumerate(member_order(ws))}
    services = sorted((m for m in chosen if m.kind == "service"), key=lambda m: order[m.name])
    if not names:
        return names, services
    packages = tuple(m.name for m in chosen
                     if m.options.publish or m.kind != "service")
    return (packages or None), services


def _publish_packages(app: App, session: Session, names: tuple[str, ...] | None,
                      since: str | None, out: Path, *, repository: str | None,
                      dry_run: bool, skip_existing: bool, quiet: bool) -> PublishReport:
    from orchestrator.publish.package import release_members
    from orchestrator.publish.release import PublishReport, publish_members

    chosen = ([] if names is None
              else release_members(session, names, since=since, publishing=True))
    if not chosen:
        app.info("no member to publish as a package")
        return PublishReport(repository, (), ())
    report = publish_members(session, chosen, out, repository=repository, dry_run=dry_run,
                             skip_existing=skip_existing, note=None if quiet else app.info)
    return report


def _engine() -> DockerClient:
    from orchestrator.engine import connect

    return connect()


def _push_images(app: App, session: Session, services: list[Member],
                 client: DockerClient | None, *, quiet: bool) -> list[dict[str, object]]:
    """Build and push each service's image, as `build --push` does.

    Without *client* (a dry run) the services are only listed.
    """
    if client is None:
        for service in services:
            if not quiet:
                click.echo(f"would build and push the image of {service.name}")
        return [{"service": s.name, "pushed": {}} for s in services]
    from orchestrator.image import BuildRequest, build_service

    results = []
    for service in services:
        result = build_service(session, client, service, BuildRequest(push=True),
                               note=None if quiet else app.info)
        for ref, digest in result.pushed.items():
            if not quiet:
                click.echo(f"pushed {ref} {digest}")
        results.append(result.as_dict())
    return results


def _print_report(app: App, report: PublishReport, *, dry_run: bool) -> None:
    where = f" to {report.repository}" if report.repository else ""
    for file in report.files:
        artifact = file.artifact
        if file.status == "uploaded":
            verb = f"uploaded {artifact.path.name}{where}"
        elif file.status == "skipped":
            verb = f"skipped {artifact.path.name}: already on {report.repository}"
        else:
            verb = f"checked {artifact.path.name}"
        click.echo(f"{verb}  {size(artifact.size)}  sha256:{artifact.sha256}")
        if dry_run:
            app.info(f"  {artifact.path.name}: long description {file.check.description}")
        for warning in file.check.warnings:
            app.info(f"  {artifact.path.name}: warning: {warning}")
    if dry_run and report.files:
        app.info(f"dry run: nothing was uploaded{where}")


COMMANDS = (package, publish)
