"""Fetching ahead of the resolver: the pages and metadata its likely picks need.

resolvelib works on one project at a time: it reads a project's page when a
requirement on it first appears and a release's metadata when it pins that
release. On a cold cache a lock therefore waits on a chain of round trips,
one level of the dependency graph after the other, whatever the index
client's concurrency. ``Prefetcher`` walks the same graph ahead of it with
many requests in flight: for each requirement it takes the release the
resolver will most likely pick (the previous lock's pin while it fits, else
the newest final release this target can install from a wheel), reads that
wheel's metadata and goes on with its dependencies.

It only warms the shared ``Catalog`` (pages, listings, metadata); the
resolver decides exactly as before, so the locks are the same bytes. A guess
the resolver does not take costs a few requests, never correctness, and a
guess that fails (a missing project, an unreadable file) is dropped: the
resolver meets the same problem itself and reports it as usual. Sdists are
never built on a guess.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from packaging.requirements import InvalidRequirement
from packaging.version import InvalidVersion, Version

from orchestrator.errors import OrchestratorError
from orchestrator.models import Member
from orchestrator.names import normalize
from orchestrator.resolver.catalog import Catalog, Release
from orchestrator.resolver.environment import TargetEnvironment
from orchestrator.resolver.provider import (
    INVALID,
    PYTHON,
    Requirement,
    installable_file,
    optional_dependencies,
    parse_requirements,
)

log = logging.getLogger(__name__)

WORKERS = 16  # walks in flight at once; each waits on one request at a time
SCAN_LIMIT = 40  # releases looked at per guess (a tight upper bound on an old line)


class Prefetcher:
    """Walks the likely picks' dependency graph in background threads (see the module doc).

    Thread-safe. ``close`` stops the walk: queued steps are dropped and the
    running ones end after their current request.
    """

    def __init__(self, catalog: Catalog, members: Mapping[str, Member], *,
                 workers: int = WORKERS) -> None:
        self._catalog = catalog
        self._members = members
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="prefetch")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # steps submitted and not finished
        self._seen: set[tuple[object, ...]] = set()
        self._stopped = False

    def member(self, member: Member, env: TargetEnvironment,
               preferred: Mapping[str, Sequence[str]] = {}) -> None:
        """Start on every requirement of *member* (main, groups, extras) that applies on *env*.

        *preferred* maps names to the previous lock's versions, as ``resolve`` takes them.
        """
        texts = [*member.dependencies]
        texts += [t for group in member.groups.values() for t in group]
        texts += [t for extra in member.optional.values() for t in extra]
        self._start(texts, env, "", _versions(preferred))

    def join(self) -> None:
        """Wait until the walk has nothing left to do (tests; a lock run only closes)."""
        with self._idle:
            self._idle.wait_for(lambda: self._pending == 0)

    def close(self) -> None:
        with self._lock:
            self._stopped = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._idle:  # the cancelled steps never ran
            self._pending = 0
            self._idle.notify_all()

    # -- the walk ------------------------------------------------------------------

    def _start(self, texts: Iterable[str], env: TargetEnvironment, extra: str,
               preferred: Mapping[str, Sequence[Version]]) -> None:
        for text in texts:
            try:  # one at a time: a bad string must not hide the others
                requirements = list(parse_requirements([text], env, extra))
            except (InvalidRequirement, ValueError):
                continue
            for requirement in requirements:
                self._submit(requirement, env, preferred)

    def _submit(self, requirement: Requirement, env: TargetEnvironment,
                preferred: Mapping[str, Sequence[Version]]) -> None:
        if requirement.name in (PYTHON, INVALID):
            return
        key = (env.target, requirement.identifier, str(requirement.specifier))
        with self._lock:
            if self._stopped or key in self._seen:
                return
            self._seen.add(key)
            self._pending += 1
        try:
            self._pool.submit(self._visit, requirement, env, preferred)
        except RuntimeError:  # closed meanwhile
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            if not self._pending:
                self._idle.notify_all()

    def _visit(self, requirement: Requirement, env: TargetEnvironment,
               preferred: Mapping[str, Sequence[Version]]) -> None:
        try:
            self._step(requirement, env, preferred)
        except (OrchestratorError, OSError, ValueError) as exc:
            log.debug("prefetch of %s stopped: %s", requirement.text, exc)
        finally:
            self._done()

    def _step(self, requirement: Requirement, env: TargetEnvironment,
              preferred: Mapping[str, Sequence[Version]]) -> None:
        if self._stopped:
            return
        member = self._members.get(requirement.name)
        if member is not None:
            extra = requirement.extra
            texts = optional_dependencies(member, extra) if extra else member.dependencies
            self._start(texts, env, "", preferred)
            return
        releases = self._catalog.releases(requirement.name)
        release = _likely_pick(releases, requirement, preferred.get(requirement.name, ()), env)
        if release is None or self._stopped:
            return
        file = installable_file(env, release, allow_yanked=requirement.pins_exactly)
        if file is None or not file.is_wheel:
            return
        key = (env.target, file.url, requirement.extra)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        metadata = self._catalog.metadata(file)
        if env.allows_python(metadata.requires_python):
            self._start(metadata.requires_dist, env, requirement.extra or "", preferred)


def _versions(preferred: Mapping[str, Sequence[str]]) -> dict[str, tuple[Version, ...]]:
    out: dict[str, tuple[Version, ...]] = {}
    for name, texts in preferred.items():
        parsed = []
        for text in texts:
            with contextlib.suppress(InvalidVersion):
                parsed.append(Version(text))
        out[normalize(name)] = tuple(parsed)
    return out


def _likely_pick(releases: Sequence[Release], requirement: Requirement,
                 pins: Sequence[Version], env: TargetEnvironment) -> Release | None:
    """The release the resolver most likely pins for *requirement* on *env*, if one is plain.

    The first preferred pin that fits, else the newest final release in the
    specifier that ships a file for *env*; pre-releases only when the
    specifier names one.
    """
    specifier = requirement.specifier
    allow_pre = bool(specifier.prereleases)
    for pin in pins:
        if specifier.contains(pin, prereleases=True):
            found = next((r for r in releases if r.version == pin), None)
            if found is not None:
                return found
    for release in releases[:SCAN_LIMIT]:
        version = release.version
        if version.is_prerelease and not allow_pre:
            continue
        if not specifier.contains(version, prereleases=True):
            continue
        if installable_file(env, release, allow_yanked=requirement.pins_exactly) is not None:
            return release
    return None
