"""Vulnerability advisories in the OSV format: reading them, and which versions they affect.

Three sources, one shape (``AdvisorySource``): a directory of OSV YAML/JSON
files (a checkout of the PyPA advisory database, ``vulns/PROJECT/ID.yaml``),
an OSV zip export (``PyPI/all.zip``), or the OSV API (``osv_api.OsvApi``).
Only what concerns PyPI is kept: ``affected`` entries of another ecosystem
are dropped, and so are withdrawn advisories.

A local database is parsed once into a compact, package-indexed JSON file in
the cache (``advisories-v1/``), keyed by the source's path and stamped with
the name, size and mtime of every file in it, so a warm audit reads one JSON
file instead of thousands of YAML files; any change to the source re-reads it.

Versions are matched as OSV specifies for the ``ECOSYSTEM`` range type:
events sorted by PEP 440 version, the last event at or below the version
decides (``introduced``: affected; ``fixed``: not; ``last_affected``: not
above it), and a version listed in ``versions`` is affected whatever the
ranges say. Versions that are not PEP 440 are compared as written.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol

from packaging.version import InvalidVersion, Version

from orchestrator.atomic import write_bytes
from orchestrator.errors import GovernanceError
from orchestrator.governance.cvss import BANDS, Band, band, base_score
from orchestrator.names import normalize

CACHE_BUCKET = "advisories-v1"
RECORD_FORMAT = 1  # bump when the cached record layout changes
ECOSYSTEM = "PyPI"
EventKind = Literal["introduced", "fixed", "last_affected"]
_EVENT_ORDER: dict[str, int] = {"introduced": 0, "last_affected": 1, "fixed": 2}
_DB_SEVERITY: dict[str, Band] = {"LOW": "low", "MODERATE": "medium", "MEDIUM": "medium",
                                 "HIGH": "high", "CRITICAL": "critical"}
_SUFFIXES = (".yaml", ".yml", ".json")


@lru_cache(maxsize=65536)
def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


@dataclass(frozen=True, slots=True)
class AffectedPackage:
    """One ``affected`` entry for a PyPI project: its ECOSYSTEM ranges and listed versions."""

    name: str  # normalized
    ranges: tuple[tuple[tuple[EventKind, str], ...], ...]
    versions: tuple[str, ...] = ()

    def affects(self, version: str) -> bool:
        parsed = parse_version(version)
        if version in self.versions or (parsed is not None and any(
                parse_version(v) == parsed for v in self.versions)):
            return True
        return parsed is not None and any(_in_range(events, parsed) for events in self.ranges)

    def fixed(self) -> tuple[str, ...]:
        return tuple(v for events in self.ranges for kind, v in events if kind == "fixed")


def _in_range(events: Sequence[tuple[EventKind, str]], version: Version) -> bool:
    """OSV's ECOSYSTEM evaluation: the last event at or below *version* decides."""
    ordered: list[tuple[Version | None, int, EventKind]] = []
    for kind, text in events:
        at = None if text == "0" else parse_version(text)
        if at is None and text != "0":
            continue  # not PEP 440: the event cannot be placed
        ordered.append((at, _EVENT_ORDER[kind], kind))
    ordered.sort(key=lambda e: (e[0] is not None, e[0] or Version("0"), e[1]))
    affected = False
    for at, _order, kind in ordered:
        if kind == "introduced" and (at is None or version >= at):
            affected = True
        elif at is not None and (version >= at if kind == "fixed" else version > at):
            affected = False  # fixed at or below it, or the last affected one is below it
    return affected


@dataclass(frozen=True, slots=True)
class Advisory:
    """One OSV record, reduced to what an audit reports.

    *severity* is None when the record gives none that can be read (no CVSS
    3.x/2.0 vector, no ``database_specific.severity``).
    """

    id: str
    aliases: tuple[str, ...]
    summary: str
    affected: tuple[AffectedPackage, ...]
    severity: Band | None = None
    score: float | None = None
    url: str | None = None
    modified: str | None = None

    def affects(self, package: str, version: str) -> bool:
        return any(a.name == package and a.affects(version) for a in self.affected)

    def fixed_for(self, package: str) -> tuple[str, ...]:
        return tuple(v for a in self.affected if a.name == package for v in a.fixed())

    def names(self) -> frozenset[str]:
        """The ID and its aliases: what alias merging and ignores match on."""
        return frozenset((self.id, *self.aliases))

    @classmethod
    def from_osv(cls, data: Mapping[str, object]) -> Advisory | None:
        """The PyPI part of an OSV record; None when withdrawn or about no PyPI project."""
        if data.get("withdrawn") or not isinstance(data.get("id"), str):
            return None
        affected = tuple(_affected(data.get("affected")))
        if not affected:
            return None
        severity, score = _severity(data)
        return cls(
            id=str(data["id"]),
            aliases=tuple(sorted({a for a in _strings(data.get("aliases"))})),
            summary=_summary(data),
            affected=affected,
            severity=severity,
            score=score,
            url=_url(data),
            modified=_timestamp(data.get("modified")),
        )

    def as_record(self) -> dict[str, object]:
        return {"id": self.id, "aliases": list(self.aliases), "summary": self.summary,
                "severity": self.severity, "score": self.score, "url": self.url,
                "modified": self.modified,
                "affected": [{"name": a.name, "ranges": [[list(e) for e in r] for r in a.ranges],
                              "versions": list(a.versions)} for a in self.affected]}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> Advisory:
        """An advisory from its cached record (``as_record``)."""
        affected = record["affected"]
        assert isinstance(affected, list)
        severity, score = record.get("severity"), record.get("score")
        return cls(
            id=str(record["id"]), aliases=tuple(_strings(record.get("aliases"))),
            summary=str(record.get("summary") or ""),
            affected=tuple(AffectedPackage(
                str(a["name"]),
                tuple(tuple((e[0], e[1]) for e in r) for r in a["ranges"]),
                tuple(a["versions"])) for a in affected),
            severity=next((b for b in BANDS if b == severity), None),
            score=float(score) if isinstance(score, (int, float)) else None,
            url=_optional_str(record.get("url")),
            modified=_optional_str(record.get("modified")),
        )


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _timestamp(value: object) -> str | None:
    """An RFC 3339 time as written; YAML reads an unquoted one as a datetime."""
    from datetime import datetime

    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value if isinstance(value, str) else None


def _dicts(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, list):
        yield from (v for v in value if isinstance(v, str))


def _affected(value: object) -> Iterator[AffectedPackage]:
    for entry in value if isinstance(value, list) else ():
        if not isinstance(entry, dict):
            continue
        package = entry.get("package")
        if not isinstance(package, dict) or package.get("ecosystem") != ECOSYSTEM:
            continue
        name = package.get("name")
        if not isinstance(name, str):
            continue
        ranges = []
        for item in entry.get("ranges") or ():
            if isinstance(item, dict) and item.get("type") == "ECOSYSTEM":
                events = tuple(_events(item.get("events")))
                if events:
                    ranges.append(events)
        versions = tuple(str(v) for v in entry.get("versions") or () if isinstance(v, (str, int)))
        if ranges or versions:
            yield AffectedPackage(normalize(name), tuple(ranges), versions)


def _events(value: object) -> Iterator[tuple[EventKind, str]]:
    for event in value if isinstance(value, list) else ():
        if not isinstance(event, dict):
            continue
        kinds: tuple[EventKind, ...] = ("introduced", "fixed", "last_affected")
        for kind in kinds:
            if kind in event:  # "limit" is for GIT ranges only
                yield kind, str(event[kind])


def _severity(data: Mapping[str, object]) -> tuple[Band | None, float | None]:
    """A CVSS 3.x (else 2.0) vector's score and band, else the database's own rating."""
    entries = _dicts(data.get("severity"))
    for wanted in ("CVSS_V3", "CVSS_V2"):
        for entry in entries:
            vector = entry.get("score")
            if entry.get("type") == wanted and isinstance(vector, str):
                score = base_score(vector)
                if score is not None:
                    return band(score), score
    specific = data.get("database_specific")
    if isinstance(specific, dict) and isinstance(specific.get("severity"), str):
        rating = _DB_SEVERITY.get(specific["severity"].upper())
        if rating is not None:
            return rating, None
    return None, None


def _summary(data: Mapping[str, object]) -> str:
    for key in ("summary", "details"):
        text = data.get(key)
        if isinstance(text, str) and text.strip():
            line = " ".join(text.split())
            return line if len(line) <= 200 else line[:197] + "..."
    return ""


def _url(data: Mapping[str, object]) -> str | None:
    refs = _dicts(data.get("references"))
    for kind in ("ADVISORY", "WEB", "REPORT"):
        for ref in refs:
            if ref.get("type") == kind and isinstance(ref.get("url"), str):
                return str(ref["url"])
    return None


# -- sources ------------------------------------------------------------------------


class AdvisorySource(Protocol):
    """Where advisories come from: *describe* names it in reports, *notes* say how it went."""

    @property
    def describe(self) -> str: ...

    @property
    def notes(self) -> tuple[str, ...]: ...

    def advisories(self, packages: Collection[tuple[str, str]]) -> Mapping[str, Sequence[Advisory]]:
        """Normalized name -> the advisories that may concern it, for (name, version) pairs."""
        ...


@dataclass(frozen=True, slots=True)
class LocalDatabase:
    """A directory or zip of OSV files, loaded (through the cache) into a package index."""

    path: Path
    by_package: Mapping[str, Sequence[Mapping[str, object]]]  # name -> records
    count: int  # advisories read (withdrawn and non-PyPI ones excluded)

    @property
    def describe(self) -> str:
        return str(self.path)

    @property
    def notes(self) -> tuple[str, ...]:
        return ()

    def advisories(self, packages: Collection[tuple[str, str]]) -> Mapping[str, Sequence[Advisory]]:
        names = {name for name, _version in packages}
        return {name: [Advisory.from_record(r) for r in self.by_package.get(name, ())]
                for name in names}


def open_database(path: Path, cache_dir: Path | None, *, key: str = "--db") -> LocalDatabase:
    """The database at *path* (directory or zip), from the cache when the source is unchanged.

    *key* names where the path came from (``--db`` or ``audit.db``) in errors.
    """
    path = path.expanduser().resolve()
    if path.is_dir():
        stamp, files = _directory_stamp(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        info = path.stat()
        stamp, files = f"zip:{info.st_size}:{info.st_mtime_ns}", None
    else:
        what = "does not exist" if not path.exists() else "is neither a directory nor a zip file"
        raise GovernanceError(
            f"{key}: the advisory database {path} {what}",
            hint="point it at a directory of OSV files (a checkout of the PyPA advisory "
            "database) or an OSV zip export, or use --online", key=key, actual=str(path))
    cached = _load_cached(cache_dir, path, stamp)
    if cached is not None:
        return cached
    advisories = list(_read_directory(path, files) if files is not None else _read_zip(path))
    by_package: dict[str, list[Mapping[str, object]]] = {}
    for advisory in advisories:
        record = advisory.as_record()
        for name in sorted({a.name for a in advisory.affected}):
            by_package.setdefault(name, []).append(record)
    db = LocalDatabase(path, by_package, len(advisories))
    if cache_dir is not None:
        payload = {"format": RECORD_FORMAT, "source": str(path), "stamp": stamp,
                   "count": db.count, "packages": by_package}
        write_bytes(_cache_file(cache_dir, path), json.dumps(payload).encode())
    return db


def _cache_file(cache_dir: Path, source: Path) -> Path:
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:24]
    return cache_dir / CACHE_BUCKET / f"{digest}.json"


def _load_cached(cache_dir: Path | None, path: Path, stamp: str) -> LocalDatabase | None:
    if cache_dir is None:
        return None
    try:
        data = json.loads(_cache_file(cache_dir, path).read_bytes())
    except (OSError, ValueError):
        return None
    if (not isinstance(data, dict) or data.get("format") != RECORD_FORMAT
            or data.get("stamp") != stamp or not isinstance(data.get("packages"), dict)):
        return None
    return LocalDatabase(path, data["packages"], int(data.get("count", 0)))


def _directory_stamp(root: Path) -> tuple[str, list[Path]]:
    """A digest of every OSV file's path, size and mtime under *root*, and the files."""
    files: list[Path] = []
    digest = hashlib.sha256()
    stack = [root]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.startswith("."):
                    continue  # .git, .id-allocator
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.name.endswith(_SUFFIXES):
                    info = entry.stat()
                    digest.update(f"{entry.path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
                    files.append(Path(entry.path))
    return "dir:" + digest.hexdigest(), files


def _read_directory(root: Path, files: Sequence[Path]) -> Iterator[Advisory]:
    for file in files:
        try:
            data = _parse(file.read_bytes(), file.name)
        except (OSError, ValueError) as exc:
            raise _unreadable(root, file.relative_to(root).as_posix(), exc) from None
        advisory = Advisory.from_osv(data) if isinstance(data, dict) else None
        if advisory is not None:
            yield advisory


def _read_zip(path: Path) -> Iterator[Advisory]:
    with zipfile.ZipFile(path) as archive:
        for name in sorted(archive.namelist()):
            if not name.endswith(_SUFFIXES) or name.rsplit("/", 1)[-1].startswith("."):
                continue
            try:
                data = _parse(archive.read(name), name)
            except (OSError, ValueError, zipfile.BadZipFile) as exc:
                raise _unreadable(path, name, exc) from None
            advisory = Advisory.from_osv(data) if isinstance(data, dict) else None
            if advisory is not None:
                yield advisory


def _parse(data: bytes, name: str) -> object:
    if name.endswith(".json"):
        return json.loads(data)
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10 times faster
    try:
        return yaml.load(data, Loader=loader)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc


def _unreadable(source: Path, name: str, exc: Exception) -> GovernanceError:
    return GovernanceError(
        f"cannot read the advisory {name} in {source}: {exc}",
        hint="fix or remove the file; every file of the database must be an OSV record",
        file=source / name if source.is_dir() else source)
