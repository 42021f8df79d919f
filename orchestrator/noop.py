"""The no-op fast path: `lock --check`, `lock` and `sync` answered from a stamp, before click.

A no-op command spends most of its time starting up (click, the models, the
lock module, the workspace load), only to print what it printed last time.
So when `lock --check`, `lock` (no member named) or `sync` (no option) ran
the normal way, succeeded and changed nothing, ``Recorder`` keeps a *stamp*:
the exact bytes the command wrote to stdout and stderr, in order, its exit
code, and the identity (mtime and ctime in ns, size, inode, device, mode) of
every file and directory that answer rests on:

* the workspace's discovery (``workspace.yaml`` looked for in each directory
  from the start up to the one found, absent ones recorded as absent),
  workspace.yaml, every member's pyproject.toml, every directory the member
  and exclude globs list and each pyproject.toml a glob could match;
* what the command itself read (``vouch``): the locks, and for `sync` each
  venv's ``pyvenv.cfg``, its ``.orchestrator`` directory with every record in
  it, and the lib and scripts directories its ``venv.json`` names;
* the code: every module the run imported from outside the standard library
  (orchestrator's own, click, yaml, the editable finder);

and the context: the arguments, the working directory and the start path
resolved, the interpreter (path, version, ``sys.path``), this package's
directory, every ``ORCHESTRATOR_*`` variable and the others the no-op paths
read (HOME, XDG_CACHE_HOME, NETRC; a credential's value only as its
SHA-256), whether stdout and stderr are terminals and their encodings, the
user and the machine. Each context has its own stamp (a terminal and a pipe
do not take turns).

The next run of the same arguments in the same directory (``answer``) stats
those paths and, when every identity and the context are equal, writes the
recorded bytes and exits with the recorded code, without importing click or
any other orchestrator module. Anything else is a miss and the normal path
runs (and stamps again): a missing, damaged, foreign or unreadable stamp, any
changed identity, a different context. ``--verbose``, a member name or any
option other than ``-q``/``-w`` is never answered here; neither is a command
that failed, locked, installed or repaired something, or a run in which a
recorded file changed less than ``RACY_NS`` before it started (a timestamp
that coarse cannot be trusted to show the next change; the workspace load
cache's rule). ``ORCHESTRATOR_NO_FAST_PATH=1`` turns the fast path off.

Stamps live in ``<cache>/noop-v1/`` of the cache directory the environment
names (``ORCHESTRATOR_CACHE_DIR``, else ``$XDG_CACHE_HOME/orchestrator``,
else ``~/.cache/orchestrator``), like the workspace load cache, also when
workspace.yaml sets ``cache.dir`` (that is only known after reading the YAML;
workspace.yaml's identity covers it). They are ``marshal`` data of plain
tuples, strings, bytes and integers, compared, never executed; a stamp that
does not have that shape is a miss. A read-only cache just means no stamp.

This module imports nothing but ``os``, ``sys`` and ``marshal`` at the top.
"""

from __future__ import annotations

import marshal
import os
import sys

# typing costs 3 ms of a 25 ms no-op; mypy reads any TYPE_CHECKING as true
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from orchestrator.models import Workspace

MAGIC = "orchestrator-noop-stamp-1"
BUCKET = "noop-v1"
RACY_NS = 2_000_000_000
DISABLE_ENV = "ORCHESTRATOR_NO_FAST_PATH"
MAX_OUTPUT = 1 << 20  # a command that printed more than this is not stamped
_FORMS = (("lock", "--check"), ("lock",), ("sync",))
_ENV = ("HOME", "XDG_CACHE_HOME", "NETRC")  # read on these paths besides ORCHESTRATOR_*
_MANIFEST = "workspace.yaml"
# variables whose values a stamp keeps only as a digest (index credentials and the like)
_SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "USERNAME", "KEY", "AUTH", "CRED")

Identity = tuple[int, int, int, int, int, int]
Context = tuple[object, ...]


def parse(argv: Sequence[str]) -> tuple[str | None] | None:
    """``(workspace path or None,)`` when *argv* is a form the fast path may answer."""
    workspace: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-q", "--quiet"):
            i += 1
        elif arg in ("-w", "--workspace") and workspace is None and i + 1 < len(argv):
            workspace = argv[i + 1]
            i += 2
        elif arg.startswith("--workspace=") and workspace is None:
            workspace = arg.partition("=")[2]
            i += 1
        else:
            break
    if workspace == "" or tuple(argv[i:]) not in _FORMS:
        return None
    return (workspace,)


def enabled() -> bool:
    """Off with ORCHESTRATOR_NO_FAST_PATH, and during shell completion."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return False
    return not any(k.startswith("_ORCHESTRATOR") for k in os.environ)


def _ident(path: str) -> Identity | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev, st.st_mode)


def cache_dir() -> str | None:
    """``models.default_cache_dir`` without pathlib; None when there is no home to find."""
    env = os.environ.get("ORCHESTRATOR_CACHE_DIR")
    if env:
        return os.path.expanduser(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = os.path.expanduser(xdg) if xdg else os.path.join(os.path.expanduser("~"), ".cache")
    if base.startswith("~"):
        return None
    return os.path.join(base, "orchestrator")


def _stamp_path(context: Context) -> str | None:
    """One stamp per context: a terminal and a pipe, or two environments, each keep theirs."""
    root = cache_dir()
    if root is None:
        return None
    import zlib  # 0.1 ms; hashlib costs more than the rest of the fast path

    # the stamp holds its whole context, so a collision of the name is only a miss
    data = repr(context).encode("utf-8", "surrogateescape")
    return os.path.join(root, BUCKET, f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}.stamp")


def _streams() -> tuple[object, ...] | None:
    out = []
    for stream in (sys.stdout, sys.stderr):
        if stream is None or getattr(stream, "buffer", None) is None:
            return None
        try:
            out.append((bool(stream.isatty()), str(stream.encoding), str(stream.errors)))
        except (OSError, ValueError, AttributeError):
            return None
    return tuple(out)


def _context(argv: Sequence[str], workspace: str | None, cwd: str) -> Context | None:
    streams = _streams()
    if streams is None:
        return None
    env = tuple(sorted((k, _digest(v) if any(w in k for w in _SECRET_WORDS) else v)
                       for k, v in os.environ.items()
                       if k.startswith("ORCHESTRATOR_") or k in _ENV))
    uname = os.uname()
    start = os.path.realpath(os.path.join(cwd, workspace) if workspace is not None else cwd)
    return (tuple(argv), cwd, start, os.path.isfile(start), sys.executable, sys.version,
            tuple(sys.flags), tuple(sys.path),
            os.path.dirname(os.path.abspath(__file__)), env, streams,
            (uname.sysname, uname.machine), (os.getuid(), os.getgid()))


def _digest(value: str) -> str:
    """A credential's value as the stamp keeps it: its SHA-256, never the value."""
    import hashlib

    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def answer(argv: Sequence[str]) -> int | None:
    """Write what the stamp of *argv* recorded and return its exit code; None: a miss."""
    parsed = parse(argv)
    if parsed is None or not enabled():
        return None
    try:
        context = _context(argv, parsed[0], os.getcwd())
        path = _stamp_path(context) if context is not None else None
        if path is None or context is None:
            return None
        with open(path, "rb") as handle:
            stamp = marshal.loads(handle.read())
        outputs = _valid(stamp, context)
    except Exception:  # a damaged, foreign or unreadable stamp is a miss
        return None
    if outputs is None:
        return None
    streams = {1: sys.stdout, 2: sys.stderr}
    try:
        for fd, data in outputs[0]:
            stream = streams[fd]
            stream.flush()
            stream.buffer.write(data)
            stream.buffer.flush()
    except BrokenPipeError:  # as click does: exit 1, and nothing more said at shutdown
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115
        return 1
    return outputs[1]


def _valid(stamp: object, context: Context
           ) -> tuple[tuple[tuple[int, bytes], ...], int] | None:
    """The outputs and exit code of *stamp* if it is one for *context* and still true."""
    if not isinstance(stamp, tuple) or len(stamp) != 5 or stamp[0] != MAGIC:
        return None
    _magic, recorded, files, outputs, code = stamp
    if recorded != context or not isinstance(files, tuple) or not isinstance(code, int):
        return None
    for item in files:
        if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str):
            return None
        if _ident(item[0]) != item[1]:
            return None
    if not isinstance(outputs, tuple) or not all(
            isinstance(o, tuple) and len(o) == 2 and o[0] in (1, 2) and isinstance(o[1], bytes)
            for o in outputs):
        return None
    return outputs, code


# -- recording (the normal path) -----------------------------------------------------


class _Tee:
    """A text stream that passes everything on and remembers what was written."""

    def __init__(self, stream: object, fd: int, chunks: list[tuple[int, bytes]]) -> None:
        self._stream = stream
        self._fd = fd
        self._chunks = chunks
        self.buffer = _BinaryTee(getattr(stream, "buffer"), fd, chunks)  # noqa: B009

    def write(self, text: str) -> int:
        written: int = self._stream.write(text)  # type: ignore[attr-defined]
        if isinstance(text, str) and text:
            encoding = str(getattr(self._stream, "encoding", None) or "utf-8")
            errors = str(getattr(self._stream, "errors", None) or "strict")
            self._chunks.append((self._fd, text.encode(encoding, errors)))
        return written

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


class _BinaryTee:
    def __init__(self, stream: object, fd: int, chunks: list[tuple[int, bytes]]) -> None:
        self._stream = stream
        self._fd = fd
        self._chunks = chunks

    def write(self, data: bytes) -> int:
        written: int = self._stream.write(data)  # type: ignore[attr-defined]
        if data:
            self._chunks.append((self._fd, bytes(data)))
        return written

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


_ACTIVE: list[Recorder] = []


class Recorder:
    """Captures a fast-path form's normal run; ``finish`` stamps it if it was a no-op."""

    def __init__(self, argv: Sequence[str], workspace: str | None, cwd: str,
                 context: Context, path: str) -> None:
        import time

        self.argv = tuple(argv)
        self.workspace = workspace
        self.cwd = cwd
        self.context = context
        self.path = path
        self.started = time.time_ns()
        self.chunks: list[tuple[int, bytes]] = []
        self.vouched: tuple[Workspace, tuple[str, ...]] | None = None
        self._saved = (sys.stdout, sys.stderr)

    @classmethod
    def start(cls, argv: Sequence[str]) -> Recorder | None:
        """A recorder for *argv*, its streams captured from now on; None if not a form."""
        parsed = parse(argv)
        if parsed is None or not enabled():
            return None
        try:
            cwd = os.getcwd()
            context = _context(argv, parsed[0], cwd)
            path = _stamp_path(context) if context is not None else None
        except Exception:  # e.g. no os.uname: no stamp, the command runs as ever
            return None
        if path is None or context is None:
            return None
        recorder = cls(argv, parsed[0], cwd, context, path)
        sys.stdout = _Tee(sys.stdout, 1, recorder.chunks)
        sys.stderr = _Tee(sys.stderr, 2, recorder.chunks)
        _ACTIVE.append(recorder)
        return recorder

    def stop(self) -> None:
        """Put the streams back (idempotent)."""
        if self in _ACTIVE:
            _ACTIVE.remove(self)
            sys.stdout, sys.stderr = self._saved

    def finish(self, code: object) -> None:
        """Stamp the run if it exited 0 and its command vouched that it changed nothing."""
        self.stop()
        if code not in (0, None) or self.vouched is None:
            return
        try:
            files = self._files(*self.vouched)
        except Exception:  # no stamp is always safe
            return
        if files is None or sum(len(c[1]) for c in self.chunks) > MAX_OUTPUT:
            return
        for _path, ident in files:
            if ident is not None and max(ident[0], ident[1]) > self.started - RACY_NS:
                return
        stamp = (MAGIC, self.context, tuple(files), tuple(self.chunks), 0)
        import contextlib
        from pathlib import Path

        from orchestrator.atomic import write_bytes

        with contextlib.suppress(Exception):  # a read-only or full cache: no stamp
            write_bytes(Path(self.path), marshal.dumps(stamp))  # type: ignore[arg-type]

    def _files(self, workspace: Workspace, extra: Sequence[str]
               ) -> list[tuple[str, Identity | None]] | None:
        paths: list[str] = []
        start = str(self.context[2])
        manifest = str(workspace.manifest)
        if not self.context[3]:  # a directory: find_manifest walked up from here
            directory = start
            while True:
                candidate = os.path.join(directory, _MANIFEST)
                paths.append(candidate)
                if candidate == manifest or os.path.dirname(directory) == directory:
                    break
                directory = os.path.dirname(directory)
            if paths[-1] != manifest:
                return None
        paths.append(manifest)
        paths += [str(m.pyproject) for m in workspace.members]
        globbed = _glob_inputs(workspace.manifest, str(workspace.root))
        if globbed is None:
            return None
        paths += globbed
        paths += extra
        paths += _code_files()
        return [(p, _ident(p)) for p in dict.fromkeys(paths)]


def vouch(workspace: Workspace, files: Iterable[Path | str]) -> None:
    """The running command finished as a no-op whose answer rests on *files* (and the
    workspace's own inputs). Only a fast-path form being recorded listens."""
    if _ACTIVE:
        _ACTIVE[-1].vouched = (workspace, tuple(str(f) for f in files))


def _glob_inputs(manifest: Path, root: str) -> list[str] | None:
    """Every directory the member and exclude globs list, and every pyproject.toml one of
    them could match; None for a glob this does not follow (``**``, an odd manifest)."""
    import yaml

    data = yaml.load(manifest.read_text("utf-8"),
                     Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(data, dict):
        return None
    patterns = [*(data.get("members") or ()), *(data.get("exclude") or ())]
    out: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            return None
        parts = [p for p in pattern.strip().split("/") if p not in ("", ".")]
        if any("**" in p or p == ".." for p in parts):
            return None
        level = [root]
        for part in parts:
            found: list[str] = []
            wild = any(ch in part for ch in "*?[")
            for directory in level:
                if not wild:  # the one path it names, there or not
                    out.append(os.path.join(directory, part))
                    names = [part]
                else:  # its entries decide what the part matches: all kept (a superset)
                    out.append(directory)
                    try:
                        names = os.listdir(directory)
                    except OSError:
                        continue
                for name in names:
                    child = os.path.join(directory, name)
                    if os.path.isdir(child):
                        found.append(child)
            level = found
        out += [os.path.join(d, "pyproject.toml") for d in level]
    return out


def _code_files() -> list[str]:
    """The files of every module loaded from outside the standard library."""
    stdlib = os.path.dirname(os.__file__) + os.sep
    out = []
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and (not file.startswith(stdlib) or "-packages" in file):
            out.append(file)
    return sorted(out)
