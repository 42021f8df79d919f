"""The OCI distribution API over httpx: pull a base image, push an image or an index.

Pushing asks ``HEAD /v2/<repo>/blobs/<digest>`` first and sends only what the
registry lacks; a blob pushed before to another repository of the same host
(remembered in ``oci-v1/pushed/<host>.json``) is mounted from there
(``POST ...?mount=&from=``), so the registry stores it once and no byte is
sent again. Big blobs go up in chunks (``PATCH``), small ones in one ``PUT``. Credentials come from
``~/.docker/config.json`` (``auths.<host>.auth``); a ``401`` with a Bearer
challenge is answered with a token from the realm it names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import PublishError
from orchestrator.oci.layout import INDEX, MANIFEST, BlobStore, Descriptor, blobs_of

if TYPE_CHECKING:
    import httpx

ACCEPT = ", ".join((MANIFEST, INDEX, "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"))
CHUNK = 32 * 1024 * 1024
_LISTS = (INDEX, "application/vnd.docker.distribution.manifest.list.v2+json")


@dataclass(frozen=True, slots=True)
class Reference:
    host: str  # "127.0.0.1:5000"
    repository: str  # "acme/orders"
    tag: str | None
    digest: str | None

    @property
    def base_url(self) -> str:
        from orchestrator.names import is_loopback_host

        scheme = "http" if is_loopback_host(self.host) else "https"
        return f"{scheme}://{self.host}/v2/{self.repository}"

    @property
    def ref(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        sep = "@" if self.digest else ":"
        return f"{self.host}/{self.repository}{sep}{self.ref}"


def has_registry_host(text: str) -> bool:
    """Whether *text* names its registry host (``host[:port]/repo``); a bare name is Hub's."""
    first, _, rest = text.partition("@")[0].partition("/")
    return bool(rest) and ("." in first or ":" in first or first == "localhost")


def parse_reference(text: str) -> Reference:
    """``host[:port]/repo[:tag][@digest]``; a bare name means Docker Hub's ``library/``."""
    name, _, digest = text.partition("@")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if has_registry_host(name):
        host, repository = first, rest
    else:
        host, repository = "registry-1.docker.io", name if rest else f"library/{name}"
    if not re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*", repository):
        raise PublishError(f"{text} is not an image reference", actual=text,
                           hint="write host[:port]/repository[:tag]")
    return Reference(host, repository, tag if tag or digest else "latest", digest or None)


def _credentials(host: str) -> str | None:
    """``user:password`` (base64) for *host* from docker's config.json, if any."""
    path = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    for key in (host, f"https://{host}", f"http://{host}"):
        entry = auths.get(key)
        if isinstance(entry, dict) and entry.get("auth"):
            return str(entry["auth"])
    return None


class Client:
    """One registry host: an httpx client that answers auth challenges once per scope."""

    def __init__(self, ref: Reference) -> None:
        import httpx

        self.ref = ref
        self.http = httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0),
                                 follow_redirects=True)
        self.basic = _credentials(ref.host)
        self.token: str | None = None

    def close(self) -> None:
        self.http.close()

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.basic:
            headers["Authorization"] = f"Basic {self.basic}"
        return headers

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                content: bytes | Iterator[bytes] | None = None) -> httpx.Response:
        response = self.http.request(method, url, headers=self._headers(headers),
                                     content=content)
        if response.status_code == 401 and self._authenticate(response):
            response = self.http.request(method, url, headers=self._headers(headers),
                                         content=content)
        return response

    def _authenticate(self, response: httpx.Response) -> bool:
        challenge = response.headers.get("www-authenticate", "")
        if not challenge.lower().startswith("bearer "):
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if realm is None:
            return False
        if "scope" not in params:
            params["scope"] = f"repository:{self.ref.repository}:pull,push"
        headers = {"Authorization": f"Basic {self.basic}"} if self.basic else {}
        got = self.http.get(realm, params=params, headers=headers)
        if got.status_code != 200:
            return False
        body = got.json()
        self.token = body.get("token") or body.get("access_token")
        return bool(self.token)


def get_manifest(client: Client, ref: str) -> httpx.Response:
    """``GET /v2/<repo>/manifests/<ref>`` accepting every manifest and index type."""
    return client.request("GET", f"{client.ref.base_url}/manifests/{ref}",
                          headers={"Accept": ACCEPT})


def put_manifest(client: Client, ref: str, body: bytes, media_type: str) -> httpx.Response:
    """``PUT`` *body* as the manifest *ref* (a tag or digest) of the client's repository."""
    return client.request("PUT", f"{client.ref.base_url}/manifests/{ref}", content=body,
                          headers={"Content-Type": media_type})


def upload_bytes(client: Client, data: bytes) -> str:
    """Send *data* as one blob unless the registry has it already; returns its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if client.request("HEAD", f"{client.ref.base_url}/blobs/{digest}").status_code != 200:
        _upload(client, digest, data)
    return digest


def _check(response: httpx.Response, what: str, ref: Reference) -> None:
    if response.status_code >= 400:
        hint = ("log in with `docker login " + ref.host + "`"
                if response.status_code in (401, 403) else "check the registry's log")
        raise PublishError(f"{what} failed for {ref.host}/{ref.repository}: HTTP "
                           f"{response.status_code} {response.text[:200]}", hint=hint)


# -- pull ----------------------------------------------------------------------


TAG_TTL_ENV = "ORCHESTRATOR_BASE_TAG_TTL"
DEFAULT_TAG_TTL = 600.0  # seconds a resolved base tag is trusted without asking again


def pull(reference: str, store: BlobStore, platform: str, *, fresh: bool = False) -> Descriptor:
    """The manifest of *reference* for *platform*, with its config and layers in *store*.

    A tag resolved within the last ``DEFAULT_TAG_TTL`` seconds (``$ORCHESTRATOR_BASE_TAG_TTL``)
    whose manifest and blobs are all in *store* is answered from there without a request,
    as Docker uses a local base image until told to pull (a no-change build then opens
    no connection); *fresh* (``build --pull``) always asks. A digest reference is
    content-addressed: it is asked for only when its blobs are missing.
    """
    ref = parse_reference(reference)
    memo = store.root / "tags" / (hashlib.sha256(
        f"{ref}\0{platform}".encode()).hexdigest()[:32] + ".json")
    if not fresh:
        known = _recall(memo, store, content_addressed=ref.digest is not None)
        if known is not None:
            return known
    with _transport_errors(ref):
        desc = _pull(ref, reference, store, platform)
    _memorize(memo, desc)
    return desc


def _recall(memo: Path, store: BlobStore, *, content_addressed: bool) -> Descriptor | None:
    import time

    try:
        entry = json.loads(memo.read_text())
        age = time.time() - float(entry["resolved"])
        ttl = float(os.environ.get(TAG_TTL_ENV, DEFAULT_TAG_TTL))
        desc = Descriptor(str(entry["mediaType"]), str(entry["digest"]), int(entry["size"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not content_addressed and not 0 <= age < ttl:
        return None
    try:
        if all(store.has(d) for d in blobs_of(store, desc)):
            return desc
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        pass
    return None


def _memorize(memo: Path, desc: Descriptor) -> None:
    import time

    from orchestrator.atomic import write_text

    entry = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size,
             "resolved": time.time()}
    with contextlib.suppress(OSError):  # the memo only saves a request
        memo.parent.mkdir(parents=True, exist_ok=True)
        write_text(memo, json.dumps(entry))


@contextlib.contextmanager
def _transport_errors(ref: Reference) -> Iterator[None]:
    """httpx's connection and timeout errors as one clear error naming the registry."""
    import httpx

    try:
        yield
    except httpx.TransportError as exc:
        raise PublishError(
            f"cannot reach the registry {ref.host} for {ref.host}/{ref.repository}: "
            f"{type(exc).__name__}: {exc or 'no answer'}",
            hint="check that the registry is running and that the image reference "
            "(image.base or image.registry in workspace.yaml, or --base) names it",
        ) from exc


def _pull(ref: Reference, reference: str, store: BlobStore, platform: str) -> Descriptor:
    client = Client(ref)
    try:
        desc = _pull_manifest(client, ref.ref, store)
        if desc.media_type in _LISTS:
            os_name, _, arch = platform.partition("/")
            children = store.read_json(desc.digest)["manifests"]
            assert isinstance(children, list)
            chosen = [c for c in children if c.get("platform", {}).get("os") == os_name
                      and c.get("platform", {}).get("architecture") == arch]
            if not chosen:
                raise PublishError(f"{reference} has no {platform} image", actual=platform,
                                   hint="pick a base image built for the target platform")
            desc = _pull_manifest(client, chosen[0]["digest"], store)
        for digest in blobs_of(store, desc)[1:]:
            if not store.has(digest):
                _pull_blob(client, digest, store)
        return desc
    finally:
        client.close()


def _pull_manifest(client: Client, ref: str, store: BlobStore) -> Descriptor:
    response = get_manifest(client, ref)
    _check(response, "fetching a manifest", client.ref)
    media = response.headers.get("content-type", MANIFEST).split(";")[0]
    return store.put_bytes(response.content, media)


def _pull_blob(client: Client, digest: str, store: BlobStore) -> None:
    url = f"{client.ref.base_url}/blobs/{digest}"
    fd, tmp = store.temp()
    sha = hashlib.sha256()
    with open(fd, "wb") as out, client.http.stream(
            "GET", url, headers=client._headers(None)) as response:
        if response.status_code >= 400:
            raise PublishError(f"fetching {digest} failed: HTTP {response.status_code}",
                               hint=f"check access to {client.ref.host}")
        for chunk in response.iter_bytes(1024 * 1024):
            sha.update(chunk)
            out.write(chunk)
    if f"sha256:{sha.hexdigest()}" != digest:
        tmp.unlink(missing_ok=True)
        raise PublishError(f"the registry sent a blob that is not {digest}",
                           expected=digest, actual=f"sha256:{sha.hexdigest()}",
                           hint="retry; the registry or a proxy corrupted the download")
    store.adopt(tmp, digest)


# -- push ----------------------------------------------------------------------


def _chunks(path: Path, start: int = 0) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        while chunk := f.read(1024 * 1024):
            yield chunk


def _part(source: bytes | Path, offset: int, size: int) -> bytes:
    if isinstance(source, bytes):
        return source[offset:offset + size]
    with source.open("rb") as f:
        f.seek(offset)
        return f.read(size)


def _upload(client: Client, digest: str, source: bytes | Path) -> None:
    """Upload the blob *digest* (its bytes, or the file holding them): POST, PATCH, PUT.

    The POST opens an upload at the Location it answers; a blob bigger than ``CHUNK``
    goes up in ``PATCH`` chunks first (a proxy need not hold one huge body), each
    answering the next Location; the ``PUT ...?digest=`` sends the rest and completes it.
    """
    started = client.request("POST", f"{client.ref.base_url}/blobs/uploads/")
    _check(started, "starting an upload", client.ref)
    location = _absolute(client, started.headers["location"])
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    offset = 0
    while size - offset > CHUNK:
        part = _part(source, offset, CHUNK)
        sent = client.request("PATCH", location, content=part, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(part) - 1}"})
        _check(sent, "uploading a chunk", client.ref)
        location = _absolute(client, sent.headers["location"])
        offset += len(part)
    rest = source[offset:] if isinstance(source, bytes) else _chunks(source, offset)
    joiner = "&" if "?" in location else "?"
    done = client.request("PUT", f"{location}{joiner}digest={digest}", content=rest,
                          headers={"Content-Type": "application/octet-stream",
                                   "Content-Length": str(size - offset)})
    _check(done, f"uploading {digest}", client.ref)


def _absolute(client: Client, location: str) -> str:
    if location.startswith("http"):
        return location
    scheme_host = client.ref.base_url.split("/v2/")[0]
    return scheme_host + location


def _manifest_put(client: Client, store: BlobStore, desc: Descriptor, ref: str) -> None:
    response = put_manifest(client, ref, store.path(desc.digest).read_bytes(), desc.media_type)
    _check(response, f"putting the manifest {ref}", client.ref)


def push(store: BlobStore, image: Descriptor, reference: str,
         note: Callable[[str], None] | None = None, also: Sequence[str] = ()) -> str:
    """Push *image* (manifest or index) from *store* as *reference*; returns its digest.

    *also*: more tags of the same repository, given the same manifest.
    """
    ref = parse_reference(reference)
    with _transport_errors(ref):
        return _push(ref, reference, store, image, note, also)


def _push(ref: Reference, reference: str, store: BlobStore, image: Descriptor,
          note: Callable[[str], None] | None, also: Sequence[str]) -> str:
    client = Client(ref)
    try:
        documents = [image]
        top = store.read_json(image.digest)
        children = top.get("manifests")
        if isinstance(children, list):
            documents = [Descriptor(c["mediaType"], c["digest"], c["size"])
                         for c in children] + [image]
        manifests = {d.digest for d in documents}
        known = _pushed(store, ref.host)
        sent = mounted = 0
        blobs = [d for d in dict.fromkeys(blobs_of(store, image)) if d not in manifests]
        for digest in blobs:
            head = client.request("HEAD", f"{ref.base_url}/blobs/{digest}")
            if head.status_code == 200:
                continue
            if _mount(client, digest, known.get(digest)):
                mounted += 1
                continue
            _upload(client, digest, store.path(digest))
            sent += store.path(digest).stat().st_size
        _remember_pushed(store, ref.host, {d: ref.repository for d in blobs}, known)
        for desc in documents[:-1]:
            _manifest_put(client, store, desc, desc.digest)
        _manifest_put(client, store, image, ref.tag or image.digest)
        for tag in also:
            _manifest_put(client, store, image, tag)
        if note is not None:
            note(f"pushed {reference}: {sent} bytes uploaded, {mounted} blobs mounted")
        return image.digest
    finally:
        client.close()


def _pushed_file(store: BlobStore, host: str) -> Path:
    return store.root / "pushed" / f"{host.replace(':', '_').replace('/', '_')}.json"


def _pushed(store: BlobStore, host: str) -> dict[str, str]:
    """digest -> a repository of *host* that holds it, as earlier pushes left it."""
    try:
        data = json.loads(_pushed_file(store, host).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _remember_pushed(store: BlobStore, host: str, new: dict[str, str],
                     known: dict[str, str]) -> None:
    from orchestrator import atomic

    merged = {**known, **{d: r for d, r in new.items() if d not in known}}
    path = _pushed_file(store, host)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(merged, sort_keys=True))


def _mount(client: Client, digest: str, source: str | None) -> bool:
    """Mount *digest* from the repository *source* of the same host; False if not possible."""
    if source is None or source == client.ref.repository:
        return False
    response = client.request(
        "POST", f"{client.ref.base_url}/blobs/uploads/?mount={digest}&from={source}")
    if response.status_code == 202:  # the registry opened an upload instead: drop it
        location = response.headers.get("location")
        if location:
            client.request("DELETE", _absolute(client, location))
    return response.status_code == 201
