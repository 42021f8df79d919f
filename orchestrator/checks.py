"""What `check` finds wrong with a workspace, as data: a list of Findings.

Offline and fast: nothing here resolves, builds or imports networkx. The
findings come from three places, in this order: the problems loading
collects (``workspace.inspect_workspace``: unreadable members, invalid or
Poetry-style requirements, direct references), the warnings it makes
(dependencies only Poetry reads), and the checks registered below, each a
function from a ``CheckContext`` to findings. Adding a check is writing one
such function under ``@check``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from orchestrator.errors import OrchestratorError, WorkspaceError
from orchestrator.models import LoadWarning, Member, Workspace
from orchestrator.names import normalize

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: *error* makes `check` exit 1, *warning* does not.

    *check* names what found it: ``load`` for what workspace loading
    reported, else the name of the check function.
    """

    severity: Severity
    file: Path | None
    key: str | None
    member: str | None
    message: str
    hint: str | None = None
    check: str = "load"

    @classmethod
    def from_error(cls, exc: OrchestratorError, check: str = "load") -> Finding:
        return cls("error", exc.file, exc.key, exc.member, exc.message, exc.hint, check)

    @classmethod
    def from_warning(cls, warning: LoadWarning) -> Finding:
        return cls("warning", warning.file, warning.key, warning.member, warning.message,
                   warning.hint)

    def as_dict(self) -> dict[str, object]:
        return {"severity": self.severity, "check": self.check,
                "file": None if self.file is None else str(self.file), "key": self.key,
                "member": self.member, "message": self.message, "hint": self.hint}


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check looks at: the members that loaded, and the names of those that did not."""

    workspace: Workspace
    broken: frozenset[str]

    def depends_on_broken(self, member: Member) -> bool:
        """Whether *member* names a member that failed to load (its checks would mislead).

        A member whose name cannot be read is known by its path: its directory's
        name stands in for the project name.
        """
        from orchestrator.graph import requirement_name

        names = {normalize(PurePosixPath(b).name) for b in self.broken}
        return any(requirement_name(r) in names for r in member.all_requirements())


Check = Callable[[CheckContext], Iterable[Finding]]
_CHECKS: list[Check] = []


def check(func: Check) -> Check:
    """Register *func* as a check; checks run in the order they are defined."""
    _CHECKS.append(func)
    return func


def registered() -> tuple[Check, ...]:
    return tuple(_CHECKS)


@dataclass(frozen=True, slots=True)
class Report:
    """The findings of one `check` run; *workspace* is None when workspace.yaml itself is bad."""

    workspace: Workspace | None
    findings: tuple[Finding, ...]
    broken: frozenset[str] = frozenset()  # members left out for their problems

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    def for_check(self, name: str, member: str) -> Finding | None:
        """The finding of check *name* about *member*, if any."""
        return next((f for f in self.findings if f.check == name and f.member == member), None)


def run(start: Path | None = None, checks: Iterable[Check] | None = None) -> Report:
    """Every finding for the workspace containing *start*, without stopping at the first."""
    from orchestrator.workspace import inspect_workspace

    try:
        inspection = inspect_workspace(start)
    except WorkspaceError as exc:  # workspace.yaml itself: nothing else can be read
        return Report(None, (Finding.from_error(exc),))
    workspace = inspection.workspace
    findings = [Finding.from_error(p) for p in inspection.problems]
    findings += [Finding.from_warning(w) for w in workspace.warnings]
    context = CheckContext(workspace, inspection.broken)
    for each in registered() if checks is None else checks:
        findings.extend(each(context))
    return Report(workspace, tuple(findings), inspection.broken)


# -- the checks -------------------------------------------------------------------------------


@check
def requires_python(context: CheckContext) -> Iterator[Finding]:
    """A member whose requires-python excludes the workspace's Python cannot be locked.

    Locks are made for the first patch release (``3.11`` is 3.11.0), as the
    resolver's target environments are.
    """
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    python = context.workspace.python
    first = Version(f"{python}.0")
    for member in context.workspace.members:
        spec = member.requires_python
        if spec is None or SpecifierSet(spec).contains(first, prereleases=True):
            continue
        yield Finding(
            "error", member.pyproject, "project.requires-python", member.name,
            f"{_label(member)}: project.requires-python: {member.name} requires Python "
            f"{spec}, which excludes the workspace's Python {python}",
            f"widen requires-python to admit {python} (e.g. \">={python}\"), or change "
            "`python` in workspace.yaml", "requires_python")


@check
def member_cycle(context: CheckContext) -> Iterator[Finding]:
    from orchestrator.graph import cycle_error
    from orchestrator.graph import member_cycle as find_cycle

    cycle = find_cycle(context.workspace)
    if cycle:
        yield Finding.from_error(cycle_error(cycle), "member_cycle")


@check
def stale_lock(context: CheckContext) -> Iterator[Finding]:
    """A lock out of date with its inputs: `lock --check` fails, `sync --frozen` refuses."""
    from orchestrator.lock import staleness

    workspace = context.workspace
    for member in workspace.members:
        if context.depends_on_broken(member):
            continue  # its inputs cannot be read yet; the load problem says why
        stale = staleness(workspace, member)
        if stale is not None:
            yield Finding("warning", member.lockfile, None, member.name,
                          f"the lock of {member.name} is out of date: {stale.reason}",
                          f"run `orchestrator lock {member.name}`", "stale_lock")


# -- the governance gate (orchestrator.governance does the work) ----------------------------


@check
def venv_drift(context: CheckContext) -> Iterator[Finding]:
    """Packages in a member's .venv that its lock does not list, or at other versions."""
    from orchestrator.governance.drift import venv_drift as drift

    for member in context.workspace.members:
        for found in drift(context.workspace, member):
            yield Finding(
                "error", found.venv, found.package, member.name,
                f"{_rel(member, '.venv')}: {found.describe()} (installed behind the "
                "lock's back, e.g. with pip)",
                f"add it to {_label(member)} with `orchestrator add {member.name} "
                f"{found.package}`, or run `orchestrator sync {member.name}` to remove it",
                "venv_drift")


@check
def secrets(context: CheckContext) -> Iterator[Finding]:
    """Tokens, keys and passwords written into workspace.yaml or a pyproject.toml."""
    from orchestrator.governance.secrets import scan_file

    workspace = context.workspace
    files: list[tuple[Path, str | None, str]] = [(workspace.manifest, None,
                                                  workspace.manifest.name)]
    files += [(m.pyproject, m.name, _label(m)) for m in workspace.members]
    for path, member, label in files:
        for found in scan_file(path):
            where = f"{label}:{found.line}" + (f": {found.key}" if found.key else "")
            yield Finding(
                "error", path, found.key, member,
                f"{where}: a {found.kind} is stored in the file ({found.masked})",
                "remove it and rotate it (it stays in the file's history); pass secrets "
                "through the environment or a secret manager, never the repository",
                "secrets")


@check
def upper_bounds(context: CheckContext) -> Iterator[Finding]:
    """With `policy.require-upper-bounds`: requirements without an upper bound."""
    if not context.workspace.policy.require_upper_bounds:
        return
    from orchestrator.governance.gate import unbounded

    names = {m.name for m in context.workspace.members}
    for member in context.workspace.members:
        for key, requirement in unbounded(member, names):
            yield Finding(
                "error", member.pyproject, key, member.name,
                f"{_label(member)}: {key}: {requirement!r} has no upper bound "
                "(policy.require-upper-bounds)",
                "cap it below the next release you have not tested, e.g. 'pkg>=1.4,<2'",
                "upper_bounds")


@check
def lock_sources(context: CheckContext) -> Iterator[Finding]:
    """Lock entries without hashes, or from a direct URL or VCS: unverifiable, unauditable."""
    from orchestrator.governance.gate import lock_problems

    for member in context.workspace.members:
        for problem in lock_problems(member.lockfile):
            hint = ("re-create the lock with `orchestrator lock`" if problem.kind == "no-hash"
                    else f"depend on a release of {problem.package} from one of the "
                    "workspace's indexes")
            yield Finding(
                "error", member.lockfile, problem.key, member.name,
                f"{_rel(member, 'pylock.toml')}: {problem.key}: {problem.package} "
                f"{problem.detail}", hint, "lock_sources")


@check
def audit_policy(context: CheckContext) -> Iterator[Finding]:
    """With `audit.db`: locked packages affected by an advisory, at or above `audit.fail-on`."""
    workspace = context.workspace
    if workspace.audit.db is None:
        return
    from orchestrator.governance.audit import audit
    from orchestrator.governance.osv import open_database

    members = [m for m in workspace.members if m.lockfile.is_file()]
    try:
        source = open_database(workspace.audit.db, workspace.resolved_cache_dir(), key="audit.db")
        report = audit(workspace, members, source, ignores=workspace.audit.ignore,
                       fail_on=workspace.audit.fail_on,
                       groups={m.name: sorted(m.groups) for m in members})
    except OrchestratorError as exc:
        yield Finding.from_error(exc, "audit_policy")
        return
    for member_audit in report.members:
        member = member_audit.member
        for found in member_audit.findings:
            if not found.fails(report.fail_on):
                continue
            aliases = f" ({', '.join(found.aliases)})" if found.aliases else ""
            fix = f"upgrade {found.package} to {found.fix}" if found.fix else \
                "no fixed version is known: replace the package"
            yield Finding(
                "error", member.lockfile, f"packages.{found.package}", member.name,
                f"{_rel(member, 'pylock.toml')}: {found.package} {found.version} is affected "
                f"by {found.id}{aliases}, severity {found.severity}",
                f"{fix}, or accept it under audit.ignore with a reason", "audit_policy")
    for note in report.notes:
        yield Finding("warning", workspace.manifest, "audit.ignore", None, note,
                      check="audit_policy")


@check
def license_policy(context: CheckContext) -> Iterator[Finding]:
    """With a `license:` policy: locked packages whose license it denies or does not allow.

    Offline: a license whose metadata is not cached counts as unknown
    (`orchestrator licenses` fetches it).
    """
    workspace = context.workspace
    if not workspace.license.configured:
        return
    from orchestrator.governance.licenses import license_report
    from orchestrator.session import Session

    members = [m for m in workspace.members if m.lockfile.is_file()]
    try:
        with Session(workspace=workspace, offline=True) as session:
            report = license_report(session, members)
    except OrchestratorError as exc:
        yield Finding.from_error(exc, "license_policy")
        return
    by_name = {m.name: m for m in members}
    for item in report.packages:
        if item.failing or item.status == "unknown":
            member = by_name[item.member]
            yield Finding(
                "error" if item.failing else "warning", workspace.manifest, "license",
                item.member, f"{_rel(member, 'pylock.toml')}: {item.message()}",
                "replace the package, or change `license:` in workspace.yaml"
                if item.failing else "run `orchestrator licenses` to read its metadata, or "
                "accept it in `license.allow`", "license_policy")


def _rel(member: Member, name: str) -> str:
    return name if member.relpath == "." else f"{member.relpath}/{name}"


def _label(member: Member) -> str:
    return "pyproject.toml" if member.relpath == "." else f"{member.relpath}/pyproject.toml"
