"""Install wheels into a scheme of directories (the binary distribution format).

The source is a wheel already unpacked into the cache (``WheelCache.unpacked``,
filled by ``unpack`` here: the cache stores trees, this module knows what goes
in them, and neither imports the other), so an install is mostly hardlinks:
files are linked from the unpacked tree into the destination scheme, scripts
and a few dist-info files are written fresh.
Where each file goes (relative to the scheme), its RECORD hash and the entry
points are worked out once per wheel, when it is unpacked, and kept in the
tree's ``.orchestrator/`` directory with the constant INSTALLER and REQUESTED
files, so an install walks a list instead of the tree and re-reads nothing.

Crash safety: before the first file is placed, the dist-info holds a
``ORCHESTRATOR-PENDING`` file: the RECORD the install will have, complete, so
it lists every path about to be written. When everything is in place it is
renamed to RECORD. Uninstall renames RECORD back to PENDING before it deletes
anything. A dist-info with PENDING (or without RECORD) is *incomplete*, and
removing it removes every listed path, so a killed install or uninstall is
always undone by the next sync.

That protocol is what makes the other files safe to write in place rather
than through a temporary name: they are all written while PENDING exists, so
a file cut short by a kill belongs to a dist-info that is already incomplete
and is removed with it. PENDING itself is one ``write`` of whole lines: a kill
can only leave a prefix of it, and a reader ignores an unterminated last line.

New files are always created afresh (``O_EXCL``, after unlinking a leftover),
never opened for writing over an existing path, which could be a hardlink into
the cache. Creating a file costs far more than linking one on a busy disk, which
is why so little is written. Hardlinks share inodes with the cache: editing an
installed file in place edits the cached copy too. Editors normally write a new
file and rename it, which breaks the link; tools that patch files in place
should use a venv synced with ``link=False``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator import atomic
from orchestrator.errors import VenvError
from orchestrator.names import normalize
from orchestrator.records import format_record, parse_record, record_hash
from orchestrator.wheelfile import check_archive_path, extract, within

if TYPE_CHECKING:
    from email.message import Message

# zipfile, configparser and email.parser (~13 ms of imports together) are
# imported where used: unpacking, building a manifest and reading an installed
# dist's METADATA; a sync into a fresh venv from a warm cache does none of them.

INSTALLER_NAME = "orchestrator"
PENDING = "ORCHESTRATOR-PENDING"  # paths in flight while installing/uninstalling
ORIGIN = "orchestrator.json"  # what was installed: wheel sha256 or editable source
OWN_DIR = ".orchestrator"  # in an unpacked wheel's root: orchestrator's files, not the wheel's
MANIFEST = f"{OWN_DIR}/manifest.json"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)  # fds to link through
_CONSTANT_FILES = {"INSTALLER": f"{INSTALLER_NAME}\n".encode(), "REQUESTED": b""}
_MANIFEST_FORMAT = 3  # bump when the manifest's meaning changes; old ones are rebuilt
_DIST_INFO_FILES_WRITTEN_HERE = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", ORIGIN}
_SCHEME_KEYS = ("purelib", "platlib", "scripts", "headers", "data")
_MANIFEST_KEYS = (
    "name", "version", "dist_info", "root_is_purelib", "files", "scripts", "entry_points",
    "stats",
)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True, slots=True)
class Scheme:
    """Where each kind of installed file goes; ``prefix`` bounds every write and delete."""

    prefix: Path
    purelib: Path
    platlib: Path
    scripts: Path
    headers: Path  # per-distribution subdirectory added at install time
    data: Path

    def directory(self, key: str, dist_name: str) -> Path:
        if key == "headers":
            return self.headers / dist_name
        if key not in _SCHEME_KEYS:
            raise KeyError(key)
        path: Path = getattr(self, key)
        return path


@dataclass(frozen=True, slots=True)
class InstalledDist:
    """A distribution found in a scheme's site-packages."""

    name: str  # PEP 503-normalized
    version: str
    dist_info: Path
    complete: bool  # RECORD present and no pending install/uninstall
    wheel_sha256: str | None = None  # set when orchestrator installed it from a wheel
    editable: Path | None = None  # the source directory of an editable install
    fingerprint: str | None = None  # the installer's summary of what was asked for


@dataclass(frozen=True, slots=True)
class InstallOptions:
    """How to install: the interpreter scripts run with, linking, PEP 610 data."""

    shebang_python: str  # absolute interpreter path written into generated scripts
    link: bool = True  # hardlink from the unpacked tree; False always copies
    direct_url: str | None = None  # direct_url.json content (PEP 610), if any
    requested: bool = True  # write REQUESTED (asked for by the user, not a dependency)
    reflink: bool = False  # when copying, clone the blocks where the filesystem can (FICLONE)


@dataclass(frozen=True, slots=True)
class WheelManifest:
    """Where an unpacked wheel's files go, relative to the scheme; worked out once per wheel."""

    name: str  # as METADATA spells it
    version: str
    dist_info: str  # the .dist-info directory's name
    root_is_purelib: bool
    # (path in the archive, scheme key, path under that scheme directory, RECORD hash, size)
    files: tuple[tuple[str, str, str, str, str], ...]
    # <name>.data/scripts to rewrite (``#!python``): (archive path, path under scripts);
    # the others (compiled tools, shell scripts) are linked, in ``files``
    scripts: tuple[tuple[str, str], ...]
    entry_points: tuple[tuple[str, str], ...]  # console and GUI scripts: (name, target)
    stored: bool = True  # kept in the tree, with the constant files to link beside it
    # (size, mtime_ns) of each of ``files`` once unpacked and verified: the cheap
    # check before every link that the cache entry was not edited since
    stats: tuple[tuple[int, int], ...] = ()


class TamperedEntryError(VenvError):
    """A file of an unpacked cache entry changed since it was unpacked and verified."""


# -- unpacking -----------------------------------------------------------------


def unpack(wheel: Path, dest: Path) -> None:
    """Fill the empty directory *dest* with *wheel* and its placement manifest.

    This is the unpacker to hand ``WheelCache.unpacked``. Every name is
    checked before anything is written (see ``wheelfile.extract``), and a
    wheel holding orchestrator's own ``.orchestrator/`` is refused.
    """
    names = extract(wheel, dest, reserved=OWN_DIR)
    manifest = _build_manifest(dest, names)
    for archive, _key, _sub, expected, size in manifest.files:
        path = os.path.join(dest, archive)
        actual_size = os.path.getsize(path)
        if (size and str(actual_size) != size) or (
            expected.startswith("sha256=") and _file_record_hash(path) != expected
        ):
            raise VenvError(
                f"{wheel.name}: {archive} does not match its RECORD entry "
                f"({expected or '-'}, {size or '-'} bytes; found {actual_size} bytes); "
                "refusing to install it",
                hint="the wheel is malformed or was altered; remove it from the lock or "
                "the index", file=wheel,
            )
    # Read-only, so an edit through a venv's hard link fails instead of
    # changing the cache and every venv sharing the file.
    for name in names:
        path = os.path.join(dest, name)
        os.chmod(path, os.stat(path).st_mode & ~0o222)
    write_manifest(dest, names, manifest)


def _file_record_hash(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def _stats(unpacked: Path, files: Iterable[tuple[str, str, str, str, str]]) -> tuple[
    tuple[int, int], ...
]:
    out = []
    for archive, *_ in files:
        st = os.stat(os.path.join(unpacked, archive))
        out.append((st.st_size, st.st_mtime_ns))
    return tuple(out)


def check_entry(unpacked: Path, manifest: WheelManifest, *, rehash: bool = False) -> list[str]:
    """Files of the unpacked tree that changed since it was unpacked (archive paths).

    The cheap check compares each file's size and mtime with the manifest's;
    *rehash* also compares its sha256 with the wheel's RECORD.
    """
    bad = []
    stats = manifest.stats or ((-1, -1),) * len(manifest.files)
    try:  # each file stat'ed relative to the tree's fd: no walk down the cache per file
        tree = os.open(unpacked, _DIR_FLAGS)
    except OSError:
        return [archive for archive, *_ in manifest.files]
    try:
        for (archive, _k, _s, expected, _n), (size, mtime) in zip(manifest.files, stats,
                                                                 strict=True):
            try:
                st = os.stat(archive, dir_fd=tree)
            except OSError:
                bad.append(archive)
                continue
            changed = bool(manifest.stats) and (st.st_size, st.st_mtime_ns) != (size, mtime)
            if changed or (rehash and expected.startswith("sha256=")
                           and _file_record_hash(os.path.join(unpacked, archive)) != expected):
                bad.append(archive)
    finally:
        os.close(tree)
    return bad


# -- the manifest of an unpacked wheel ------------------------------------------


def write_manifest(
    unpacked: Path, names: Iterable[str], manifest: WheelManifest | None = None
) -> WheelManifest:
    """Work out and store the manifest of the wheel unpacked at *unpacked*.

    *names* are its files (``wheelfile.extract``'s answer). Raises VenvError for a
    malformed wheel, so a bad one fails when it is unpacked, not halfway
    through an install.
    """
    manifest = manifest or _build_manifest(unpacked, names)
    manifest = dataclasses.replace(manifest, stats=_stats(unpacked, manifest.files))
    data = {"format": _MANIFEST_FORMAT, **{k: getattr(manifest, k) for k in _MANIFEST_KEYS}}
    # Atomic, so two processes filling in an old entry's manifest both succeed;
    # the constant files first, so a manifest means they are there to link.
    for name, content in _CONSTANT_FILES.items():
        atomic.write_bytes(unpacked / OWN_DIR / name, content)
    atomic.write_bytes(unpacked / MANIFEST, json.dumps(data, separators=(",", ":")).encode())
    return manifest


def load_manifest(unpacked: Path) -> WheelManifest:
    """The manifest of an unpacked wheel, built and stored now if it has none yet."""
    try:
        with open(os.path.join(unpacked, MANIFEST), "rb") as f:
            data = json.loads(f.read())
        if data.get("format") == _MANIFEST_FORMAT:
            return _manifest_from_json(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    # Unpacked before manifests existed (or in an older format): make it now, once.
    names = []
    for dirpath, dirnames, filenames in os.walk(unpacked):
        rel = os.path.relpath(dirpath, unpacked).replace(os.sep, "/")
        if rel == "." and OWN_DIR in dirnames:
            dirnames.remove(OWN_DIR)
        names += [f if rel == "." else f"{rel}/{f}" for f in filenames]
    try:
        return write_manifest(unpacked, names)
    except OSError:  # a read-only cache: worked out for this install only
        return dataclasses.replace(_build_manifest(unpacked, names), stored=False)


def _manifest_from_json(data: Mapping[str, Any]) -> WheelManifest:
    return WheelManifest(
        name=str(data["name"]),
        version=str(data["version"]),
        dist_info=str(data["dist_info"]),
        root_is_purelib=bool(data["root_is_purelib"]),
        files=tuple((a, k, s, h, n) for a, k, s, h, n in data["files"]),
        scripts=tuple((a, s) for a, s in data["scripts"]),
        entry_points=tuple((n, t) for n, t in data["entry_points"]),
        stats=tuple((int(z), int(m)) for z, m in data["stats"]),
    )


def _build_manifest(unpacked: Path, names: Iterable[str]) -> WheelManifest:
    files = sorted({n for n in names if not n.startswith(f"{OWN_DIR}/")})
    tops = {n.split("/", 1)[0] for n in files if "/" in n}
    dist_infos = sorted(t for t in tops if t.endswith(".dist-info"))
    if len(dist_infos) != 1:
        raise VenvError(
            f"{unpacked}: expected one .dist-info directory in the wheel, found {len(dist_infos)}",
            hint="the wheel is malformed; rebuild it or pick another file",
        )
    dist_info = dist_infos[0]
    metadata = _headers(_read_text(unpacked / dist_info / "METADATA"))
    wheel = _headers(_read_text(unpacked / dist_info / "WHEEL"))
    version = wheel.get("Wheel-Version", "1.0")
    if version.split(".")[0] != "1":
        raise VenvError(
            f"{dist_info}: Wheel-Version {version} is not supported (only 1.x)",
            hint="upgrade orchestrator or use a wheel built by an older tool",
        )
    record_file = unpacked / dist_info / "RECORD"
    rows = parse_record(record_file.read_text("utf-8")) if record_file.exists() else []
    record = {row.path: (row.hash, row.size) for row in rows}
    ep_file = unpacked / dist_info / "entry_points.txt"
    entry_points = entry_point_scripts(ep_file.read_text("utf-8")) if ep_file.exists() else {}
    stem_name = dist_info[: -len(".dist-info")].partition("-")[0]
    root_is_purelib = wheel.get("Root-Is-Purelib", "true").strip().lower() == "true"
    placed, scripts = _classify(unpacked, files, dist_info, root_is_purelib, record)
    return WheelManifest(
        name=str(metadata.get("Name") or stem_name),
        version=str(metadata.get("Version", "")),
        dist_info=dist_info,
        root_is_purelib=root_is_purelib,
        files=tuple(placed),
        scripts=tuple(scripts),
        entry_points=tuple(sorted(entry_points.items())),
    )


def _classify(
    unpacked: Path,
    files: Sequence[str],
    dist_info: str,
    root_is_purelib: bool,
    record: Mapping[str, tuple[str, str]],
) -> tuple[list[tuple[str, str, str, str, str]], list[tuple[str, str]]]:
    """Each file's scheme key and path under it; scripts to rewrite apart."""
    root_key = "purelib" if root_is_purelib else "platlib"
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    placed: list[tuple[str, str, str, str, str]] = []
    scripts: list[tuple[str, str]] = []
    for rel in files:
        head, _, rest = rel.partition("/")
        if head == dist_info and rel.rsplit("/", 1)[-1] in _DIST_INFO_FILES_WRITTEN_HERE:
            continue
        if head != data_dir:
            placed.append((rel, root_key, rel, *record.get(rel, ("", ""))))
            continue
        key, _, sub = rest.partition("/")
        if not sub or key not in _SCHEME_KEYS:
            raise VenvError(
                f"{dist_info}: {rel} is not under a known .data scheme "
                f"({', '.join(_SCHEME_KEYS)})",
                hint="the wheel is malformed; rebuild it or pick another file",
            )
        if key == "scripts" and _needs_rewrite(unpacked / rel):
            scripts.append((rel, sub))
        else:
            placed.append((rel, key, sub, *record.get(rel, ("", ""))))
    return placed, scripts


def _needs_rewrite(script: Path) -> bool:
    """A ``#!python`` script gets the venv's interpreter; others (binaries) are linked as is.

    One that is not executable in the tree is written too, with the mode a
    script needs, rather than chmod-ing the cache's copy through a link.
    """
    with open(script, "rb") as f:
        head = f.read(len(b"#!python"))
    return head == b"#!python" or not os.stat(script).st_mode & 0o111


def _headers(text: str) -> Message:
    from email.parser import HeaderParser

    return HeaderParser().parsestr(text)


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        raise VenvError(
            f"{path}: missing from the wheel",
            hint="the wheel is malformed; rebuild it or pick another file",
        ) from None


def _check_inside(path: str, prefix: Path, what: str) -> None:
    if not within(path, prefix):
        raise VenvError(
            f"{what}: {path} is outside the environment {os.path.normpath(prefix)}; "
            "refusing to touch it",
            hint="the distribution is malformed or malicious; remove it from the lock",
        )


# -- placing files ------------------------------------------------------------


def _place(source: str, dest: str, link: bool, reflink: bool = False) -> bool:
    """Link (or copy) *source* to *dest*; returns whether linking still works."""
    if link:
        try:
            os.link(source, dest)
            return True
        except FileExistsError:
            # A leftover of a killed install, or a file another distribution owned.
            os.unlink(dest)
            os.link(source, dest)
            return True
        except OSError as exc:
            # Cross-device, no hardlink support or link-count limit: copy from now on.
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(dest)  # copying onto it would write through a hardlink into the cache
    if not (reflink and _clone(source, dest)):
        shutil.copy2(source, dest)
    os.chmod(dest, os.stat(source).st_mode | 0o200)  # a copy is the venv's own: writable
    return False


_FICLONE = 0x40049409  # linux/fs.h: share the source's blocks, copy-on-write


def _clone(source: str, dest: str) -> bool:
    """A reflink copy (btrfs, XFS, bcachefs); False where the filesystem cannot."""
    import fcntl

    with open(source, "rb") as src, open(dest, "wb") as out:
        try:
            fcntl.ioctl(out.fileno(), _FICLONE, src.fileno())
        except OSError:
            return False
    shutil.copystat(source, dest)
    return True


def _make_dirs(directories: Iterable[str], known: set[str], stop: str) -> None:
    """Create each of *directories* and their missing ancestors, each once.

    *known* holds directories that exist (added to as they are made), so
    installs sharing it never make one twice; ancestors are climbed up to
    one in *known* or to *stop*, the scheme's prefix. Sorted, so parents
    come before their children: no mkdir fails for a missing parent.
    """
    todo: set[str] = set()
    for directory in directories:
        while directory not in known and directory not in todo and len(directory) > len(stop):
            todo.add(directory)
            directory = os.path.dirname(directory)
    for directory in sorted(todo):
        try:
            os.mkdir(directory)
        except FileExistsError:
            pass
        except FileNotFoundError:  # its parent went (or was never under *stop*)
            os.makedirs(directory, exist_ok=True)
        known.add(directory)


def _write_new(path: str, data: bytes, *, executable: bool = False) -> None:
    """Write *path* as a new inode: a leftover there is unlinked, never written through."""
    try:
        fd = os.open(path, _NEW_FILE, 0o666)
    except FileExistsError:
        os.unlink(path)
        fd = os.open(path, _NEW_FILE, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if executable:
            os.fchmod(fd, 0o755)
    finally:
        os.close(fd)


def shebang(python: str) -> bytes:
    """A shebang line for *python*; long or spaced paths go through /bin/sh."""
    if len(python) < 127 and " " not in python:
        return f"#!{python}\n".encode()
    # The kernel truncates shebangs at 127 bytes; re-exec through sh instead.
    return f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n".encode()


def _script_bytes(source: str, python: str) -> bytes:
    """A .data/scripts file, its ``#!python`` pointed at the environment's interpreter."""
    with open(source, "rb") as f:
        data = f.read()
    if data.startswith(b"#!python"):
        _first, _, rest = data.partition(b"\n")
        data = shebang(python) + rest
    return data


# -- entry points ---------------------------------------------------------------


def entry_point_scripts(entry_points_txt: str) -> dict[str, str]:
    """``console_scripts`` and ``gui_scripts`` of an entry_points.txt: name -> target."""
    from configparser import ConfigParser

    parser = ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # keep case
    parser.read_string(entry_points_txt)
    scripts: dict[str, str] = {}
    for section in ("console_scripts", "gui_scripts"):
        if parser.has_section(section):
            scripts.update(parser.items(section))
    return scripts


def script_text(target: str) -> str:
    """A launcher calling ``module:attr.path`` (extras like ``[x]`` are ignored)."""
    module, _, attr = target.partition(":")
    attr = attr.split("[")[0].strip()
    module = module.strip()
    if not module or not attr:
        raise VenvError(
            f"entry point {target!r} is not of the form 'module:function'",
            hint="fix the [project.scripts] table or the wheel's entry_points.txt",
        )
    head = attr.split(".")[0]
    return (
        "# -*- coding: utf-8 -*-\n"
        "import re\nimport sys\n"
        f"from {module} import {head}\n"
        'if __name__ == "__main__":\n'
        '    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])\n'
        f"    sys.exit({attr}())\n"
    )


def _entry_point_writes(
    scripts: Iterable[tuple[str, str]], scheme: Scheme, python: str, what: str
) -> list[tuple[str, bytes, bool]]:
    """Launchers to write; a name that would leave the scripts directory is refused."""
    writes = []
    for name, target in scripts:
        check_archive_path(name, Path(what))
        data = shebang(python) + script_text(target).encode()
        writes.append((os.path.join(scheme.scripts, name), data, True))
    return writes


# -- install ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Install:
    """Everything one install puts in place, known before the first write."""

    dist_info: str
    sources: Sequence[str]  # files to link (or copy) from the unpacked tree ...
    targets: Sequence[str]  # ... and where each goes (empty when *relative* says it)
    link_record: str  # their RECORD rows, formatted
    writes: Sequence[tuple[str, bytes, bool]]  # (destination, content, executable)
    # Every directory the targets need, parents first, all inside the scheme's
    # prefix (a planned tree's); None: worked out from the targets, each checked
    planned_dirs: Sequence[str] | None = None
    # A planned tree's links as (tree, its files relative to it, (scheme key, path
    # under that key's directory) of each, the directory of each key): linked through
    # directory fds, so the kernel does not walk the two long prefixes for every file.
    # None: the absolute paths above.
    relative: tuple[str, Sequence[str], Sequence[tuple[str, str]], Mapping[str, str]] | None = (
        None)


@dataclass(frozen=True, slots=True)
class _TreePlan:
    """What installing one unpacked tree links, the same for every venv: made once per tree.

    The per-venv work is then joining each path to its scheme directory; no
    path is split, normalized or checked per file, and the RECORD rows of the
    linked files are formatted once per layout of scheme directories.
    """

    manifest: WheelManifest  # the one this plan was made from
    sources: tuple[str, ...]  # absolute, in RECORD order
    relative: tuple[str, ...]  # the same, relative to the tree (linked through its fd)
    places: tuple[tuple[str, str], ...]  # (scheme key, path under it) of each source
    dirs: tuple[tuple[str, str], ...]  # (scheme key, directory under it) they need, parents first
    keys: tuple[str, ...]  # the scheme keys used
    contained: bool  # every path stays below its scheme directory (no `..`, not absolute)
    rows: tuple[tuple[str, str, str, str], ...]  # (key or "", path, hash, size) for RECORD
    records: dict[tuple[str, ...], str]  # formatted rows by the keys' RECORD prefixes


# Plans by (tree, constant files linked); a command's venvs share them. Bounded,
# since a long-lived process (the tests) meets many caches.
_PLANS: dict[tuple[str, tuple[str, ...]], _TreePlan] = {}
_MAX_PLANS = 1024


def _tree_plan(src: str, manifest: WheelManifest, constants: Sequence[str]) -> _TreePlan:
    key = (src, tuple(constants))
    plan = _PLANS.get(key)
    if plan is not None and plan.manifest is manifest:
        return plan
    root_key = "purelib" if manifest.root_is_purelib else "platlib"
    relative = [a for a, _k, _s, _h, _n in manifest.files]
    places = [(k, s) for _a, k, s, _h, _n in manifest.files]
    rows = [(k, s, h, n) for _a, k, s, h, n in manifest.files]
    for name in constants:
        data = _CONSTANT_FILES[name]
        relative.append(f"{OWN_DIR}/{name}")
        places.append((root_key, f"{manifest.dist_info}/{name}"))
        rows.append(("", f"{manifest.dist_info}/{name}", record_hash(data), str(len(data))))
    # Relative and already normal (no empty, `.` or `..` part): os.path.normpath's
    # answer without its cost, which per file is most of the plan's
    contained = all(
        not s.startswith("/") and "//" not in (c := f"/{s}/") and "/./" not in c
        and "/../" not in c
        for _k, s in places
    )
    needed: set[tuple[str, str]] = set()
    if contained:
        for k, s in places:
            d = s.rpartition("/")[0]
            while d and (k, d) not in needed:
                needed.add((k, d))
                d = d.rpartition("/")[0]
    plan = _TreePlan(
        manifest, tuple(f"{src}/{a}" for a in relative), tuple(relative), tuple(places),
        tuple(sorted(needed)),
        tuple(sorted({k for k, _s in places})), contained, tuple(rows), {},
    )
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _plan_record(plan: _TreePlan, in_record: Mapping[str, str]) -> str:
    layout = tuple(in_record[k] for k in _SCHEME_KEYS)
    text = plan.records.get(layout)
    if text is None:
        text = format_record([(in_record[k] + s if k else s, h, n) for k, s, h, n in plan.rows])
        plan.records[layout] = text
    return text


def install_unpacked(
    unpacked: Path,
    scheme: Scheme,
    options: InstallOptions,
    *,
    origin: Mapping[str, str],
    manifest: WheelManifest | None = None,
    made_dirs: set[str] | None = None,
) -> InstalledDist:
    """Install the wheel unpacked at *unpacked* into *scheme*; returns its dist.

    *origin* is stored in the dist-info (``orchestrator.json``) so a later sync
    can tell whether the same wheel is installed. Without *manifest*, the
    tree's is loaded and every file checked against it (``check_entry``);
    a caller passing *manifest* has done that check itself (``venv`` does it
    once per tree and command). *made_dirs*: directories known to exist,
    shared by the installs into one scheme (added to as directories are made).
    """
    if manifest is None:
        manifest = load_manifest(unpacked)
        bad = check_entry(unpacked, manifest)
    else:
        bad = []
    if bad:
        raise TamperedEntryError(
            f"{unpacked}: {bad[0]} changed since it was unpacked ({len(bad)} file(s))",
            hint="the cache entry is discarded and unpacked again from the verified wheel",
            file=unpacked / bad[0],
        )
    root = str(scheme.purelib if manifest.root_is_purelib else scheme.platlib)
    dist_info = os.path.join(root, manifest.dist_info)
    bases = {key: str(scheme.directory(key, manifest.name)) for key in _SCHEME_KEYS}
    # RECORD names files relative to the dist-info's parent: `../../../bin/x` for scripts.
    in_record = {key: _record_path(base, root) + "/" for key, base in bases.items()}
    in_record = {key: "" if p == "./" else p for key, p in in_record.items()}
    src = str(unpacked)
    constants = _constant_names(options)  # the same bytes for every install: linked
    plan = _tree_plan(src, manifest, constants if manifest.stored else ())
    python = options.shebang_python
    writes = [
        (f"{bases['scripts']}/{sub}", _script_bytes(f"{src}/{archive}", python), True)
        for archive, sub in manifest.scripts
    ]
    if not manifest.stored:
        writes += [(f"{dist_info}/{name}", _CONSTANT_FILES[name], False) for name in constants]
    writes += _entry_point_writes(manifest.entry_points, scheme, python, manifest.name)
    writes += _dist_info_writes(dist_info, options, origin)
    dirs = _planned_dirs(plan, bases, os.path.normpath(scheme.prefix))
    relative = None
    targets: list[str] = []  # with *relative*, made only if a file needs its full path
    if dirs is not None:  # every target checked inside its (normal) scheme directory
        relative = (src, plan.relative, plan.places, bases)
    else:
        targets = [f"{bases[k]}/{s}" for k, s in plan.places]
    _apply(_Install(dist_info, plan.sources, targets, _plan_record(plan, in_record), writes,
                    dirs, relative),
           scheme, options.link, manifest.dist_info, options.reflink, made_dirs)
    return InstalledDist(
        normalize(manifest.name),
        manifest.version,
        Path(dist_info),
        True,
        origin.get("sha256"),
        None,
        origin.get("fingerprint"),
    )


def _planned_dirs(plan: _TreePlan, bases: Mapping[str, str], prefix: str) -> list[str] | None:
    """The directories *plan* needs under *bases*, parents first; None if any could leave
    *prefix* (then every target is checked, and refused, one by one)."""
    if not plan.contained:
        return None
    inside = os.path.join(prefix, "")
    out = []
    for key in plan.keys:
        base = os.path.normpath(bases[key])
        if base != prefix and not base.startswith(inside):
            return None
        if base != bases[key]:  # not normalized: the lexical joins below would not be either
            return None
        out.append(base)
    return out + [f"{bases[k]}/{d}" for k, d in plan.dirs]


def _constant_names(options: InstallOptions) -> list[str]:
    return ["INSTALLER", "REQUESTED"] if options.requested else ["INSTALLER"]


def _dist_info_writes(
    dist_info: str, options: InstallOptions, origin: Mapping[str, str]
) -> list[tuple[str, bytes, bool]]:
    files = {ORIGIN: json.dumps(dict(origin), sort_keys=True).encode()}
    if options.direct_url is not None:
        files["direct_url.json"] = options.direct_url.encode()
    return [(os.path.join(dist_info, name), data, False) for name, data in files.items()]


def _apply(job: _Install, scheme: Scheme, link: bool, what: str, reflink: bool = False,
           made_dirs: set[str] | None = None) -> None:
    """Put *job* in place under the PENDING protocol (see the module docstring)."""
    root, name = os.path.split(job.dist_info)
    written = [dest for dest, _, _ in job.writes]
    checked = written if job.planned_dirs is not None else [*job.targets, *written]
    for dest in checked:
        _check_inside(dest, scheme.prefix, what)
    rows = [(_record_path(dest, root), record_hash(data), str(len(data)))
            for dest, data, _executable in job.writes]
    rows.append((f"{name}/RECORD", "", ""))
    pending = os.path.join(job.dist_info, PENDING)
    os.makedirs(job.dist_info, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(job.dist_info, "RECORD"))  # a leftover: not complete any more
    _write_new(pending, (job.link_record + format_record(rows)).encode())
    # The dist-info was just made, and so was its parent: no mkdir needed for either.
    known = made_dirs if made_dirs is not None else set()
    known.update((job.dist_info, root))
    stop = os.path.normpath(scheme.prefix)
    # A planned tree names its directories: only the writes' (a few) are worked out here.
    planned = job.planned_dirs
    linked = job.targets if planned is None else ()
    _make_dirs({*(planned or ()), *(os.path.dirname(d) for d in (*linked, *written))}, known, stop)
    start = _link_relative(job) if link and job.relative is not None else 0
    targets = job.targets
    if job.relative is not None and start < len(job.sources):  # the rest by full paths
        _tree, _sources, places, bases = job.relative
        targets = [f"{bases[k]}/{p}" for k, p in places]
    for source, dest in zip(job.sources[start:], targets[start:], strict=True):
        link = _place(source, dest, link, reflink)
    for dest, data, executable in job.writes:
        _write_new(dest, data, executable=executable)
    # PENDING already holds the final RECORD: the rename completes the install at once.
    os.replace(pending, os.path.join(job.dist_info, "RECORD"))


def _link_relative(job: _Install) -> int:
    """Hard-link *job*'s files through directory fds, as far as that goes: how many
    were linked (the rest, from the first that was not, go through ``_place``)."""
    assert job.relative is not None
    tree, sources, places, bases = job.relative
    fds: dict[str, int] = {}  # by scheme key, and "" for the tree
    done = 0
    try:
        src_fd = fds[""] = os.open(tree, _DIR_FLAGS)
        for source, (key, path) in zip(sources, places, strict=True):
            dst_fd = fds.get(key)
            if dst_fd is None:
                dst_fd = fds[key] = os.open(bases[key], _DIR_FLAGS)
            os.link(source, path, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            done += 1
    except OSError:
        pass  # a leftover there, or no links across these dirs: _place sees to it
    finally:
        for fd in fds.values():
            os.close(fd)
    return done


def _record_path(path: str, root: str) -> str:
    """RECORD paths are relative to site-packages, with ``..`` for scripts and data."""
    return os.path.relpath(path, root).replace(os.sep, "/")


# -- editable installs -----------------------------------------------------------


def editable_source_root(directory: Path) -> Path:
    """The directory to put on sys.path for a member: ``src/`` if it is a src layout.

    A src layout is a ``src/`` holding Python code at any depth: a regular package
    (``src/pkg/__init__.py``), a module, or a namespace package without
    ``__init__.py`` (``src/acme/jobs/__init__.py``, ``src/acme/util.py``).
    """
    src = directory / "src"
    if not src.is_dir():
        return directory
    for _dirpath, dirnames, filenames in os.walk(src):
        if any(name.endswith(".py") for name in filenames):
            return src
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
    return directory


def install_editable(
    name: str,
    version: str,
    directory: Path,
    scheme: Scheme,
    options: InstallOptions,
    *,
    scripts: Mapping[str, str],
    requires_dist: Sequence[str] = (),
    origin: Mapping[str, str] | None = None,
) -> InstalledDist:
    """Install *directory* in development mode: a .pth file plus a dist-info.

    The dist-info carries PEP 610's ``{"dir_info": {"editable": true}}`` so
    other tools (and ``installed()``) see an editable install.
    """
    dist = normalize(name).replace("-", "_")
    root = str(scheme.purelib)
    dist_info = os.path.join(root, f"{dist}-{version}.dist-info")
    source = editable_source_root(directory.resolve())
    metadata = "".join(
        [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"]
        + [f"Requires-Dist: {req}\n" for req in requires_dist]
    )
    direct_url = json.dumps(
        {"url": directory.resolve().as_uri(), "dir_info": {"editable": True}}, sort_keys=True
    )
    final = InstallOptions(options.shebang_python, options.link, direct_url, options.requested)
    stored = {**(origin or {}), "editable": str(directory.resolve())}
    writes = [
        (os.path.join(root, f"_{dist}_editable.pth"), f"{source}\n".encode(), False),
        (os.path.join(dist_info, "METADATA"), metadata.encode(), False),
    ]
    writes += _entry_point_writes(sorted(scripts.items()), scheme, options.shebang_python, name)
    for constant in _constant_names(final):  # no unpacked tree to link them from
        writes.append((os.path.join(dist_info, constant), _CONSTANT_FILES[constant], False))
    writes += _dist_info_writes(dist_info, final, stored)
    _apply(_Install(dist_info, (), (), "", writes), scheme, options.link, name)
    return InstalledDist(
        normalize(name),
        version,
        Path(dist_info),
        True,
        stored.get("sha256"),
        Path(stored["editable"]),
        stored.get("fingerprint"),
    )


# -- reading and removing installed dists -------------------------------------------


def installed_dists(site_packages: Path) -> dict[str, InstalledDist]:
    """Every dist-info in *site_packages*, by normalized name; incomplete ones included."""
    found: dict[str, InstalledDist] = {}
    if not site_packages.is_dir():
        return found
    for entry in os.scandir(site_packages):
        if entry.name.endswith(".dist-info") and entry.is_dir():
            dist = _read_installed(Path(entry.path))
            found[dist.name] = dist
    return found


def _read_installed(dist_info: Path) -> InstalledDist:
    stem = dist_info.name[: -len(".dist-info")]
    name, _, version = stem.partition("-")
    complete = (dist_info / "RECORD").exists() and not (dist_info / PENDING).exists()
    if complete:
        # The directory name is normalized by most installers; METADATA is the truth.
        try:
            meta = _headers((dist_info / "METADATA").read_text("utf-8"))
            name, version = meta.get("Name", name), meta.get("Version", version)
        except (OSError, UnicodeDecodeError):
            complete = False
    origin: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        origin = json.loads((dist_info / ORIGIN).read_text("utf-8"))
    editable = origin.get("editable")
    return InstalledDist(
        normalize(name),
        version,
        dist_info,
        complete,
        origin.get("sha256"),
        Path(editable) if editable else None,
        origin.get("fingerprint"),
    )


def changed_files(dist: InstalledDist) -> list[str]:
    """Files of an installed *dist* whose bytes no longer match its RECORD (re-hashes all)."""
    try:
        rows = parse_record((dist.dist_info / "RECORD").read_text("utf-8"))
    except (OSError, UnicodeDecodeError):
        return ["RECORD"]
    root = dist.dist_info.parent
    bad = []
    for row in rows:
        if not row.hash.startswith("sha256="):
            continue
        try:
            if _file_record_hash(os.path.join(root, row.path)) != row.hash:
                bad.append(row.path)
        except OSError:
            bad.append(row.path)
    return bad


def uninstall_dist(dist: InstalledDist, scheme: Scheme) -> list[Path]:
    """Remove every file *dist* installed, its pycs and the directories left empty.

    Paths outside the environment are never touched, whatever RECORD says.
    """
    dist_info = dist.dist_info
    paths = _recorded_paths(dist_info)
    if (dist_info / PENDING).exists():
        (dist_info / "RECORD").unlink(missing_ok=True)
    else:
        # Mark the removal as in flight first, so a kill halfway is finished later;
        # a rename, so the list is whole whenever the dist-info turns incomplete.
        with contextlib.suppress(FileNotFoundError):
            os.replace(dist_info / "RECORD", dist_info / PENDING)
    removed: list[Path] = []
    for path in paths:
        if not within(path, scheme.prefix):
            continue
        for victim in (path, *_pycs_of(path)):
            try:
                victim.unlink()
                removed.append(victim)
            except FileNotFoundError:
                pass
    shutil.rmtree(dist_info, ignore_errors=True)
    _remove_empty_dirs({p.parent for p in paths} | {dist_info.parent}, scheme)
    return removed


def _recorded_paths(dist_info: Path) -> list[Path]:
    """The paths PENDING lists (a dist-info in flight), else RECORD's.

    PENDING is written in place, so a kill can leave it cut short: only its
    whole rows count (a cut-short PENDING means nothing was placed yet). Its
    rows are RECORD's; PENDING files written before that held one absolute
    path per line, which is read the same way.
    """
    root = dist_info.parent
    for name in (PENDING, "RECORD"):
        try:
            text = (dist_info / name).read_text("utf-8")
        except FileNotFoundError:
            continue
        rows = parse_record(text, whole_rows_only=name == PENDING)
        return [Path(os.path.normpath(root / row.path)) for row in rows]
    return []


def _pycs_of(path: Path) -> list[Path]:
    if path.suffix != ".py":
        return []
    cache = path.parent / "__pycache__"
    if not cache.is_dir():
        return []
    return list(cache.glob(f"{path.stem}.*.pyc"))


def _remove_empty_dirs(dirs: Iterable[Path], scheme: Scheme) -> None:
    # The scheme directories and everything above them belong to the venv; the
    # headers scheme's `include/site/pythonX.Y` is made on demand, so it may go.
    roots = {os.path.normpath(scheme.prefix), os.path.normpath(scheme.prefix / "include")}
    for base in (scheme.purelib, scheme.platlib, scheme.scripts, scheme.data):
        roots.update(os.path.normpath(p) for p in (base, *base.parents))
    # Deepest first, so a parent emptied by its children's removal goes too.
    for directory in sorted({os.path.normpath(d) for d in dirs}, key=len, reverse=True):
        current = Path(directory)
        while within(current, scheme.prefix) and str(current) not in roots:
            pycache = current / "__pycache__"
            if pycache.is_dir() and not any(pycache.iterdir()):
                pycache.rmdir()
            try:
                current.rmdir()
            except OSError:
                break  # not empty (or already gone): stop climbing
            current = current.parent
