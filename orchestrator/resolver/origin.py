"""Where a root requirement of the member being locked comes from.

The main dependencies (``None``), a dependency group (its normalized name, a
``str``), or one of the member's own extras (an ``Extra``). Groups and extras
become different PEP 751 markers (``'dev' in dependency_groups``, ``'redis' in
extras``), so they must not share a name space.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Extra:
    """One of the member's own extras (``[project.optional-dependencies]``)."""

    name: str  # normalized

    def __str__(self) -> str:
        return self.name


Origin = str | Extra | None
