"""Load and validate a workspace: workspace.yaml plus each member's pyproject.toml.

Every error names the file, the key path inside it and what was expected, so a
user can fix the input without reading this code.

Problems of workspace.yaml itself are fatal and raised at once. A member's
problems are collected instead, all of them, and the member is left out:
``inspect_workspace`` returns the members that loaded together with every
problem (what ``check`` lists), ``load_workspace`` raises the first one (what
every other command refuses with). What loading accepts but a user should
know (dependencies only Poetry sees) becomes ``Workspace.warnings``.

A workspace that loaded without a problem is kept, parsed, in the user cache
(``<cache>/workspaces-v1/``, see ``_LoadCache``): the next command whose
inputs are unchanged (workspace.yaml and every member's pyproject.toml by
their stat, the member globs by matching them again, this module's code)
uses it instead of reading YAML and TOML and validating every requirement
again; that is most of what a no-op command costs.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn, ParamSpec, TypeVar

from orchestrator.errors import WorkspaceError
from orchestrator.models import (
    FAIL_ON_LEVELS,
    AuditIgnore,
    AuditSpec,
    HttpTimeouts,
    ImageSpec,
    IndexSpec,
    LicensePolicy,
    LoadWarning,
    Member,
    MemberOptions,
    PolicySpec,
    PublishSpec,
    RepositorySpec,
    Workspace,
    default_cache_dir,
)
from orchestrator.names import normalize

MANIFEST = "workspace.yaml"
KNOWN_PLATFORMS = ("linux/amd64", "linux/arm64")
IMAGE_COMPRESSIONS = ("gzip", "zstd")  # oci.layers.COMPRESSIONS (a test keeps them equal)
DEFAULT_INDEX = IndexSpec("pypi", "https://pypi.org/simple")
INIT_FROM_POETRY = "`orchestrator init --from poetry`"


class _Pattern:
    """A regex compiled when first used: a load served by ``_LoadCache`` uses none."""

    __slots__ = ("_compiled", "_flags", "_pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._pattern, self._flags = pattern, flags
        self._compiled: re.Pattern[str] | None = None

    def match(self, text: str) -> re.Match[str] | None:
        if self._compiled is None:
            self._compiled = re.compile(self._pattern, self._flags)
        return self._compiled.match(text)


_PYTHON = _Pattern(r"^3\.(\d{1,2})$")
_NAME = _Pattern(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_INDEX_NAME = _Pattern(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_LICENSE = _Pattern(r"^[A-Za-z0-9.+*?\[\]():_ -]*[A-Za-z0-9*?+)\]]$")  # ids, AND/OR/WITH, globs

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class Inspection:
    """A workspace as far as it loads, and every problem found on the way.

    *workspace* holds the members that loaded; a member with a problem is
    left out and named in *broken* (its project name, or its path when the
    name itself is unreadable). *problems* are in file order.
    """

    workspace: Workspace
    problems: tuple[WorkspaceError, ...]
    broken: frozenset[str]


def find_manifest(start: Path) -> Path:
    """Walk up from *start* to the nearest workspace.yaml, as git finds .git."""
    start = start.resolve()
    if start.is_file():
        return start
    for directory in (start, *start.parents):
        candidate = directory / MANIFEST
        if candidate.is_file():
            return candidate
    raise WorkspaceError(
        f"no {MANIFEST} found in {start} or any parent directory",
        hint=f"run inside a workspace, pass --workspace PATH, or create {MANIFEST}",
    )


def load_workspace(start: Path | None = None) -> Workspace:
    """Find, read and validate the workspace containing *start* (default: cwd).

    Raises the first problem found; ``inspect_workspace`` returns them all.
    """
    inspection = inspect_workspace(start)
    if inspection.problems:
        raise inspection.problems[0]
    return inspection.workspace


def inspect_workspace(start: Path | None = None) -> Inspection:
    """The workspace with every member problem collected; raises only fatal ones.

    Fatal: no workspace.yaml, or one that is unreadable or invalid itself.
    """
    manifest = find_manifest(start if start is not None else Path.cwd())
    loader = _Loader(manifest)
    cache = _LoadCache(loader)
    cached = cache.get()
    if cached is not None:
        return cached
    inspection = loader.load()
    if not inspection.problems:
        cache.put(inspection, loader.read_files)
    return inspection


class _LoadCache:
    """A loaded workspace kept in ``<cache>/workspaces-v1/``, valid while its inputs are.

    The entry is a pickle of the Inspection with the stat (mtime and ctime
    in ns, size, inode) of every file the load read, the member globs and
    the member directories they matched. It is used only when every file
    stats the same, the globs still match the same directories, and it was
    written by this code (the key covers the modules that build a Workspace,
    the Python version, the workspace.yaml path, the name messages give it
    and $HOME, which `cache.dir: ~/…` reads). A file changed within
    ``RACY_SECONDS`` before the load is not trusted to show a later change
    in its timestamps (a coarse clock), so no entry is written then. Only a
    load without problems is kept; anything unreadable is a miss.
    """

    RACY_SECONDS = 2.0
    BUCKET = "workspaces-v1"

    def __init__(self, loader: _Loader) -> None:
        import hashlib

        self.loader = loader
        code = [sys.version, str(Path(__file__).parent)]
        for module in ("workspace.py", "models.py", "graph.py", "names.py"):
            code.append(repr(_stat(Path(__file__).with_name(module))))
        key = "\0".join([*code, str(loader.manifest), loader.label,
                          os.environ.get("HOME", "")])
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        try:
            self.path: Path | None = default_cache_dir() / self.BUCKET / f"{digest}.pickle"
        except RuntimeError:  # no home directory to find the cache in: no load cache
            self.path = None

    def get(self) -> Inspection | None:
        if self.path is None:
            return None
        try:
            data = self.path.read_bytes()
        except OSError:
            return None
        try:
            entry = _load_entry(data)
            if not isinstance(entry, tuple) or len(entry) != 5:
                return None
            stats, globs, exclude, directories, inspection = entry
            if not isinstance(inspection, Inspection) or inspection.problems:
                return None
            if any(_stat(Path(path)) != stat for path, stat in stats):
                return None
            probe = _Loader(self.loader.manifest)
            if probe.soft(probe._expand, globs, exclude) != directories or probe.problems:
                return None
        except Exception:  # a damaged or foreign entry is a miss, whatever it raises
            return None
        return inspection

    def put(self, inspection: Inspection, files: Sequence[Path]) -> None:
        import pickle

        stats = [(str(path), _stat(path)) for path in files]
        newest = max((max(stat[0], stat[1]) for _path, stat in stats if stat), default=0)
        if self.path is None or any(stat is None for _path, stat in stats) or \
                time.time_ns() - newest < self.RACY_SECONDS * 1e9:
            return
        loader = self.loader
        entry = (stats, loader.globs, loader.exclude, loader.directories, inspection)
        from orchestrator.atomic import write_bytes

        # the entry only saves time: a read-only or full cache directory is no error
        with contextlib.suppress(Exception):
            write_bytes(self.path, pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))


def _load_entry(data: bytes) -> object:
    """Unpickle a load-cache entry, building only the workspace's own value classes.

    The entry lives in a cache directory that CI systems restore from shared
    storage; a plain ``pickle.loads`` of a planted file would run whatever it
    names. Here a global resolves only to a dataclass of
    ``orchestrator.models`` / ``orchestrator.workspace`` or a pathlib or
    datetime value; anything else raises, and the entry is a miss.
    """
    import dataclasses
    import datetime
    import io
    import pathlib
    import pickle

    plain: dict[tuple[str, str], object] = {
        ("pathlib", "PosixPath"): pathlib.PosixPath,
        ("pathlib", "PurePosixPath"): pathlib.PurePosixPath,
        ("datetime", "date"): datetime.date,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "set"): set,
    }

    class SafeUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            if (module, name) in plain:
                return plain[(module, name)]
            if module in ("orchestrator.models", "orchestrator.workspace"):
                found = getattr(sys.modules[module], name, None)
                if isinstance(found, type) and dataclasses.is_dataclass(found):
                    return found
            raise pickle.UnpicklingError(f"{module}.{name} is not a workspace value")

    entry: object = SafeUnpickler(io.BytesIO(data)).load()
    return entry


def _stat(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino


class _Reporter:
    """Raises the WorkspaceErrors of one file, their text built from their fields.

    Every message reads ``<file>: <key path>: <problem>``; ``expect`` and
    ``missing`` write the problem from *expected* and *actual* themselves, so
    that the text and the fields of an error cannot disagree. ``soft`` turns
    a raised problem into a collected one, so one bad value does not hide
    the next.
    """

    def __init__(self, file: Path, label: str) -> None:
        self.file = file
        self.label = label  # the file as messages name it
        self.member: str | None = None  # set once the member's name is known
        self.problems: list[WorkspaceError] = []

    def fail(self, key: str, problem: str, hint: str | None = None, *,
             expected: str | None = None, actual: str | None = None,
             package: str | None = None) -> NoReturn:
        where = f"{self.label}: {key}: " if key else f"{self.label}: "
        raise WorkspaceError(where + problem, hint=hint, file=self.file, key=key or None,
                             member=self.member, package=package, expected=expected,
                             actual=actual)

    def expect(self, key: str, expected: str, actual: str | None = None,
               hint: str | None = None) -> NoReturn:
        """``expected <expected>, got <actual>``; *actual* as ``_describe`` writes a value."""
        got = f", got {actual}" if actual is not None else ""
        self.fail(key, f"expected {expected}{got}", hint, expected=expected, actual=actual)

    def mapping(self, key: str, value: object, allowed: set[str], expected: str
                ) -> dict[str, Any]:
        """*value* when it is a mapping with no key outside *allowed*; else the problem."""
        if not isinstance(value, dict):
            self.expect(key, expected, _describe(value))
        for where, hint in _unknown_keys(value, allowed, key):
            self.fail(where, "unknown key", hint)
        return value

    def missing(self, key: str, expected: str, hint: str | None = None) -> NoReturn:
        self.fail(key, f"missing; expected {expected}", hint, expected=expected)

    def invalid(self, key: str, expected: str, value: str, hint: str | None = None) -> NoReturn:
        """``'<value>' is not <expected>``."""
        actual = repr(value)
        self.fail(key, f"{actual} is not {expected}", hint, expected=expected, actual=actual)

    def soft(self, make: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T | None:
        """``make(*args, **kwargs)``; None when it raises a problem, which is collected."""
        try:
            return make(*args, **kwargs)
        except WorkspaceError as exc:
            self.collect(exc)
            return None

    def collect(self, exc: WorkspaceError) -> None:
        # An included dependency group is expanded once per includer: report it once.
        if not any(p.key == exc.key and p.message == exc.message for p in self.problems):
            self.problems.append(exc)


class _Loader(_Reporter):
    def __init__(self, manifest: Path) -> None:
        self.manifest = manifest
        self.root = manifest.parent
        super().__init__(manifest, manifest.name if manifest.parent == Path.cwd()
                         else str(manifest))
        # what the load read, for _LoadCache
        self.read_files: list[Path] = [manifest]
        self.globs: tuple[str, ...] = ()
        self.exclude: tuple[str, ...] = ()
        self.directories: list[Path] = []

    def load(self) -> Inspection:
        data = self._read_yaml()
        allowed = {"version", "name", "python", "platforms", "indexes", "members", "exclude",
                   "image", "cache", "publish", "audit", "license", "policy", "http"}
        for where, hint in _unknown_keys(data, allowed, ""):
            self.fail(where, "unknown key", hint)
        if "version" not in data:
            self.missing("version", "`version: 1`")
        if data["version"] != 1:
            self.expect("version", "1", repr(data["version"]),
                        "this orchestrator reads workspace.yaml version 1")
        name = self._str(data, "name", required=True)
        python = self._python(data.get("python", "3.11"))
        platforms = self._platforms(data.get("platforms", ["linux/amd64"]))
        indexes = self._indexes(data.get("indexes"))
        image = self._image(data.get("image", {}), python)
        cache_dir = self._cache(data.get("cache"))
        cache_remote = self._cache_remote(data.get("cache"))
        publish = self._publish(data.get("publish"))
        audit = self._audit(data.get("audit"))
        license_policy = self._license(data.get("license"))
        policy = self._policy(data.get("policy"))
        http_timeout = self._http(data.get("http"))
        globs = self._str_list(data, "members", required=True)
        exclude = self._str_list(data, "exclude", required=False)
        index_names = {index.name for index in indexes}
        self.globs, self.exclude = globs, exclude
        self.directories = self._expand(globs, exclude)
        self.read_files += [d / "pyproject.toml" for d in self.directories]
        loaders = [_MemberLoader(self.root, d, index_names) for d in self.directories]
        members, broken, warnings = self._members(loaders)
        workspace = Workspace(
            root=self.root, manifest=self.manifest, name=name, python=python,
            platforms=platforms, indexes=indexes, members=tuple(members), image=image,
            cache_dir=cache_dir, cache_remote=cache_remote, warnings=tuple(warnings),
            publish=publish,
            audit=audit, license=license_policy, policy=policy, http_timeout=http_timeout,
        )
        return Inspection(workspace, tuple(self.problems), frozenset(broken))

    def _members(self, loaders: Sequence[_MemberLoader]
                 ) -> tuple[list[Member], set[str], list[LoadWarning]]:
        """Load every member; those with a problem are left out (and named in *broken*)."""
        loaded = [(loader, loader.load()) for loader in loaders]
        names = {m.name for _loader, m in loaded if m is not None}
        members: list[Member] = []
        broken: set[str] = set()
        warnings: list[LoadWarning] = []
        seen: dict[str, Member] = {}
        for loader, member in loaded:
            loader.check_direct_references(names)
            if member is not None and member.name in seen:
                loader.collect(_duplicate(seen[member.name], member))
            self.problems.extend(loader.problems)
            warnings.extend(loader.warnings)
            if member is None or loader.problems:
                broken.add(loader.member or loader.relpath)
                continue
            seen[member.name] = member
            members.append(member)
        return members, broken, warnings

    def _read_yaml(self) -> dict[str, Any]:
        import yaml

        try:
            text = self.manifest.read_text(encoding="utf-8")
        except OSError as exc:
            self.fail("", f"cannot read the file ({exc.strerror})")
        try:
            # libyaml's loader when PyYAML has it: the same result, several times faster
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            self.fail("", f"{at}invalid YAML ({problem})", "fix the syntax at that position")
        if not isinstance(data, dict):
            got = "an empty file" if data is None else f"a {_yaml_type(data)}"
            self.expect("", "a mapping of keys (version, name, members, ...)", got,
                        "see the workspace.yaml reference in README.md")
        return data

    def _str(self, data: Mapping[str, Any], key: str, *, required: bool,
             path: str | None = None) -> str:
        path = path or key
        if key not in data:
            if required:
                self.missing(path, "a string")
            return ""
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            self.expect(path, "a non-empty string", _describe(value))
        return value

    def _str_list(self, data: Mapping[str, Any], key: str, *, required: bool) -> tuple[str, ...]:
        if key not in data:
            if required:
                self.missing(key, "a list of directory globs such as services/*")
            return ()
        value = data[key]
        if not isinstance(value, list) or (required and not value):
            self.expect(key, "a non-empty list of strings", _describe(value))
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.expect(f"{key}[{i}]", "a directory glob such as services/*",
                            _describe(item))
        return tuple(value)

    def _python(self, value: object) -> str:
        if isinstance(value, float):  # YAML reads an unquoted 3.10 as the float 3.1
            actual = f"the number {value!r}"
            self.fail("python", f"got {actual}; quote it, e.g. python: \"3.11\"", actual=actual)
        if not isinstance(value, str) or not _PYTHON.match(value):
            self.expect("python", "a CPython version like \"3.11\"", _describe(value))
        if int(value.split(".")[1]) < 8:
            expected = "3.8 or newer"
            self.fail("python", f"Python {value} is not supported; use {expected}",
                      expected=expected, actual=value)
        return value

    def _platforms(self, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.expect("platforms", "a non-empty list such as [linux/amd64]", _describe(value))
        expected = "one of " + ", ".join(KNOWN_PLATFORMS)
        for i, item in enumerate(value):
            if item not in KNOWN_PLATFORMS:
                actual = repr(item)
                self.fail(f"platforms[{i}]", f"unknown platform {actual}; expected {expected}",
                          expected=expected, actual=actual)
        if len(set(value)) != len(value):
            self.fail("platforms", "lists a platform twice")
        return tuple(value)

    def _indexes(self, value: object) -> tuple[IndexSpec, ...]:
        if value is None:
            return (DEFAULT_INDEX,)
        if not isinstance(value, list) or not value:
            self.expect("indexes", "a non-empty list of {name, url}", _describe(value))
        indexes: list[IndexSpec] = []
        for i, item in enumerate(value):
            path = f"indexes[{i}]"
            item = self.mapping(path, item, {"name", "url"}, "a mapping with name and url")
            name = self._str(item, "name", required=True, path=f"{path}.name")
            url = self._str(item, "url", required=True, path=f"{path}.url")
            if not _INDEX_NAME.match(name):
                self.invalid(f"{path}.name", "a valid index name (letters, digits, - and _)", name)
            if not url.startswith(("https://", "http://", "file://")):
                self.expect(f"{path}.url", "an http(s) URL", repr(url))
            if "@" in url.split("//", 1)[1].split("/", 1)[0]:
                self.fail(f"{path}.url", "holds credentials; credentials never live in "
                          "workspace.yaml", f"set ORCHESTRATOR_INDEX_{_env_name(name)}_USERNAME"
                          f" and _PASSWORD, or use ~/.netrc")
            if any(index.name == name for index in indexes):
                self.fail(f"{path}.name", f"index name {name!r} is used twice")
            indexes.append(IndexSpec(name, url.rstrip("/")))
        return tuple(indexes)

    def _http(self, value: object) -> HttpTimeouts:
        """``http: {timeout: {connect: 10, read: 30, total: 120}}``, seconds, each optional."""
        if value is None:
            return HttpTimeouts()
        value = self.mapping("http", value, {"timeout"}, "a mapping with timeout")
        timeout = value.get("timeout", {})
        timeout = self.mapping("http.timeout", timeout, {"connect", "read", "total"},
                               "a mapping with connect, read and total (seconds)")
        seconds: dict[str, float | None] = {}
        for key in ("connect", "read", "total"):
            raw = timeout.get(key)
            ok = isinstance(raw, (int, float)) and not isinstance(raw, bool) and 0 < raw < 86400
            if raw is not None and not ok:
                self.expect(f"http.timeout.{key}", "a number of seconds greater than 0 "
                            "(and less than a day)", _describe(raw),
                            "e.g. http: {timeout: {connect: 10, read: 30, total: 120}}")
            seconds[key] = None if raw is None else float(raw)
        return HttpTimeouts(**seconds)

    def _image(self, value: object, python: str) -> ImageSpec:
        value = self.mapping("image", value, {"base", "registry", "allow-env-secrets",
                                              "compression"},
                             "a mapping with base and registry")
        base = self._str(value, "base", required=False, path="image.base")
        registry = self._str(value, "registry", required=False, path="image.registry")
        allowed = value.get("allow-env-secrets", [])
        if not isinstance(allowed, list) or not all(isinstance(k, str) for k in allowed):
            self.expect("image.allow-env-secrets", "a list of env variable names",
                        _describe(allowed))
        compression = value.get("compression", "gzip")
        if compression not in IMAGE_COMPRESSIONS:
            self.expect("image.compression", "one of " + ", ".join(IMAGE_COMPRESSIONS),
                        _describe(compression), "write image: {compression: gzip} (read "
                        "everywhere) or zstd (needs Docker 23+ or containerd 1.5+)")
        return ImageSpec(base=base or f"python:{python}-slim",
                         registry=registry.rstrip("/") or None,
                         allow_env_secrets=tuple(allowed), compression=compression)

    def _cache(self, value: object) -> Path | None:
        if value is None:
            return None
        value = self.mapping("cache", value, {"dir", "remote"}, "a mapping with dir")
        raw = self._str(value, "dir", required="remote" not in value, path="cache.dir")
        if not raw:
            return None
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.root / path

    def _cache_remote(self, value: object) -> str | None:
        """`cache.remote`, checked to be an oci:// address (the shape `_cache` checked)."""
        if not isinstance(value, dict) or "remote" not in value:
            return None
        remote = self._str(value, "remote", required=True, path="cache.remote")
        if not remote.startswith("oci://") or "/" not in remote[len("oci://"):]:
            self.expect("cache.remote", "an oci://HOST/REPO address", repr(remote))
        return remote

    def _publish(self, value: object) -> PublishSpec:
        if value is None:
            return PublishSpec()
        value = self.mapping("publish", value, {"workspace-constraint", "repositories"},
                             "a mapping with workspace-constraint and repositories")
        constraint = value.get("workspace-constraint", "compatible")
        if constraint not in ("exact", "compatible", "minimum"):
            self.expect("publish.workspace-constraint", "one of exact, compatible, minimum",
                        _describe(constraint))
        raw = value.get("repositories", [])
        if not isinstance(raw, list):
            self.expect("publish.repositories", "a list of {name, upload-url, index-url}",
                        _describe(raw))
        repositories: list[RepositorySpec] = []
        for i, item in enumerate(raw):
            repository = self._repository(item, f"publish.repositories[{i}]")
            if any(r.name == repository.name for r in repositories):
                self.fail(f"publish.repositories[{i}].name",
                          f"repository name {repository.name!r} is used twice")
            repositories.append(repository)
        return PublishSpec(workspace_constraint=constraint, repositories=tuple(repositories))

    def _repository(self, item: object, path: str) -> RepositorySpec:
        item = self.mapping(path, item, {"name", "upload-url", "index-url"},
                            "a mapping with name, upload-url and index-url")
        name = self._str(item, "name", required=True, path=f"{path}.name")
        if not _INDEX_NAME.match(name):
            self.invalid(f"{path}.name", "a valid repository name (letters, digits, - and _)",
                         name)
        urls: dict[str, str] = {}
        for key in ("upload-url", "index-url"):
            url = self._str(item, key, required=key == "upload-url", path=f"{path}.{key}")
            if not url:
                continue
            if not url.startswith(("https://", "http://")):
                self.expect(f"{path}.{key}", "an http(s) URL", repr(url))
            if "@" in url.split("//", 1)[1].split("/", 1)[0]:
                self.fail(f"{path}.{key}", "holds credentials; credentials never live in "
                          "workspace.yaml", f"set ORCHESTRATOR_PUBLISH_{_env_name(name)}_USERNAME"
                          " and _PASSWORD (or _TOKEN), or use ~/.pypirc")
            urls[key] = url
        return RepositorySpec(name, urls["upload-url"], urls.get("index-url"))

    # -- governance: audit, license, policy ---------------------------------------------

    def _audit(self, value: object) -> AuditSpec:
        if value is None:
            return AuditSpec()
        value = self.mapping("audit", value, {"db", "ignore", "fail-on"},
                             "a mapping with db, ignore and fail-on")
        fail_on = value.get("fail-on", "any")
        if fail_on not in FAIL_ON_LEVELS:
            self.expect("audit.fail-on", f"one of {', '.join(FAIL_ON_LEVELS)}",
                        _describe(fail_on))
        db = None
        if "db" in value:
            raw = self._str(value, "db", required=True, path="audit.db")
            path = Path(raw).expanduser()
            db = path if path.is_absolute() else self.root / path
        ignores = value.get("ignore", [])
        if not isinstance(ignores, list):
            self.expect("audit.ignore", "a list of {id, reason, expires}", _describe(ignores))
        return AuditSpec(db=db, ignore=tuple(self._ignore(item, f"audit.ignore[{i}]")
                                             for i, item in enumerate(ignores)),
                         fail_on=fail_on)

    def _ignore(self, item: object, path: str) -> AuditIgnore:
        item = self.mapping(path, item, {"id", "reason", "expires"},
                            "a mapping with id, reason and expires")
        advisory = self._str(item, "id", required=True, path=f"{path}.id")
        reason = self._str(item, "reason", required=True, path=f"{path}.reason")
        expires = item.get("expires")
        from datetime import date

        if expires is not None and not isinstance(expires, date):
            # YAML reads an unquoted 2025-06-30 as a date; a quoted one is a string.
            try:
                expires = date.fromisoformat(str(expires))
            except ValueError:
                self.expect(f"{path}.expires", "a date such as 2025-06-30", _describe(expires))
        return AuditIgnore(advisory.strip(), reason.strip(), expires)

    def _license(self, value: object) -> LicensePolicy:
        if value is None:
            return LicensePolicy()
        value = self.mapping("license", value, {"allow", "deny", "unknown"},
                             "a mapping with allow, deny and unknown")
        lists: dict[str, tuple[str, ...]] = {}
        for key in ("allow", "deny"):
            items = value.get(key, [])
            if not isinstance(items, list):
                self.expect(f"license.{key}", "a list of SPDX expressions or globs",
                            _describe(items))
            for i, item in enumerate(items):
                if not isinstance(item, str) or not _LICENSE.match(item):
                    self.expect(f"license.{key}[{i}]",
                                "an SPDX expression or a glob such as AGPL-*", _describe(item))
            lists[key] = tuple(item.strip() for item in items)
        unknown = value.get("unknown", "warn")
        if unknown not in ("fail", "warn"):
            self.expect("license.unknown", "fail or warn", _describe(unknown))
        return LicensePolicy(allow=lists["allow"], deny=lists["deny"], unknown=unknown)

    def _policy(self, value: object) -> PolicySpec:
        if value is None:
            return PolicySpec()
        value = self.mapping("policy", value, {"require-upper-bounds"},
                             "a mapping with require-upper-bounds")
        bounds = value.get("require-upper-bounds", False)
        if not isinstance(bounds, bool):
            self.expect("policy.require-upper-bounds", "true or false", _describe(bounds))
        return PolicySpec(require_upper_bounds=bounds)

    # -- member globs ---------------------------------------------------------------

    def _expand(self, globs: Sequence[str], exclude: Sequence[str]) -> list[Path]:
        """The member directories the globs name, each once, in glob order.

        A bad glob is a collected problem: the other globs still load.
        """
        excluded: set[Path] = set()
        for i, pattern in enumerate(exclude):
            excluded.update(p.resolve() for p in self.soft(self._glob, pattern,
                                                           f"exclude[{i}]") or ())
        found: dict[Path, None] = {}
        for i, pattern in enumerate(globs):
            for path in self.soft(self._members_of, pattern, f"members[{i}]", excluded) or ():
                found.setdefault(path, None)
        return list(found)

    def _members_of(self, pattern: str, key: str, excluded: set[Path]) -> list[Path]:
        root = self.root.resolve()
        matches = self._glob(pattern, key)
        if not matches and not any(ch in pattern for ch in "*?["):
            self.fail(key, f"directory {pattern!r} does not exist")
        recursive = "**" in pattern  # every project below: skip directories without one
        out: list[Path] = []
        for path in matches:
            resolved = path.resolve()
            if resolved in excluded or _is_hidden(path.relative_to(self.root)):
                continue
            if not resolved.is_relative_to(root):
                self.fail(key, f"{path} resolves outside the workspace root ({resolved})")
            if not (path / "pyproject.toml").is_file():
                if recursive:
                    continue
                rel = path.relative_to(self.root).as_posix()
                if rel == ".":
                    self.fail(key, f"{pattern!r} makes the workspace root a member, but it has "
                              "no pyproject.toml", "add a pyproject.toml with a [project] table "
                              f"next to {MANIFEST}, or remove {pattern!r} from members")
                self.fail(key, f"member directory {rel} has no pyproject.toml",
                          f"add {rel}/pyproject.toml, or add {rel} to `exclude`")
            out.append(resolved)
        return out

    def _glob(self, pattern: str, key: str) -> list[Path]:
        """The directories *pattern* matches under the root; "." is the root itself.

        pathlib crashes on some patterns (IndexError for ".", AttributeError
        for "./"), and newer Pythons reject others: every one of them becomes
        a problem naming *key*.
        """
        text = pattern.strip()
        pure = PurePosixPath(text)
        if not text:
            self.invalid(key, "a directory glob such as services/*", pattern)
        if pure.is_absolute() or ".." in pure.parts:
            self.fail(key, f"{pattern!r} points outside the workspace root",
                      "members must live under the directory holding workspace.yaml")
        if any("**" in part and part != "**" for part in pure.parts):
            self.invalid(key, "a valid glob: `**` must be a whole path component",
                         pattern, "write libs/** (every project below libs) or libs/*")
        normalized = pure.as_posix()  # "./", "a//b", "a/./b" and a trailing / made plain
        if normalized == ".":
            return [self.root]
        try:
            matches = list(self.root.glob(normalized))
        except (ValueError, IndexError, AttributeError, NotImplementedError, OSError) as exc:
            self.invalid(key, f"a valid directory glob ({exc})", pattern,
                         "use *, ? and [...] within path components, as in services/*")
        return sorted(p for p in matches if p.is_dir())


def _duplicate(first: Member, second: Member) -> WorkspaceError:
    return WorkspaceError(
        f"two members are named {second.name!r}: {first.relpath} and {second.relpath}",
        hint="rename one of them in its pyproject.toml [project].name",
        file=second.pyproject, key="project.name", member=second.name,
    )


@dataclass(frozen=True, slots=True)
class _DirectReference:
    """A `name @ URL` requirement; whether it names a member is known only after all load."""

    key: str
    text: str
    name: str  # normalized


class _MemberLoader(_Reporter):
    """Reads one member's pyproject.toml into a Member, collecting its problems."""

    def __init__(self, root: Path, directory: Path, index_names: set[str]) -> None:
        self.root = root.resolve()
        self.directory = directory
        self.relpath = directory.relative_to(self.root).as_posix()
        self.index_names = index_names
        self.direct: list[_DirectReference] = []
        self.warnings: list[LoadWarning] = []
        label = "pyproject.toml" if self.relpath == "." else f"{self.relpath}/pyproject.toml"
        super().__init__(directory / "pyproject.toml", label)

    def load(self) -> Member | None:
        """The member, or None when its pyproject.toml cannot be read as one at all."""
        try:
            return self._load()
        except WorkspaceError as exc:  # a problem no later field can be read past
            self.collect(exc)
            return None

    def _load(self) -> Member:
        data = self._read()
        project = data.get("project")
        tool = data.get("tool", {})
        poetry = tool.get("poetry") if isinstance(tool, dict) else None
        if not isinstance(project, dict):
            hint = (f"this is a Poetry project: convert it with {INIT_FROM_POETRY}"
                    if isinstance(poetry, dict) else
                    "add a [project] table with name, version and dependencies")
            self.fail("project", "missing; every member needs a PEP 621 [project] table", hint)
        raw_name = project.get("name")
        if not isinstance(raw_name, str) or not _NAME.match(raw_name):
            self.expect("project.name", "a valid project name", _describe(raw_name))
        self.member = normalize(raw_name)
        dynamic = self.soft(self._dynamic, project.get("dynamic", [])) or ()
        version = self.soft(self._version, project.get("version"), dynamic)
        dependencies = self._requirements(project.get("dependencies", []),
                                          "project.dependencies")
        groups = self.soft(self._groups, data.get("dependency-groups", {})) or {}
        if isinstance(poetry, dict):
            self._warn_poetry_only(poetry, dependencies, groups)
        orchestrator = tool.get("orchestrator", {}) if isinstance(tool, dict) else {}
        return Member(
            name=self.member, display_name=raw_name, path=self.directory.resolve(),
            relpath=self.relpath, version=version,
            description=_opt_str(project.get("description")),
            requires_python=self.soft(self._requires_python, project.get("requires-python")),
            dependencies=dependencies,
            groups=groups,
            optional=self.soft(self._optional, project.get("optional-dependencies", {})) or {},
            scripts=self.soft(self._scripts, project.get("scripts", {})) or {},
            options=self._options(orchestrator),
            dynamic=dynamic,
        )

    def _read(self) -> dict[str, Any]:
        import tomllib

        try:
            raw = (self.directory / "pyproject.toml").read_bytes()
            # TOML is UTF-8; a UTF-8 byte-order mark is harmless, UTF-16 is named
            return tomllib.loads(raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
        except UnicodeDecodeError as exc:
            utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
            self.fail("", "the file is UTF-16, but TOML must be UTF-8" if utf16
                      else f"the file is not UTF-8 (byte {exc.start} cannot be decoded)",
                      "save the file as UTF-8 (without a byte-order mark)")
        except tomllib.TOMLDecodeError as exc:
            self.fail("", f"invalid TOML ({exc})")
        except OSError as exc:
            self.fail("", f"cannot read the file ({exc.strerror})")

    def _dynamic(self, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.expect("project.dynamic", "a list of field names such as [\"version\"]",
                        _describe(value))
        if "name" in value:
            self.fail("project.dynamic", "lists 'name', which PEP 621 requires to be static")
        return tuple(value)

    def _version(self, value: object, dynamic: Sequence[str]) -> str | None:
        from packaging.version import InvalidVersion, Version

        if value is None:
            return None
        if not isinstance(value, str):
            self.expect("project.version", "a string", _describe(value))
        if "version" in dynamic:
            self.fail("project.version", "is set and also listed in project.dynamic",
                      "remove one: a static version, or \"version\" in dynamic for the "
                      "build backend to compute")
        try:
            Version(value)
        except InvalidVersion:
            self.invalid("project.version", "a valid PEP 440 version", value)
        return value

    def _requires_python(self, value: object) -> str | None:
        if value is None:
            return None
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        if not isinstance(value, str):
            self.expect("project.requires-python", "a string", _describe(value))
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            pep440 = _poetry_constraint(value)
            hint = (f"this is Poetry syntax; in PEP 440 it reads \"{pep440}\""
                    if pep440 else "write a specifier such as \">=3.11\"")
            self.invalid("project.requires-python", "a valid version specifier", value, hint)
        return value

    def _requirements(self, value: object, key: str) -> tuple[str, ...]:
        """The valid requirements of a list; each invalid one is a collected problem."""
        if not isinstance(value, list):
            self.soft(self.expect, key, "a list of PEP 508 requirement strings",
                      _describe(value))
            return ()
        found = [self.soft(self._requirement, item, f"{key}[{i}]")
                 for i, item in enumerate(value)]
        return tuple(item for item in found if item is not None)

    def _requirement(self, item: object, key: str) -> str:
        from packaging.requirements import InvalidRequirement, Requirement

        if not isinstance(item, str):
            self.expect(key, "a requirement string", _describe(item))
        try:
            parsed = Requirement(item)
        except InvalidRequirement as exc:
            detail, actual = str(exc).splitlines()[0], repr(item)
            pep508 = poetry_requirement(item)
            hint = (f"this is Poetry syntax; in PEP 508 it reads \"{pep508}\"" if pep508
                    else "write a PEP 508 requirement such as \"httpx>=0.27\"")
            self.fail(key, f"invalid requirement {actual}: {detail}", hint, actual=actual)
        if parsed.url:
            self.direct.append(_DirectReference(key, item, normalize(parsed.name)))
        return item

    def check_direct_references(self, members: set[str]) -> None:
        """Direct references are not supported; one to a member wants the bare name."""
        for ref in self.direct:
            actual = repr(ref.text)
            if ref.name in members:
                self.soft(self.fail, ref.key, f"{actual} is a direct reference to the "
                          f"workspace member {ref.name!r}", f"write the bare member name "
                          f"\"{ref.name}\": the workspace links its members itself",
                          actual=actual, package=ref.name)
            else:
                self.soft(self.fail, ref.key, f"direct references are not supported yet: "
                          f"{actual}", f"depend on a release of {ref.name!r} from one of the "
                          "workspace's indexes instead", actual=actual, package=ref.name)

    def _optional(self, value: object) -> dict[str, tuple[str, ...]]:
        key = "project.optional-dependencies"
        if not isinstance(value, dict):
            self.expect(key, "a table of extra -> requirements", _describe(value))
        return {extra: self._requirements(reqs, f"{key}.{extra}") for extra, reqs in value.items()}

    def _groups(self, value: object) -> dict[str, tuple[str, ...]]:
        if not isinstance(value, dict):
            self.expect("dependency-groups", "a table of group -> list", _describe(value))
        names = {normalize(group): group for group in value}
        expanded: dict[str, tuple[str, ...]] = {}

        def expand(group: str, trail: tuple[str, ...]) -> tuple[str, ...]:
            if group in trail:
                cycle = " -> ".join((*trail, group))
                self.fail(f"dependency-groups.{trail[0]}", f"include-group cycle: {cycle}")
            items = value[names[group]]
            key = f"dependency-groups.{names[group]}"
            if not isinstance(items, list):
                self.expect(key, "a list", _describe(items))
            out: list[str] = []
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    include = item.get("include-group")
                    if set(item) != {"include-group"} or not isinstance(include, str):
                        self.expect(f"{key}[{i}]", "{include-group = \"NAME\"}")
                    if normalize(include) not in names:
                        self.fail(f"{key}[{i}].include-group", f"no dependency group named "
                                  f"{include!r}")
                    out.extend(expand(normalize(include), (*trail, group)))
                elif isinstance(item, str):
                    checked = self.soft(self._requirement, item, f"{key}[{i}]")
                    out.extend([checked] if checked is not None else [])
                else:
                    self.expect(f"{key}[{i}]", "a requirement string or {include-group = ...}",
                                _describe(item))
            return tuple(out)

        for group in names:
            expanded[group] = self.soft(expand, group, ()) or ()
        return expanded

    def _warn_poetry_only(self, poetry: Mapping[str, object], dependencies: Sequence[str],
                          groups: Mapping[str, Sequence[str]]) -> None:
        """Warn about dependencies only Poetry reads: this tool (like pip) ignores them."""
        from orchestrator.graph import requirement_name

        # (key of the Poetry table, the table, where PEP 621/735 declares it, what it holds)
        tables: list[tuple[str, object, str, Sequence[str]]] = [
            ("tool.poetry.dependencies", poetry.get("dependencies"), "[project].dependencies",
             dependencies)]
        poetry_groups = poetry.get("group")
        for group, table in (poetry_groups.items() if isinstance(poetry_groups, dict) else ()):
            deps = table.get("dependencies") if isinstance(table, dict) else None
            tables.append((f"tool.poetry.group.{group}.dependencies", deps,
                           f"[dependency-groups].{group}", groups.get(normalize(str(group)), ())))
        for key, table, where, declared in tables:
            if not isinstance(table, dict):
                continue
            have = {requirement_name(r) for r in declared}
            ignored = sorted(str(n) for n in table if normalize(str(n)) not in have
                             and normalize(str(n)) != "python")
            if not ignored:
                continue
            self.warnings.append(LoadWarning(
                f"{self.label}: {key}: {', '.join(ignored)} not in {where}; ignored",
                hint=f"declare them in {where} (PEP 508), or convert the member with "
                f"{INIT_FROM_POETRY}", file=self.file, key=key, member=self.member))

    def _scripts(self, value: object) -> dict[str, str]:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            self.expect("project.scripts", "a table of name = \"module:function\"")
        return dict(value)

    def _options(self, tool: object) -> MemberOptions:
        key = "tool.orchestrator"
        if not isinstance(tool, dict):
            self.soft(self.expect, key, "a table", _describe(tool))
            return MemberOptions()
        for where, hint in _unknown_keys(tool, {"kind", "command", "ports", "env", "sources",
                                                "health", "publish"}, key):
            self.soft(self.fail, where, "unknown key", hint)
        default_kind = "service" if Path(self.relpath).parent.name == "services" else "library"
        kind = tool.get("kind", default_kind)
        if kind not in ("service", "library"):
            self.soft(self.expect, f"{key}.kind", "\"service\" or \"library\"",
                      _describe(kind))
            kind = default_kind
        return MemberOptions(
            kind=kind, command=self.soft(self._command, tool.get("command")),
            ports=self.soft(self._ports, tool.get("ports", [])) or (),
            env=self.soft(self._str_table, tool.get("env", {}), f"{key}.env") or {},
            sources=self.soft(self._sources, tool.get("sources", {})) or {},
            health=self.soft(self._health, tool.get("health")),
            publish=bool(self.soft(self._publish_flag, tool.get("publish", kind == "library"))),
        )

    def _publish_flag(self, value: object) -> bool:
        if not isinstance(value, bool):
            self.expect("tool.orchestrator.publish", "true or false", _describe(value))
        return value

    def _command(self, value: object) -> tuple[str, ...] | None:
        import shlex

        if value is None:
            return None
        if isinstance(value, str) and value.strip():
            return tuple(shlex.split(value))
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return tuple(value)
        self.expect("tool.orchestrator.command", "a string or a list of strings",
                    _describe(value))

    def _ports(self, value: object) -> tuple[int, ...]:
        if not isinstance(value, list):
            self.expect("tool.orchestrator.ports", "a list of port numbers", _describe(value))
        for i, port in enumerate(value):
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                self.expect(f"tool.orchestrator.ports[{i}]", "a port number 1-65535",
                            _describe(port))
        return tuple(value)

    def _str_table(self, value: object, key: str) -> dict[str, str]:
        if not isinstance(value, dict):
            self.expect(key, "a table of strings", _describe(value))
        for name, item in value.items():
            if not isinstance(item, str):
                self.expect(f"{key}.{name}", "a string", _describe(item))
        return dict(value)

    def _sources(self, value: object) -> dict[str, str]:
        table = self._str_table(value, "tool.orchestrator.sources")
        for package, index in table.items():
            if index not in self.index_names:
                known = ", ".join(sorted(self.index_names))
                actual = repr(index)
                self.fail(f"tool.orchestrator.sources.{package}", f"no index named {actual} in "
                          f"workspace.yaml (known: {known})", actual=actual)
        return {normalize(package): index for package, index in table.items()}

    def _health(self, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.startswith("/"):
            self.expect("tool.orchestrator.health", "an HTTP path such as \"/health\"",
                        _describe(value))
        return value


# -- Poetry's version syntax, for hints ------------------------------------------------------

# `requests ^2.31`, `requests (>=2.31 <3)`, `requests[socks] ~2.31; python_version < "3.12"`
_POETRY_REQUIREMENT = _Pattern(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<extras>\[[^\]]*\])?"
    r"\s*(?P<constraint>[^;]*?)\s*(?P<marker>;.*)?$")


def poetry_requirement(text: str) -> str | None:
    """The PEP 508 form of a requirement written with a Poetry constraint, or None.

    For hints only: ``"requests ^2.31"`` -> ``"requests>=2.31,<3.0"``. The
    constraint is read by ``adopt.constraints``, the converter `init` uses.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    match = _POETRY_REQUIREMENT.match(text)
    constraint = match["constraint"].strip().removeprefix("(").removesuffix(")") if match else ""
    pep440 = _poetry_constraint(constraint) if constraint else None
    if match is None or pep440 is None:
        return None
    marker = match["marker"]
    result = f"{match['name']}{match['extras'] or ''}{pep440}"
    result += f"; {marker[1:].strip()}" if marker else ""
    try:
        Requirement(result)
    except InvalidRequirement:
        return None
    return result


def _poetry_constraint(text: str) -> str | None:
    """PEP 440 for a Poetry constraint (``^1.2.3`` -> ``>=1.2.3,<2.0.0``; ``*`` -> ""), or None."""
    from orchestrator.adopt.constraints import ConstraintError, specifier

    try:
        return specifier(text)
    except ConstraintError:
        return None


# -- helpers -------------------------------------------------------------------------------


def _unknown_keys(data: Mapping[str, Any], allowed: set[str], path: str
                  ) -> Iterator[tuple[str, str]]:
    """(key path, hint) of every key of *data* not in *allowed*."""
    import difflib

    for key in data:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            yield where, (f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(
                sorted(allowed)))


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    return f"{_yaml_type(value)} {value!r}"


def _yaml_type(value: object) -> str:
    names = {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "number",
             float: "number"}
    return names.get(type(value), type(value).__name__)


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()
