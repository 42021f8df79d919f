"""What every converter works with: where it is (for errors) and who the members are."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from orchestrator.errors import WorkspaceError

if TYPE_CHECKING:
    from tomlkit import TOMLDocument


@dataclass(frozen=True, slots=True)
class Where:
    """One member's pyproject.toml, as errors name it."""

    file: Path
    label: str  # "services/api/pyproject.toml"
    member: str  # the member's project name, normalized

    @property
    def directory(self) -> Path:
        return self.file.parent

    def fail(self, key: str, problem: str, hint: str | None = None, *,
             package: str | None = None, actual: str | None = None) -> NoReturn:
        """Raise the WorkspaceError ``<file>: <key>: <problem>`` with its fields.

        Without a *hint*, the hint says to fix that key and run init again.
        """
        hint = hint or f"fix {key} in {self.label}, then run `orchestrator init` again"
        raise WorkspaceError(f"{self.label}: {key}: {problem}", hint=hint, file=self.file,
                             key=key, member=self.member, package=package, actual=actual)


@dataclass(frozen=True, slots=True)
class MemberRefs:
    """The member directories (resolved) and their normalized project names."""

    names: Mapping[Path, str]

    def at(self, base: Path, path: str) -> str | None:
        """The member living at *path* (relative to *base*, or absolute); None if none."""
        target = (base / path).resolve()
        return self.names.get(target)


@dataclass(frozen=True, slots=True)
class Conversion:
    """A converter's result: the edited document, index pins and what to tell the user.

    *pins* maps a package to the source name as the tool being replaced spells
    it; the plan turns those into workspace index names.
    """

    doc: TOMLDocument
    pins: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
