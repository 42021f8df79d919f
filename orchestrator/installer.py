"""Install wheels into a scheme of directories (the binary distribution format).

The source is a wheel already unpacked by the cache (``WheelCache.unpacked``),
so an install is mostly hardlinks: files are linked from the unpacked tree into
the destination scheme, scripts and the dist-info's install-time files are
written fresh, and RECORD is written last.

Crash safety: before the first file is placed, the dist-info holds a
``ORCHESTRATOR-PENDING`` file listing every path the install will write; it is
removed only after RECORD is in place. Uninstall writes the same file before
it deletes anything. A dist-info with that file (or without RECORD) is
*incomplete*, and removing it removes every listed path, so a killed install
or uninstall is always undone by the next sync.

Hardlinks share inodes with the cache: editing an installed file in place
edits the cached copy too. Editors normally write a new file and rename it,
which breaks the link; tools that patch files in place should use a venv
synced with ``link=False``.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from configparser import ConfigParser
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from orchestrator.errors import VenvError
from orchestrator.names import normalize

INSTALLER_NAME = "orchestrator"
PENDING = "ORCHESTRATOR-PENDING"  # paths in flight while installing/uninstalling
ORIGIN = "orchestrator.json"  # what was installed: wheel sha256 or editable source
_DIST_INFO_FILES_WRITTEN_HERE = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", ORIGIN}
_SCHEME_KEYS = ("purelib", "platlib", "scripts", "headers", "data")


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


@dataclass(frozen=True, slots=True)
class _WheelInfo:
    name: str
    version: str
    dist_info: str  # directory name inside the wheel
    root_is_purelib: bool
    record: Mapping[str, tuple[str, str]]  # path -> (hash, size) from the wheel's RECORD


# -- archive paths ----------------------------------------------------------


def check_archive_path(name: str, archive: Path) -> PurePosixPath:
    """The member path, or VenvError when it could write outside its destination."""
    path = PurePosixPath(name)
    bad = (
        not name
        or "\\" in name
        or "\0" in name
        or path.is_absolute()
        or ".." in path.parts
        or (path.parts and ":" in path.parts[0])  # a Windows drive: C:evil
    )
    if bad:
        raise VenvError(
            f"{archive.name}: unsafe path {name!r} in the archive (absolute or leaving "
            "the install directory); refusing to install it",
            hint="the file is malformed or malicious; remove it from the lock or the index",
        )
    return path


def unpack_wheel(wheel: Path, dest: Path) -> None:
    """Extract *wheel* into the empty directory *dest*, rejecting unsafe paths.

    Every name is checked before anything is written, so a malicious archive
    leaves nothing behind but *dest* itself.
    """
    with zipfile.ZipFile(wheel) as zf:
        infos = [info for info in zf.infolist() if not info.is_dir()]
        paths = [check_archive_path(info.filename, wheel) for info in infos]
        for info, rel in zip(infos, paths, strict=True):
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            # The spec asks installers to keep the executable bit set in the archive.
            if (info.external_attr >> 16) & 0o111:
                target.chmod(0o755)


# -- reading an unpacked wheel -----------------------------------------------


def _read_wheel_info(unpacked: Path) -> _WheelInfo:
    dist_infos = [p.name for p in unpacked.iterdir() if p.name.endswith(".dist-info")]
    if len(dist_infos) != 1:
        raise VenvError(
            f"{unpacked}: expected one .dist-info directory in the wheel, found {len(dist_infos)}",
            hint="the wheel is malformed; rebuild it or pick another file",
        )
    dist_info = unpacked / dist_infos[0]
    metadata = HeaderParser().parsestr(_read_text(dist_info / "METADATA"))
    wheel = HeaderParser().parsestr(_read_text(dist_info / "WHEEL"))
    version = wheel.get("Wheel-Version", "1.0")
    if version.split(".")[0] != "1":
        raise VenvError(
            f"{dist_infos[0]}: Wheel-Version {version} is not supported (only 1.x)",
            hint="upgrade orchestrator or use a wheel built by an older tool",
        )
    record_file = dist_info / "RECORD"
    record = _parse_record(record_file.read_text("utf-8")) if record_file.exists() else {}
    return _WheelInfo(
        name=str(metadata.get("Name", "")),
        version=str(metadata.get("Version", "")),
        dist_info=dist_infos[0],
        root_is_purelib=wheel.get("Root-Is-Purelib", "true").strip().lower() == "true",
        record=record,
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        raise VenvError(
            f"{path}: missing from the wheel",
            hint="the wheel is malformed; rebuild it or pick another file",
        ) from None


def _parse_record(text: str) -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for row in csv.reader(io.StringIO(text)):
        if row:
            rows[row[0]] = (row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "")
    return rows


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# -- planning where each file goes --------------------------------------------


@dataclass(frozen=True, slots=True)
class _Placement:
    source: Path
    dest: Path
    is_script: bool  # from <name>.data/scripts: shebang rewritten, so never linked
    archive_path: str


def _plan(unpacked: Path, info: _WheelInfo, scheme: Scheme) -> list[_Placement]:
    root = scheme.purelib if info.root_is_purelib else scheme.platlib
    data_dir = info.dist_info[: -len(".dist-info")] + ".data"
    plan: list[_Placement] = []
    for dirpath, dirnames, filenames in os.walk(unpacked):
        dirnames.sort()
        for filename in sorted(filenames):
            source = Path(dirpath, filename)
            rel = source.relative_to(unpacked).as_posix()
            parts = rel.split("/")
            if parts[0] == info.dist_info and parts[-1] in _DIST_INFO_FILES_WRITTEN_HERE:
                continue
            if parts[0] == data_dir:
                if len(parts) < 3 or parts[1] not in _SCHEME_KEYS:
                    raise VenvError(
                        f"{info.dist_info}: {rel} is not under a known .data scheme "
                        f"({', '.join(_SCHEME_KEYS)})",
                        hint="the wheel is malformed; rebuild it or pick another file",
                    )
                base = scheme.directory(parts[1], info.name)
                dest = base.joinpath(*parts[2:])
                plan.append(_Placement(source, dest, parts[1] == "scripts", rel))
            else:
                plan.append(_Placement(source, root.joinpath(*parts), False, rel))
    for placement in plan:
        _check_inside(placement.dest, scheme.prefix, info.dist_info)
    return plan


def _check_inside(path: Path, prefix: Path, what: str) -> None:
    if not os.path.normpath(path).startswith(os.path.normpath(prefix) + os.sep):
        raise VenvError(
            f"{what}: {path} is outside the environment {prefix}; refusing to touch it",
            hint="the distribution is malformed or malicious; remove it from the lock",
        )


# -- placing files ------------------------------------------------------------


def _place(source: Path, dest: Path, link: bool) -> bool:
    """Link (or copy) *source* to *dest*; returns whether linking still works."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A leftover of a killed install, or a file another distribution owned.
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    if link:
        try:
            os.link(source, dest)
            return True
        except FileExistsError:
            dest.unlink()  # a parallel install of a conflicting dist won the race
            os.link(source, dest)
            return True
        except OSError as exc:
            # Cross-device, no hardlink support or link-count limit: copy from now on.
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    shutil.copy2(source, dest)
    return False


def shebang(python: str) -> bytes:
    """A shebang line for *python*; long or spaced paths go through /bin/sh."""
    if len(python) < 127 and " " not in python:
        return f"#!{python}\n".encode()
    # The kernel truncates shebangs at 127 bytes; re-exec through sh instead.
    return f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\n".encode()


def _write_script(source: Path, dest: Path, python: str) -> bytes:
    data = source.read_bytes()
    if data.startswith(b"#!python"):
        _first, _, rest = data.partition(b"\n")
        data = shebang(python) + rest
    _write_atomic(dest, data, executable=True)
    return data


def _write_atomic(dest: Path, data: bytes, *, executable: bool = False) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    if executable:
        tmp.chmod(0o755)
    tmp.replace(dest)


# -- entry points ---------------------------------------------------------------


def entry_point_scripts(entry_points_txt: str) -> dict[str, str]:
    """``console_scripts`` and ``gui_scripts`` of an entry_points.txt: name -> target."""
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


def _write_entry_points(
    scripts: Mapping[str, str], scheme: Scheme, python: str, what: str
) -> list[tuple[Path, bytes]]:
    written = []
    for name, target in sorted(scripts.items()):
        check_archive_path(name, Path(what))
        dest = scheme.scripts / name
        _check_inside(dest, scheme.prefix, what)
        data = shebang(python) + script_text(target).encode()
        _write_atomic(dest, data, executable=True)
        written.append((dest, data))
    return written


# -- install ------------------------------------------------------------------


def install_unpacked(
    unpacked: Path, scheme: Scheme, options: InstallOptions, *, origin: Mapping[str, str]
) -> InstalledDist:
    """Install the wheel unpacked at *unpacked* into *scheme*; returns its dist.

    *origin* is stored in the dist-info (``orchestrator.json``) so a later sync
    can tell whether the same wheel is installed.
    """
    info = _read_wheel_info(unpacked)
    plan = _plan(unpacked, info, scheme)
    root = scheme.purelib if info.root_is_purelib else scheme.platlib
    dist_info = root / info.dist_info
    ep_file = unpacked / info.dist_info / "entry_points.txt"
    ep_scripts = entry_point_scripts(ep_file.read_text("utf-8")) if ep_file.exists() else {}
    planned = [p.dest for p in plan] + [scheme.scripts / n for n in ep_scripts]
    _begin(dist_info, planned)

    records: list[tuple[Path, str, str]] = []
    link = options.link
    for placement in plan:
        if placement.is_script:
            data = _write_script(placement.source, placement.dest, options.shebang_python)
            records.append((placement.dest, record_hash(data), str(len(data))))
            continue
        link = _place(placement.source, placement.dest, link)
        digest, size = info.record.get(placement.archive_path, ("", ""))
        records.append((placement.dest, digest, size))
    for dest, data in _write_entry_points(ep_scripts, scheme, options.shebang_python, info.name):
        records.append((dest, record_hash(data), str(len(data))))
    _finish(dist_info, records, options, origin)
    return _read_installed(dist_info)


def _begin(dist_info: Path, planned: Iterable[Path]) -> None:
    """Mark *dist_info* incomplete, listing every path about to be written."""
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "RECORD").unlink(missing_ok=True)
    lines = [str(p) for p in planned] + [str(dist_info / n) for n in _DIST_INFO_FILES_WRITTEN_HERE]
    _write_atomic(dist_info / PENDING, ("\n".join(lines) + "\n").encode())


def _finish(
    dist_info: Path,
    records: list[tuple[Path, str, str]],
    options: InstallOptions,
    origin: Mapping[str, str],
) -> None:
    """Write the install-time dist-info files, then RECORD, then drop PENDING."""
    extra = {"INSTALLER": f"{INSTALLER_NAME}\n", ORIGIN: json.dumps(dict(origin), sort_keys=True)}
    if options.requested:
        extra["REQUESTED"] = ""
    if options.direct_url is not None:
        extra["direct_url.json"] = options.direct_url
    for name, text in extra.items():
        data = text.encode()
        _write_atomic(dist_info / name, data)
        records.append((dist_info / name, record_hash(data), str(len(data))))
    root = dist_info.parent
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for path, digest, size in records:
        writer.writerow((_record_path(path, root), digest, size))
    writer.writerow((f"{dist_info.name}/RECORD", "", ""))
    _write_atomic(dist_info / "RECORD", out.getvalue().encode())
    (dist_info / PENDING).unlink()


def _record_path(path: Path, root: Path) -> str:
    """RECORD paths are relative to site-packages, with ``..`` for scripts and data."""
    return Path(os.path.relpath(path, root)).as_posix()


def compile_bytecode(
    python: Path,
    files: Sequence[Path],
    *,
    relocate: tuple[Path, str] | None = None,
    jobs: int = 1,
) -> None:
    """Compile *files* with *python* into deterministic, hash-based (unchecked) pycs.

    Runs in the environment's own interpreter, since the pyc format belongs to
    its version. A pyc embeds its source path; *relocate* = (venv path, path in
    use) writes the latter instead, so an image's pycs name ``/opt/venv/...``
    and are byte-identical wherever they were built. Files that do not compile
    (Python 2 leftovers some wheels ship) are skipped, as pip does. The pycs
    are not listed in RECORD; uninstall removes the pycs of every .py it removes.
    *jobs* interpreters compile slices of the list side by side.
    """
    if not files:
        return
    script = (
        "import json, py_compile, sys\n"
        "mode = py_compile.PycInvalidationMode.UNCHECKED_HASH\n"
        "for path, dfile in json.load(sys.stdin):\n"
        "    try:\n"
        "        py_compile.compile(path, dfile=dfile, doraise=True, invalidation_mode=mode)\n"
        "    except py_compile.PyCompileError:\n"
        "        pass\n"
    )
    pairs = []
    for file in files:
        shown = str(file)
        if relocate is not None and file.is_relative_to(relocate[0]):
            shown = relocate[1].rstrip("/") + "/" + file.relative_to(relocate[0]).as_posix()
        pairs.append((str(file), shown))
    slices = [pairs[i :: max(1, jobs)] for i in range(max(1, jobs))]

    def run(chunk: list[tuple[str, str]]) -> None:
        proc = subprocess.run(
            [str(python), "-c", script],
            input=json.dumps(chunk),
            text=True,
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise VenvError(
                f"compiling bytecode with {python} failed: {proc.stderr.strip()[-2000:]}",
                hint="check the interpreter works, or sync without bytecode compilation",
            )

    with ThreadPoolExecutor(max_workers=len(slices)) as pool:
        list(pool.map(run, [c for c in slices if c]))


# -- editable installs -----------------------------------------------------------


def editable_source_root(directory: Path) -> Path:
    """The directory to put on sys.path for a member: ``src/`` if it is a src layout."""
    src = directory / "src"
    if src.is_dir() and any(
        (child / "__init__.py").exists() or child.suffix == ".py" for child in src.iterdir()
    ):
        return src
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
    dist_info = scheme.purelib / f"{dist}-{version}.dist-info"
    pth = scheme.purelib / f"_{dist}_editable.pth"
    _begin(dist_info, [pth, dist_info / "METADATA"] + [scheme.scripts / s for s in scripts])
    source = editable_source_root(directory.resolve())
    records: list[tuple[Path, str, str]] = []
    metadata = "".join(
        [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"]
        + [f"Requires-Dist: {req}\n" for req in requires_dist]
    )
    for path, text in ((pth, f"{source}\n"), (dist_info / "METADATA", metadata)):
        data = text.encode()
        _write_atomic(path, data)
        records.append((path, record_hash(data), str(len(data))))
    for dest, data in _write_entry_points(scripts, scheme, options.shebang_python, name):
        records.append((dest, record_hash(data), str(len(data))))
    direct_url = json.dumps(
        {"url": directory.resolve().as_uri(), "dir_info": {"editable": True}}, sort_keys=True
    )
    final = InstallOptions(options.shebang_python, options.link, direct_url, options.requested)
    stored = {**(origin or {}), "editable": str(directory.resolve())}
    _finish(dist_info, records, final, stored)
    return _read_installed(dist_info)


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
            meta = HeaderParser().parsestr((dist_info / "METADATA").read_text("utf-8"))
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


def uninstall_dist(dist: InstalledDist, scheme: Scheme) -> list[Path]:
    """Remove every file *dist* installed, its pycs and the directories left empty.

    Paths outside the environment are never touched, whatever RECORD says.
    """
    dist_info = dist.dist_info
    paths = _recorded_paths(dist_info)
    if not (dist_info / PENDING).exists():
        # Mark the removal as in flight first, so a kill halfway is finished later.
        _write_atomic(dist_info / PENDING, ("\n".join(str(p) for p in paths) + "\n").encode())
    (dist_info / "RECORD").unlink(missing_ok=True)
    removed: list[Path] = []
    for path in paths:
        if not os.path.normpath(path).startswith(os.path.normpath(scheme.prefix) + os.sep):
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
    pending = dist_info / PENDING
    if pending.exists():
        return [Path(line) for line in pending.read_text("utf-8").splitlines() if line]
    record = dist_info / "RECORD"
    if not record.exists():
        return []
    root = dist_info.parent
    return [Path(os.path.normpath(root / p)) for p in _parse_record(record.read_text("utf-8"))]


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
    prefix = os.path.normpath(scheme.prefix) + os.sep
    # Deepest first, so a parent emptied by its children's removal goes too.
    for directory in sorted({os.path.normpath(d) for d in dirs}, key=len, reverse=True):
        current = Path(directory)
        while str(current).startswith(prefix) and str(current) not in roots:
            pycache = current / "__pycache__"
            if pycache.is_dir() and not any(pycache.iterdir()):
                pycache.rmdir()
            try:
                current.rmdir()
            except OSError:
                break  # not empty (or already gone): stop climbing
            current = current.parent
