"""One virtual environment per member, synced exactly to a lock.

Environments are created *without* pip, setuptools or wheel: orchestrator
installs everything itself, and a seeded pip would be one more package that
drifts from the lock. A user who wants pip in a dev venv adds it to a
dependency group. On POSIX a venv is written directly (pyvenv.cfg, the
``python`` links, site-packages, an activate script), from what the base
interpreter said about itself once (``interpreter_facts``: cached by binary,
in the cache dir's ``interpreters-v1/``). Build environments (``build.py``)
are made here too. Windows is not supported: the installer writes POSIX
launchers and modes.

``sync_venv`` is an *exact* sync by default: whatever is installed and not
wanted is removed, pip included. ``exact=False`` only adds and upgrades.

State: ``<venv>/.orchestrator/venv.json`` records the interpreter's scheme
(so no interpreter start is needed later), and ``sync-state.json`` records
what the last completed sync installed plus the mtimes of site-packages and
the scripts directory. A sync whose wanted set equals that record, in a venv
whose directories were not touched since, returns at once. The record is
deleted before a sync changes anything, so an interrupted sync is always
followed by a full one, which finds and repairs half-installed dists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shlex
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from orchestrator import __version__, atomic
from orchestrator.errors import VenvError
from orchestrator.models import Member
from orchestrator.names import normalize

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from orchestrator.cache import WheelCache
    from orchestrator.installer import InstalledDist, Scheme, WheelManifest

# orchestrator.cache and orchestrator.installer (with csv, zipfile on demand and their
# dataclasses) are imported where used: a no-op sync reads two JSON records and
# needs neither.

__all__ = [
    "InstallPool",
    "InstalledDist",
    "InterpreterFacts",
    "SyncReport",
    "VenvInfo",
    "VenvSync",
    "WantedDist",
    "create_venv",
    "find_python",
    "finish_sync",
    "install",
    "installed",
    "interpreter_facts",
    "load_venv",
    "start_sync",
    "sync_venv",
    "uninstall",
]


def __getattr__(name: str) -> object:
    # InstalledDist is re-exported (it is in __all__) without importing the installer up front
    if name == "InstalledDist":
        from orchestrator.installer import InstalledDist

        return InstalledDist
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


STATE_DIR = ".orchestrator"
_INTERPRETERS = "interpreters-v1"  # bucket in the cache dir: what each interpreter said
_FACTS_FORMAT = 1
_T = TypeVar("_T")
_R = TypeVar("_R")
_VERSION = re.compile(r"^\d+(\.\d+){0,2}$")
_QUERY = """\
import json, platform, sys, sysconfig
paths = sysconfig.get_paths()
print(json.dumps({
    "version": platform.python_version(),
    "purelib": paths["purelib"], "platlib": paths["platlib"],
    "scripts": paths["scripts"], "data": paths["data"],
    "prefix": sys.prefix,
}))
"""
# Asked of a base interpreter: its venv scheme, relative to a venv's root.
_FACTS_QUERY = """\
import json, os, platform, sys, sysconfig
names = sysconfig.get_scheme_names()
scheme = "venv" if "venv" in names else ("nt" if os.name == "nt" else "posix_prefix")
root = os.path.abspath(os.sep + "orchestrator-venv")
keys = ("purelib", "platlib", "scripts", "data")
where = dict.fromkeys(("base", "platbase", "installed_base", "installed_platbase"), root)
paths = sysconfig.get_paths(scheme, vars=where)
print(json.dumps({
    "version": platform.python_version(),
    "implementation": platform.python_implementation(),
    "executable": os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable),
    "paths": {k: os.path.relpath(paths[k], root) for k in keys},
}))
"""
# bash/zsh: `. .venv/bin/activate` puts the venv first on PATH; `deactivate` undoes it.
_ACTIVATE = """\
# Source this file from bash or zsh; run `deactivate` to undo it.
deactivate () {
    if [ -n "${_OLD_VIRTUAL_PATH+x}" ]; then
        PATH="$_OLD_VIRTUAL_PATH"; export PATH; unset _OLD_VIRTUAL_PATH
    fi
    if [ -n "${_OLD_VIRTUAL_PYTHONHOME+x}" ]; then
        PYTHONHOME="$_OLD_VIRTUAL_PYTHONHOME"; export PYTHONHOME; unset _OLD_VIRTUAL_PYTHONHOME
    fi
    if [ -n "${_OLD_VIRTUAL_PS1+x}" ]; then
        PS1="$_OLD_VIRTUAL_PS1"; export PS1; unset _OLD_VIRTUAL_PS1
    fi
    unset VIRTUAL_ENV VIRTUAL_ENV_PROMPT
    hash -r 2>/dev/null
    if [ "${1:-}" != "nondestructive" ]; then unset -f deactivate; fi
}
deactivate nondestructive
VIRTUAL_ENV=@VENV@
VIRTUAL_ENV_PROMPT=@PROMPT@
export VIRTUAL_ENV VIRTUAL_ENV_PROMPT
_OLD_VIRTUAL_PATH="$PATH"
PATH="$VIRTUAL_ENV/bin:$PATH"
export PATH
if [ -n "${PYTHONHOME+x}" ]; then
    _OLD_VIRTUAL_PYTHONHOME="$PYTHONHOME"; unset PYTHONHOME
fi
if [ -z "${VIRTUAL_ENV_DISABLE_PROMPT:-}" ]; then
    _OLD_VIRTUAL_PS1="${PS1:-}"; PS1="$VIRTUAL_ENV_PROMPT${PS1:-}"; export PS1
fi
hash -r 2>/dev/null
"""


@dataclass(frozen=True, slots=True)
class InterpreterFacts:
    """What a base interpreter says about itself (``interpreter_facts``)."""

    version: str  # "3.11.7"
    implementation: str  # "CPython"
    executable: str  # the real base executable, symlinks and venvs followed
    paths: Mapping[str, str]  # purelib, platlib, scripts, data: relative to a venv's root

    @property
    def major_minor(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass(frozen=True, slots=True)
class VenvInfo:
    """A virtual environment: its interpreter, Python version and install scheme."""

    path: Path
    python: Path  # the venv's interpreter
    version: str  # "3.11.7"
    scheme: Scheme

    @property
    def site_packages(self) -> Path:
        return self.scheme.purelib


@dataclass(frozen=True, slots=True)
class WantedDist:
    """One distribution a sync must leave installed: a cached wheel or an editable dir."""

    name: str
    version: str
    wheel: Path | None = None  # the wheel in the cache (WheelCache.fetch)
    sha256: str | None = None  # the wheel's hash, as locked
    editable: Path | None = None  # a workspace member's directory
    scripts: tuple[tuple[str, str], ...] = ()  # editable only: (name, "module:func")
    requires_dist: tuple[str, ...] = ()  # editable only: written into METADATA
    direct_url: str | None = None  # PEP 610 direct_url.json for a wheel from a URL

    def __post_init__(self) -> None:
        if (self.wheel is None) == (self.editable is None):
            raise ValueError(f"{self.name}: give exactly one of wheel= and editable=")
        if self.wheel is not None and not self.sha256:
            raise ValueError(f"{self.name}: a wheel needs its sha256")

    @classmethod
    def for_member(cls, member: Member, version: str | None = None) -> WantedDist:
        """An editable install of a workspace member.

        *version*: the member's effective version (``versions.member_version``);
        a dynamic version is not in ``member.version``.
        """
        return cls(
            name=member.name,
            version=version or member.version or "0",
            editable=member.path,
            scripts=tuple(sorted(member.scripts.items())),
            requires_dist=member.dependencies,
        )

    def fingerprint(self) -> str:
        """A digest of everything that makes an install of this dist differ."""
        text = json.dumps(self.state(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def state(self) -> dict[str, Any]:
        """What identifies this install in the sync state (JSON-able)."""
        return {
            "name": normalize(self.name),
            "version": self.version,
            "sha256": self.sha256.lower() if self.sha256 else None,
            "editable": str(self.editable.resolve()) if self.editable else None,
            "scripts": [list(s) for s in self.scripts],
            "requires_dist": list(self.requires_dist),
            "direct_url": self.direct_url,
        }


@dataclass(frozen=True, slots=True)
class Change:
    """A distribution a sync touched: versions before and after (None: absent)."""

    name: str
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class SyncReport:
    installed: tuple[Change, ...] = ()
    upgraded: tuple[Change, ...] = ()  # version, wheel or editable source changed
    removed: tuple[Change, ...] = ()
    repaired: tuple[Change, ...] = ()  # found half-installed (an interrupted sync) and redone
    unchanged: tuple[str, ...] = ()
    fast_path: bool = False  # the state record matched: nothing was inspected

    @property
    def changed(self) -> bool:
        return bool(self.installed or self.upgraded or self.removed or self.repaired)


# -- creating and loading ------------------------------------------------------


def find_python(python: str | Path) -> Path:
    """An interpreter from a path, or from a version like ``3.11`` (``python3.11`` on PATH)."""
    text = str(python)
    if isinstance(python, Path) or os.sep in text:
        path = Path(text).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise VenvError(
            f"Python interpreter {path} does not exist or is not executable",
            hint="pass --python with a version like 3.11 or the path of a python executable",
        )
    if text.startswith("python"):
        names = [text]
    elif _VERSION.match(text):
        names = [f"python{text}"]
    else:
        raise VenvError(
            f"{text!r} is neither a Python version (like 3.11) nor an interpreter path",
            hint="pass --python 3.11 or --python /usr/bin/python3.11",
        )
    import shutil

    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise VenvError(
        f"no Python {text} interpreter found: looked for {', '.join(names)} on PATH",
        hint=f"install Python {text}, or pass --python with the path of an interpreter",
    )


def create_venv(path: Path, python: str | Path, *, cache_dir: Path | None = None) -> VenvInfo:
    """Create a virtual environment at *path* (without pip, setuptools or wheel).

    An existing environment there is replaced; any other non-empty directory
    is refused rather than cleared. The environment is laid out beside *path*
    and renamed into place, so an interrupted creation leaves the old one (or
    none), never half of one. With *cache_dir*, what the interpreter says about
    itself is kept there (``interpreters-v1/``) for the next run.
    """
    import shutil

    interpreter = find_python(python)
    path = Path(os.path.abspath(path))
    if path.exists() and not (path / "pyvenv.cfg").exists() and any(path.iterdir()):
        raise VenvError(
            f"{path} exists and is not a virtual environment; refusing to replace it",
            hint="move it away, or choose another environment directory",
        )
    if os.name == "nt":
        raise VenvError(
            f"cannot create {path}: virtual environments are made on POSIX systems only",
            hint="run orchestrator under WSL or in a Linux container",
        )
    facts = interpreter_facts(interpreter, cache_dir)
    # A .venv that is a symlink stays one: the directory it points to is replaced.
    where = path.resolve() if path.is_symlink() else path
    _remove_leftovers(where)
    # Not mkdtemp: its 0700 would become the venv's mode; this one follows the umask.
    tmp = where.parent / f".{where.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        tmp.mkdir(parents=True)
        data = _lay_out(tmp, path, facts)
        _swap_in(tmp, where)
    except OSError as exc:
        raise VenvError(
            f"creating the virtual environment {path} with {interpreter} failed: {exc}",
            hint="check that the directory is writable, or pass another one",
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _venv_info(path, data)


def _lay_out(root: Path, final: Path, facts: InterpreterFacts) -> dict[str, str]:
    """Write a venv into *root* that will work once moved to *final*; its venv.json data.

    What the interpreter needs is pyvenv.cfg beside the directory of a
    ``python`` link to its real executable: it then takes that directory's
    parent as ``sys.prefix`` and puts the venv's site-packages on sys.path.
    """
    rel = facts.paths
    for key in ("purelib", "platlib", "scripts"):
        os.makedirs(root / rel[key], exist_ok=True)
    (root / "include").mkdir()  # the headers scheme's home; uninstall stops climbing there
    scripts = root / rel["scripts"]
    executable = facts.executable
    os.symlink(executable, scripts / "python")
    for alias in ("python3", f"python{facts.major_minor}"):
        os.symlink("python", scripts / alias)
    cfg = (
        f"home = {os.path.dirname(executable)}\n"
        f"implementation = {facts.implementation}\n"
        f"version_info = {facts.version}\n"
        "include-system-site-packages = false\n"
        f"version = {facts.version}\n"
        f"executable = {executable}\n"
        f"orchestrator = {__version__}\n"
    )
    (root / "pyvenv.cfg").write_text(cfg)
    (root / ".gitignore").write_text("# created by orchestrator\n*\n")
    (scripts / "activate").write_text(_activate_script(final))
    data = {key: os.path.normpath(final / value) for key, value in rel.items()}
    data.update(prefix=str(final), version=facts.version)
    (root / STATE_DIR).mkdir()
    (root / STATE_DIR / "venv.json").write_text(json.dumps(data, indent=2, sort_keys=True))
    return data


def _activate_script(venv: Path) -> str:
    prompt = venv.parent.name if venv.name == ".venv" else venv.name
    text = _ACTIVATE.replace("@VENV@", shlex.quote(str(venv)))
    return text.replace("@PROMPT@", shlex.quote(f"({prompt}) "))


def _swap_in(new: Path, path: Path) -> None:
    """Rename *new* to *path*, moving an existing venv there aside first."""
    import shutil

    old = None
    if path.exists():
        import tempfile  # here: a new venv (the usual case) has nothing to move aside

        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
        os.rename(path, old / "venv")  # atomic: the venv is whole until the next rename
    os.rename(new, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_leftovers(path: Path) -> None:
    """Delete temp dirs a killed create_venv left beside *path* (an hour old, so not live)."""
    import shutil

    cutoff = time.time() - 3600
    prefixes = (f".{path.name}.tmp-", f".{path.name}.old-")
    with contextlib.suppress(OSError), os.scandir(path.parent) as entries:
        for entry in entries:
            if entry.name.startswith(prefixes) and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry.path, ignore_errors=True)


# -- what an interpreter says about itself ---------------------------------------

_FACTS: dict[tuple[str, int, int], InterpreterFacts] = {}  # this process's answers


def interpreter_facts(interpreter: Path, cache_dir: Path | None = None) -> InterpreterFacts:
    """Version, real executable and venv layout of *interpreter*, asked once per binary.

    Answers are keyed by the binary's real path, mtime and size, so an upgrade
    in place asks again. With *cache_dir* they are kept in its
    ``interpreters-v1/`` for later processes, but only a real binary's: a
    wrapper script (a pyenv shim, say) may pick another Python per directory.
    """
    real = os.path.realpath(interpreter)
    stat = os.stat(real)
    key = (real, stat.st_mtime_ns, stat.st_size)
    if key in _FACTS:
        return _FACTS[key]
    record = None
    if cache_dir is not None and not _is_script(real):
        digest = hashlib.sha256(real.encode()).hexdigest()[:32]
        record = cache_dir / _INTERPRETERS / f"{digest}.json"
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            stored = json.loads(record.read_text("utf-8"))
            if stored["key"] == list(key) and stored["format"] == _FACTS_FORMAT:
                _FACTS[key] = _facts_from(stored["facts"])
                return _FACTS[key]
    answer = _ask_interpreter(interpreter)
    _FACTS[key] = facts = _facts_from(answer)
    if record is not None:
        entry = {"format": _FACTS_FORMAT, "key": list(key), "facts": answer}
        with contextlib.suppress(OSError):  # a read-only cache: ask again next time
            atomic.write_text(record, json.dumps(entry, sort_keys=True))
    return facts


def _facts_from(answer: Mapping[str, Any]) -> InterpreterFacts:
    """The facts in *answer* (``_FACTS_QUERY``'s JSON, as ``interpreters-v1/`` keeps it)."""
    paths = answer["paths"]
    return InterpreterFacts(
        version=str(answer["version"]),
        implementation=str(answer["implementation"]),
        executable=str(answer["executable"]),
        paths={k: str(paths[k]) for k in ("purelib", "platlib", "scripts", "data")},
    )


def _is_script(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return True


def _ask_interpreter(interpreter: Path) -> dict[str, Any]:
    return _run_query(interpreter, _FACTS_QUERY, f"the interpreter {interpreter} does not run",
                      "check that the interpreter runs, or pass another one with --python")


def _run_query(python: Path, code: str, problem: str, hint: str) -> dict[str, Any]:
    """Run *code* (which prints one JSON object) in isolated mode under *python*."""
    import subprocess

    proc = subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise VenvError(f"{problem}: {proc.stderr.strip()[-1000:]}", hint=hint)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def load_venv(path: Path) -> VenvInfo:
    """An existing environment; its scheme comes from the record create_venv left."""
    record = path / STATE_DIR / "venv.json"
    try:
        data = json.loads(record.read_text("utf-8"))
        return _venv_info(path, data)
    except (OSError, ValueError, KeyError):
        pass  # created by another tool, or an old record: ask the interpreter
    if not (path / "pyvenv.cfg").exists():
        raise VenvError(
            f"{path} is not a virtual environment (no pyvenv.cfg)",
            hint="create it with `orchestrator sync`, or remove the directory",
        )
    return _query_and_store(path)


def _venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _query_and_store(path: Path) -> VenvInfo:
    data = _run_query(_venv_python(path), _QUERY, f"the interpreter of {path} does not run",
                      "its base Python may have been removed; recreate the environment")
    info = _venv_info(path, data)
    atomic.write_text(path / STATE_DIR / "venv.json", json.dumps(data, indent=2, sort_keys=True))
    return info


def _venv_info(path: Path, data: Mapping[str, str]) -> VenvInfo:
    from orchestrator.installer import Scheme

    prefix = Path(data["prefix"])
    major_minor = ".".join(data["version"].split(".")[:2])
    scheme = Scheme(
        prefix=prefix,
        purelib=Path(data["purelib"]),
        platlib=Path(data["platlib"]),
        scripts=Path(data["scripts"]),
        # Where pip puts headers in a venv; sysconfig's "include" is the base Python's.
        headers=prefix / "include" / "site" / f"python{major_minor}",
        data=Path(data["data"]),
    )
    return VenvInfo(path, _venv_python(path), data["version"], scheme)


# -- single operations ---------------------------------------------------------


def installed(venv: Path | VenvInfo) -> dict[str, InstalledDist]:
    """Distributions in the venv by normalized name (check ``complete`` for broken ones)."""
    from orchestrator.installer import installed_dists

    info = venv if isinstance(venv, VenvInfo) else load_venv(venv)
    found = installed_dists(info.scheme.purelib)
    if info.scheme.platlib != info.scheme.purelib:
        found.update(installed_dists(info.scheme.platlib))
    return found


def uninstall(venv: Path | VenvInfo, name: str) -> list[Path]:
    """Remove *name* from the venv; returns the removed files."""
    from orchestrator.installer import uninstall_dist

    info = venv if isinstance(venv, VenvInfo) else load_venv(venv)
    _invalidate_state(info)
    dist = installed(info).get(normalize(name))
    if dist is None:
        raise VenvError(
            f"{name} is not installed in {info.path}",
            hint="`orchestrator show` lists what a member's environment holds",
        )
    return uninstall_dist(dist, info.scheme)


def install(
    venv: VenvInfo,
    wanted: WantedDist,
    cache: WheelCache,
    *,
    link: bool = True,
    made_dirs: set[str] | None = None,
) -> InstalledDist:
    """Install one distribution (the caller removes any older version first).

    Files are hard-linked from the cache's unpacked tree unless *link* is
    False or the cache's ``link_mode`` says ``copy`` or ``reflink``. The tree
    is checked (every file's size and mtime, or its hash under ``--verify``)
    the first time *cache* hands it out; later installs from the same cache
    object (the other venvs of one command) link from the checked tree.
    *made_dirs*: directories known to exist in the venv, shared by the
    installs of one sync so none is made twice.
    """
    from orchestrator.installer import InstallOptions, install_editable, install_unpacked

    options = InstallOptions(str(venv.python), link and cache.link_mode == "hardlink",
                             wanted.direct_url, requested=True,
                             reflink=cache.link_mode == "reflink")
    if wanted.editable is not None:
        return install_editable(
            wanted.name,
            wanted.version,
            wanted.editable,
            venv.scheme,
            options,
            scripts=dict(wanted.scripts),
            requires_dist=wanted.requires_dist,
            origin={"fingerprint": wanted.fingerprint()},
        )
    assert wanted.wheel is not None and wanted.sha256 is not None  # by __post_init__
    unpacked, manifest = _checked_tree(cache, wanted.wheel, wanted.sha256)
    origin = {"sha256": wanted.sha256.lower(), "fingerprint": wanted.fingerprint()}
    return install_unpacked(unpacked, venv.scheme, options, origin=origin, manifest=manifest,
                            made_dirs=made_dirs)


# Unpacked trees a cache object has checked, with their manifests: one pass over the
# cache per command, however many venvs link from a tree. Keyed by the cache object
# (one per Session, so per command): the next command checks every tree again.
_CHECKED: weakref.WeakKeyDictionary[WheelCache, dict[str, WheelManifest]] = (
    weakref.WeakKeyDictionary())
_CHECKED_GUARD = threading.Lock()


def _checked_tree(cache: WheelCache, wheel: Path, sha256: str) -> tuple[Path, WheelManifest]:
    """The unpacked tree of *wheel* and its manifest, every file as it was unpacked.

    A tree whose files changed since (edited through some venv's hard link,
    say) is discarded and unpacked afresh from the wheel, which was
    hash-checked when fetched.
    """
    from orchestrator.installer import TamperedEntryError, check_entry, load_manifest, unpack

    with _CHECKED_GUARD:
        trees = _CHECKED.setdefault(cache, {})
    unpacked = cache.unpacked(wheel, sha256, unpack)
    manifest = trees.get(str(unpacked))
    if manifest is not None:
        return unpacked, manifest
    manifest = load_manifest(unpacked)
    if check_entry(unpacked, manifest, rehash=cache.rehash):
        cache.discard_unpacked(sha256)
        unpacked = cache.unpacked(wheel, sha256, unpack)
        manifest = load_manifest(unpacked)
        bad = check_entry(unpacked, manifest)
        if bad:  # changed again at once: something keeps editing the cache
            raise TamperedEntryError(
                f"{unpacked}: {bad[0]} changed since it was unpacked ({len(bad)} file(s))",
                hint="stop whatever edits files in the cache, then run sync --verify",
                file=unpacked / bad[0],
            )
    trees[str(unpacked)] = manifest
    return unpacked, manifest


# -- one process at a time per venv ----------------------------------------------

_LOCKS = "locks-v1"  # bucket in the cache dir: one advisory lock file per venv path
_HELD: dict[str, int] = {}  # venv path -> the open lock file this process holds
_HELD_GUARD = threading.Lock()


def hold_venv_lock(path: Path, cache_dir: Path) -> None:
    """Take the advisory lock of the venv at *path*, waiting for another process's sync.

    Held until ``release_venv_lock`` (``sync_venv`` releases it when done) or
    the process exits, so a caller can take it before it creates the venv
    and keep it through the sync. Re-entrant within a process. The lock
    file lives in the cache (named by a hash of the path), not in the venv,
    which ``create_venv`` replaces whole, nor beside it, in the member's
    source tree; a read-only cache falls back to a file beside the venv.
    """
    import fcntl

    key = os.path.abspath(path)
    with _HELD_GUARD:
        if key in _HELD:
            return
        name = hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock"
        candidates = (Path(cache_dir) / _LOCKS / name, Path(key).parent / f".{Path(key).name}.lock")
        fd = None
        for candidate in candidates:
            try:
                candidate.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(candidate, os.O_RDONLY | os.O_CREAT, 0o666)
                break
            except OSError as exc:
                problem = exc
        if fd is None:
            raise VenvError(
                f"cannot create a lock file for {key} in {candidates[0].parent} or beside "
                f"the venv: {problem.strerror}",
                hint="make the cache directory (ORCHESTRATOR_CACHE_DIR) writable",
                file=Path(key),
            )
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks while another process syncs this venv
        _HELD[key] = fd


def release_venv_lock(path: Path) -> None:
    import fcntl

    with _HELD_GUARD:
        fd = _HELD.pop(os.path.abspath(path), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# -- sync ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    install: tuple[WantedDist, ...] = ()
    upgrade: tuple[tuple[InstalledDist, WantedDist], ...] = ()
    repair: tuple[tuple[InstalledDist, WantedDist | None], ...] = ()
    remove: tuple[InstalledDist, ...] = ()
    unchanged: tuple[str, ...] = ()


class InstallPool:
    """The install threads of one command, shared by the venvs it syncs.

    Made on first use (a no-op sync starts no thread). With one job, installs
    run at once in the caller's thread, and the first failure is raised there.
    ``sync_members`` plans and starts the next venv while the pool still
    installs the last one, so neither core waits between venvs, nor for one
    venv's biggest dist at the end of it.
    """

    def __init__(self, jobs: int | None = None) -> None:
        # one per core, at most 4: the work is mostly the kernel's making directories
        # and links, and more threads than cores only contend for the GIL and its locks
        self.jobs = jobs if jobs is not None else min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, work: Callable[[_T], _R], item: _T) -> Future[_R]:
        from concurrent.futures import Future, ThreadPoolExecutor

        if self.jobs > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.jobs,
                                                thread_name_prefix="install")
            return self._pool.submit(work, item)
        done: Future[_R] = Future()
        done.set_result(work(item))  # a failure stops the caller here, before the next
        return done

    def close(self) -> None:
        """Wait for every install started here, then stop the threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> InstallPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class VenvSync:
    """A sync ``start_sync`` began: its installs queued in a pool, the venv locked
    until ``finish_sync``. *report* is set when there was nothing to do."""

    path: Path
    report: SyncReport | None = None
    info: VenvInfo | None = None
    plan: _Plan | None = None
    wanted: Mapping[str, WantedDist] = dataclasses.field(default_factory=dict)
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    installs: tuple[Future[InstalledDist], ...] = ()


def sync_venv(
    venv_path: Path,
    wanted: Sequence[WantedDist],
    cache: WheelCache,
    *,
    exact: bool = True,
    jobs: int | None = None,
    link: bool = True,
) -> SyncReport:
    """Make the venv hold exactly *wanted*: install, upgrade, repair and remove.

    Removals finish before installs start (a file may move between dists);
    both run in *jobs* threads, since distinct dists write distinct files
    (default: one per core, at most 4; see ``InstallPool``).
    """
    with InstallPool(jobs) as pool:
        return finish_sync(start_sync(venv_path, wanted, cache, pool, exact=exact, link=link))


def start_sync(
    venv_path: Path,
    wanted: Sequence[WantedDist],
    cache: WheelCache,
    pool: InstallPool,
    *,
    exact: bool = True,
    link: bool = True,
) -> VenvSync:
    """``sync_venv`` up to its installs, which are queued in *pool* (biggest first);
    ``finish_sync`` waits for them and records the venv's state. The venv stays
    locked in between; a failure here releases it."""
    hold_venv_lock(venv_path, cache.root)
    try:
        return _start_sync(venv_path, wanted, cache, pool, exact=exact, link=link)
    except BaseException as exc:
        release_venv_lock(venv_path)
        if isinstance(exc, OSError):
            raise _write_failed(venv_path, exc) from exc
        raise


def finish_sync(job: VenvSync) -> SyncReport:
    """Wait for *job*'s installs, record the venv's state, release its lock."""
    if job.report is not None:
        return job.report
    assert job.info is not None and job.plan is not None  # set by _start_sync
    try:
        if job.installs:
            from concurrent.futures import wait

            wait(job.installs)  # every one: none may still write once the lock is gone
            for future in job.installs:
                future.result()  # re-raises the first failure
        _write_state(job.info, _state(job.info, job.wanted, job.settings))
        return _report(job.plan, job.wanted)
    except OSError as exc:
        raise _write_failed(job.path, exc) from exc
    finally:
        release_venv_lock(job.path)


def _write_failed(venv_path: Path, exc: OSError) -> VenvError:
    # A full disk or a read-only venv mid-sync: the sync state is already
    # invalidated and every dist in flight has its PENDING file, so the next
    # sync repairs exactly what this one left half-done.
    from orchestrator.cache import disk_hint

    where = exc.filename or venv_path
    return VenvError(
        f"syncing {venv_path} failed writing {where}: {exc.strerror or exc}; the venv "
        "is marked for repair and the next sync completes it",
        hint=disk_hint(exc, "make the directory writable, then run sync again"),
        file=Path(where),
    )


def _start_sync(
    venv_path: Path,
    wanted: Sequence[WantedDist],
    cache: WheelCache,
    pool: InstallPool,
    *,
    exact: bool,
    link: bool,
) -> VenvSync:
    info = load_venv(venv_path)
    by_name = _index_wanted(wanted)
    settings = {"exact": exact, "link": link, "link_mode": cache.link_mode}
    state_now = _state(info, by_name, settings)
    # cache.rehash (`sync --verify`) distrusts the fast path and every file's bytes
    if not cache.rehash and _read_state(info) == state_now:
        release_venv_lock(venv_path)
        return VenvSync(venv_path, SyncReport(unchanged=tuple(sorted(by_name)), fast_path=True))
    _invalidate_state(info)

    from orchestrator.installer import uninstall_dist

    plan = _plan(_verified(installed(info)) if cache.rehash else installed(info), by_name, exact)
    # Directories every install may need and the venv has: made once, shared by the threads
    scheme = info.scheme
    made = {os.path.normpath(p) for p in (scheme.purelib, scheme.platlib, scheme.scripts)}

    def put(w: WantedDist) -> InstalledDist:
        return install(info, w, cache, link=link, made_dirs=made)

    # In this thread (and its own threads), before any install of this venv is queued
    _parallel(
        pool.jobs,
        [d for d, _ in plan.upgrade + plan.repair] + list(plan.remove),
        lambda d: uninstall_dist(d, info.scheme),
    )
    todo = (
        list(plan.install)
        + [w for _, w in plan.upgrade]
        + [w for _, w in plan.repair if w is not None]
    )
    # Biggest first, so the venv does not end with one thread linking a big tree alone
    todo.sort(key=_install_weight, reverse=True)
    installs = tuple(pool.submit(put, w) for w in todo)
    return VenvSync(venv_path, None, info, plan, by_name, settings, installs)


def _install_weight(w: WantedDist) -> int:
    """About how much linking *w* takes: its wheel's size (an editable member: none)."""
    if w.wheel is None:
        return 0
    try:
        return os.stat(w.wheel).st_size
    except OSError:
        return 0


def _verified(current: Mapping[str, InstalledDist]) -> dict[str, InstalledDist]:
    """*current*, with every dist whose files changed since install marked for repair."""
    from orchestrator.installer import changed_files

    return {
        name: dataclasses.replace(dist, complete=False)
        if dist.complete and dist.editable is None and changed_files(dist) else dist
        for name, dist in current.items()
    }


@dataclass(frozen=True, slots=True)
class CacheVerifyReport:
    wheels: int  # wheel files re-hashed
    trees: int  # unpacked trees re-hashed
    discarded: tuple[str, ...]  # entries that failed, removed (fetched or unpacked again on use)


def verify_cache(cache: WheelCache) -> CacheVerifyReport:
    """Re-hash every cached wheel and unpacked tree; discard the ones that fail.

    Lives here, not in cache.py, because only this stage knows both the
    store and the installer's manifest of an unpacked tree.
    """
    from orchestrator.installer import check_entry, load_manifest

    wheels, bad = cache.verify_wheels()
    trees = 0
    discarded = list(bad)
    for entry, sha in cache.unpacked_entries():
        trees += 1
        try:
            damaged = check_entry(entry, load_manifest(entry), rehash=True)
        except VenvError:
            damaged = ["manifest"]
        if damaged:
            cache.discard_unpacked(sha)
            discarded.append(f"{entry}: {damaged[0]}")
    return CacheVerifyReport(wheels, trees, tuple(discarded))


def _index_wanted(wanted: Sequence[WantedDist]) -> dict[str, WantedDist]:
    by_name: dict[str, WantedDist] = {}
    for w in wanted:
        key = normalize(w.name)
        if key in by_name and by_name[key] != w:
            raise VenvError(
                f"{w.name} is wanted twice with different versions or sources "
                f"({by_name[key].version} and {w.version})",
                hint="the lock lists one entry per package and environment; re-lock",
            )
        by_name[key] = w
    return by_name


def _plan(
    current: Mapping[str, InstalledDist], wanted: Mapping[str, WantedDist], exact: bool
) -> _Plan:
    install: list[WantedDist] = []
    upgrade: list[tuple[InstalledDist, WantedDist]] = []
    repair: list[tuple[InstalledDist, WantedDist | None]] = []
    unchanged: list[str] = []
    for name, w in sorted(wanted.items()):
        have = current.get(name)
        if have is None:
            install.append(w)
        elif not have.complete:
            repair.append((have, w))
        elif _differs(have, w):
            upgrade.append((have, w))
        else:
            unchanged.append(name)
    remove: list[InstalledDist] = []
    for name, have in sorted(current.items()):
        if name in wanted:
            continue
        if not have.complete:
            repair.append((have, None))  # a half-installed leftover: always cleaned up
        elif exact:
            remove.append(have)
    return _Plan(tuple(install), tuple(upgrade), tuple(repair), tuple(remove), tuple(unchanged))


def _differs(have: InstalledDist, w: WantedDist) -> bool:
    # The fingerprint covers version, wheel hash, editable source, scripts and
    # PEP 610 data; a dist installed by another tool has none and is replaced.
    return have.version != w.version or have.fingerprint != w.fingerprint()


def _parallel(jobs: int, items: Sequence[_T], work: Callable[[_T], _R]) -> list[_R]:
    if not items:
        return []
    if jobs <= 1 or len(items) == 1:
        return [work(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(work, items))  # re-raises the first failure


def _report(plan: _Plan, wanted: Mapping[str, WantedDist]) -> SyncReport:
    return SyncReport(
        installed=tuple(Change(normalize(w.name), None, w.version) for w in plan.install),
        upgraded=tuple(Change(h.name, h.version, w.version) for h, w in plan.upgrade),
        removed=tuple(Change(h.name, h.version, None) for h in plan.remove),
        repaired=tuple(Change(h.name, h.version, w.version if w else None) for h, w in plan.repair),
        unchanged=plan.unchanged,
    )


# -- the no-op fast path ------------------------------------------------------------


def _state_file(info: VenvInfo) -> Path:
    return info.path / STATE_DIR / "sync-state.json"


def _stamp(info: VenvInfo) -> list[int]:
    """mtimes that change whenever anyone adds or removes a dist or a script."""
    stamps = []
    for directory in (info.scheme.purelib, info.scheme.platlib, info.scheme.scripts):
        try:
            stamps.append(directory.stat().st_mtime_ns)
        except FileNotFoundError:
            stamps.append(0)
    return stamps


def _state(
    info: VenvInfo, wanted: Mapping[str, WantedDist], settings: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "wanted": [wanted[name].state() for name in sorted(wanted)],
        "settings": dict(settings),
        "stamp": _stamp(info),
    }


def _read_state(info: VenvInfo) -> dict[str, Any] | None:
    try:
        data = json.loads(_state_file(info).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_state(info: VenvInfo, state: Mapping[str, Any]) -> None:
    atomic.write_text(_state_file(info), json.dumps(state, sort_keys=True))


def forget_sync_state(venv: Path) -> None:
    """Make the next sync of *venv* take the full path (``sync --verify``): no fast path."""
    with contextlib.suppress(OSError):
        (venv / STATE_DIR / "sync-state.json").unlink()


def _invalidate_state(info: VenvInfo) -> None:
    _state_file(info).unlink(missing_ok=True)
