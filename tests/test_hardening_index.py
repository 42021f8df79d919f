"""A hostile index: silent and slow-drip servers fail within the deadline, named."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.errors import PackageIndexError
from orchestrator.index import IndexClient, transport
from orchestrator.models import IndexSpec
from tests.conftest import MakeWorkspace, pyproject
from tests.support.cli import run

Behaviour = Callable[[socket.socket], None]


class RawServer:
    """A TCP server on 127.0.0.1 that treats every connection with *behaviour*."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.stop = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/simple"

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                self.behaviour(conn)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def silent(conn: socket.socket) -> None:
    time.sleep(30)  # reads the request, never answers


def slow_drip(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.pypi.simple.v1+json\r\n"
                 b"Content-Length: 100000\r\n\r\n")
    for _ in range(200):  # one byte at a time: each read is quick, the whole is endless
        conn.sendall(b" ")
        time.sleep(0.3)


@pytest.fixture
def raw_server(request: pytest.FixtureRequest) -> Iterator[Callable[[Behaviour], RawServer]]:
    servers: list[RawServer] = []

    def make(behaviour: Behaviour) -> RawServer:
        servers.append(RawServer(behaviour))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.mark.parametrize("behaviour", [silent, slow_drip], ids=["silent", "slow-drip"])
def test_a_stuck_index_fails_within_the_configured_deadline(
    behaviour: Behaviour, raw_server: Callable[[Behaviour], RawServer], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_HTTP_TIMEOUT", "2")
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    server = raw_server(behaviour)
    started = time.monotonic()
    with IndexClient([IndexSpec("main", server.url)], tmp_path / "cache") as client, \
            pytest.raises(PackageIndexError) as caught:
        client.files("demo")
    elapsed = time.monotonic() - started
    assert elapsed < 3.5
    message = str(caught.value)
    assert message.startswith(
        f"index 'main' ({server.url}) did not answer {server.url}/demo/ within 2 s "
        "(ORCHESTRATOR_HTTP_TIMEOUT): gave up after "
    )
    assert "hint: the index is slow or stuck; try again later, raise ORCHESTRATOR_HTTP_TIMEOUT" \
        in message
    assert server.connections == 1  # a server that went silent is not asked again


def test_the_default_deadline_is_30_seconds_and_a_bad_value_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORCHESTRATOR_HTTP_TIMEOUT", raising=False)
    assert transport.Deadlines.from_env() == transport.Deadlines(total=30.0, connect=10.0)
    monkeypatch.setenv("ORCHESTRATOR_HTTP_TIMEOUT", "soon")
    with pytest.raises(PackageIndexError, match="ORCHESTRATOR_HTTP_TIMEOUT='soon' is not a "
                       "number of seconds"):
        transport.Deadlines.from_env()


def test_retries_stop_at_the_deadline_and_say_how_long_they_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_HTTP_TIMEOUT", "1")
    monkeypatch.setattr(transport, "BACKOFF", 0.2)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/simple"
    sock.close()  # nothing listens: connection refused, which is retried
    started = time.monotonic()
    with IndexClient([IndexSpec("main", url)], tmp_path / "cache") as client, \
            pytest.raises(PackageIndexError) as caught:
        client.files("demo")
    assert time.monotonic() - started < 1.5
    assert " s (ConnectError" in str(caught.value)
    assert str(caught.value).startswith(f"cannot reach index 'main' ({url}) at {url}/demo/ after ")


def answer(body: bytes, content_type: str, status: str = "200 OK") -> Behaviour:
    def behave(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: "
                     f"{len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    return behave


JSON = "application/vnd.pypi.simple.v1+json"


@pytest.mark.parametrize(
    ("body", "content_type", "problem", "hint"),
    [
        (b"<<<garbage>>> not a page", "text/html",
         "the page is not a simple-API page (no links, and not an HTML document)",
         "check that the index URL in workspace.yaml is the simple API's"),
        (b'{"meta": {"api-version": "2.0"}, "name": "demo", "files": []}', JSON,
         "unsupported simple-API version 2.0 (this orchestrator reads 1.x)",
         "upgrade orchestrator, or ask the index for version 1 of the API"),
        (b'<html><head><meta name="pypi:repository-version" content="3.1"></head></html>',
         "text/html", "unsupported simple-API version 3.1 (this orchestrator reads 1.x)",
         "upgrade orchestrator"),
        (b'{"meta": {"api-version": "1.1"}, "name": "demo", "files": [{"url": 7, '
         b'"filename": "demo-1.0.tar.gz"}]}', JSON,
         "malformed page at key files[0].url: expected a string, got a number",
         "retry with --refresh"),
        (b'{"name": "demo", "files": [{"url": "demo-1.0.tar.gz", "filename": '
         b'"demo-1.0.tar.gz", "hashes": {"sha256": 5}}]}', JSON,
         "malformed page at key files[0].hashes.sha256: expected a string, got a number",
         "retry with --refresh"),
        (b'{"name": "demo", "files": {}}', JSON,
         "malformed page at key files: expected an array, got an object", "retry"),
        (b"[1, 2]", JSON, "malformed page at key (top level): expected an object, got an array",
         "retry"),
    ],
    ids=["html-garbage", "json-v2", "html-v3", "url-int", "sha-int", "files-object", "array"],
)
def test_pages_that_are_not_simple_api_pages_are_named(
    body: bytes, content_type: str, problem: str, hint: str,
    raw_server: Callable[[Behaviour], RawServer], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    server = raw_server(answer(body, content_type))
    with IndexClient([IndexSpec("main", server.url)], tmp_path / "cache") as client, \
            pytest.raises(PackageIndexError) as caught:
        client.files("demo")
    assert str(caught.value).startswith(
        f"index 'main' ({server.url}) sent an unreadable page for 'demo' "
        f"({server.url}/demo/): {problem}\nhint: {hint}"
    )


def test_an_empty_html_project_page_is_still_a_page(
    raw_server: Callable[[Behaviour], RawServer], tmp_path: Path,
) -> None:
    server = raw_server(answer(b"<!DOCTYPE html><html><body></body></html>", "text/html"))
    with IndexClient([IndexSpec("main", server.url)], tmp_path / "cache") as client:
        assert list(client.files("demo")) == []


def test_a_release_whose_files_all_have_invalid_names_is_no_usable_file_not_yanked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from orchestrator.cli import cli
    from tests.conftest import index_manifest, pyproject
    from tests.support.indexserver import IndexServer

    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    junk = tmp_path / "junk"
    junk.mkdir()
    with IndexServer(tmp_path / "index") as server:
        for name in ("demo-1.0.whl", "demo-1.0-py3-none-any.zip"):
            (junk / name).write_bytes(b"not an archive")
            server.add_file(junk / name, project="demo")  # served, as a broken index would
        root = tmp_path / "ws"
        (root / "services/api").mkdir(parents=True)
        (root / "workspace.yaml").write_text(index_manifest(server))
        (root / "services/api/pyproject.toml").write_text(pyproject("api", ["demo"]))
        result = CliRunner().invoke(cli, ["-w", str(root), "lock"])
    assert result.exit_code == 1
    assert "yanked" not in result.stderr and "internal error" not in result.stderr
    assert ("the index lists no usable file of it; skipped 2 whose names are no valid wheel or "
            "sdist name: demo-1.0-py3-none-any.zip, demo-1.0.whl\n") in result.stderr
    assert result.stderr.endswith(
        "hint: ask the index's maintainers to fix the file names of demo\n")


@pytest.mark.parametrize("pep658", [True, False], ids=["pep658", "ranged"])
def test_metadata_over_the_limit_is_refused_naming_the_file(
    pep658: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.indexserver import IndexServer

    monkeypatch.setenv("ORCHESTRATOR_METADATA_MAX_BYTES", "2048")
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    with IndexServer(tmp_path / "index", pep658=pep658) as server:
        server.add_wheel("fat", "1.0", extra_metadata=[f"Summary: {'x' * 4096}"])
        with IndexClient([IndexSpec("main", server.url)], tmp_path / "cache") as client:
            (file,) = client.files("fat")
            with pytest.raises(PackageIndexError) as caught:
                client.metadata(file)
    message = str(caught.value)
    assert message.startswith(
        f"the METADATA of fat-1.0-py3-none-any.whl from index 'main' ({server.url}) is "
    )
    assert "bytes, over the 2048-byte limit; refusing to read it" in message


def test_a_workspace_yaml_deadline_stops_a_slow_drip_index_and_is_named(
    raw_server: Callable[[Behaviour], RawServer], make_workspace: MakeWorkspace,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORCHESTRATOR_HTTP_TIMEOUT", raising=False)
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    server = raw_server(slow_drip)
    manifest = (f"version: 1\nname: shop\nindexes:\n  - {{name: main, url: '{server.url}'}}\n"
                "members: [services/*]\nhttp:\n  timeout: {connect: 1, total: 2}\n")
    root = make_workspace({"services/api": pyproject("api", ["demo"])}, manifest=manifest)
    started = time.monotonic()
    code, out, err = run(root, "lock")
    elapsed = time.monotonic() - started
    assert code == 1, out + err
    assert elapsed < 5
    assert (f"did not answer {server.url}/demo/ within 2 s (http.timeout.total in "
            "workspace.yaml): gave up after ") in err
    assert "raise http.timeout.total in workspace.yaml" in err
    assert "internal error" not in err
    # the environment variable still wins
    monkeypatch.setenv("ORCHESTRATOR_HTTP_TIMEOUT", "1")
    code, out, err = run(root, "lock")
    assert code == 1
    assert "within 1 s (ORCHESTRATOR_HTTP_TIMEOUT)" in err


def test_a_workspace_yaml_read_timeout_stops_a_silent_index_and_is_named(
    raw_server: Callable[[Behaviour], RawServer], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORCHESTRATOR_HTTP_TIMEOUT", raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")
    server = raw_server(silent)
    deadlines = transport.Deadlines.configured(None, 1, 20)
    started = time.monotonic()
    with IndexClient([IndexSpec("main", server.url)], tmp_path / "cache",
                     deadlines=deadlines) as client, \
            pytest.raises(PackageIndexError) as caught:
        client.files("demo")
    assert time.monotonic() - started < 3
    assert "within 1 s (read timeout, http.timeout.read in workspace.yaml)" in str(caught.value)


@pytest.mark.parametrize(("value", "shown"), [
    ("{timeout: {total: 0}}", "http.timeout.total: expected a number of seconds greater than 0 "
     "(and less than a day), got number 0"),
    ("{timeout: {read: soon}}", "http.timeout.read: expected a number of seconds greater "
     "than 0 (and less than a day), got string 'soon'"),
    ("{timeout: {conect: 3}}", "http.timeout.conect: unknown key"),
    ("{timeout: 30}", "http.timeout: expected a mapping with connect, read and total "
     "(seconds), got number 30"),
    ("{deadline: 3}", "http.deadline: unknown key"),
])
def test_a_bad_http_timeout_in_workspace_yaml_is_named(
    value: str, shown: str, make_workspace: MakeWorkspace,
) -> None:
    manifest = f"version: 1\nname: shop\nmembers: [services/*]\nhttp: {value}\n"
    root = make_workspace({"services/api": pyproject("api", [])}, manifest=manifest)
    code, _out, err = run(root, "lock", "--check")
    assert code == 1
    assert f"workspace.yaml: {shown}" in err, err


def test_http_timeouts_in_workspace_yaml_reach_the_index_client(
    make_workspace: MakeWorkspace,
) -> None:
    from orchestrator.session import Session

    manifest = ("version: 1\nname: shop\nmembers: [services/*]\n"
                "http:\n  timeout: {connect: 3, read: 7.5, total: 60}\n")
    root = make_workspace({"services/api": pyproject("api", [])}, manifest=manifest)
    with Session(root) as session:
        limits = session.index._deadlines
    assert limits is not None
    assert (limits.connect, limits.read, limits.total) == (3.0, 7.5, 60.0)
    assert limits.describe() == "60 s (http.timeout.total in workspace.yaml)"
