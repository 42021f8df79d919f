"""From a member's lock to the distributions its environment must hold.

``plan`` turns a lock into ``WantedDist`` entries for one target environment
(fetching wheels into the shared cache, building sdists once), and
``sync_member`` applies them to the member's venv. The image builder reads
the same plan for its third-party layers (without the editable members), so
a development venv and an image are made from the same locked wheels.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import LockError, VenvError
from orchestrator.lock import Selected, reachable, read_lock, select
from orchestrator.models import PLATFORM_MACHINES, DistFile, Member, Target, Workspace, platform_for

if TYPE_CHECKING:
    from packaging.pylock import PackageSdist, PackageWheel

    from orchestrator.build import BuiltWheel
    from orchestrator.cache import Progress
    from orchestrator.session import Session
    from orchestrator.venv import InstallPool, SyncReport, VenvInfo, VenvSync, WantedDist

VENV_DIR = ".venv"


def host_target(python: str) -> Target:
    """This machine as a lock target, for the given Python X.Y."""
    host = platform_for(platform.system(), platform.machine())
    if host not in PLATFORM_MACHINES:
        raise VenvError(
            f"this machine ({platform.system()} {platform.machine()}) is not a lock target",
            hint="locks here are made for linux/amd64 and linux/arm64; develop inside a "
            "Linux container or add support for your platform")
    return Target(python, host)


def venv_path(member: Member) -> Path:
    return member.path / VENV_DIR


def _index_names(workspace: Workspace) -> dict[str, str]:
    """Each index's URL as a lock holds it (path tokens masked) -> its name in
    workspace.yaml: worked out once per plan, not once per archive."""
    from orchestrator.index.auth import hide_index_secrets

    return {hide_index_secrets(i.url, workspace.indexes): i.name for i in workspace.indexes}


def _dist_file(workspace: Workspace, selected: Selected,
               archive: PackageWheel | PackageSdist, by_url: dict[str, str]) -> DistFile:
    from orchestrator.index.auth import restore_index_secrets

    # Locks hold index URLs with path tokens masked; the real ones come from workspace.yaml.
    index = by_url.get(selected.package.index or "", workspace.indexes[0].name)
    if archive.url is None or "sha256" not in archive.hashes:
        raise LockError(f"the lock entry for {selected.name} has no URL or sha256 for "
                        f"{archive.filename}", hint="re-create the lock with `orchestrator lock`",
                        package=selected.name)
    return DistFile(filename=archive.filename,
                    url=restore_index_secrets(archive.url, workspace.indexes), index=index,
                    sha256=archive.hashes["sha256"], size=archive.size)


def plan(
    session: Session,
    member: Member,
    target: Target,
    groups: Collection[str],
    *,
    editable_members: bool = True,
    include_self: bool = True,
    only_groups: bool = False,
    extras: Collection[str] = (),
    progress: Progress | None = None,
) -> list[WantedDist]:
    """The WantedDist list for *member* on *target* with *groups* and *extras*, wheels cached.

    With *only_groups*, just what the groups' (and extras') own requirements
    reach is installed: not the main dependencies, nor the member itself.
    """
    from orchestrator.venv import WantedDist
    from orchestrator.versions import member_version

    workspace = session.workspace
    if only_groups:
        include_self = False
    memo = _memo_key(session, member, target, groups, extras,
                     (only_groups, editable_members, include_self))
    if memo is not None and (known := _memoized(session, member, memo, editable_members,
                                                include_self)) is not None:
        return known
    lock = read_lock(member.lockfile)
    chosen = select(lock, [target], groups, extras=extras)
    if only_groups:
        keep = reachable(lock, _group_roots(member, groups, extras))
        chosen = [c for c in chosen if c.name in keep]
    files: dict[str, DistFile] = {}
    sdists: dict[str, DistFile] = {}
    by_url = _index_names(workspace)
    for item in chosen:
        if item.is_member:
            continue
        archive = item.file_for(target)
        dist = _dist_file(workspace, item, archive, by_url)
        (files if dist.is_wheel else sdists)[item.name] = dist
    paths = session.cache.fetch_many([*files.values(), *sdists.values()], session.index,
                                     progress=progress)
    wanted = []
    entries: list[dict[str, str]] = []  # the memo: what the next plan of these inputs reads
    for item in chosen:
        version = str(item.package.version) if item.package.version else "0"
        if item.is_member:
            entries.append({"member": item.name})
            dep = workspace.find(item.name)
            if dep is not None and editable_members:
                wanted.append(WantedDist.for_member(dep, member_version(session, dep)))
            continue
        if item.name in sdists:
            built = _build(session, paths[sdists[item.name]], sdists[item.name], target)
            wanted.append(WantedDist(item.name, version, wheel=built.path, sha256=built.sha256))
            continue
        dist = files[item.name]
        assert dist.sha256 is not None  # _dist_file requires it
        entries.append({"name": item.name, "version": version, "file": dist.filename,
                        "sha256": dist.sha256})
        wanted.append(WantedDist(item.name, version, wheel=paths[dist], sha256=dist.sha256))
    if include_self and editable_members:
        wanted.append(WantedDist.for_member(member, member_version(session, member)))
    if memo is not None and not sdists:  # a built sdist is the build cache's to find
        import json

        session.cache.write_memo(memo, json.dumps({"format": _MEMO_FORMAT, "wanted": entries}))
    return wanted


# -- the plan memo --------------------------------------------------------------------
#
# `plan` reads and validates the lock (TOML), selects for the target (marker evaluation,
# which imports the resolver) and looks each wheel up in the cache: 30-60 ms a member,
# every time a venv is made, in every new checkout. What it selects depends only on the
# lock's bytes, the target, groups and extras, the member's pyproject.toml (its groups'
# roots) and the manifest; the memo is keyed by their contents (not stats, so a new
# clone with the same files finds it) and lists the selected wheels by file name and
# sha256, never a URL (no index token is written). A hit still finds every wheel through
# the cache's marker check (`cached_wheel`); any miss, `--verify`, an sdist or a dynamic
# member version takes the full path. Members come from the workspace as it is now.

_MEMO_FORMAT = 1


def _memo_key(session: Session, member: Member, target: Target, groups: Collection[str],
              extras: Collection[str], flags: tuple[bool, bool, bool]) -> str | None:
    import hashlib
    import json

    from orchestrator import __version__

    workspace = session.workspace
    if session.cache.rehash or any(m.dynamic_version for m in workspace.members):
        return None
    try:
        inputs = [hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in (member.lockfile, member.pyproject, workspace.manifest)]
    except OSError:
        return None  # the full path says what is missing
    parts = [_MEMO_FORMAT, __version__, member.name, target.python, target.platform,
             list(groups), sorted(extras), list(flags), inputs]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _memoized(session: Session, member: Member, key: str, editable_members: bool,
              include_self: bool) -> list[WantedDist] | None:
    """The plan the memo under *key* records, if every wheel in it is still cached."""
    import json

    from orchestrator.venv import WantedDist
    from orchestrator.versions import member_version

    text = session.cache.read_memo(key)
    if text is None:
        return None
    try:
        data = json.loads(text)
        entries = data["wanted"] if data.get("format") == _MEMO_FORMAT else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(entries, list):
        return None
    try:  # a memo only ever names wheels the lock names: file and sha256 are in its text
        locked = member.lockfile.read_text("utf-8").lower()
    except (OSError, UnicodeDecodeError):
        return None
    workspace = session.workspace
    wanted = []
    for entry in entries:
        if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
            return None
        if "member" in entry:
            if f'"{entry["member"].lower()}"' not in locked:
                return None
            dep = workspace.find(entry["member"])
            if dep is not None and editable_members:
                wanted.append(WantedDist.for_member(dep, member_version(session, dep)))
            continue
        try:
            name, version, file, sha256 = (entry["name"], entry["version"], entry["file"],
                                           entry["sha256"])
        except KeyError:
            return None
        if f'"{sha256.lower()}"' not in locked or f'"{file.lower()}"' not in locked:
            return None  # not this lock's wheel (a planted or foreign memo): the full path
        path = session.cache.cached_wheel(file, sha256)
        if path is None:
            return None
        wanted.append(WantedDist(name, version, wheel=path, sha256=sha256))
    if include_self and editable_members:
        wanted.append(WantedDist.for_member(member, member_version(session, member)))
    return wanted


def _group_roots(member: Member, groups: Collection[str], extras: Collection[str]) -> list[str]:
    from packaging.requirements import Requirement

    from orchestrator.names import normalize

    wanted = {normalize(g) for g in groups}
    extra_names = {normalize(e) for e in extras}
    sections = [*((g, reqs) for g, reqs in member.groups.items() if normalize(g) in wanted),
                *((e, reqs) for e, reqs in member.optional.items()
                  if normalize(e) in extra_names)]
    return [Requirement(req).name for _, reqs in sections for req in reqs]


def _build(session: Session, sdist: Path, file: DistFile, target: Target) -> BuiltWheel:
    return session.sdists.build_wheel(sdist, target, sha256=file.sha256)


def member_groups(member: Member, *, groups: Sequence[str] | None, only_groups: Sequence[str],
                  no_dev: bool) -> list[str]:
    """Which dependency groups a sync installs: all by default (a development venv)."""
    from orchestrator.names import normalize

    known = {normalize(g) for g in member.groups}
    for group in [*(groups or ()), *only_groups]:
        if normalize(group) not in known:
            raise VenvError(f"{member.name} has no dependency group {group!r}",
                            hint=f"its groups: {', '.join(sorted(known)) or 'none'}")
    if only_groups:
        return [normalize(g) for g in only_groups]
    if no_dev:
        return [normalize(g) for g in groups or ()]
    return sorted(known)


def member_extras(member: Member, extras: Sequence[str], *, all_extras: bool = False) -> list[str]:
    """Which of the member's own extras a sync or export installs: none unless asked for."""
    from orchestrator.names import normalize

    known = {normalize(e) for e in member.optional}
    for extra in extras:
        if normalize(extra) not in known:
            raise VenvError(f"{member.name} has no extra {extra!r}",
                            hint=f"its extras: {', '.join(sorted(known)) or 'none'} "
                            f"(see [project.optional-dependencies] in {member.relpath}/"
                            "pyproject.toml)", member=member.name, actual=extra)
    if all_extras:
        return sorted(known)
    return sorted({normalize(e) for e in extras})


def sync_member(
    session: Session,
    member: Member,
    groups: Sequence[str],
    *,
    python: str | None = None,
    only_groups: bool = False,
    extras: Sequence[str] = (),
    progress: Progress | None = None,
) -> SyncReport:
    """Create (if needed) and sync *member*'s venv to its lock; returns the SyncReport."""
    from orchestrator.venv import InstallPool

    with InstallPool() as pool:
        return _finish_member(_start_member(session, member, groups, pool, python=python,
                                            only_groups=only_groups, extras=extras,
                                            progress=progress))


@dataclass(frozen=True, slots=True)
class _Started:
    """A member's sync, its installs queued (``job``), or its no-op fast path (``report``)."""

    report: SyncReport | None = None
    job: VenvSync | None = None
    info: VenvInfo | None = None
    key: str | None = None
    names: tuple[str, ...] = ()


def _start_member(
    session: Session,
    member: Member,
    groups: Sequence[str],
    pool: InstallPool,
    *,
    python: str | None,
    only_groups: bool,
    extras: Sequence[str],
    progress: Progress | None,
) -> _Started:
    """``sync_member`` up to the installs, which are queued in *pool*."""
    from orchestrator.venv import (
        SyncReport,
        create_venv,
        hold_venv_lock,
        load_venv,
        release_venv_lock,
        start_sync,
    )

    workspace = session.workspace
    path = venv_path(member)
    hold_venv_lock(path, session.cache_dir)  # until the venv's sync is done: one at a time
    try:
        wanted_python = python or workspace.python
        key = _plan_key(session, member, groups, python, only_groups, extras)
        if (path / "pyvenv.cfg").exists():
            # The no-op check reads venv.py's records only: no VenvInfo, no installer import
            record = _venv_record(path) if key is not None else None
            if (record is not None and key is not None
                    and (python is not None
                         or record["version"].startswith(workspace.python + "."))
                    and (names := _unchanged(path, record, key)) is not None):
                release_venv_lock(path)
                return _Started(SyncReport(unchanged=names, fast_path=True))
            info = load_venv(path)
            if python is None and not info.version.startswith(workspace.python + "."):
                # the workspace moved to another Python
                info = create_venv(path, wanted_python, cache_dir=session.cache.root)
        else:
            info = create_venv(path, wanted_python, cache_dir=session.cache.root)
        major_minor = ".".join(info.version.split(".")[:2])
        target = host_target(major_minor)
        wanted = plan(session, member, target, groups, only_groups=only_groups, extras=extras,
                      progress=progress)
        # start_sync holds the lock again (re-entrant) and releases it when done
        job = start_sync(path, wanted, session.cache, pool)
    except BaseException:
        release_venv_lock(path)
        raise
    return _Started(None, job, info, key, tuple(sorted(w.name for w in wanted)))


def _finish_member(started: _Started) -> SyncReport:
    """Wait for a started member's installs; record its plan for the next no-op."""
    from orchestrator.venv import finish_sync

    if started.report is not None:
        return started.report
    assert started.job is not None and started.info is not None  # set by _start_member
    report = finish_sync(started.job)
    if started.key is not None:
        _record_plan(started.info, started.key, started.names)
    return report


# -- the no-op fast path -------------------------------------------------------------
#
# A no-op sync used to cost reading and validating the whole lock, selecting its wheels
# for the target and looking each up in the cache, only for venv.sync_venv to find that
# its state record matches (about 20 ms a member, and the imports of packaging.pylock,
# packaging.tags and the cache). `plan` is a function of the lock's bytes, the target,
# the groups and extras, the workspace's pyproject.toml files and manifest and the cache
# dir; when none of their stats moved since the last sync, and venv.py's state record
# and the venv's lib and scripts dirs are as that sync left them, the plan and hence
# the sync would be the same no-op. Dynamic member versions (git tags) are not stats,
# so a workspace with any takes the full path.

_PLAN_RECORD = "sync-plan.json"  # beside venv.py's records in <venv>/.orchestrator/


def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _plan_key(session: Session, member: Member, groups: Sequence[str], python: str | None,
              only_groups: bool, extras: Sequence[str]) -> str | None:
    """A digest of every input of ``plan`` for *member*, by stat; None: no fast path."""
    import hashlib
    import json

    workspace = session.workspace
    if any(m.dynamic_version for m in workspace.members):
        return None
    parts = {
        "lock": [str(member.lockfile), _stat(member.lockfile)],
        "groups": list(groups), "extras": list(extras), "only_groups": only_groups,
        "python": [python, workspace.python], "cache": str(session.cache_dir),
        "host": [platform.system(), platform.machine()],
        "manifest": [str(workspace.manifest), _stat(workspace.manifest)],
        "members": [[str(m.pyproject), _stat(m.pyproject)] for m in workspace.members],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _venv_record(path: Path) -> dict[str, str] | None:
    """venv.py's record of the venv's layout (``venv.json``), None if unreadable."""
    import json

    from orchestrator.venv import STATE_DIR

    try:
        data = json.loads((path / STATE_DIR / "venv.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    keys = ("version", "purelib", "platlib", "scripts")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in keys):
        return None
    return {k: data[k] for k in keys}


def _venv_stamp(path: Path, dirs: Sequence[str | Path]) -> list[list[int] | None]:
    """venv.py's state record, its interpreter record and the dirs installs change."""
    from orchestrator.venv import STATE_DIR

    record = path / STATE_DIR
    return [_stat(record / "sync-state.json"), _stat(record / "venv.json"),
            *(_stat(Path(d)) for d in dirs)]


def _unchanged(path: Path, venv: dict[str, str], key: str) -> tuple[str, ...] | None:
    """The installed names when the last sync recorded *key* and the venv is untouched."""
    import json

    from orchestrator.venv import STATE_DIR

    try:
        data = json.loads((path / STATE_DIR / _PLAN_RECORD).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    stamp = _venv_stamp(path, (venv["purelib"], venv["platlib"], venv["scripts"]))
    if (not isinstance(data, dict) or data.get("key") != key
            or data.get("venv") != stamp or stamp[0] is None):
        return None
    names = data.get("names")
    return tuple(str(n) for n in names) if isinstance(names, list) else None


def _record_plan(info: VenvInfo, key: str, names: tuple[str, ...]) -> None:
    import json

    from orchestrator.atomic import write_text
    from orchestrator.venv import STATE_DIR

    scheme = info.scheme
    stamp = _venv_stamp(info.path, (scheme.purelib, scheme.platlib, scheme.scripts))
    if stamp[0] is None:  # no state record: the next sync must inspect the venv anyway
        return
    # Written after the state record it stats, so it can only vouch for that record.
    write_text(info.path / STATE_DIR / _PLAN_RECORD,
               json.dumps({"key": key, "venv": stamp, "names": list(names)}, sort_keys=True))


def sync_members(
    session: Session,
    members: Sequence[Member],
    *,
    groups: Sequence[str] | None = None,
    only_groups: Sequence[str] = (),
    no_dev: bool = False,
    extras: Sequence[str] = (),
    all_extras: bool = False,
    frozen: bool = False,
    python: str | None = None,
    progress: Progress | None = None,
    note: Callable[[str], None] | None = None,
) -> Iterator[tuple[Member, SyncReport]]:
    """Sync each member's venv, locking stale members first (unless *frozen*).

    *extras* (or, with *all_extras*, every one) of each member's own extras
    are installed too; an extra a member lacks is an error before anything
    is locked. Yields each member's report, in order, once its venv is synced
    (the next member is planned and its installs started meanwhile). *note*
    hears about the locking step.
    """
    from orchestrator.lock import lock_members, stale_members

    chosen_extras = {m.name: member_extras(m, extras, all_extras=all_extras) for m in members}
    stale = stale_members(session.workspace, members)
    if stale and frozen:
        raise LockError(
            "--frozen: the lock of " + ", ".join(f"{s.member.name} ({s.reason})" for s in stale)
            + " is out of date", hint="run `orchestrator lock`, or drop --frozen")
    if stale:
        if note is not None:
            note(f"locking first: {', '.join(s.member.name for s in stale)}")
        lock_members(session.workspace, [s.member for s in stale], session.index)

    import gc

    from orchestrator.venv import InstallPool, release_venv_lock

    # A sync allocates many short-lived, acyclic objects (plans, paths, rows): the cycle
    # collector only walks the workspace's and the imports' objects over and over
    # (0.05-0.08 s a command, measured with gc.callbacks). Back on when the sync ends.
    collecting = gc.isenabled()
    gc.disable()
    # One pool for the command: member k+1 is planned (and its installs queued) while
    # member k's still run; each report is yielded, in order, once its venv is done.
    with _collecting_after(collecting), InstallPool() as pool:
        previous: tuple[Member, _Started] | None = None
        done: tuple[Member, _Started] | None
        try:
            for member in members:
                try:
                    chosen = member_groups(member, groups=groups, only_groups=only_groups,
                                           no_dev=no_dev)
                    started = _start_member(session, member, chosen, pool, python=python,
                                            only_groups=bool(only_groups),
                                            extras=chosen_extras[member.name],
                                            progress=progress)
                except BaseException:
                    done, previous = previous, None
                    if done is not None:  # it was fine: finish it before the failure shows
                        yield done[0], _finish_member(done[1])
                    raise
                done, previous = previous, (member, started)
                if done is not None:
                    yield done[0], _finish_member(done[1])
            done, previous = previous, None
            if done is not None:
                yield done[0], _finish_member(done[1])
        finally:
            if previous is not None and previous[1].job is not None:  # abandoned midway
                pool.close()  # its installs end before its lock goes; no state is written
                release_venv_lock(previous[1].job.path)


@contextmanager
def _collecting_after(enabled: bool) -> Iterator[None]:
    """Turn the cycle collector back on (if *enabled*) however the block ends."""
    import gc

    try:
        yield
    finally:
        if enabled:
            gc.enable()
