"""Audit each member's locked packages against vulnerability advisories.

What is audited is the lock, per target environment: ``lock.select`` for
every target of the workspace, with the member's dependency groups (all, the
asked-for ones, or none) and all of its extras, so a package that only one
platform installs is reported with that platform. Workspace members in a
lock are the workspace's own code and are not audited.

Advisories about one package and version that share an ID or alias (a
PYSEC and a GHSA record of one CVE) are merged into one ``Finding``. Its
severity is the highest its advisories give; with none readable it is
``unknown``, and an unknown severity fails the audit at every ``--fail-on``
threshold (a gate that cannot tell fails closed: ignore the advisory, with a
reason, to accept it). An ignore names any ID or alias of a finding; past
its expiry date it no longer applies, and the report says so.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from orchestrator.governance.cvss import BANDS, Band
from orchestrator.governance.osv import Advisory, AdvisorySource, parse_version
from orchestrator.models import AuditIgnore, FailOn, Member, Target, Workspace

Severity = Band | Literal["unknown"]


@dataclass(frozen=True, slots=True)
class LockedPackage:
    """A package version a member's lock installs, and the targets it is installed on."""

    name: str
    version: str
    targets: tuple[Target, ...]


def locked_packages(workspace: Workspace, member: Member,
                    groups: Collection[str]) -> list[LockedPackage]:
    """The index packages *member*'s lock installs with *groups* and every extra, per target."""
    from orchestrator.lock import read_lock, select
    from orchestrator.names import normalize

    lock = read_lock(member.lockfile)
    extras = sorted({normalize(e) for e in member.optional})
    found: dict[tuple[str, str], list[Target]] = {}
    for item in select(lock, workspace.targets, groups, extras=extras):
        if item.is_member or item.package.version is None:
            continue
        where = found.setdefault((item.name, str(item.package.version)), [])
        where.extend(t for t in item.targets if t not in where)
    return [LockedPackage(name, version, tuple(targets))
            for (name, version), targets in sorted(found.items())]


@dataclass(frozen=True, slots=True)
class Finding:
    """One vulnerability of one package version: its merged advisories.

    *id* is the first of the merged advisories' IDs in sorted order (stable
    for SARIF rules and ignores); *aliases* holds every other ID and alias.
    *fixed* lists the versions the advisories name as fixing, *fix* the
    smallest of those above *version* that none of them affects.
    """

    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    advisories: tuple[str, ...]
    summary: str
    severity: Severity
    score: float | None
    fixed: tuple[str, ...]
    fix: str | None
    targets: tuple[str, ...]
    url: str | None = None
    ignored: AuditIgnore | None = None

    def names(self) -> frozenset[str]:
        return frozenset((self.id, *self.aliases))

    def fails(self, fail_on: FailOn) -> bool:
        """Whether this finding fails an audit run with ``--fail-on`` *fail_on*."""
        if self.ignored is not None:
            return False
        if fail_on == "any" or self.severity == "unknown":
            return True
        return BANDS.index(self.severity) >= BANDS.index(fail_on)

    def as_dict(self, fail_on: FailOn) -> dict[str, object]:
        ignored = None if self.ignored is None else {
            "id": self.ignored.id, "reason": self.ignored.reason,
            "expires": self.ignored.expires.isoformat() if self.ignored.expires else None}
        return {"package": self.package, "version": self.version, "id": self.id,
                "aliases": list(self.aliases), "advisories": list(self.advisories),
                "summary": self.summary, "severity": self.severity, "score": self.score,
                "fixed": list(self.fixed), "fix": self.fix, "targets": list(self.targets),
                "url": self.url, "ignored": ignored, "failing": self.fails(fail_on)}


@dataclass(frozen=True, slots=True)
class MemberAudit:
    """One member's findings; *upgrades*: package -> the smallest version fixing all of them."""

    member: Member
    packages: int
    findings: tuple[Finding, ...]
    upgrades: Mapping[str, str | None]

    def as_dict(self, fail_on: FailOn) -> dict[str, object]:
        return {"member": self.member.name, "path": self.member.relpath,
                "lock": f"{self.member.relpath}/pylock.toml".removeprefix("./"),
                "packages": self.packages,
                "findings": [f.as_dict(fail_on) for f in self.findings],
                "upgrades": dict(self.upgrades)}


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Every audited member; *notes* say what a reader must know (fallbacks, expired ignores)."""

    source: str
    members: tuple[MemberAudit, ...]
    fail_on: FailOn
    notes: tuple[str, ...] = ()

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for m in self.members for f in m.findings)

    @property
    def failing(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.fails(self.fail_on))

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "fail_on": self.fail_on, "failed": bool(self.failing),
                "notes": list(self.notes),
                "members": [m.as_dict(self.fail_on) for m in self.members]}


def audit(
    workspace: Workspace,
    members: Sequence[Member],
    source: AdvisorySource,
    *,
    groups: Mapping[str, Collection[str]],
    ignores: Sequence[AuditIgnore] = (),
    fail_on: FailOn = "any",
    today: date | None = None,
    notes: Sequence[str] = (),
) -> AuditReport:
    """Audit *members* (with *groups*: member name -> the groups to include) against *source*."""
    today = today or date.today()
    locked = {m.name: locked_packages(workspace, m, groups.get(m.name, ())) for m in members}
    pairs = {(p.name, p.version) for packages in locked.values() for p in packages}
    advisories = source.advisories(pairs) if pairs else {}
    active, expired = _active_ignores(ignores, today)
    audits = []
    used: set[str] = set()
    for member in members:
        findings: list[Finding] = []
        upgrades: dict[str, str | None] = {}
        for package in locked[member.name]:
            matching = [a for a in advisories.get(package.name, ())
                        if a.affects(package.name, package.version)]
            if not matching:
                continue
            for found in _findings(package, matching):
                ignore = _ignore_for(found, active)
                if ignore is not None:
                    used.add(ignore.id.upper())
                    found = _with_ignore(found, ignore)
                findings.append(found)
            upgrades[package.name] = smallest_fix(package.name, package.version, matching)
        audits.append(MemberAudit(member, len(locked[member.name]), tuple(findings), upgrades))
    extra = [f"the ignore of {i.id} expired on {i.expires}; it no longer applies "
             f"(reason given: {i.reason})" for i in expired]
    extra += [f"the ignore of {i.id} matches no finding; remove it if it is no longer needed"
              for i in active if i.id.upper() not in used]
    return AuditReport(source.describe, tuple(audits), fail_on,
                       (*notes, *source.notes, *extra))


def _active_ignores(ignores: Iterable[AuditIgnore], today: date
                    ) -> tuple[list[AuditIgnore], list[AuditIgnore]]:
    active: list[AuditIgnore] = []
    expired: list[AuditIgnore] = []
    for ignore in ignores:
        (expired if ignore.expires is not None and ignore.expires < today else active).append(
            ignore)
    return active, expired


def _ignore_for(found: Finding, ignores: Sequence[AuditIgnore]) -> AuditIgnore | None:
    names = {n.upper() for n in found.names()}
    return next((i for i in ignores if i.id.upper() in names), None)


def _with_ignore(found: Finding, ignore: AuditIgnore) -> Finding:
    import dataclasses

    return dataclasses.replace(found, ignored=ignore)


def _findings(package: LockedPackage, matching: Sequence[Advisory]) -> list[Finding]:
    """One finding per group of advisories linked by a shared ID or alias."""
    groups: list[tuple[set[str], list[Advisory]]] = []
    for advisory in sorted(matching, key=lambda a: a.id):
        names = set(advisory.names())
        linked = [g for g in groups if g[0] & names]
        merged: tuple[set[str], list[Advisory]] = (names, [advisory])
        for group in linked:
            groups.remove(group)
            merged[0].update(group[0])
            merged[1].extend(group[1])
        groups.append(merged)
    targets = tuple(f"{t.python} {t.platform}" for t in package.targets)
    found = [_finding(package, sorted(advs, key=lambda a: a.id), names, targets)
             for names, advs in groups]
    return sorted(found, key=lambda f: f.id)


def _finding(package: LockedPackage, advisories: Sequence[Advisory], names: set[str],
             targets: tuple[str, ...]) -> Finding:
    ids = tuple(a.id for a in advisories)
    rated = [a for a in advisories if a.severity is not None]
    worst = max(rated, key=lambda a: (BANDS.index(a.severity or "none"), a.score or 0.0),
                default=None)
    fixed = sorted({v for a in advisories for v in a.fixed_for(package.name)}, key=_order)
    return Finding(
        package=package.name, version=package.version, id=ids[0],
        aliases=tuple(sorted(names - {ids[0]})), advisories=ids,
        summary=next((a.summary for a in advisories if a.summary), ""),
        severity=worst.severity if worst is not None and worst.severity else "unknown",
        score=worst.score if worst is not None else None,
        fixed=tuple(fixed), fix=smallest_fix(package.name, package.version, advisories),
        targets=targets, url=next((a.url for a in advisories if a.url), None))


def _order(text: str) -> tuple[int, object]:
    parsed = parse_version(text)
    return (0, parsed) if parsed is not None else (1, text)


def smallest_fix(package: str, version: str, advisories: Sequence[Advisory]) -> str | None:
    """The smallest fixed version above *version* that none of *advisories* affects."""
    current = parse_version(version)
    parsed = {v: p for a in advisories for v in a.fixed_for(package)
              if (p := parse_version(v)) is not None and (current is None or p > current)}
    for candidate in sorted(parsed, key=parsed.__getitem__):
        if not any(a.affects(package, candidate) for a in advisories):
            return candidate
    return None


def lock_line(member: Member, package: str) -> int:
    """The line of *package*'s entry in the member's pylock.toml (1 when not found)."""
    wanted = f'name = "{package}"'
    try:
        lines = member.lockfile.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 1
    return next((i for i, line in enumerate(lines, 1) if line.strip() == wanted), 1)


def advisory_source(workspace: Workspace, cache_dir: Path, *, db: Path | None = None,
                    online: bool = False) -> AdvisorySource:
    """Where `audit` reads advisories: *db* (``--db``), else ``audit.db``, or the OSV API.

    Online, a configured local database is the fallback for an unreachable API.
    """
    from orchestrator.errors import GovernanceError
    from orchestrator.governance.osv import open_database

    path, key = (db, "--db") if db is not None else (workspace.audit.db, "audit.db")
    local = open_database(path, cache_dir, key=key) if path is not None else None
    if online:
        from orchestrator.governance.osv_api import OnlineSource, OsvApi

        return OnlineSource(OsvApi(cache_dir), local)
    if local is None:
        raise GovernanceError(
            "no advisory database is configured",
            hint="pass --db PATH (a directory of OSV files such as a checkout of the PyPA "
            "advisory database, or an OSV zip export), set audit.db in workspace.yaml, or use "
            "--online", key="audit.db")
    return local


def audit_groups(member: Member, groups: Sequence[str], *, no_dev: bool) -> list[str]:
    """The member's dependency groups an audit includes: all, only *groups*, or none."""
    from orchestrator.names import normalize

    known = {normalize(g) for g in member.groups}
    if no_dev:
        return []
    if groups:
        return sorted(known & {normalize(g) for g in groups})
    return sorted(known)
