"""The exceptions a user can cause, and the data they carry.

Library code raises these; only ``cli.py`` prints them and maps them to exit
codes.  Like resolvelib's ``ResolutionImpossible.causes``, an error carries
what went wrong as data beside its text: the file, the key path inside it
(``indexes[0].url``), the member, package or index, and what was expected and
found instead.  ``details()`` returns those fields as a JSON-able dict, for
machine-readable output.  Where a raiser has the data, it builds the text
from the same values, so that the two cannot disagree.

Wording, one style for every message and hint:

- a message says what happened and where; a hint says what to do;
- both start lower-case (unless they start with a name spelled upper-case,
  such as ``Python`` or ``PEP 517``) and end without a period;
- names are quoted as written (``'requests'``), commands in backticks;
- detail lines after the first line of a message are indented two spaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack


class ErrorFields(TypedDict, total=False):
    """The keyword arguments every error accepts (see ``OrchestratorError``)."""

    hint: str | None
    file: Path | None
    key: str | None
    member: str | None
    package: str | None
    index: str | None
    expected: str | None
    actual: str | None


class OrchestratorError(Exception):
    """Base of every error a user can cause and fix.

    *file* is the file at fault, *key* the key path inside it; *member*,
    *package* and *index* name what the error is about; *expected* and
    *actual* describe the wanted and the found value.  All are optional.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        file: Path | None = None,
        key: str | None = None,
        member: str | None = None,
        package: str | None = None,
        index: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = file
        self.key = key
        self.member = member
        self.package = package
        self.index = index
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message

    def details(self) -> dict[str, object]:
        """The error as a JSON-able dict; every key is present, unknown fields are None."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "file": None if self.file is None else str(self.file),
            "key": self.key,
            "member": self.member,
            "package": self.package,
            "index": self.index,
            "expected": self.expected,
            "actual": self.actual,
        }


class WorkspaceError(OrchestratorError):
    """workspace.yaml or a member's pyproject.toml is missing or invalid."""


class GraphError(OrchestratorError):
    """The member graph cannot be used (a dependency cycle, an unknown member)."""


class GitError(OrchestratorError):
    """A git command needed to find changed files failed."""


class PackageIndexError(OrchestratorError):
    """A package index could not be reached, lacks a package, or served bad data."""


@dataclass(frozen=True, slots=True)
class ConflictCause:
    """One requirement that could not be met, and who asked for it.

    *chain* runs from the member being locked to the requirement, e.g.
    ``("api", "common 1.0", "attrs>=24")``; the first link may name a
    dependency group (``"api (group dev)"``).  *package* is the project the
    requirement is on.
    """

    package: str | None  # None for a requirement on the interpreter, or unreadable
    chain: tuple[str, ...]

    @property
    def requirement(self) -> str:
        """The requirement text itself: the chain's last link."""
        return self.chain[-1]

    def as_dict(self) -> dict[str, object]:
        return {"package": self.package, "chain": list(self.chain)}


class ResolutionError(OrchestratorError):
    """No set of versions satisfies the requirements.

    *causes* lists the requirements that conflict (empty when the failure is
    not a conflict, e.g. no target environments).
    """

    def __init__(
        self,
        message: str,
        *,
        causes: tuple[ConflictCause, ...] = (),
        **fields: Unpack[ErrorFields],
    ) -> None:
        super().__init__(message, **fields)
        self.causes = causes

    def details(self) -> dict[str, object]:
        return {**super().details(), "causes": [cause.as_dict() for cause in self.causes]}


class LockError(OrchestratorError):
    """A lock file is missing, stale or invalid."""


class CacheError(OrchestratorError):
    """The wheel cache holds a bad entry or cannot be written."""


class HashMismatchError(CacheError):
    """A downloaded or cached file does not match the hash the lock records."""


class VenvError(OrchestratorError):
    """A virtual environment cannot be created or synced."""


class BuildError(OrchestratorError):
    """A source distribution or an image failed to build."""


class DockerError(OrchestratorError):
    """The Docker engine is unreachable or reported an error."""


class PublishError(OrchestratorError):
    """An image or a distribution could not be published."""


class GovernanceError(OrchestratorError):
    """An audit, license policy or SBOM cannot be made: a bad database, policy or source."""
