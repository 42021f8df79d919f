"""The distribution API client against a small registry that wants bearer tokens.

The server here speaks the parts of the OCI distribution spec the client uses
(blob HEAD/GET, POST/PATCH/PUT uploads, cross-repository mounts, manifests) and
answers 401 with a Bearer challenge; its token endpoint takes the Basic
credentials of a docker config.json written into the test's DOCKER_CONFIG.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.errors import PublishError
from orchestrator.oci import registry
from orchestrator.oci.layout import CONFIG, MANIFEST, BlobStore, Descriptor

USER, PASSWORD, TOKEN = "ci", "s3cret", "tok-123"


@dataclass
class State:
    blobs: dict[str, bytes] = field(default_factory=dict)
    repos: dict[str, set[str]] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


def handler(state: State, port: list[int]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def reply(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  ) -> None:
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def authorized(self) -> bool:
            if self.path.startswith("/token"):
                return True
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                return True
            self.body()
            self.reply(401, b"{}", {"WWW-Authenticate": f'Bearer realm="http://127.0.0.1:'
                                    f'{port[0]}/token",service="test"'})
            return False

        def route(self) -> None:
            if not self.authorized():
                return
            path, _, query = self.path.partition("?")
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            state.log.append(f"{self.command} {path}{'?mount' if 'mount' in params else ''}")
            if path == "/token":
                basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {basic}":
                    self.reply(401)
                    return
                self.reply(200, json.dumps({"token": TOKEN}).encode())
                return
            match = re.fullmatch(r"/v2/(.+)/(blobs|manifests)/(uploads/)?(.*)", path)
            assert match, path
            repo, kind, upload, ref = match.groups()
            have = state.repos.setdefault(repo, set())
            if kind == "manifests":
                if self.command == "PUT":
                    data = self.body()
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    media = self.headers["Content-Type"]
                    state.manifests[(repo, ref)] = state.manifests[(repo, digest)] = (media, data)
                    self.reply(201, headers={"Docker-Content-Digest": digest})
                    return
                media, data = state.manifests[(repo, ref)]
                self.reply(200, data, {"Content-Type": media})
                return
            if upload is None:  # /blobs/<digest>
                if ref in have:
                    self.reply(200, state.blobs[ref])
                else:
                    self.reply(404)
                return
            if self.command == "POST" and params.get("mount") in state.repos.get(
                    params.get("from", ""), set()):
                have.add(params["mount"])
                self.reply(201)
                return
            if self.command == "POST":
                session = uuid.uuid4().hex
                state.uploads[session] = bytearray()
                self.reply(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{session}"})
                return
            state.uploads[ref] += self.body()
            if self.command == "PATCH":
                self.reply(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{ref}"})
                return
            data = bytes(state.uploads.pop(ref))
            assert "sha256:" + hashlib.sha256(data).hexdigest() == params["digest"]
            state.blobs[params["digest"]] = data
            have.add(params["digest"])
            self.reply(201)

        do_GET = do_HEAD = do_POST = do_PATCH = do_PUT = route  # noqa: N815

    return Handler


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, State]]:
    state = State()
    port: list[int] = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler(state, port))
    port.append(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    config = tmp_path / "docker"
    config.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (config / "config.json").write_text(json.dumps(
        {"auths": {f"127.0.0.1:{port[0]}": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    yield f"127.0.0.1:{port[0]}", state
    httpd.shutdown()


def image(store: BlobStore, size: int) -> Descriptor:
    layer = store.put_bytes(bytes(range(256)) * (size // 256), "application/vnd.oci.image"
                            ".layer.v1.tar")
    config = store.put_json({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [layer.digest]}}, CONFIG)
    return store.put_json({"schemaVersion": 2, "mediaType": MANIFEST,
                           "config": config.as_dict(), "layers": [layer.as_dict()]}, MANIFEST)


def test_push_with_a_bearer_token_in_chunks_then_mount(server: tuple[str, State],
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    host, state = server
    monkeypatch.setattr(registry, "CHUNK", 1024)
    store = BlobStore(tmp_path / "store")
    manifest = image(store, 4096)
    assert registry.push(store, manifest, f"{host}/team/a:1.0") == manifest.digest
    assert sum(1 for line in state.log if line.startswith("PATCH")) == 3  # 4 KiB in 1 KiB
    state.log.clear()
    registry.push(store, manifest, f"{host}/team/b:1.0")
    assert [line for line in state.log if "uploads" in line] == [
        "POST /v2/team/b/blobs/uploads/?mount", "POST /v2/team/b/blobs/uploads/?mount"]
    state.log.clear()
    registry.push(store, manifest, f"{host}/team/b:1.1")  # everything there: HEADs only
    assert [line.split()[0] for line in state.log if "/token" not in line] == [
        "HEAD", "HEAD", "PUT"]
    pulled = BlobStore(tmp_path / "pulled")
    got = registry.pull(f"{host}/team/b:1.1", pulled, "linux/amd64")
    assert got.digest == manifest.digest
    assert pulled.path(manifest.digest).read_bytes() == store.path(manifest.digest).read_bytes()


def test_wrong_credentials_name_the_registry(server: tuple[str, State], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    host, _state = server
    (tmp_path / "docker" / "config.json").write_text(json.dumps(
        {"auths": {host: {"auth": base64.b64encode(b"ci:wrong").decode()}}}))
    store = BlobStore(tmp_path / "store")
    with pytest.raises(PublishError) as caught:
        registry.push(store, image(store, 256), f"{host}/team/a:1.0")
    assert caught.value.message.startswith(
        f"starting an upload failed for {host}/team/a: HTTP 401")
    assert caught.value.hint == f"log in with `docker login {host}`"


def test_references() -> None:
    ref = registry.parse_reference("python:3.11-slim")
    assert (ref.host, ref.repository, ref.tag) == ("registry-1.docker.io", "library/python",
                                                   "3.11-slim")
    ref = registry.parse_reference("127.0.0.1:5000/acme/orders@sha256:" + "0" * 64)
    assert (ref.host, ref.repository, ref.tag, ref.base_url) == (
        "127.0.0.1:5000", "acme/orders", None, "http://127.0.0.1:5000/v2/acme/orders")
    # loopback by address, IPv6 included; a look-alike name is a remote registry (https)
    for host, scheme in (("[::1]:5000", "http"), ("localhost:5000", "http"),
                         ("127.0.0.2:5000", "http"), ("localhost.example.com", "https"),
                         ("ghcr.io", "https")):
        ref = registry.parse_reference(f"{host}/acme/orders:1")
        assert (ref.host, ref.tag, ref.base_url) == (host, "1",
                                                     f"{scheme}://{host}/v2/acme/orders")


def test_a_base_tag_resolved_a_moment_ago_is_used_without_asking(
    server: tuple[str, State], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, state = server
    source = BlobStore(tmp_path / "source")
    first = image(source, 512)
    registry.push(source, first, f"{host}/team/base:1")
    store = BlobStore(tmp_path / "store")
    assert registry.pull(f"{host}/team/base:1", store, "linux/amd64").digest == first.digest
    state.log.clear()
    assert registry.pull(f"{host}/team/base:1", store, "linux/amd64").digest == first.digest
    assert state.log == []  # a no-change build opens no connection for its base
    moved = image(source, 1024)  # the tag moves on the registry
    registry.push(source, moved, f"{host}/team/base:1")
    state.log.clear()
    assert registry.pull(f"{host}/team/base:1", store, "linux/amd64").digest == first.digest
    assert registry.pull(f"{host}/team/base:1", store, "linux/amd64",
                         fresh=True).digest == moved.digest  # build --pull
    assert any(line.startswith("GET /v2/team/base/manifests/1") for line in state.log)
    monkeypatch.setenv(registry.TAG_TTL_ENV, "0")  # no trust at all: always ask
    state.log.clear()
    assert registry.pull(f"{host}/team/base:1", store, "linux/amd64").digest == moved.digest
    assert any(line.startswith("GET /v2/team/base/manifests/1") for line in state.log)
    monkeypatch.delenv(registry.TAG_TTL_ENV)
    config = store.read_json(moved.digest)["config"]
    assert isinstance(config, dict)
    store.path(config["digest"]).unlink()  # a blob gone from the store: fetched again
    state.log.clear()
    assert registry.pull(f"{host}/team/base:1", store, "linux/amd64").digest == moved.digest
    assert any(line.startswith(f"GET /v2/team/base/blobs/{config['digest']}")
               for line in state.log)


def test_an_unreachable_registry_is_named(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = BlobStore(tmp_path / "store")
    for call in (lambda: registry.pull(f"127.0.0.1:{port}/team/base:1", store, "linux/amd64"),
                 lambda: registry.push(store, image(store, 256), f"127.0.0.1:{port}/t/a:1")):
        with pytest.raises(PublishError) as caught:
            call()
        assert caught.value.message.startswith(
            f"cannot reach the registry 127.0.0.1:{port} for 127.0.0.1:{port}/")
        assert "image.base or image.registry" in (caught.value.hint or "")
