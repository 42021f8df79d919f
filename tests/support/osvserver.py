"""A local OSV API on 127.0.0.1, served from a thread, and a plain reading of OSV records.

It answers what api.osv.dev answers for PyPI: ``POST /v1/querybatch`` with
``{"queries": [{"package": {"name", "ecosystem"}, "version"}]}`` gives, per
query, ``{"vulns": [{"id", "modified"}]}`` (paged with ``next_page_token``
after *page_size* IDs), and ``GET /v1/vulns/ID`` the full record. Which
advisories affect a version is decided by ``affects`` below, written from the
OSV specification independently of orchestrator's own evaluation, so tests
that compare the two check one against the other::

    with OsvServer(records) as server:
        monkeypatch.setenv("ORCHESTRATOR_OSV_URL", server.url)
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ADVISORIES = Path("/work/shared/data/advisories")

Record = dict[str, Any]


def load_records(packages: Iterable[str], root: Path = ADVISORIES) -> dict[str, Record]:
    """ID -> record of every advisory in *root* naming one of *packages* (any directory)."""
    wanted = {canonicalize_name(p) for p in packages}
    pattern = re.compile(r"^\s*name:\s*['\"]?([^'\"\n]+)", re.MULTILINE)
    found: dict[str, Record] = {}
    for path in sorted((root / "vulns").rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        if not {canonicalize_name(m) for m in pattern.findall(text)} & wanted:
            continue
        record = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        # as the API sends it: JSON, timestamps as RFC 3339 strings (YAML made datetimes)
        found[record["id"]] = json.loads(json.dumps(record, default=_timestamp))
    return found


def _timestamp(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def affects(record: Mapping[str, Any], package: str, version: str) -> bool:
    """Whether *record* affects *package* at *version*: a listed version, or a range pair.

    Events are read pairwise in the order written (introduced, then the
    fixed or last_affected that closes it), as the PyPA database writes them.
    """
    if record.get("withdrawn"):
        return False
    wanted, at = canonicalize_name(package), _version(version)
    for entry in record.get("affected") or ():
        pkg = entry.get("package") or {}
        if pkg.get("ecosystem") != "PyPI" or canonicalize_name(pkg.get("name", "")) != wanted:
            continue
        if any(str(v) == version or (_version(str(v)) is not None and _version(str(v)) == at)
               for v in entry.get("versions") or ()):
            return True
        for rng in entry.get("ranges") or ():
            if rng.get("type") != "ECOSYSTEM" or at is None:
                continue
            start: Version | None = None
            opened = False
            for event in rng.get("events") or ():
                if "introduced" in event:
                    text = str(event["introduced"])
                    start, opened = (None if text == "0" else _version(text)), True
                elif opened and ("fixed" in event or "last_affected" in event):
                    end = _version(str(event.get("fixed", event.get("last_affected"))))
                    inside = start is None or at >= start
                    if "fixed" in event:
                        inside = inside and end is not None and at < end
                    else:
                        inside = inside and end is not None and at <= end
                    if inside:
                        return True
                    opened = False
            if opened and (start is None or at >= start):
                return True  # introduced and never fixed
    return False


def fixed_versions(record: Mapping[str, Any], package: str) -> list[str]:
    out = []
    for entry in record.get("affected") or ():
        pkg = entry.get("package") or {}
        if canonicalize_name(pkg.get("name", "")) != canonicalize_name(package):
            continue
        for rng in entry.get("ranges") or ():
            if rng.get("type") == "ECOSYSTEM":
                out += [str(e["fixed"]) for e in rng.get("events") or () if "fixed" in e]
    return out


class OsvServer:
    """The OSV API over *records*; *requests* lists (method, path) of every request seen."""

    def __init__(self, records: Mapping[str, Record], *, page_size: int = 1000) -> None:
        self.records = dict(records)
        self.page_size = page_size
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def __enter__(self) -> OsvServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.osv = self  # type: ignore[attr-defined]
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def matching(self, name: str, version: str) -> list[str]:
        return sorted(i for i, r in self.records.items() if affects(r, name, version))


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def osv(self) -> OsvServer:
        server: OsvServer = self.server.osv  # type: ignore[attr-defined]
        return server

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        with self.osv._lock:
            self.osv.requests.append(("GET", self.path))
        vuln_id = self.path.removeprefix("/v1/vulns/")
        record = self.osv.records.get(vuln_id)
        if not self.path.startswith("/v1/vulns/") or record is None:
            self._send(404, {"code": 5, "message": "Bug not found."})
            return
        self._send(200, record)

    def do_POST(self) -> None:
        with self.osv._lock:
            self.osv.requests.append(("POST", self.path))
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        if self.path != "/v1/querybatch":
            self._send(404, {"code": 5, "message": "Not found."})
            return
        results = []
        for query in body["queries"]:
            ids = self.osv.matching(query["package"]["name"], query["version"])
            start = int(query.get("page_token") or 0)
            page = ids[start:start + self.osv.page_size]
            result: dict[str, object] = {"vulns": [
                {"id": i, "modified": self.osv.records[i].get("modified")} for i in page]}
            if start + self.osv.page_size < len(ids):
                result["next_page_token"] = str(start + self.osv.page_size)
            results.append(result if page else {})
        self._send(200, {"results": results})
