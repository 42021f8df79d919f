"""Governance commands: audit, licenses, sbom (the work is in orchestrator.governance)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli.app import EXIT_USER_ERROR, App, echo_json
from orchestrator.models import FAIL_ON_LEVELS

if TYPE_CHECKING:
    from datetime import datetime

    from orchestrator.governance.audit import AuditReport
    from orchestrator.governance.licenses import LicenseReport
    from orchestrator.governance.sbom import SbomFormat
    from orchestrator.models import FailOn, Member
    from orchestrator.session import Session


@click.command()
@click.argument("members", nargs=-1)
@click.option("--db", type=click.Path(path_type=Path),
              help="A directory of OSV files or an OSV zip export (default: audit.db).")
@click.option("--online", is_flag=True,
              help="Ask the OSV API (cached; falls back to the local database or the last "
              "answers when unreachable).")
@click.option("--group", "groups", multiple=True, metavar="G",
              help="Audit only these dependency groups besides the main dependencies.")
@click.option("--no-dev", is_flag=True, help="Audit the main dependencies only.")
@click.option("--ignore", "ignores", multiple=True, metavar="ID",
              help="Accept this advisory (any of its IDs or aliases) for this run.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif"]), default="text",
              show_default=True)
@click.option("--fail-on", type=click.Choice(FAIL_ON_LEVELS),
              default="any", show_default=True,
              help="Exit 1 on findings of this severity or higher; an unknown severity fails "
              "at every level.")
@click.pass_context
def audit(ctx: click.Context, members: tuple[str, ...], db: Path | None, online: bool,
          groups: tuple[str, ...], no_dev: bool, ignores: tuple[str, ...], fmt: str,
          fail_on: FailOn) -> None:
    """Check every locked package against vulnerability advisories (OSV)."""
    from orchestrator.governance.audit import advisory_source, audit_groups
    from orchestrator.governance.audit import audit as run_audit
    from orchestrator.governance.sarif import to_sarif
    from orchestrator.models import AuditIgnore

    app = ctx.find_object(App)
    assert app is not None  # the cli group made it
    session = app.session()
    ws = session.workspace
    chosen = session.members(members)
    _check_groups(chosen, groups)
    source = advisory_source(ws, session.cache_dir, db=db, online=online)
    accepted = [*ws.audit.ignore, *(AuditIgnore(i, "given with --ignore") for i in ignores)]
    report = run_audit(ws, chosen, source, fail_on=fail_on, ignores=accepted,
                       groups={m.name: audit_groups(m, groups, no_dev=no_dev) for m in chosen})
    if fmt == "json":
        echo_json(report.as_dict())
    elif fmt == "sarif":
        echo_json(to_sarif(report))
    else:
        _print_audit(report)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    if report.failing:
        click.secho(f"error: {len(report.failing)} finding(s) at or above --fail-on {fail_on}",
                    err=True, fg="red")
        click.echo("hint: upgrade to the versions shown (`orchestrator add MEMBER 'PKG>=V'`), "
                   "or accept an advisory under audit.ignore with a reason", err=True)
        ctx.exit(EXIT_USER_ERROR)


def _check_groups(members: list[Member], groups: tuple[str, ...]) -> None:
    from orchestrator.errors import GovernanceError
    from orchestrator.names import normalize

    known = {normalize(g) for m in members for g in m.groups}
    for group in groups:
        if normalize(group) not in known:
            raise GovernanceError(f"no member audited has a dependency group {group!r}",
                                  hint=f"groups: {', '.join(sorted(known)) or 'none'}",
                                  actual=group)


def _print_audit(report: AuditReport) -> None:
    for member_audit in report.members:
        member = member_audit.member
        vulnerable = len({f.package for f in member_audit.findings})
        state = (f"{vulnerable} vulnerable, {len(member_audit.findings)} finding(s)"
                 if member_audit.findings else "no known vulnerabilities")
        click.echo(f"{member.name} ({member.relpath}/pylock.toml): "
                   f"{member_audit.packages} packages, {state}")
        shown: set[str] = set()
        for finding in member_audit.findings:
            if finding.package not in shown:
                shown.add(finding.package)
                upgrade = member_audit.upgrades.get(finding.package)
                fix = (f"upgrade to {upgrade} fixes all" if upgrade
                       else "no single fixed version is known")
                click.echo(f"  {finding.package} {finding.version}: {fix}")
            score = f" {finding.score:.1f}" if finding.score is not None else ""
            aliases = f" ({', '.join(finding.aliases)})" if finding.aliases else ""
            ignored = f" [ignored: {finding.ignored.reason}]" if finding.ignored else ""
            fixed = f"fixed in {finding.fix}" if finding.fix else "no fix"
            click.echo(f"    {finding.id}{aliases}: {finding.severity}{score}, {fixed}"
                       f"{ignored}")
            if finding.summary:
                click.echo(f"      {finding.summary}")
    total = len(report.findings)
    click.echo(f"audited {len(report.members)} member(s) against {report.source}: "
               f"{total} finding(s), {len(report.failing)} failing (--fail-on "
               f"{report.fail_on})")


@click.command()
@click.argument("members", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.pass_context
def licenses(ctx: click.Context, members: tuple[str, ...], fmt: str) -> None:
    """List each locked package's license and apply the `license:` policy."""
    from orchestrator.governance.licenses import license_report

    app = ctx.find_object(App)
    assert app is not None
    session = app.session()
    report = license_report(session, session.members(members))
    if fmt == "json":
        echo_json(report.as_dict())
    else:
        _print_licenses(report)
    for item in report.failing:
        click.secho(f"error: {item.message()}", err=True, fg="red")
    for item in report.packages:
        if item.status == "unknown" and not item.failing and report.policy.configured:
            click.secho(f"warning: {item.message()}", err=True, fg="yellow")
    if report.failing:
        click.echo("hint: replace the package, or change `license:` in workspace.yaml",
                   err=True)
        ctx.exit(EXIT_USER_ERROR)


def _print_licenses(report: LicenseReport) -> None:
    from orchestrator.governance.licenses import by_member

    for member, packages in by_member(report).items():
        click.echo(member)
        width = max((len(f"{p.package} {p.version or ''}") for p in packages), default=0)
        for p in packages:
            label = f"{p.package} {p.version or ''}".strip()
            verdict = f"  [{p.status}]" if report.policy.configured else ""
            click.echo(f"  {label:<{width}}  {p.license.display}  ({p.license.source}){verdict}")


@click.command()
@click.argument("member")
@click.option("--format", "fmt", type=click.Choice(["cyclonedx-json", "spdx-json"]),
              default="cyclonedx-json", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to FILE.")
@click.pass_context
def sbom(ctx: click.Context, member: str, fmt: SbomFormat, output: Path | None) -> None:
    """Write MEMBER's software bill of materials from its lock (CycloneDX 1.6 or SPDX 2.3)."""
    from orchestrator.governance.sbom import collect, render

    app = ctx.find_object(App)
    assert app is not None
    session = app.session()
    chosen = session.member(member)
    from datetime import UTC, datetime

    when = commit_time(session) or datetime.now(UTC).replace(microsecond=0)
    bom = collect(session, chosen, timestamp=when)
    text = render(bom, fmt, f"{session.workspace.name}/{chosen.name}")
    if output is None:
        click.echo(text, nl=False)
        return
    from orchestrator.atomic import write_text

    write_text(output, text)
    app.info(f"wrote {output}: {len(bom.components)} components ({fmt})")


def commit_time(session: Session) -> datetime | None:
    """The commit's time, so that an SBOM of an unchanged commit is unchanged."""
    from datetime import datetime

    created = session.revision.get("created")
    try:
        return datetime.fromisoformat(created) if created else None
    except ValueError:
        return None


COMMANDS = (audit, licenses, sbom)
