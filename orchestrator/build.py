"""Source distributions built into wheels once, through PEP 517, in isolation.

Each build unpacks the sdist into a temporary directory, creates a throwaway
venv holding only pip for the target's Python, installs the
``[build-system] requires`` and the backend's ``get_requires_for_build_wheel``
with pip from the workspace's index URLs *only*, then calls the backend's
hooks in a subprocess of that environment.

Build environments are venvs like any other: ``venv.create_venv`` makes
them, asking the interpreter through ``venv.interpreter_facts`` (cached), and
orchestrator's installer puts in the pip wheel virtualenv bundles. So this
module sits above ``venv`` and imports it; nothing below imports this one.

Isolation from this machine's pip configuration: pip runs with
``PIP_CONFIG_FILE=/dev/null`` (pip then reads no configuration file at all,
not even /etc/pip.conf) and without the caller's ``PIP_*`` variables, except
the transport settings in ``_PIP_ENV_KEPT`` (certificates, proxy, timeout),
which say how to reach an index, not which one.

Cache: the built wheel goes into the content-addressed ``wheels-v1`` store
(so it is verified like a downloaded one), and
``built-v1/<sdist sha256>/<target key>.json`` names it. The target key (e.g.
``cp311-linux_amd64``) is part of the address because a platform-specific
wheel built for one Python and platform is useless for another. Metadata is
cached per sdist in ``built-v1/<sdist sha256>/METADATA``: it describes the
source, not a target.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from packaging.utils import parse_wheel_filename

from orchestrator.atomic import write_bytes
from orchestrator.cache import BUILT, WheelCache, file_sha256
from orchestrator.errors import BuildError, VenvError
from orchestrator.models import CoreMetadata, DistFile, Target, platform_for
from orchestrator.venv import WantedDist, create_venv, find_python, install, interpreter_facts
from orchestrator.wheelfile import extract, read_metadata, within

if TYPE_CHECKING:
    from orchestrator.ci.remote_cache import RemoteWheels

_PIP_ENV_KEPT = frozenset(
    {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_DEFAULT_TIMEOUT", "PIP_TIMEOUT"}
)
_DEFAULT_BACKEND = {
    # PEP 517: a project without [build-system] is built by setuptools' legacy backend.
    "requires": ["setuptools>=40.8.0"],
    "build-backend": "setuptools.build_meta:__legacy__",
}

# Runs inside the build environment, in the unpacked source directory.
_HOOK_RUNNER = """\
import importlib, json, sys
hook, backend_spec, backend_path, out = sys.argv[1:5]
extra_paths = json.loads(backend_path)
sys.path[:0] = extra_paths
module, _, attrs = backend_spec.partition(":")
backend = importlib.import_module(module.strip())
for part in filter(None, attrs.strip().split(".")):
    backend = getattr(backend, part)
func = getattr(backend, hook, None)
result = {"missing": True} if func is None else {"return": func(**json.load(sys.stdin))}
with open(out, "w") as f:
    json.dump(result, f)
"""


@dataclass(frozen=True, slots=True)
class BuiltWheel:
    """A wheel built from an sdist, stored in the wheel cache."""

    path: Path
    sha256: str
    sdist_sha256: str
    target: Target


def host_platform() -> str:
    """This machine as a Target platform, e.g. ``linux/amd64``."""
    return platform_for(platform.system(), platform.machine())


class SdistBuilder:
    """Builds sdists into cached wheels and reads their metadata.

    *python* overrides the interpreter builds run with; by default the
    target's ``python3.X`` is looked up on PATH (``venv.find_python``).
    """

    def __init__(
        self,
        cache: WheelCache,
        index_urls: Sequence[str],
        *,
        python: str | Path | None = None,
        remote: RemoteWheels | None = None,
    ) -> None:
        if not index_urls:
            raise BuildError(
                "building sdists needs at least one package index for the build requirements",
                hint="list an index under `indexes:` in workspace.yaml",
            )
        self.cache = cache
        self.index_urls = tuple(index_urls)
        self.python = python
        self.remote = remote  # the runners' shared wheels (cache.remote), asked before building

    # -- public ---------------------------------------------------------------

    def build_wheel(self, sdist: Path, target: Target, *, sha256: str | None = None) -> BuiltWheel:
        """The wheel built from *sdist* for *target*, built now unless cached."""
        sdist_sha = (sha256 or file_sha256(sdist)).lower()
        cached = self._cached_build(sdist_sha, target)
        if cached is not None:
            return cached
        key = f"{BUILT}/{sdist_sha}/{target.key}"
        with tempfile.TemporaryDirectory(prefix="orchestrator-build-") as tmp:
            fetched = self.remote.fetch(key, Path(tmp)) if self.remote is not None else None
            if fetched is not None:
                return self._store(fetched, sdist_sha, target)
            session = _BuildSession(self, sdist, Path(tmp), target)
            wheel = session.build_wheel()
            self._check_target(sdist, wheel, target)
            if self.remote is not None:
                self.remote.store(key, wheel)
            return self._store(wheel, sdist_sha, target)

    def prepare_metadata(
        self, sdist: Path, *, sha256: str | None = None, target: Target | None = None
    ) -> CoreMetadata:
        """Core metadata of *sdist*: PEP 517's prepare hook, else a full wheel build.

        *target* picks the interpreter when a build is needed (the host's
        Python by default).
        """
        sdist_sha = (sha256 or file_sha256(sdist)).lower()
        record = self.cache.root / BUILT / sdist_sha / "METADATA"
        cached = _cached_metadata(record)
        if cached is not None:
            return cached
        target = target or _host_target()
        with tempfile.TemporaryDirectory(prefix="orchestrator-build-") as tmp:
            session = _BuildSession(self, sdist, Path(tmp), target)
            data = session.prepare_metadata()
            if data is None:  # no prepare hook: build the wheel and keep it
                wheel = session.build_wheel()
                self._check_target(sdist, wheel, target)
                built = self._store(wheel, sdist_sha, target)
                data = _metadata_from_wheel(built.path)
        meta = CoreMetadata.parse(data)
        if meta is None:
            raise BuildError(
                f"{sdist.name}: the metadata its build produced has no Name or Version",
                hint="the sdist's build backend is broken; report it to the project",
            )
        write_bytes(record, data)  # only metadata that parses is kept
        return meta

    # -- cache ------------------------------------------------------------------

    def _record(self, sdist_sha: str, target: Target) -> Path:
        return self.cache.root / BUILT / sdist_sha / f"{target.key}.json"

    def _cached_build(self, sdist_sha: str, target: Target) -> BuiltWheel | None:
        try:
            data = json.loads(self._record(sdist_sha, target).read_text("utf-8"))
            file = DistFile(data["filename"], "", "built", sha256=data["sha256"])
        except (OSError, ValueError, KeyError):
            return None
        path = self.cache.get(file)  # verified; None (and rebuilt) if corrupt
        return BuiltWheel(path, data["sha256"], sdist_sha, target) if path else None

    def _store(self, wheel: Path, sdist_sha: str, target: Target) -> BuiltWheel:
        path, sha = self.cache.add(wheel)
        record = json.dumps({"filename": wheel.name, "sha256": sha}, sort_keys=True)
        write_bytes(self._record(sdist_sha, target), record.encode())
        return BuiltWheel(path, sha, sdist_sha, target)

    # -- targets ----------------------------------------------------------------

    def _interpreter(self, target: Target) -> Path:
        if self.python is not None:
            return find_python(self.python)
        if target.python == _THIS_PYTHON:
            return Path(sys.executable)
        return find_python(target.python)

    def _check_target(self, sdist: Path, wheel: Path, target: Target) -> None:
        """A platform-specific wheel is only usable on the host that built it."""
        tags = parse_wheel_filename(wheel.name)[3]
        if all(t.abi == "none" and t.platform == "any" for t in tags):
            return  # pure Python: good for every target
        host = host_platform()
        built_for = interpreter_facts(self._interpreter(target), self.cache.root).major_minor
        if target.platform != host or built_for != target.python:
            raise BuildError(
                f"{sdist.name} builds a platform-specific wheel ({wheel.name}), which cannot "
                f"be cross-built for {target.platform} and Python {target.python} on this "
                f"{host} host with Python {built_for}",
                hint=f"publish a {target.platform} wheel of it to your index, or run the "
                f"build on a {target.platform} machine with Python {target.python}",
            )


class _BuildSession:
    """One source tree next to its build environment.

    For an sdist the tree is unpacked into *tmp* and the environment is
    throwaway; a workspace member builds in place with a persistent
    environment (``python`` given), see ``MemberBuilder``.
    """

    def __init__(
        self,
        builder: SdistBuilder,
        sdist: Path,
        tmp: Path,
        target: Target,
        *,
        source: Path | None = None,
        python: Path | None = None,
    ) -> None:
        self.builder = builder
        self.sdist = sdist  # for messages: the sdist, or the member's directory
        self.tmp = tmp
        self.target = target
        self.source = source or _unpack_sdist(sdist, tmp / "src")
        self.backend, self.backend_path, self.requires = _build_system(self.source, sdist)
        self._extra_done: set[str] = set()  # get_requires hooks already run
        if python is None:
            self.python = self._create_env(builder._interpreter(target), tmp / "env")
            self._pip_install(self.requires, "the [build-system] requirements")
        else:
            self.python = python

    def build_wheel(self) -> Path:
        """The wheel the backend's ``build_wheel`` hook makes of the source tree."""
        return self._build("wheel", ".whl")

    def prepare_metadata(self) -> bytes | None:
        """METADATA from ``prepare_metadata_for_build_wheel``, or None without that hook."""
        self._install_extra_requires("get_requires_for_build_wheel")
        out = self.tmp / "metadata"
        out.mkdir()
        args = {"metadata_directory": str(out), "config_settings": None}
        result = self._hook("prepare_metadata_for_build_wheel", args, optional=True)
        if result is _MISSING:
            return None
        try:
            return (out / str(result) / "METADATA").read_bytes()
        except OSError as exc:
            raise BuildError(
                f"{self.sdist.name}: the build backend {self.backend} reported {result!r} "
                "from prepare_metadata_for_build_wheel, but wrote no METADATA in it",
                hint="the package's build backend is broken; report it to the project",
            ) from exc

    # -- environment --------------------------------------------------------------

    def _install_extra_requires(self, hook: str) -> None:
        """Run a ``get_requires_for_build_*`` hook and install what it asks for, once.

        ``prepare_metadata`` then ``build_wheel`` ask the same hook: the second
        call would only repeat a hook subprocess and a no-op pip install.
        """
        if hook in self._extra_done:
            return
        self._extra_done.add(hook)
        extra = self._hook(hook, {"config_settings": None})
        if isinstance(extra, list) and extra:
            self._pip_install([str(r) for r in extra], "the backend's extra requirements")

    def _create_env(self, interpreter: Path, env: Path) -> Path:
        return create_build_env(self.sdist.name, interpreter, env, self.builder.cache)

    def _pip_install(self, requirements: Sequence[str], what: str) -> None:
        pip_install(self.sdist.name, self.python, self.builder.index_urls, requirements, what)

    def _hook(self, name: str, kwargs: Mapping[str, Any], *, optional: bool = False) -> object:
        out = self.tmp / f"{name}.json"
        argv = [str(self.python), "-c", _HOOK_RUNNER, name, self.backend]
        argv += [json.dumps(self.backend_path), str(out)]
        proc = subprocess.run(
            argv,
            cwd=self.source,
            input=json.dumps(dict(kwargs)),
            env={**_pip_env(), **self.hook_env},
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BuildError(
                f"{self.sdist.name}: the build backend {self.backend} failed in {name}:\n"
                f"{_tail(proc.stdout + proc.stderr)}",
                hint="fix the package's build (the output above says why), or publish "
                "a wheel of it so no build is needed",
            )
        result: dict[str, object] = json.loads(out.read_text("utf-8"))
        if "missing" in result:
            if optional or name.startswith("get_requires"):
                return _MISSING if optional else []
            raise BuildError(
                f"{self.sdist.name}: the build backend {self.backend} has no {name} hook",
                hint="the backend does not implement PEP 517; report it to the project",
            )
        return result["return"]

    # Added to the hooks' environment (publish sets SOURCE_DATE_EPOCH); empty otherwise.
    hook_env: Mapping[str, str] = MappingProxyType({})

    def build_sdist(self) -> Path:
        """The sdist the backend's ``build_sdist`` hook makes of the source tree."""
        return self._build("sdist", ".tar.gz")

    def _build(self, kind: str, suffix: str) -> Path:
        """Run ``build_<kind>`` (after its ``get_requires`` hook) into a new directory."""
        self._install_extra_requires(f"get_requires_for_build_{kind}")
        out = self.tmp / kind
        out.mkdir()
        args = {f"{kind}_directory": str(out), "config_settings": None}
        name = self._hook(f"build_{kind}", args)
        built = out / str(name)
        # A name that is not a file of that kind would fail later, as a bare traceback.
        if not built.is_file() or not built.name.endswith(suffix):
            raise BuildError(
                f"{self.sdist.name}: the build backend {self.backend} reported {name!r}, "
                f"but wrote no {suffix} file of that name",
                hint="the package's build backend is broken; report it to the project",
            )
        return built


def create_build_env(label: str, interpreter: Path, env: Path, cache: WheelCache) -> Path:
    """A venv at *env* holding pip only; returns its python.

    pip is the wheel virtualenv bundles for the interpreter's version,
    installed (hardlinked where it can be) from the cache's unpacked tree.
    """
    try:
        info = create_venv(env, interpreter, cache_dir=cache.root)
        wheel, sha256 = _bundled_pip(interpreter_facts(interpreter, cache.root).major_minor)
        version = str(parse_wheel_filename(wheel.name)[1])
        install(info, WantedDist("pip", version, wheel=wheel, sha256=sha256), cache)
    except (VenvError, OSError) as exc:
        why = exc.message if isinstance(exc, VenvError) else str(exc)
        raise BuildError(
            f"{label}: creating the build environment with {interpreter} failed: {why}",
            hint="check that the interpreter runs, or pass another one with --python",
        ) from exc
    return info.python


@functools.cache
def _bundled_pip(python: str) -> tuple[Path, str]:
    """virtualenv's bundled pip wheel for Python *python* ("3.11"), and its sha256."""
    # Imported here: slow to import, and only builds need it.
    from virtualenv.seed.wheels.embed import get_embed_wheel

    try:
        found = get_embed_wheel("pip", python)
    except RuntimeError as exc:  # the bundled file fails virtualenv's own hash check
        raise BuildError(f"virtualenv's bundled pip wheel is damaged: {exc}",
                         hint="reinstall virtualenv") from exc
    if found is None:
        raise BuildError(
            f"virtualenv bundles no pip wheel for Python {python}",
            hint="upgrade virtualenv, or build with another Python (--python)",
        )
    wheel = Path(found.path)
    return wheel, file_sha256(wheel)


def pip_install(label: str, python: Path, urls: Sequence[str], requirements: Sequence[str],
                what: str) -> None:
    """pip-install *requirements* into *python*'s environment from *urls* only."""
    if not requirements:
        return
    args = [str(python), "-m", "pip", "install", "--no-input", "--quiet"]
    args += ["--disable-pip-version-check", "--no-warn-script-location"]
    args += ["--index-url", urls[0]]
    for url in urls[1:]:
        args += ["--extra-index-url", url]
    proc = subprocess.run(
        [*args, *requirements], env=_pip_env(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BuildError(
            f"{label}: installing {what} ({', '.join(requirements)}) from "
            f"{', '.join(urls)} failed:\n{_tail(proc.stdout + proc.stderr)}",
            hint="make the build requirements available on the workspace's indexes, "
            "or publish a wheel of this package so no build is needed",
        )


_MISSING = object()


# -- helpers -----------------------------------------------------------------------


def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in _PIP_ENV_KEPT}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then skips every config file, global too
    env["PYTHONNOUSERSITE"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _unpack_sdist(sdist: Path, dest: Path) -> Path:
    """Extract *sdist* safely; returns its single top-level directory."""
    dest.mkdir(parents=True)
    try:
        if sdist.name.endswith(".zip"):
            extract(sdist, dest)  # every member name checked before anything is written
        else:
            with tarfile.open(sdist) as tf:
                tf.extractall(dest, filter="data")  # rejects traversal, links out, devices
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise BuildError(
            f"{sdist.name}: cannot unpack the source distribution: {exc}",
            hint="the file is corrupt or not an sdist; clear it from the cache and retry",
        ) from exc
    tops = [p for p in dest.iterdir()]
    if len(tops) != 1 or not tops[0].is_dir():
        raise BuildError(
            f"{sdist.name}: an sdist holds one top-level directory, found "
            f"{', '.join(sorted(p.name for p in tops)) or 'nothing'}",
            hint="the sdist is malformed; use a wheel of this package instead",
        )
    return tops[0]


def _build_system(source: Path, sdist: Path) -> tuple[str, list[str], list[str]]:
    """(backend, absolute backend-path entries, requires) from pyproject.toml.

    *sdist* names the source in errors: an sdist's file, or a member's directory
    (whose owner can fix the file, where an sdist's user can only avoid it).
    """
    is_sdist = sdist.name.endswith((".tar.gz", ".zip"))
    fix = ("the sdist is broken; use a wheel of this package instead" if is_sdist
           else f"fix [build-system] in {sdist.name}/pyproject.toml (PEP 518)")
    pyproject = source / "pyproject.toml"
    table: object = dict(_DEFAULT_BACKEND)
    if pyproject.exists():
        try:
            data = tomllib.loads(pyproject.read_text("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BuildError(f"{sdist.name}: pyproject.toml is not valid TOML: {exc}",
                             hint=fix) from exc
        if "build-system" in data:
            table = data["build-system"]
    # A [build-system] that is not a table, or a backend-path that is not a list of
    # strings, would otherwise end in an AttributeError or a path per character.
    system = table if isinstance(table, dict) else {}
    requires = system.get("requires")
    backend = system.get("build-backend", _DEFAULT_BACKEND["build-backend"])
    paths = system.get("backend-path", [])
    if (not isinstance(table, dict) or not isinstance(requires, list)
            or not isinstance(backend, str) or not isinstance(paths, list)
            or not all(isinstance(p, str) for p in paths)):
        raise BuildError(
            f"{sdist.name}: pyproject.toml's [build-system] needs `requires` (a list), and "
            "`build-backend` and `backend-path` when given must be a string and a list of "
            "strings", hint=fix)
    root = source.resolve()
    absolute = [str((source / p).resolve()) for p in paths]
    for entry in absolute:
        if entry != str(root) and not within(entry, root):
            raise BuildError(
                f"{sdist.name}: [build-system] backend-path {entry!r} leaves the source tree",
                hint="PEP 517 only allows backend paths inside the project",
            )
    return backend, absolute, [str(r) for r in requires]


_THIS_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


def _host_target() -> Target:
    """This interpreter on this machine: metadata describes the source, any target serves."""
    return Target(_THIS_PYTHON, host_platform())


def _cached_metadata(record: Path) -> CoreMetadata | None:
    """The metadata kept at *record*; None when absent or damaged (then prepared again)."""
    try:
        return CoreMetadata.parse(record.read_bytes())
    except OSError:
        return None


def _metadata_from_wheel(wheel: Path) -> bytes:
    data = read_metadata(wheel, wheel.name)
    if data is None:
        raise BuildError(
            f"{wheel.name}: the built wheel has no .dist-info/METADATA",
            # Members' metadata comes here too: not only sdists'.
            hint="the package's build backend is broken; report it to the project",
        )
    return data


# -- workspace members ---------------------------------------------------------------


class MemberBuilder:
    """Builds workspace members (services, libraries) into wheels for images.

    A member builds in place through its own PEP 517 backend. Its build
    environment is kept in ``buildenv-v1/<key>/`` of the cache, keyed by the
    build requirements and the interpreter, so only the first build of a
    backend pays for installing it; later builds just run the hooks.
    Backends such as hatchling and flit build reproducibly (fixed zip
    timestamps), which keeps image layers stable while sources are unchanged.
    """

    def __init__(self, sdists: SdistBuilder) -> None:
        self.sdists = sdists

    def build(self, member_dir: Path, target: Target) -> tuple[Path, str]:
        """The member's wheel (path in the wheel cache, sha256), built unless cached.

        Built wheels are remembered under ``members-v1/<source digest>/`` so a
        member whose files did not change is not built again.
        """
        record = self._wheel_record(_digest_of(member_dir), target)
        cached = self._cached_wheel(record)
        if cached is not None:
            return cached
        remote, key = self.sdists.remote, f"members-v1/{record.stem}"
        with tempfile.TemporaryDirectory(prefix="orchestrator-build-") as tmp:
            fetched = remote.fetch(key, Path(tmp)) if remote is not None else None
            if fetched is not None:
                return self._store(fetched, record)
            wheel = self._session(member_dir, Path(tmp), target).build_wheel()
            if remote is not None:
                remote.store(key, wheel)
            return self._store(wheel, record)

    def metadata(self, member_dir: Path) -> CoreMetadata:
        """The member's core metadata as its own backend reports it, cached.

        Through PEP 517 ``prepare_metadata_for_build_wheel``, else by building
        the wheel (kept for images of this host). Remembered in
        ``member-metadata-v1/<key>.METADATA`` where the key is the source
        digest, plus the git state (``git describe``) for a backend that
        takes the version from git (setuptools-scm, hatch-vcs, ...): the
        source files alone do not change when a tag is made.
        """
        source = _digest_of(member_dir)
        key = hashlib.sha256(f"{source}\0{_vcs_state(member_dir)}".encode()).hexdigest()
        record = self.sdists.cache.root / "member-metadata-v1" / f"{key}.METADATA"
        cached = _cached_metadata(record)
        if cached is not None:
            return cached
        target = _host_target()
        with tempfile.TemporaryDirectory(prefix="orchestrator-build-") as tmp:
            session = self._session(member_dir, Path(tmp), target)
            data = session.prepare_metadata()
            if data is None:  # no prepare hook: build the wheel and keep it
                wheel, _sha = self._store(session.build_wheel(),
                                          self._wheel_record(source, target))
                data = _metadata_from_wheel(wheel)
        meta = CoreMetadata.parse(data)
        if meta is None:
            raise BuildError(
                f"{member_dir.name}: the metadata its build backend reported has no Name or "
                "Version",
                hint="check the version configuration of its build backend in pyproject.toml")
        write_bytes(record, data)  # only metadata that parses is kept
        return meta

    def _wheel_record(self, source: str, target: Target) -> Path:
        key = hashlib.sha256(f"{source}\0{target.key}".encode()).hexdigest()
        return self.sdists.cache.root / "members-v1" / f"{key}.json"

    def _cached_wheel(self, record: Path) -> tuple[Path, str] | None:
        try:
            data = json.loads(record.read_text("utf-8"))
            cached = self.sdists.cache.get(DistFile(data["filename"], "", "built",
                                                    sha256=data["sha256"]))
        except (OSError, ValueError, KeyError):
            return None
        return (cached, str(data["sha256"])) if cached is not None else None

    def _store(self, wheel: Path, record: Path) -> tuple[Path, str]:
        path, sha = self.sdists.cache.add(wheel)
        write_bytes(record, json.dumps({"filename": path.name, "sha256": sha}).encode())
        return path, sha

    def _session(self, label: Path, tmp: Path, target: Target, *, source: Path | None = None,
                 env: Mapping[str, str] | None = None) -> _BuildSession:
        """The tree *source* (*label*, a member, by default) next to its kept build environment.

        *env* is added to the hooks' environment (publish's SOURCE_DATE_EPOCH).
        """
        source = source or label
        backend, _paths, requires = _build_system(source, label)
        python = self._environment(source, self.sdists._interpreter(target), backend, requires)
        tmp.mkdir(parents=True, exist_ok=True)
        session = _BuildSession(self.sdists, label, tmp, target, source=source, python=python)
        if env:
            session.hook_env = MappingProxyType(dict(env))
        return session

    def _environment(self, member_dir: Path, python: Path, backend: str,
                     requires: Sequence[str]) -> Path:
        version = interpreter_facts(python, self.sdists.cache.root).major_minor
        key_data = json.dumps([sorted(requires), backend, str(python), version], sort_keys=True)
        key = hashlib.sha256(key_data.encode()).hexdigest()[:32]
        env = self.sdists.cache.root / "buildenv-v1" / key
        ready = env / ".complete"
        if ready.exists():
            return env / "bin" / "python"
        env.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=env.parent, prefix=".tmp-"))
        label = member_dir.name
        try:
            built = create_build_env(label, python, staging / "env", self.sdists.cache)
            pip_install(label, built, self.sdists.index_urls, requires,
                        "the [build-system] requirements")
            (staging / "env" / ".complete").write_text(key_data)
            try:
                (staging / "env").rename(env)
            except OSError:  # another process finished first; use theirs
                if not ready.exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return env / "bin" / "python"


class Hasher(Protocol):
    """What source_digest feeds: a hashlib object, or anything with update(bytes)."""

    def update(self, data: bytes, /) -> None: ...


# Directories that never hold a member's sources: environments, caches, build output.
SKIP_DIRS = frozenset({".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                       ".git", "build", "dist", ".tox", ".nox"})


def _digest_of(member_dir: Path) -> str:
    digest = hashlib.sha256()
    source_digest(member_dir, digest)
    return digest.hexdigest()


# Build requirements and settings that take a version from git: the cache key of such a
# member's metadata includes `git describe`. Read as text: parsing costs more than it adds.
_VCS_VERSIONING = ("setuptools_scm", "setuptools-scm", "hatch-vcs", "hatch_vcs", "versioningit",
                   "poetry-dynamic-versioning", "dunamai", 'source = "vcs"', 'source = "scm"')


def _vcs_state(member_dir: Path) -> str:
    """``git describe --tags --long --dirty --always`` when the version comes from git, else ''."""
    try:
        text = (member_dir / "pyproject.toml").read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    if not any(marker in text for marker in _VCS_VERSIONING):
        return ""
    try:
        proc = subprocess.run(["git", "describe", "--tags", "--long", "--dirty", "--always"],
                              cwd=member_dir, capture_output=True, text=True, check=False)
    except OSError:  # no git: the backend cannot ask it either
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


def source_digest(root: Path, into: Hasher) -> None:
    """Feed every source file under *root* (path and content) into the hash *into*."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS
                             and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = Path(dirpath) / name
            into.update(path.relative_to(root).as_posix().encode() + b"\0")
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # a dangling symlink (a local .env link): its target
                if not path.is_symlink():
                    raise
                data = b"symlink to " + os.fsencode(os.readlink(path))
            into.update(hashlib.sha256(data).digest())


# -- releases of workspace members (orchestrator.publish) ---------------------------------


def build_member_sdist(builder: MemberBuilder, source: Path, tmp: Path, target: Target,
                       env: Mapping[str, str]) -> Path:
    """The sdist of the source tree *source* (a member, or a rewritten copy of one).

    Nothing is cached: a release is built from its sources every time, with
    *env* (SOURCE_DATE_EPOCH) added to the hooks' environment.
    """
    return builder._session(source, tmp, target, env=env).build_sdist()


def build_wheel_from_sdist(builder: MemberBuilder, sdist: Path, tmp: Path, target: Target,
                           env: Mapping[str, str]) -> Path:
    """The wheel built from the unpacked *sdist*, as `python -m build` does.

    So an sdist that lacks what its own build needs fails here, not for the
    first user who installs it from source.
    """
    source = _unpack_sdist(sdist, tmp / "unpacked")
    session = builder._session(sdist, tmp / "build", target, source=source, env=env)
    return session.build_wheel()
