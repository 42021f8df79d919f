"""A member's software bill of materials from its lock: CycloneDX 1.6 JSON, or SPDX 2.3 JSON.

The components are the lock's packages: index packages with their purl
(``pkg:pypi/NAME@VERSION``), the sha256 of each locked file (also listed as
``distribution`` references with their URLs) and their license (read as
``licenses`` reads it), and the workspace members the lock links, each a
component of its own (``workspace:NAME``). The member itself is the BOM's
subject. Dependencies are the lock's ``dependencies`` lists; the subject
depends on what its requirements name.

Without a target the BOM covers the whole lock (every target, group and
extra); ``build`` asks for one target and the main dependencies, which is
exactly what the image holds, with the member versions its wheels report.
The output is deterministic: the serial number is derived from the content,
and the timestamp is passed in (`sbom` gives the commit's time) or left out.
``build`` leaves it out and gives members no wheel hashes, so that the SBOM
changes only with the lock and the versions: its layer lies below the
service's, and a code-only change still rebuilds the service layer alone.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from orchestrator import __version__
from orchestrator.governance.licenses import License, LicenseReader, member_license
from orchestrator.models import Member, Target

if TYPE_CHECKING:
    from cyclonedx.model import Property
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
    from packaging.pylock import Package, PackageSdist, PackageWheel

    from orchestrator.session import Session

SbomFormat = Literal["cyclonedx-json", "spdx-json"]  # cli/governance.py lists them too


@dataclass(frozen=True, slots=True)
class Artifact:
    """One distribution file of a component: its name, URL and sha256."""

    filename: str
    url: str | None
    sha256: str


@dataclass(frozen=True, slots=True)
class SbomComponent:
    ref: str  # the bom-ref: the purl, or workspace:NAME for a member
    name: str
    version: str | None
    license: License
    artifacts: tuple[Artifact, ...]
    depends_on: tuple[str, ...]  # refs
    member_path: str | None = None  # a workspace member's directory

    @property
    def purl(self) -> str | None:
        if self.member_path is not None or self.version is None:
            return None
        from packageurl import PackageURL

        return str(PackageURL(type="pypi", name=self.name, version=self.version).to_string())


@dataclass(frozen=True, slots=True)
class Sbom:
    """What a BOM says, before it is written in a format."""

    subject: SbomComponent
    components: tuple[SbomComponent, ...]
    timestamp: datetime | None  # None: left out (reproducible)
    scope: str  # "the whole lock" or "3.11 linux/amd64, main dependencies"

    def digest(self) -> str:
        data = [[c.ref, c.version, c.license.expression, [a.sha256 for a in c.artifacts],
                 list(c.depends_on)] for c in (self.subject, *self.components)]
        when = self.timestamp.isoformat() if self.timestamp else None
        return hashlib.sha256(json.dumps([data, when, self.scope]).encode()).hexdigest()


def collect(session: Session, member: Member, *, target: Target | None = None,
            groups: Sequence[str] = (), versions: Mapping[str, str] | None = None,
            timestamp: datetime | None = None) -> Sbom:
    """The BOM of *member* from its lock: the whole lock, or what *target* installs with
    *groups*. *versions*: member name -> version, where a build knows it (dynamic ones)."""
    from orchestrator.lock import read_lock, select

    lock = read_lock(member.lockfile)
    if target is None:
        entries: list[tuple[Package, tuple[Artifact, ...]]] = [
            (pkg, _artifacts(pkg)) for pkg in lock.packages]
        scope = "the whole lock"
        roots = [*member.all_requirements(), *(r for rs in member.optional.values() for r in rs)]
    else:
        entries = []
        for item in select(lock, [target], groups):
            archive = None if item.is_member else item.file_for(target)
            files: tuple[Artifact, ...] = ()
            if archive is not None and "sha256" in archive.hashes:
                files = (Artifact(archive.filename, archive.url, archive.hashes["sha256"]),)
            entries.append((item.package, files))
        group_text = f"groups {', '.join(groups)}" if groups else "main dependencies"
        scope = f"{target.python} {target.platform}, {group_text}"
        roots = [*member.dependencies, *(r for g in groups for r in member.groups.get(g, ()))]
    reader = LicenseReader(session)
    refs = _refs(entries)
    by_name: dict[str, list[str]] = {}
    for (pkg, _files), ref in zip(entries, refs, strict=True):
        by_name.setdefault(str(pkg.name), []).append(ref)
    components = []
    for (pkg, files), ref in zip(entries, refs, strict=True):
        deps = sorted({r for d in pkg.dependencies or () if isinstance(d.get("name"), str)
                       for r in by_name.get(str(d["name"]), ())})
        components.append(_component(session, pkg, ref, files, deps, reader, versions or {}))
    subject_deps = sorted({r for name in _names(roots) for r in by_name.get(name, ())})
    subject = SbomComponent(
        f"workspace:{member.name}", member.name,
        (versions or {}).get(member.name, member.version), member_license(member), (),
        tuple(subject_deps), member.relpath)
    return Sbom(subject, tuple(sorted(components, key=lambda c: c.ref)), timestamp, scope)


def _artifacts(pkg: Package) -> tuple[Artifact, ...]:
    archives: list[PackageWheel | PackageSdist] = [
        *(pkg.wheels or ()), *([pkg.sdist] if pkg.sdist else [])]
    return tuple(Artifact(a.filename, a.url, a.hashes["sha256"]) for a in archives
                 if "sha256" in a.hashes)


def _refs(entries: Sequence[tuple[Package, tuple[Artifact, ...]]]) -> list[str]:
    """A unique bom-ref per entry: its purl, with a suffix when a lock has it twice."""
    from packageurl import PackageURL

    refs: list[str] = []
    for pkg, _files in entries:
        if pkg.directory is not None:
            base = f"workspace:{pkg.name}"
        else:
            base = str(PackageURL(type="pypi", name=str(pkg.name),
                                  version=str(pkg.version) if pkg.version else None).to_string())
        ref, n = base, 1
        while ref in refs:  # the same version locked twice, under different markers
            n += 1
            ref = f"{base}#{n}"
        refs.append(ref)
    return refs


def _names(requirements: Sequence[str]) -> set[str]:
    from orchestrator.graph import requirement_name

    return {requirement_name(r) for r in requirements}


def _component(session: Session, pkg: Package, ref: str, files: tuple[Artifact, ...],
               deps: Sequence[str], reader: LicenseReader,
               versions: Mapping[str, str]) -> SbomComponent:
    name = str(pkg.name)
    version = str(pkg.version) if pkg.version else None
    if pkg.directory is None:
        return SbomComponent(ref, name, version, reader.of_entry(pkg), files, tuple(deps))
    member = session.workspace.find(name)
    version = versions.get(name, version)
    return SbomComponent(ref, name, version or (member.version if member else None),
                         reader.of_entry(pkg), files, tuple(deps),
                         member.relpath if member else str(pkg.directory.path))


# -- CycloneDX -------------------------------------------------------------------------


def cyclonedx_json(sbom: Sbom) -> str:
    """CycloneDX 1.6 JSON, through cyclonedx-python-lib."""
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository
    from cyclonedx.output.json import JsonV1Dot6

    subject = _cdx_component(sbom.subject, ComponentType.APPLICATION)
    components = {c.ref: _cdx_component(c, ComponentType.LIBRARY) for c in sbom.components}
    tools = ToolRepository(components=[Component(name="orchestrator", version=__version__,
                                                 type=ComponentType.APPLICATION)])
    bom = Bom(
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"orchestrator-sbom:{sbom.digest()}"),
        metadata=BomMetaData(component=subject, tools=tools,
                             properties=_properties({"orchestrator:scope": sbom.scope})),
        components=components.values())
    # The library defaults it to now and types it as a datetime, but its setter takes None,
    # which leaves the field out of the JSON: what a reproducible SBOM needs.
    bom.metadata.timestamp = sbom.timestamp  # type: ignore[assignment]
    everything = {sbom.subject.ref: subject, **components}
    for item in (sbom.subject, *sbom.components):
        bom.register_dependency(everything[item.ref],
                                [everything[r] for r in item.depends_on if r in everything])
    return str(JsonV1Dot6(bom).output_as_string(indent=2)) + "\n"


def _cdx_component(item: SbomComponent, kind: ComponentType) -> Component:
    from cyclonedx.model import (
        ExternalReference,
        ExternalReferenceType,
        HashAlgorithm,
        HashType,
        XsUri,
    )
    from cyclonedx.model.component import Component
    from packageurl import PackageURL

    hashes = [HashType(alg=HashAlgorithm.SHA_256, content=a.sha256) for a in item.artifacts]
    references = [ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(a.url),
                                    comment=a.filename,
                                    hashes=[HashType(alg=HashAlgorithm.SHA_256, content=a.sha256)])
                  for a in item.artifacts if a.url]
    properties = {"orchestrator:workspace-path": item.member_path} if item.member_path else {}
    purl = item.purl
    return Component(
        name=item.name, version=item.version, type=kind, bom_ref=item.ref,
        purl=PackageURL.from_string(purl) if purl else None, hashes=hashes,
        licenses=_cdx_licenses(item.license), external_references=references,
        properties=_properties(properties))


def _cdx_licenses(license: License) -> list[LicenseExpression | DisjunctiveLicense]:
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression

    if license.expression is not None:
        return [LicenseExpression(license.expression)]
    if license.raw:
        return [DisjunctiveLicense(name=license.raw)]
    return []


def _properties(values: Mapping[str, str]) -> list[Property]:
    from cyclonedx.model import Property

    return [Property(name=k, value=v) for k, v in sorted(values.items())]


# -- SPDX ---------------------------------------------------------------------------------


def spdx_json(sbom: Sbom, document_name: str) -> str:
    """SPDX 2.3 JSON: one package per component, DEPENDS_ON relationships from the lock."""
    ids = {c.ref: f"SPDXRef-Package-{n}" for n, c in enumerate((sbom.subject, *sbom.components))}
    packages = [_spdx_package(c, ids[c.ref]) for c in (sbom.subject, *sbom.components)]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": ids[sbom.subject.ref]}]
    for item in (sbom.subject, *sbom.components):
        relationships += [{"spdxElementId": ids[item.ref], "relationshipType": "DEPENDS_ON",
                           "relatedSpdxElement": ids[r]} for r in item.depends_on if r in ids]
    document = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": document_name,
        "documentNamespace": f"https://spdx.org/spdxdocs/orchestrator/{sbom.digest()}",
        "creationInfo": {"created": (sbom.timestamp or datetime.now(UTC)).astimezone(UTC)
                         .strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "creators": [f"Tool: orchestrator-{__version__}"]},
        "packages": packages, "relationships": relationships,
    }
    return json.dumps(document, indent=2) + "\n"


def _spdx_package(item: SbomComponent, spdx_id: str) -> dict[str, object]:
    package: dict[str, object] = {
        "SPDXID": spdx_id, "name": item.name,
        "downloadLocation": next((a.url for a in item.artifacts if a.url), "NOASSERTION"),
        "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": item.license.expression or "NOASSERTION",
        "copyrightText": "NOASSERTION",
    }
    if item.version is not None:
        package["versionInfo"] = item.version
    if item.artifacts:
        package["checksums"] = [{"algorithm": "SHA256", "checksumValue": a.sha256}
                                for a in item.artifacts]
    if item.purl is not None:
        package["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER",
                                    "referenceType": "purl", "referenceLocator": item.purl}]
    return package


def render(sbom: Sbom, fmt: SbomFormat, name: str) -> str:
    return cyclonedx_json(sbom) if fmt == "cyclonedx-json" else spdx_json(sbom, name)
