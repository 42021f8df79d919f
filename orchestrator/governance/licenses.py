"""Each locked package's license, normalized to SPDX, and the workspace's license policy.

Where a license comes from, first found wins: the PEP 639
``License-Expression`` of the package's core metadata, else its free-text
``License`` field when that names a license (not when it holds a whole
license text), else its ``License ::`` classifiers. A workspace member's
comes from its pyproject.toml (``project.license``, then classifiers).
Everything is normalized with the ``license-expression`` library's SPDX
licensing (``Apache-2.0``, ``GPL-3.0`` -> ``GPL-3.0-only``); what cannot be
is *unknown*, reported with the text as written.

Metadata comes from the index client's metadata cache, where locking left
it (a warm lock means no download). An entry cached before license fields
were recorded, or a package never resolved on this machine, is fetched
once through the index client, which caches it.

The policy (``license:`` in workspace.yaml): each ``allow``/``deny`` entry
is an SPDX expression whose licenses (each id, or ``ID WITH EXCEPTION``)
are allowed or denied, or a glob over ids (``AGPL-*``). A package's
expression passes when it can be satisfied without a denied license (an
``OR`` needs one passing side, an ``AND`` both) and, when ``allow`` is set,
with allowed licenses only. ``unknown: fail`` makes an unknown license fail.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from orchestrator.errors import GovernanceError, OrchestratorError
from orchestrator.models import DistFile, LicenseFields, LicensePolicy, Member, Workspace

if TYPE_CHECKING:
    from license_expression import Licensing
    from packaging.pylock import Package, PackageSdist, PackageWheel

    from orchestrator.session import Session

Source = Literal["License-Expression", "License", "classifier", "pyproject", "none"]
Status = Literal["allowed", "denied", "not-allowed", "unknown"]

# Free-text License values and classifiers seen on PyPI that are not SPDX ids, lower-cased.
_ALIASES = {
    "apache 2.0": "Apache-2.0", "apache 2": "Apache-2.0", "apache-2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0", "apache license, version 2.0": "Apache-2.0",
    "apache license version 2.0": "Apache-2.0", "apache software license 2.0": "Apache-2.0",
    "asl 2.0": "Apache-2.0", "mit license": "MIT", "the mit license": "MIT", "expat": "MIT",
    "bsd 3-clause": "BSD-3-Clause", "bsd-3": "BSD-3-Clause", "3-clause bsd": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause", "new bsd license": "BSD-3-Clause", "modified bsd": "BSD-3-Clause",
    "bsd 3-clause license": "BSD-3-Clause", "bsd 2-clause": "BSD-2-Clause",
    "simplified bsd": "BSD-2-Clause", "bsd 2-clause license": "BSD-2-Clause",
    "psf": "PSF-2.0", "psf license": "PSF-2.0", "psfl": "PSF-2.0",
    "python software foundation license": "PSF-2.0", "mpl 2.0": "MPL-2.0", "mpl-2": "MPL-2.0",
    "mozilla public license 2.0": "MPL-2.0", "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "gplv2": "GPL-2.0-only", "gplv2+": "GPL-2.0-or-later", "gplv3": "GPL-3.0-only",
    "gplv3+": "GPL-3.0-or-later", "lgplv3": "LGPL-3.0-only", "lgplv3+": "LGPL-3.0-or-later",
    "lgplv2": "LGPL-2.1-only", "lgplv2+": "LGPL-2.1-or-later", "agplv3": "AGPL-3.0-only",
    "agplv3+": "AGPL-3.0-or-later", "isc license": "ISC", "isc license (iscl)": "ISC",
    "zope public license": "ZPL-2.1", "the unlicense": "Unlicense",
    "the unlicense (unlicense)": "Unlicense", "public domain": "LicenseRef-Public-Domain",
    "cc0 1.0 universal (cc0 1.0) public domain dedication": "CC0-1.0",
    "historical permission notice and disclaimer (hpnd)": "HPND",
    "mit no attribution license (mit-0)": "MIT-0",
    "boost software license 1.0 (bsl-1.0)": "BSL-1.0",
    "eclipse public license 2.0 (epl-2.0)": "EPL-2.0",
    "gnu affero general public license v3": "AGPL-3.0-only",
    "gnu affero general public license v3 or later (agplv3+)": "AGPL-3.0-or-later",
    "gnu general public license v2 (gplv2)": "GPL-2.0-only",
    "gnu general public license v2 or later (gplv2+)": "GPL-2.0-or-later",
    "gnu general public license v3 (gplv3)": "GPL-3.0-only",
    "gnu general public license v3 or later (gplv3+)": "GPL-3.0-or-later",
    "gnu lesser general public license v2 (lgplv2)": "LGPL-2.0-only",
    "gnu lesser general public license v2 or later (lgplv2+)": "LGPL-2.0-or-later",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0-only",
    "gnu lesser general public license v3 or later (lgplv3+)": "LGPL-3.0-or-later",
    "gnu library or lesser general public license (lgpl)": "LGPL-2.0-or-later",
    # Apache 1.x is all but extinct on PyPI: the unversioned classifier means 2.0.
    "apache software license": "Apache-2.0",
}
# Classifiers that name no single license ("BSD License": which clauses?) stay unknown.


@lru_cache(maxsize=1)
def _licensing() -> Licensing:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def spdx(text: str) -> str | None:
    """*text* as a normalized SPDX expression, or None when it is not one."""
    from license_expression import ExpressionError

    text = text.strip()
    if not text or "\n" in text or len(text) > 200:
        return None
    alias = _ALIASES.get(" ".join(text.lower().split()))
    if alias is not None:
        return alias
    licensing = _licensing()
    try:
        parsed = licensing.parse(text)
    except ExpressionError:
        return None
    if parsed is None:
        return None
    unknown = [k for k in licensing.unknown_license_keys(parsed)
               if not k.startswith(("LicenseRef-", "DocumentRef-"))]
    return None if unknown else str(parsed.render())


@dataclass(frozen=True, slots=True)
class License:
    """A package's license: *expression* is SPDX (None: unknown), *raw* what was read."""

    expression: str | None
    raw: str | None
    source: Source

    @property
    def display(self) -> str:
        if self.expression is not None:
            return self.expression
        return f"unknown ({self.raw})" if self.raw else "unknown"


def from_fields(fields: LicenseFields) -> License:
    """The license core metadata declares, normalized (see the module docstring)."""
    if fields.expression:
        return License(spdx(fields.expression), fields.expression, "License-Expression")
    text = (fields.text or "").strip()
    if text:
        found = spdx(text)
        if found is not None:
            return License(found, text, "License")
    classified = [c.rsplit(" :: ", 1)[-1] for c in fields.classifiers]
    ids = [spdx(c) for c in classified]
    known = sorted({i for i in ids if i is not None})
    if known and None not in ids:  # two classifiers may name one license
        return License(" OR ".join(known) if len(known) > 1 else known[0],
                       "; ".join(fields.classifiers), "classifier")
    if text:
        first = text.splitlines()[0].strip()
        return License(None, first if len(first) <= 80 else first[:77] + "...", "License")
    if classified:
        return License(None, "; ".join(classified), "classifier")
    return License(None, None, "none")


def member_license(member: Member) -> License:
    """A workspace member's license, from its pyproject.toml."""
    try:
        with member.pyproject.open("rb") as fh:
            project = tomllib.load(fh).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return License(None, None, "none")
    value = project.get("license")
    classifiers = tuple(c for c in project.get("classifiers", ()) if isinstance(c, str)
                        and c.startswith("License ::"))
    if isinstance(value, str):  # PEP 639: an SPDX expression
        return License(spdx(value), value, "pyproject")
    text = value.get("text") if isinstance(value, dict) else None
    found = from_fields(LicenseFields(text=text if isinstance(text, str) else None,
                                      classifiers=classifiers))
    return License(found.expression, found.raw, "pyproject") if found.source != "none" else found


# -- the policy --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    """The `license:` section compiled: lower-cased license keys and globs."""

    allow: tuple[str, ...]
    deny: tuple[str, ...]
    unknown: Literal["fail", "warn"]
    configured: bool

    @classmethod
    def compile(cls, spec: LicensePolicy) -> Policy:
        return cls(tuple(_patterns(spec.allow, "license.allow")),
                   tuple(_patterns(spec.deny, "license.deny")), spec.unknown, spec.configured)

    def status(self, license: License) -> tuple[Status, str]:
        """The verdict on *license*, and the reason in words."""
        if license.expression is None:
            return "unknown", "the license is unknown"
        verdict = self._verdict(_licensing().parse(license.expression))
        if verdict == "denied":
            return "denied", f"{license.expression} is denied by license.deny"
        if verdict == "not-allowed":
            return "not-allowed", f"{license.expression} is not in license.allow"
        return "allowed", ""

    def fails(self, status: Status) -> bool:
        return status in ("denied", "not-allowed") or (status == "unknown"
                                                       and self.unknown == "fail")

    def _verdict(self, node: object) -> Literal["allowed", "denied", "not-allowed"]:
        from license_expression import AND, OR, LicenseWithExceptionSymbol

        if isinstance(node, (AND, OR)):
            verdicts = [self._verdict(arg) for arg in node.args]
            if isinstance(node, OR):
                if "allowed" in verdicts:
                    return "allowed"
                return "denied" if all(v == "denied" for v in verdicts) else "not-allowed"
            if "denied" in verdicts:
                return "denied"
            return "allowed" if all(v == "allowed" for v in verdicts) else "not-allowed"
        if isinstance(node, LicenseWithExceptionSymbol):
            keys = [str(node.render()), str(node.license_symbol.key)]
        else:
            keys = [str(getattr(node, "key", node))]
        keys = [k.lower() for k in keys]
        if any(fnmatch.fnmatchcase(k, p) for k in keys for p in self.deny):
            return "denied"
        if self.allow and not any(fnmatch.fnmatchcase(k, p) for k in keys for p in self.allow):
            return "not-allowed"
        return "allowed"


def _patterns(entries: Sequence[str], key: str) -> Iterator[str]:
    """Each entry's licenses as lower-case patterns; a glob is kept as written."""
    from license_expression import ExpressionError, LicenseWithExceptionSymbol

    licensing = _licensing()
    for i, entry in enumerate(entries):
        if any(c in entry for c in "*?["):
            yield entry.lower()
            continue
        try:
            parsed = licensing.parse(entry)
        except ExpressionError as exc:
            raise GovernanceError(
                f"workspace.yaml: {key}[{i}]: {entry!r} is not an SPDX license expression "
                f"({exc})", hint="write an SPDX id such as GPL-3.0-only, or a glob such as "
                "AGPL-*", key=f"{key}[{i}]", actual=entry) from None
        for symbol in licensing.license_symbols(parsed, decompose=False):
            if isinstance(symbol, LicenseWithExceptionSymbol):
                yield str(symbol.render()).lower()
            else:
                yield str(symbol.key).lower()


# -- a workspace's licenses ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackageLicense:
    """One locked package's license in one member's lock, and the policy's verdict."""

    member: str
    package: str
    version: str | None
    license: License
    status: Status
    reason: str
    workspace_member: bool = False
    failing: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"member": self.member, "package": self.package, "version": self.version,
                "license": self.license.expression, "raw": self.license.raw,
                "source": self.license.source, "status": self.status, "reason": self.reason,
                "workspace": self.workspace_member, "failing": self.failing}

    def message(self) -> str:
        """The finding's text: package, member and license named."""
        where = f"{self.package} {self.version}" if self.version else self.package
        return f"{where} in {self.member}: {self.reason} ({self.license.display})"


@dataclass(frozen=True, slots=True)
class LicenseReport:
    packages: tuple[PackageLicense, ...]
    policy: Policy

    @property
    def failing(self) -> tuple[PackageLicense, ...]:
        return tuple(p for p in self.packages if p.failing)

    def as_dict(self) -> dict[str, object]:
        return {"policy": {"allow": list(self.policy.allow), "deny": list(self.policy.deny),
                           "unknown": self.policy.unknown},
                "failed": bool(self.failing),
                "packages": [p.as_dict() for p in self.packages]}


class LicenseReader:
    """Licenses of lock entries through a session's index client, each file read once."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._workspace = session.workspace
        self._seen: dict[tuple[str, str | None], License] = {}

    def of_entry(self, package: Package) -> License:
        """The license of a lock entry (a workspace member's from its pyproject.toml)."""
        name, version = str(package.name), str(package.version) if package.version else None
        if (name, version) not in self._seen:
            self._seen[(name, version)] = self._read(package)
        return self._seen[(name, version)]

    def _read(self, package: Package) -> License:
        if package.directory is not None:
            member = self._workspace.find(str(package.name))
            return member_license(member) if member is not None else License(None, None, "none")
        files = _dist_files(self._workspace, package)
        index = self._session.index
        for file in files:
            cached = index.cached_metadata(file)
            if cached is not None and cached.license is not None:
                return from_fields(cached.license)
        if not files:
            return License(None, "the lock entry has no index file", "none")
        try:
            listed = {f.filename: f for f in index.files(str(package.name))}
            meta = index.metadata(listed.get(files[0].filename, files[0]), licenses=True)
        except OrchestratorError as exc:  # offline, or the index lost it: say why
            return License(None, f"metadata not available: {exc.message}", "none")
        return from_fields(meta.license or LicenseFields())


def _dist_files(workspace: Workspace, package: Package) -> list[DistFile]:
    by_url = {i.url: i.name for i in workspace.indexes}
    index = by_url.get(package.index or "", workspace.indexes[0].name)
    archives: list[PackageWheel | PackageSdist] = [
        *(package.wheels or ()), *([package.sdist] if package.sdist else [])]
    return [DistFile(filename=a.filename, url=a.url, index=index,
                     sha256=a.hashes.get("sha256"), size=a.size, has_metadata=True)
            for a in archives if a.url is not None]


def license_report(session: Session, members: Sequence[Member],
                   spec: LicensePolicy | None = None) -> LicenseReport:
    """Every locked package's license in *members*' locks, judged by the policy."""
    from orchestrator.lock import read_lock

    policy = Policy.compile(spec if spec is not None else session.workspace.license)
    reader = LicenseReader(session)
    found: list[PackageLicense] = []
    for member in members:
        for package in read_lock(member.lockfile).packages:
            license = reader.of_entry(package)
            status, reason = policy.status(license)
            if status == "allowed" and not policy.configured:
                reason = ""
            found.append(PackageLicense(
                member.name, str(package.name),
                str(package.version) if package.version else None, license, status,
                reason, package.directory is not None, policy.fails(status)))
    return LicenseReport(tuple(found), policy)


def by_member(report: LicenseReport) -> Mapping[str, list[PackageLicense]]:
    grouped: dict[str, list[PackageLicense]] = {}
    for package in report.packages:
        grouped.setdefault(package.member, []).append(package)
    return grouped
