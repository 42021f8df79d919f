"""A real package index on 127.0.0.1, served from a thread, for tests.

It speaks the Simple Repository API the way public and private indexes do:
PEP 691 JSON when the client's Accept header prefers it, PEP 503 HTML
otherwise (with PEP 592 yanked, PEP 658/714 metadata attributes and
``#sha256=`` fragments), PEP 658 ``<file>.metadata`` files, and file
downloads honouring a single HTTP ``Range``.  Switches let a test remove
features (no JSON, no PEP 658, no Range), require basic auth, fail the next
requests, add latency, and inspect every request the server saw::

    with IndexServer(tmp_path / "files") as server:
        server.add_wheel("demo", "1.0", requires_dist=["dep>=2"])
        client = IndexClient([IndexSpec("test", server.url)], cache)
        ...
        assert server.count("/files/demo-1.0-py3-none-any.whl") == 0

Projects can also be served as *metadata-only wheels* generated on demand
(tiny zips holding only ``*.dist-info`` files), which is how the recorded
resolver corpus in ``/work/shared/data/resolvelib-cases/index`` is served:
``server.load_case_index(path)``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from orchestrator.names import normalize
from tests.support.wheels import build_sdist, build_wheel, metadata_text

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    status: int


@dataclass(slots=True)
class ServedFile:
    """One distribution file of a project; bytes come from disk or are generated."""

    filename: str
    project: str  # normalized
    path: Path | None = None
    requires_dist: tuple[str, ...] = ()  # for generated metadata-only wheels
    requires_python: str | None = None
    yanked: str | None = None
    upload_time: str | None = None
    _data: bytes | None = field(default=None, repr=False)
    _metadata: bytes | None = field(default=None, repr=False)

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self.path.read_bytes() if self.path is not None else self._generate_wheel()
        return self._data

    @property
    def metadata(self) -> bytes | None:
        """The core metadata a PEP 658 file carries; None for sdists."""
        if self._metadata is None and self.filename.endswith(".whl"):
            try:
                with zipfile.ZipFile(io.BytesIO(self.data)) as zf:
                    # the top-level dist-info's, not a vendored package's inside the wheel
                    name = next(n for n in zf.namelist()
                                if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
                    self._metadata = zf.read(name)
            except (zipfile.BadZipFile, StopIteration):
                return None  # a broken file is served as it is, without PEP 658 metadata
        return self._metadata

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def _generate_wheel(self) -> bytes:
        name, version = self.filename.split("-")[:2]
        extras = sorted({m for req in self.requires_dist for m in _EXTRA_MARKER.findall(req)})
        entries = {
            "METADATA": metadata_text(name, version, self.requires_dist, None, extras),
            "WHEEL": "Wheel-Version: 1.0\nGenerator: indexserver\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n\n",
        }
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for entry, text in entries.items():
                info = zipfile.ZipInfo(f"{name}-{version}.dist-info/{entry}", (2020, 1, 1, 0, 0, 0))
                zf.writestr(info, text, zipfile.ZIP_DEFLATED)
            zf.writestr(f"{name}-{version}.dist-info/RECORD", "")
        return buffer.getvalue()


class IndexServer:
    """A Simple Repository API server over a directory and programmatic additions.

    Files already in *root* are served at start; ``add_wheel``/``add_sdist``
    build new ones into it.  All switches are plain attributes that a test may
    flip at any time.
    """

    def __init__(
        self,
        root: Path,
        *,
        json_api: bool = True,
        pep658: bool = True,
        ranges: bool = True,
        validators: bool = False,
        cache_control: str | None = None,
        auth: tuple[str, str] | None = None,
        file_base_url: str | None = None,
        latency: float = 0.0,
        path_prefix: str = "",
    ) -> None:
        self.root = root
        self.path_prefix = path_prefix.rstrip("/")  # "/pypi-AgE…": a token in the path
        self.json_api = json_api
        self.pep658 = pep658
        self.ranges = ranges
        self.validators = validators  # send ETag/Last-Modified and answer 304
        self.cache_control = cache_control
        self.auth = auth
        self.file_base_url = file_base_url  # serve file links on another host
        self.latency = latency  # seconds slept before answering each request
        self.requests: list[RecordedRequest] = []
        self._projects: dict[str, dict[str, ServedFile]] = {}
        self._failures: list[int] = []
        self._interrupts = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._port: int | None = None  # kept after stop(), for "unreachable" tests
        self._thread: threading.Thread | None = None
        root.mkdir(parents=True, exist_ok=True)
        for path in sorted(root.iterdir()):
            if path.is_file():
                self.add_file(path)

    # -- lifecycle -------------------------------------------------------

    def start(self) -> IndexServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.index = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._port = httpd.server_address[1]
        # A short poll interval keeps stop() (and so each test) fast.
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> IndexServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (the server must have been started)."""
        if self._port is None:
            raise RuntimeError("IndexServer was never started; use it as a context manager")
        return f"http://127.0.0.1:{self._port}{self.path_prefix}"

    @property
    def url(self) -> str:
        """The Simple API root, ``http://127.0.0.1:PORT/simple``."""
        return f"{self.base_url}/simple"

    def file_url(self, filename: str) -> str:
        return f"{self.file_base_url or self.base_url}/files/{filename}"

    # -- content ---------------------------------------------------------

    def add_file(
        self,
        path: Path,
        *,
        requires_python: str | None = None,
        yanked: str | None = None,
        upload_time: str | None = None,
        project: str | None = None,
    ) -> ServedFile:
        """Serve an existing wheel or sdist file.

        A file whose name is no valid wheel or sdist name is served under
        *project* (as a hostile or broken index would); without it, refused.
        """
        try:
            if path.name.endswith(".whl"):
                project = parse_wheel_filename(path.name)[0]
            else:
                project = parse_sdist_filename(path.name)[0]
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion) as exc:
            if project is None:
                raise ValueError(f"{path}: not a wheel or sdist filename") from exc
            project = normalize(project)
        served = ServedFile(
            path.name,
            project,
            path=path,
            requires_python=requires_python,
            yanked=yanked,
            upload_time=upload_time,
        )
        self._put(served)
        return served

    def add_wheel(
        self,
        name: str,
        version: str,
        *,
        requires_dist: Iterable[str] = (),
        requires_python: str | None = None,
        extras: Iterable[str] = (),
        tag: str = "py3-none-any",
        yanked: str | None = None,
        upload_time: str | None = None,
        files: dict[str, str | bytes] | None = None,
        extra_metadata: Iterable[str] = (),
    ) -> ServedFile:
        """Build a real wheel into ``root`` (tests/support/wheels.py) and serve it.

        *extra_metadata*: more METADATA header lines, such as ``License-Expression: MIT``.
        """
        path = build_wheel(
            self.root,
            name,
            version,
            requires_dist=requires_dist,
            requires_python=requires_python,
            extras=extras,
            tag=tag,
            files=files,
            extra_metadata=extra_metadata,
        )
        return self.add_file(
            path, requires_python=requires_python, yanked=yanked, upload_time=upload_time
        )

    def add_sdist(
        self,
        name: str,
        version: str,
        *,
        requires_dist: Iterable[str] = (),
        requires_python: str | None = None,
        yanked: str | None = None,
    ) -> ServedFile:
        path = build_sdist(
            self.root,
            name,
            version,
            requires_dist=requires_dist,
            requires_python=requires_python,
        )
        return self.add_file(path, requires_python=requires_python, yanked=yanked)

    def add_metadata_only(
        self, name: str, version: str, requires_dist: Iterable[str] = ()
    ) -> ServedFile:
        """Serve ``NAME-VERSION-py3-none-any.whl`` holding only its dist-info.

        The zip is generated the first time a page or the file is requested, so
        a snapshot of thousands of releases loads instantly.
        """
        dist = re.sub(r"[-_.]+", "_", name)
        served = ServedFile(
            f"{dist}-{version}-py3-none-any.whl",
            normalize(name),
            requires_dist=tuple(requires_dist),
        )
        self._put(served)
        return served

    def load_case_index(self, path: Path) -> int:
        """Serve a resolvelib-cases ``index/NAME.json`` snapshot as metadata-only wheels.

        Versions that are not valid PEP 440 (two in the cheroot snapshot) are
        skipped, as pip and every modern resolver ignore them.  Returns the
        number of files served.
        """
        data: dict[str, dict[str, dict[str, Any]]] = json.loads(path.read_text())
        count = 0
        for project, versions in data.items():
            for version, info in versions.items():
                try:
                    Version(version)
                except InvalidVersion:
                    continue
                self.add_metadata_only(project, version, info.get("dependencies", ()))
                count += 1
        return count

    def _put(self, served: ServedFile) -> None:
        with self._lock:
            self._projects.setdefault(served.project, {})[served.filename] = served

    def projects(self) -> list[str]:
        with self._lock:
            return sorted(self._projects)

    def project_files(self, project: str) -> list[ServedFile] | None:
        with self._lock:
            files = self._projects.get(normalize(project))
            return None if files is None else list(files.values())

    def find_file(self, filename: str) -> ServedFile | None:
        with self._lock:
            for files in self._projects.values():
                if filename in files:
                    return files[filename]
        return None

    # -- test controls and observations ---------------------------------

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next *count* requests with *status* before serving normally."""
        with self._lock:
            self._failures.extend([status] * count)

    def interrupt_next(self, count: int) -> None:
        """Drop the connection halfway through the next *count* file downloads."""
        with self._lock:
            self._interrupts += count

    def take_interrupt(self) -> bool:
        with self._lock:
            if self._interrupts:
                self._interrupts -= 1
                return True
            return False

    def next_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def count(self, path: str | None = None) -> int:
        """How many requests reached *path* (every request when None)."""
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(r.path for r in self.requests)

    def reset(self) -> None:
        """Forget recorded requests (content and switches stay)."""
        with self._lock:
            self.requests.clear()


class _Handler(BaseHTTPRequestHandler):
    """Routes ``/simple/``, ``/simple/<project>/``, ``/files/<name>[.metadata]``."""

    protocol_version = "HTTP/1.1"  # keep-alive, like real indexes
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server_version = "IndexServer/1"

    @property
    def index(self) -> IndexServer:
        return self.server.index  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read server.requests instead of stderr noise

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        index = self.index
        path = unquote(urlsplit(self.path).path)
        if index.latency:
            time.sleep(index.latency)
        self._route(index, path)

    def _record(self, status: int) -> None:
        # Recorded before the response goes out, so a test that has its
        # answer always sees the request in server.requests.
        path = unquote(urlsplit(self.path).path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.index.record(RecordedRequest(self.command, path, headers, status))

    def _route(self, index: IndexServer, path: str) -> int:
        if index.path_prefix:
            if not path.startswith(index.path_prefix + "/"):
                return self._send(404, b"not found\n", "text/plain")
            path = path[len(index.path_prefix) :]
        failure = index.next_failure()
        if failure is not None:
            return self._send(failure, b"injected failure\n", "text/plain")
        if index.auth is not None and not self._authorized(index.auth):
            return self._send(
                401,
                b"unauthorized\n",
                "text/plain",
                {"WWW-Authenticate": 'Basic realm="index"'},
            )
        if path in ("/simple", "/simple/"):
            return self._root_page(index)
        if path.startswith("/simple/"):
            return self._project_page(index, path[len("/simple/") :].strip("/"))
        if path.startswith("/files/"):
            return self._file(index, path[len("/files/") :])
        return self._send(404, b"not found\n", "text/plain")

    def _authorized(self, auth: tuple[str, str]) -> bool:
        expected = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        return self.headers.get("Authorization", "") == f"Basic {expected}"

    # -- pages -------------------------------------------------------------

    def _negotiate(self, index: IndexServer) -> str:
        """Pick JSON or HTML from the Accept header's q-values (PEP 691)."""
        best, best_q = "text/html", 0.0
        for part in self.headers.get("Accept", "text/html").split(","):
            kind, _, params = part.strip().partition(";")
            q = 1.0
            for param in params.split(";"):
                key, _, value = param.strip().partition("=")
                if key == "q":
                    q = float(value or 1)
            kind = kind.strip()
            if kind == JSON_TYPE and not index.json_api:
                continue
            if kind in (JSON_TYPE, HTML_TYPE, "text/html", "*/*") and q > best_q:
                best, best_q = (HTML_TYPE if kind == "*/*" else kind), q
        return best

    def _root_page(self, index: IndexServer) -> int:
        kind = self._negotiate(index)
        names = index.projects()
        if kind == JSON_TYPE:
            body = json.dumps(
                {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]}
            ).encode()
        else:
            links = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
            body = f"<!DOCTYPE html><html><body>\n{links}</body></html>".encode()
        return self._send_page(index, body, kind)

    def _project_page(self, index: IndexServer, project: str) -> int:
        files = index.project_files(project)
        if files is None:
            return self._send(404, b"no such project\n", "text/plain")
        kind = self._negotiate(index)
        name = normalize(project)
        if kind == JSON_TYPE:
            body = json.dumps(_json_page(index, name, files)).encode()
        else:
            body = _html_page(index, name, files).encode()
        return self._send_page(index, body, kind)

    def _send_page(self, index: IndexServer, body: bytes, kind: str) -> int:
        headers: dict[str, str] = {"Vary": "Accept"}
        if index.cache_control:
            headers["Cache-Control"] = index.cache_control
        if index.validators:
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            headers["ETag"] = etag
            headers["Last-Modified"] = LAST_MODIFIED
            if self.headers.get("If-None-Match") == etag or (
                "If-None-Match" not in self.headers
                and self.headers.get("If-Modified-Since") == LAST_MODIFIED
            ):
                return self._send(304, b"", None, headers)
        return self._send(200, body, kind, headers)

    # -- files -------------------------------------------------------------

    def _file(self, index: IndexServer, filename: str) -> int:
        if filename.endswith(".metadata"):
            served = index.find_file(filename[: -len(".metadata")])
            if served is None or not index.pep658 or served.metadata is None:
                return self._send(404, b"not found\n", "text/plain")
            return self._send(200, served.metadata, "application/octet-stream")
        served = index.find_file(filename)
        if served is None:
            return self._send(404, b"not found\n", "text/plain")
        data = served.data
        requested = self.headers.get("Range")
        if requested and index.ranges:
            return self._send_range(data, requested)
        if index.take_interrupt():
            return self._send_truncated(data)
        return self._send(
            200,
            data,
            "application/octet-stream",
            {"Accept-Ranges": "bytes"} if index.ranges else None,
        )

    def _send_truncated(self, data: bytes) -> int:
        """Promise the whole file, send half, and hang up (a dropped connection)."""
        self._record(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        return 200

    def _send_range(self, data: bytes, header: str) -> int:
        span = _parse_range(header, len(data))
        if span is None:
            return self._send(416, b"", None, {"Content-Range": f"bytes */{len(data)}"})
        start, end = span
        return self._send(
            206,
            data[start : end + 1],
            "application/octet-stream",
            {"Content-Range": f"bytes {start}-{end}/{len(data)}", "Accept-Ranges": "bytes"},
        )

    def _send(
        self,
        status: int,
        body: bytes,
        kind: str | None,
        headers: dict[str, str] | None = None,
    ) -> int:
        self._record(status)
        self.send_response(status, HTTPStatus(status).phrase)
        if kind:
            self.send_header("Content-Type", kind)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status != 304:
            self.wfile.write(body)
        return status


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as inclusive (start, end), or None when unsatisfiable."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # suffix: the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return None
    return start, end


def _file_entries(index: IndexServer, files: list[ServedFile]) -> Iterator[dict[str, Any]]:
    for served in sorted(files, key=lambda f: f.filename):
        has_meta = index.pep658 and served.filename.endswith(".whl")
        entry: dict[str, Any] = {
            "filename": served.filename,
            "url": index.file_url(served.filename),
            "hashes": {"sha256": served.sha256},
            "requires-python": served.requires_python,
            "size": len(served.data),
        }
        if served.upload_time:
            entry["upload-time"] = served.upload_time
        if served.yanked is not None:
            entry["yanked"] = served.yanked or True
        if has_meta and served.metadata is not None:
            digest = {"sha256": hashlib.sha256(served.metadata).hexdigest()}
            entry["core-metadata"] = digest
            entry["dist-info-metadata"] = digest
        yield entry


def _json_page(index: IndexServer, name: str, files: list[ServedFile]) -> dict[str, Any]:
    entries = list(_file_entries(index, files))
    found = {_version_of(f.filename) for f in files}
    versions = sorted({v for v in found if v is not None}, key=lambda v: (Version(v), v))
    return {
        "meta": {"api-version": "1.1"},
        "name": name,
        "versions": versions,
        "files": entries,
    }


def _version_of(filename: str) -> str | None:
    """The file's version; None for a name that is no valid wheel or sdist name.

    Such files are still listed (a hostile index serves them): only the
    PEP 700 ``versions`` key leaves them out, instead of the handler raising.
    """
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def _html_page(index: IndexServer, name: str, files: list[ServedFile]) -> str:
    lines = [
        "<!DOCTYPE html>",
        '<html><head><meta name="pypi:repository-version" content="1.1">',
        f"<title>Links for {html.escape(name)}</title></head><body>",
        f"<h1>Links for {html.escape(name)}</h1>",
    ]
    for entry in _file_entries(index, files):
        attrs = [f'href="{html.escape(entry["url"])}#sha256={entry["hashes"]["sha256"]}"']
        if entry["requires-python"]:
            attrs.append(f'data-requires-python="{html.escape(entry["requires-python"])}"')
        if "yanked" in entry:
            reason = entry["yanked"] if isinstance(entry["yanked"], str) else ""
            attrs.append(f'data-yanked="{html.escape(reason)}"')
        if "core-metadata" in entry:
            value = "sha256=" + entry["core-metadata"]["sha256"]
            attrs.append(f'data-core-metadata="{value}" data-dist-info-metadata="{value}"')
        lines.append(f"<a {' '.join(attrs)}>{html.escape(entry['filename'])}</a><br/>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"
