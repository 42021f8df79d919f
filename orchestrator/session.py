"""The Session: what a command needs, each part created on first use.

A command asks the session for the loaded workspace, the index client, the
shared wheel cache, the sdist and member builders, and the host target. Each
is built the first time it is asked for, so `orchestrator --help` and `list`
import none of the heavy libraries (httpx, resolvelib, networkx, docker) and
`lock --check` never opens a connection. Stages take the session (or the
plain values they need) instead of an untyped bag of clients; the session is
the one place where the pieces are wired together.

A session is used by one command in one process. The index client and the
cache are thread-safe, so a command may share them between worker threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from threading import RLock
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar, overload

from orchestrator.errors import WorkspaceError
from orchestrator.models import LoadWarning, Member, Target, Workspace

if TYPE_CHECKING:
    from orchestrator.build import MemberBuilder, SdistBuilder
    from orchestrator.cache import LinkMode, PruneReport, WheelCache
    from orchestrator.index import IndexClient
    from orchestrator.models import CoreMetadata


T = TypeVar("T")


class _made_once(Generic[T]):  # noqa: N801 - used like functools.cached_property
    """A cached property whose value is made once, even when threads ask at the same time.

    functools.cached_property may run the function twice under a race (Python
    3.12 dropped its lock), which would leak an IndexClient's threads; `build`
    asks from a thread per service.
    """

    def __init__(self, make: Callable[[Session], T]) -> None:
        self._make = make
        self._name = make.__name__
        self.__doc__ = make.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Session]) -> _made_once[T]: ...
    @overload
    def __get__(self, obj: Session, owner: type[Session]) -> T: ...

    def __get__(self, obj: Session | None, owner: type[Session]) -> T | _made_once[T]:
        if obj is None:
            return self
        with obj._lock:
            if self._name not in obj.__dict__:
                obj.__dict__[self._name] = self._make(obj)
            value: T = obj.__dict__[self._name]
            return value


class Session:
    """The workspace and the shared services of one command run.

    *workspace_path* is a workspace.yaml or a directory inside a workspace
    (None: search upwards from the current directory). *refresh* and
    *offline* configure the index client. A loaded *workspace* may be passed
    instead, which tests and library callers do. *warn* is told the
    workspace's loading warnings when it is first loaded.
    """

    def __init__(
        self,
        workspace_path: Path | None = None,
        *,
        workspace: Workspace | None = None,
        refresh: bool = False,
        offline: bool = False,
        cache_dir: Path | None = None,
        warn: Callable[[LoadWarning], None] | None = None,
    ) -> None:
        self._workspace_path = workspace_path
        self._warn = warn  # told each loading warning (e.g. dependencies only Poetry reads)
        self._workspace = workspace
        self._refresh = refresh
        self._offline = offline
        self._cache_dir = cache_dir
        self._lock = RLock()
        self._link_mode: LinkMode = "hardlink"  # see configure_cache
        self._rehash = False

    # -- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        """Close the index client (its connections and worker threads), if one was made."""
        with self._lock:
            index = self.__dict__.pop("index", None)  # set by _made_once
        if index is not None:
            index.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- the workspace -----------------------------------------------------------------

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            from orchestrator.workspace import load_workspace

            self._workspace = load_workspace(self._workspace_path)
            if self._warn is not None:
                for warning in self._workspace.warnings:
                    self._warn(warning)
        return self._workspace

    def reload(self) -> Workspace:
        """Load the workspace again, after a command edited a pyproject.toml.

        The index client and the cache stay: what they hold does not depend
        on the members' requirements.
        """
        from orchestrator.workspace import load_workspace

        self._workspace = load_workspace(self._workspace_path or self.workspace.root)
        return self._workspace

    def members(self, names: Sequence[str], *, services_only: bool = False) -> list[Member]:
        """The named members (all when *names* is empty); with *services_only*, services.

        Naming a library where only services make sense is an error that says so.
        """
        ws = self.workspace
        if names:
            from orchestrator.graph import select  # here: `lock` or `sync` of all members skips it

            chosen = select(ws, names)
        else:
            chosen = list(ws.members)
        if not services_only:
            return chosen
        for member in chosen if names else ():
            if member.kind != "service":
                raise WorkspaceError(
                    f"{member.name} is a library, not a service",
                    hint="only services have images; list services with "
                    "`orchestrator list --services`", member=member.name)
        return [m for m in chosen if m.kind == "service"]

    def member(self, name: str, *, services_only: bool = False) -> Member:
        (chosen,) = self.members([name], services_only=services_only)
        return chosen

    @property
    def cache_dir(self) -> Path:
        return self._cache_dir or self.workspace.resolved_cache_dir()

    def host_target(self, python: str | None = None) -> Target:
        """This machine as a lock target, for *python* X.Y (default: the workspace's)."""
        from orchestrator.sync import host_target

        return host_target(python or self.workspace.python)

    @_made_once
    def revision(self) -> Mapping[str, str]:
        """The workspace's git facts for image labels and tags (source, revision, created)."""
        from orchestrator.vcs import revision_info

        return revision_info(self.workspace.root)

    # -- the shared services --------------------------------------------------------------

    @_made_once
    def index(self) -> IndexClient:
        """The index client for the workspace's indexes and the members' source pins."""
        from orchestrator.index import IndexClient
        from orchestrator.index.transport import Deadlines

        ws = self.workspace
        timeout = ws.http_timeout
        deadlines = Deadlines.configured(timeout.connect, timeout.read, timeout.total,
                                         ws.manifest.name)
        return IndexClient(ws.indexes, self.cache_dir, sources=source_pins(ws.members),
                           refresh=self._refresh, offline=self._offline,
                           sdist_metadata=self._sdist_metadata, deadlines=deadlines)

    @_made_once
    def cache(self) -> WheelCache:
        from orchestrator.cache import WheelCache

        return WheelCache(self.cache_dir, rehash=self._rehash, link_mode=self._link_mode)

    def configure_cache(self, *, link_mode: LinkMode | None = None,
                        rehash: bool | None = None) -> None:
        """How the wheel cache links files out and whether it re-hashes (`sync --link-mode`,
        `--verify`): applied to the cache if it was made already, else when it is made, so
        a command that never needs the cache never imports it."""
        with self._lock:
            self._link_mode = link_mode or self._link_mode
            self._rehash = self._rehash if rehash is None else rehash
            made: WheelCache | None = self.__dict__.get("cache")  # set by _made_once
            if made is not None:
                made.link_mode, made.rehash = self._link_mode, self._rehash

    @_made_once
    def sdists(self) -> SdistBuilder:
        """Builds sdist-only packages into cached wheels (and reads their metadata)."""
        from orchestrator.build import SdistBuilder

        remote = None
        if self.workspace.cache_remote:
            from orchestrator.ci.remote_cache import RemoteWheels

            remote = RemoteWheels.parse(self.workspace.cache_remote)
        return SdistBuilder(self.cache, [i.url for i in self.workspace.indexes], remote=remote)

    @_made_once
    def member_builder(self) -> MemberBuilder:
        """Builds workspace members into wheels through their own backends (for images)."""
        from orchestrator.build import MemberBuilder

        return MemberBuilder(self.sdists)

    def _sdist_metadata(self, path: Path) -> CoreMetadata:
        """Metadata of a package that only has an sdist: a PEP 517 build, cached."""
        return self.sdists.prepare_metadata(path)

    # -- whole-workspace chores --------------------------------------------------------------

    def prune_cache(self) -> PruneReport:
        """Remove cached wheels that no member's lock refers to."""
        from orchestrator.lock import archive_hashes, read_lock

        keep: set[str] = set()
        for member in self.workspace.members:
            if member.lockfile.exists():
                for pkg in read_lock(member.lockfile).packages:
                    keep.update(archive_hashes(pkg))
        return self.cache.prune(keep)


def source_pins(members: Sequence[Member]) -> dict[str, str]:
    """The union of the members' package -> index pins; conflicting pins are an error."""
    merged: dict[str, tuple[str, str]] = {}
    for member in members:
        for package, index in member.options.sources.items():
            seen = merged.setdefault(package, (index, member.name))
            if seen[0] != index:
                raise WorkspaceError(
                    f"{package} is pinned to index {seen[0]!r} by {seen[1]} but to {index!r} "
                    f"by {member.name}",
                    hint="pin the package to the same index in [tool.orchestrator.sources] of "
                    "both members", member=member.name, package=package)
    return {package: index for package, (index, _m) in merged.items()}

