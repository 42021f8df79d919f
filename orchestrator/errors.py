"""The exceptions a user can cause.

Library code raises these with a message that says what happened, where, and
what to do; only ``cli.py`` prints them and maps them to exit codes.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error a user can cause and fix."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class WorkspaceError(OrchestratorError):
    """workspace.yaml or a member's pyproject.toml is missing or invalid."""


class GraphError(OrchestratorError):
    """The member graph cannot be used (a dependency cycle, an unknown member)."""


class GitError(OrchestratorError):
    """A git command needed to find changed files failed."""


class PackageIndexError(OrchestratorError):
    """A package index could not be reached or answered with an error."""


class ResolutionError(OrchestratorError):
    """No set of versions satisfies the requirements."""


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
