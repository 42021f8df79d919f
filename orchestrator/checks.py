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


def _label(member: Member) -> str:
    return "pyproject.toml" if member.relpath == "." else f"{member.relpath}/pyproject.toml"
