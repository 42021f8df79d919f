"""Load and validate a workspace: workspace.yaml plus each member's pyproject.toml.

Every error names the file, the key path inside it and what was expected, so a
user can fix the input without reading this code.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from orchestrator.errors import WorkspaceError
from orchestrator.models import (
    ImageSpec,
    IndexSpec,
    Member,
    MemberOptions,
    PublishSpec,
    RepositorySpec,
    Workspace,
)
from orchestrator.names import normalize

MANIFEST = "workspace.yaml"
KNOWN_PLATFORMS = ("linux/amd64", "linux/arm64")
DEFAULT_INDEX = IndexSpec("pypi", "https://pypi.org/simple")

_PYTHON = re.compile(r"^3\.(\d{1,2})$")
_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_INDEX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

T = TypeVar("T")


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
    """Find, read and validate the workspace containing *start* (default: cwd)."""
    manifest = find_manifest(start if start is not None else Path.cwd())
    return _Loader(manifest).load()


class _Reporter:
    """Raises the WorkspaceErrors of one file, their text built from their fields.

    Every message reads ``<file>: <key path>: <problem>``; ``expect`` and
    ``missing`` write the problem from *expected* and *actual* themselves, so
    that the text and the fields of an error cannot disagree.
    """

    def __init__(self, file: Path, label: str) -> None:
        self.file = file
        self.label = label  # the file as messages name it

    def fail(self, key: str, problem: str, hint: str | None = None, *,
             expected: str | None = None, actual: str | None = None) -> NoReturn:
        where = f"{self.label}: {key}: " if key else f"{self.label}: "
        raise WorkspaceError(where + problem, hint=hint, file=self.file, key=key or None,
                             expected=expected, actual=actual)

    def expect(self, key: str, expected: str, actual: str | None = None,
               hint: str | None = None) -> NoReturn:
        """``expected <expected>, got <actual>``; *actual* as ``_describe`` writes a value."""
        got = f", got {actual}" if actual is not None else ""
        self.fail(key, f"expected {expected}{got}", hint, expected=expected, actual=actual)

    def missing(self, key: str, expected: str) -> NoReturn:
        self.fail(key, f"missing; expected {expected}", expected=expected)

    def invalid(self, key: str, expected: str, value: str) -> NoReturn:
        """``'<value>' is not <expected>``."""
        actual = repr(value)
        self.fail(key, f"{actual} is not {expected}", expected=expected, actual=actual)


class _Loader(_Reporter):
    def __init__(self, manifest: Path) -> None:
        self.manifest = manifest
        self.root = manifest.parent
        super().__init__(manifest, manifest.name if manifest.parent == Path.cwd()
                         else str(manifest))

    def load(self) -> Workspace:
        data = self._read_yaml()
        allowed = {"version", "name", "python", "platforms", "indexes", "members", "exclude",
                   "image", "cache", "publish"}
        _reject_unknown(data, allowed, "", self.fail)
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
        publish = self._publish(data.get("publish"))
        globs = self._str_list(data, "members", required=True)
        exclude = self._str_list(data, "exclude", required=False)
        index_names = {index.name for index in indexes}
        dirs = self._expand(globs, exclude)
        members = [_MemberLoader(self.root, d, index_names).load() for d in dirs]
        _check_unique(members)
        return Workspace(
            root=self.root, manifest=self.manifest, name=name, python=python,
            platforms=platforms, indexes=indexes, members=tuple(members), image=image,
            cache_dir=cache_dir, publish=publish,
        )

    def _read_yaml(self) -> dict[str, Any]:
        import yaml

        try:
            text = self.manifest.read_text(encoding="utf-8")
        except OSError as exc:
            self.fail("", f"cannot read the file ({exc.strerror})")
        try:
            data = yaml.safe_load(text)
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
            if not isinstance(item, str) or not item:
                self.expect(f"{key}[{i}]", "a string (a directory glob)", _describe(item))
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
            if not isinstance(item, dict):
                self.expect(path, "a mapping with name and url", _describe(item))
            _reject_unknown(item, {"name", "url"}, path, self.fail)
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

    def _image(self, value: object, python: str) -> ImageSpec:
        if not isinstance(value, dict):
            self.expect("image", "a mapping with base and registry", _describe(value))
        _reject_unknown(value, {"base", "registry"}, "image", self.fail)
        base = self._str(value, "base", required=False, path="image.base")
        registry = self._str(value, "registry", required=False, path="image.registry")
        return ImageSpec(base=base or f"python:{python}-slim",
                         registry=registry.rstrip("/") or None)

    def _cache(self, value: object) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.expect("cache", "a mapping with dir", _describe(value))
        _reject_unknown(value, {"dir"}, "cache", self.fail)
        raw = self._str(value, "dir", required=True, path="cache.dir")
        path = Path(raw).expanduser()
        return path if path.is_absolute() else self.root / path

    def _publish(self, value: object) -> PublishSpec:
        if value is None:
            return PublishSpec()
        if not isinstance(value, dict):
            self.expect("publish", "a mapping with workspace-constraint and repositories",
                        _describe(value))
        _reject_unknown(value, {"workspace-constraint", "repositories"}, "publish", self.fail)
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
        if not isinstance(item, dict):
            self.expect(path, "a mapping with name, upload-url and index-url", _describe(item))
        _reject_unknown(item, {"name", "upload-url", "index-url"}, path, self.fail)
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

    def _expand(self, globs: Sequence[str], exclude: Sequence[str]) -> list[Path]:
        root = self.root.resolve()
        excluded = {p.resolve() for pattern in exclude for p in self.root.glob(pattern)}
        found: dict[Path, None] = {}
        for i, pattern in enumerate(globs):
            if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
                self.fail(f"members[{i}]", f"{pattern!r} points outside the workspace root",
                          "members must live under the directory holding workspace.yaml")
            matches = sorted(p for p in self.root.glob(pattern) if p.is_dir())
            if not matches and not any(ch in pattern for ch in "*?["):
                self.fail(f"members[{i}]", f"directory {pattern!r} does not exist")
            for path in matches:
                resolved = path.resolve()
                if resolved in excluded or _is_hidden(path.relative_to(self.root)):
                    continue
                if not resolved.is_relative_to(root):
                    self.fail(f"members[{i}]", f"{path} resolves outside the workspace root "
                              f"({resolved})")
                if not (path / "pyproject.toml").is_file():
                    rel = path.relative_to(self.root).as_posix()
                    self.fail(f"members[{i}]", f"member directory {rel} has no pyproject.toml",
                              f"add {rel}/pyproject.toml, or add {rel} to `exclude`")
                found[resolved] = None
        return list(found)


class _MemberLoader(_Reporter):
    """Reads one member's pyproject.toml into a Member."""

    def __init__(self, root: Path, directory: Path, index_names: set[str]) -> None:
        self.root = root.resolve()
        self.directory = directory
        self.relpath = directory.relative_to(self.root).as_posix()
        self.index_names = index_names
        super().__init__(directory / "pyproject.toml", f"{self.relpath}/pyproject.toml")

    def load(self) -> Member:
        try:
            with (self.directory / "pyproject.toml").open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            self.fail("", f"invalid TOML ({exc})")
        except OSError as exc:
            self.fail("", f"cannot read the file ({exc.strerror})")
        project = data.get("project")
        if not isinstance(project, dict):
            self.fail("project", "missing; every member needs a PEP 621 [project] table")
        raw_name = project.get("name")
        if not isinstance(raw_name, str) or not _NAME.match(raw_name):
            self.expect("project.name", "a valid project name", _describe(raw_name))
        version = project.get("version")
        if version is not None and not isinstance(version, str):
            self.expect("project.version", "a string", _describe(version))
        if version is not None:
            self._check_version(version)
        tool = data.get("tool", {}).get("orchestrator", {})
        return Member(
            name=normalize(raw_name), display_name=raw_name, path=self.directory.resolve(),
            relpath=self.relpath, version=version,
            description=_opt_str(project.get("description")),
            requires_python=self._requires_python(project.get("requires-python")),
            dependencies=self._requirements(project.get("dependencies", []),
                                            "project.dependencies"),
            groups=self._groups(data.get("dependency-groups", {})),
            optional=self._optional(project.get("optional-dependencies", {})),
            scripts=self._scripts(project.get("scripts", {})),
            options=self._options(tool),
        )

    def _check_version(self, version: str) -> None:
        from packaging.version import InvalidVersion, Version

        try:
            Version(version)
        except InvalidVersion:
            self.invalid("project.version", "a valid PEP 440 version", version)

    def _requires_python(self, value: object) -> str | None:
        if value is None:
            return None
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        if not isinstance(value, str):
            self.expect("project.requires-python", "a string", _describe(value))
        try:
            SpecifierSet(value)
        except InvalidSpecifier:
            self.invalid("project.requires-python", "a valid version specifier", value)
        return value

    def _requirements(self, value: object, key: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.expect(key, "a list of PEP 508 requirement strings", _describe(value))
        for i, item in enumerate(value):
            self._requirement(item, f"{key}[{i}]")
        return tuple(value)

    def _requirement(self, item: object, key: str) -> str:
        from packaging.requirements import InvalidRequirement, Requirement

        if not isinstance(item, str):
            self.expect(key, "a requirement string", _describe(item))
        try:
            Requirement(item)
        except InvalidRequirement as exc:
            detail, actual = str(exc).splitlines()[0], repr(item)
            self.fail(key, f"invalid requirement {actual}: {detail}",
                      "write a PEP 508 requirement such as \"httpx>=0.27\"", actual=actual)
        return item

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
                    out.append(self._requirement(item, f"{key}[{i}]"))
                else:
                    self.expect(f"{key}[{i}]", "a requirement string or {include-group = ...}",
                                _describe(item))
            return tuple(out)

        for group in names:
            expanded[group] = expand(group, ())
        return expanded

    def _scripts(self, value: object) -> dict[str, str]:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            self.expect("project.scripts", "a table of name = \"module:function\"")
        return dict(value)

    def _options(self, tool: object) -> MemberOptions:
        key = "tool.orchestrator"
        if not isinstance(tool, dict):
            self.expect(key, "a table", _describe(tool))
        _reject_unknown(tool, {"kind", "command", "ports", "env", "sources", "health",
                               "publish"}, key, self.fail)
        default_kind = "service" if Path(self.relpath).parent.name == "services" else "library"
        kind = tool.get("kind", default_kind)
        if kind not in ("service", "library"):
            self.expect(f"{key}.kind", "\"service\" or \"library\"", _describe(kind))
        return MemberOptions(
            kind=kind, command=self._command(tool.get("command")),
            ports=self._ports(tool.get("ports", [])),
            env=self._str_table(tool.get("env", {}), f"{key}.env"),
            sources=self._sources(tool.get("sources", {})),
            health=self._health(tool.get("health")),
            publish=self._publish_flag(tool.get("publish", kind == "library")),
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


def _check_unique(members: Sequence[Member]) -> None:
    seen: dict[str, Member] = {}
    for member in members:
        other = seen.get(member.name)
        if other is not None:
            raise WorkspaceError(
                f"two members are named {member.name!r}: {other.relpath} and {member.relpath}",
                hint="rename one of them in its pyproject.toml [project].name",
                member=member.name,
            )
        seen[member.name] = member


def _reject_unknown(
    data: Mapping[str, Any], allowed: set[str], path: str, fail: Callable[..., NoReturn]
) -> None:
    for key in data:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            import difflib

            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(
                sorted(allowed))
            fail(where, "unknown key", hint)


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
