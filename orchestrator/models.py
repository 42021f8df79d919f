"""Plain, frozen data that crosses stage boundaries."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

MemberKind = Literal["service", "library"]

# Target platform (as workspace.yaml writes it) -> the `platform_machine` marker value.
PLATFORM_MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def platform_for(system: str, machine: str) -> str:
    """`linux/amd64` for ("Linux", "x86_64"): a host or engine as a target platform name.

    An unknown machine keeps its own name (`linux/riscv64`), which no target lists.
    """
    machine = _MACHINE_ALIASES.get(machine.lower(), machine.lower())
    names = {m: p.split("/")[1] for p, m in PLATFORM_MACHINES.items()}
    return f"{system.lower()}/{names.get(machine, machine)}"

LOCK_FILENAME = "pylock.toml"


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """One package index from workspace.yaml; the first one is the default."""

    name: str
    url: str


@dataclass(frozen=True, slots=True)
class HttpTimeouts:
    """workspace.yaml's ``http.timeout``: seconds per request (None: the default).

    *connect* to open a connection, *read* for the first byte and each one
    after, *total* for everything a request does, retries included.
    ``ORCHESTRATOR_HTTP_TIMEOUT`` wins over *total*.
    """

    connect: float | None = None
    read: float | None = None
    total: float | None = None


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """The `image:` section of workspace.yaml."""

    base: str = "python:3.11-slim"
    registry: str | None = None
    # env keys whose secret-looking values may be baked into images anyway
    allow_env_secrets: tuple[str, ...] = ()
    compression: str = "gzip"  # of `build --engine oci` layers: gzip or zstd


@dataclass(frozen=True, slots=True)
class Target:
    """One environment a lock and an image are made for."""

    python: str  # "3.11"
    platform: str  # "linux/amd64"

    @property
    def key(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.platform.replace('/', '_')}"


@dataclass(frozen=True, slots=True)
class MemberOptions:
    """A member's `[tool.orchestrator]` table."""

    kind: MemberKind = "library"
    command: tuple[str, ...] | None = None
    ports: tuple[int, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)  # package -> index name
    health: str | None = None  # HTTP path answering 200 when the service is up
    publish: bool = True  # uploaded by `publish`; the loader defaults services to False


@dataclass(frozen=True, slots=True)
class Member:
    """One workspace member: a directory holding a pyproject.toml."""

    name: str  # PEP 503-normalized
    display_name: str  # as written in [project].name
    path: Path  # absolute directory
    relpath: str  # POSIX path relative to the workspace root
    version: str | None
    description: str | None
    requires_python: str | None
    dependencies: tuple[str, ...]  # PEP 508 strings, as written
    groups: Mapping[str, tuple[str, ...]]  # PEP 735 groups, include-group expanded
    optional: Mapping[str, tuple[str, ...]]  # [project.optional-dependencies]
    scripts: Mapping[str, str]
    options: MemberOptions
    dynamic: tuple[str, ...] = ()  # [project].dynamic, as written

    @property
    def kind(self) -> MemberKind:
        return self.options.kind

    @property
    def dynamic_version(self) -> bool:
        """The build backend computes the version (``version`` is then None).

        The version it reports comes from ``versions.member_version``.
        """
        return "version" in self.dynamic

    @property
    def pyproject(self) -> Path:
        return self.path / "pyproject.toml"

    @property
    def lockfile(self) -> Path:
        return self.path / LOCK_FILENAME

    def all_requirements(self) -> tuple[str, ...]:
        """Main dependencies followed by every group's, in declaration order."""
        reqs = list(self.dependencies)
        for group in self.groups.values():
            reqs.extend(group)
        return tuple(reqs)


_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REQUIREMENT_HEAD = re.compile(
    rf"\s*({_NAME})\s*(?:\[([^\]]*)\])?\s*(?=[(<>=!~;@]|$)"
)
_EXTRA = re.compile(rf"\s*{_NAME}\s*")


def requirement_head(requirement: str) -> tuple[str, frozenset[str]] | None:
    """The name and extras of a PEP 508 string, as written, without `packaging`.

    For the requirements the workspace loader validated (with packaging's
    parser): importing packaging.requirements costs a no-op command more than
    everything else it does. None when the string does not start the way
    PEP 508 says (``name``, then ``[extras]``, then a specifier, ``@ URL``,
    ``;`` markers or the end): ask packaging then.
    """
    match = _REQUIREMENT_HEAD.match(requirement)
    if match is None:
        return None
    extras = match.group(2)
    if extras is None or not extras.strip():
        return match.group(1), frozenset()
    items = extras.split(",")
    if not all(_EXTRA.fullmatch(item) for item in items):
        return None
    return match.group(1), frozenset(item.strip() for item in items)


def default_cache_dir() -> Path:
    """The per-user cache: $ORCHESTRATOR_CACHE_DIR, else $XDG_CACHE_HOME/orchestrator."""
    env = os.environ.get("ORCHESTRATOR_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "orchestrator"


@dataclass(frozen=True, slots=True)
class LoadWarning:
    """Something the workspace loader accepted but the user should know about.

    Fields as an ``OrchestratorError`` has them; *message* names the file and key.
    """

    message: str
    hint: str | None = None
    file: Path | None = None
    key: str | None = None
    member: str | None = None


@dataclass(frozen=True, slots=True)
class Workspace:
    """A loaded, validated workspace."""

    root: Path
    manifest: Path
    name: str
    python: str
    platforms: tuple[str, ...]
    indexes: tuple[IndexSpec, ...]
    members: tuple[Member, ...]
    image: ImageSpec
    cache_dir: Path | None = None  # from the manifest's `cache:` key
    cache_remote: str | None = None  # `cache.remote`: oci://HOST/REPO, the runners' wheels
    # The lambda defers the name: PublishSpec is defined at the end of this module.
    publish: PublishSpec = field(default_factory=lambda: PublishSpec())
    # `audit:`, `license:` and `policy:` (the governance gate); defined at the end too.
    audit: AuditSpec = field(default_factory=lambda: AuditSpec())
    license: LicensePolicy = field(default_factory=lambda: LicensePolicy())
    policy: PolicySpec = field(default_factory=lambda: PolicySpec())
    http_timeout: HttpTimeouts = HttpTimeouts()  # `http.timeout`
    warnings: tuple[LoadWarning, ...] = ()  # what loading accepted but the user should know

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(Target(self.python, p) for p in self.platforms)

    @property
    def services(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.kind == "service")

    def find(self, name: str) -> Member | None:
        from orchestrator.names import normalize

        wanted = normalize(name)
        for member in self.members:
            if member.name == wanted:
                return member
        return None

    def resolved_cache_dir(self) -> Path:
        """The environment variable wins over the manifest, which wins over the default."""
        if os.environ.get("ORCHESTRATOR_CACHE_DIR") or self.cache_dir is None:
            return default_cache_dir()
        return self.cache_dir


@dataclass(frozen=True, slots=True)
class DistFile:
    """One file (wheel or sdist) of a release, as an index lists it."""

    filename: str
    url: str  # absolute, without credentials
    index: str  # name of the index (IndexSpec.name) that served it
    sha256: str | None = None
    size: int | None = None
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; a string (maybe empty): the reason
    upload_time: str | None = None
    metadata_sha256: str | None = None  # PEP 658/714 file's hash, "" if served unhashed
    has_metadata: bool = False  # the index serves `<url>.metadata` (PEP 658/714)

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


@dataclass(frozen=True, slots=True)
class LicenseFields:
    """What core metadata says about a distribution's license, as written (``licenses``)."""

    expression: str | None = None  # License-Expression (PEP 639)
    text: str | None = None  # License, the free-text field before PEP 639
    classifiers: tuple[str, ...] = ()  # the `License ::` trove classifiers


@dataclass(frozen=True, slots=True)
class CoreMetadata:
    """The parts of a distribution's core metadata the resolver and `licenses` need.

    *license* is None only for metadata cached before licenses were recorded.
    """

    name: str
    version: str
    requires_dist: tuple[str, ...] = ()
    requires_python: str | None = None
    provides_extra: tuple[str, ...] = ()
    license: LicenseFields | None = LicenseFields()

    @classmethod
    def parse(cls, data: bytes) -> CoreMetadata | None:
        """Read a METADATA/PKG-INFO file; None when it lacks Name or Version."""
        # Imported here (it pulls in the email package): a warm lock reads none.
        from packaging.metadata import parse_email

        raw, _unparsed = parse_email(data)
        name, version = raw.get("name"), raw.get("version")
        if not name or not version:
            return None
        return cls(
            name=name,
            version=version,
            requires_dist=tuple(raw.get("requires_dist", ())),
            requires_python=raw.get("requires_python"),
            provides_extra=tuple(raw.get("provides_extra", ())),
            license=LicenseFields(
                expression=raw.get("license_expression"), text=raw.get("license"),
                classifiers=tuple(c for c in raw.get("classifiers", ())
                                  if c.startswith("License ::"))),
        )


# -- publishing packages (the `publish:` section of workspace.yaml) -------------------------

WorkspaceConstraint = Literal["exact", "compatible", "minimum"]


@dataclass(frozen=True, slots=True)
class RepositorySpec:
    """A package repository to upload to; credentials never live here."""

    name: str
    upload_url: str  # the legacy upload API endpoint, e.g. https://upload.pypi.org/legacy/
    index_url: str | None = None  # its simple index, for `pip install --index-url`


@dataclass(frozen=True, slots=True)
class PublishSpec:
    """The `publish:` section: how workspace dependencies are pinned, where packages go."""

    workspace_constraint: WorkspaceConstraint = "compatible"
    repositories: tuple[RepositorySpec, ...] = ()

    def repository(self, name: str | None) -> RepositorySpec | None:
        """The repository called *name*, the first one for None; None when there is none."""
        if name is None:
            return self.repositories[0] if self.repositories else None
        return next((r for r in self.repositories if r.name == name), None)


# -- governance (the `audit:`, `license:` and `policy:` sections of workspace.yaml) ----------

UnknownLicense = Literal["fail", "warn"]
FailOn = Literal["any", "low", "medium", "high", "critical"]  # audit thresholds, lowest first
FAIL_ON_LEVELS: tuple[FailOn, ...] = ("any", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class AuditIgnore:
    """An advisory `audit` accepts, and why; past *expires* it counts again."""

    id: str  # an advisory ID or any of its aliases (PYSEC-..., GHSA-..., CVE-...)
    reason: str
    expires: date | None = None


@dataclass(frozen=True, slots=True)
class AuditSpec:
    """The `audit:` section: the advisory database and the accepted advisories."""

    db: Path | None = None  # a directory of OSV files or an OSV zip export
    ignore: tuple[AuditIgnore, ...] = ()
    fail_on: FailOn = "any"  # what `check` fails on (`audit` takes --fail-on)


@dataclass(frozen=True, slots=True)
class LicensePolicy:
    """The `license:` section: SPDX ids, `ID WITH EXCEPTION`s or globs (`AGPL-*`)."""

    allow: tuple[str, ...] = ()  # empty: every license not denied is allowed
    deny: tuple[str, ...] = ()
    unknown: UnknownLicense = "warn"  # a license that cannot be read or normalized

    @property
    def configured(self) -> bool:
        return bool(self.allow or self.deny or self.unknown == "fail")


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """The `policy:` section: what `check` requires of the members' requirements."""

    require_upper_bounds: bool = False
