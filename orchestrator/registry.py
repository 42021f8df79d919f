"""The registry as the remote build cache: find an image by its input fingerprint, re-tag it.

``build --push`` pushes every image with one more tag, ``fp-<16 hex of the
fingerprint>``. A runner that has none of the images locally asks the
registry for that tag (the distribution API: GET of the manifest) before it
builds; when the registry has it, the runner PUTs the same manifest bytes
under the new tags and builds nothing, since identical inputs give an
identical image. The manifest bytes are kept as they are, so the digests stay
equal.

Plain http for a loopback registry (127.0.0.1, localhost), https otherwise;
credentials from the Docker config (``auths.<host>.auth``), as the engine's
push uses, with the registry's Bearer token flow when it asks for one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import PublishError

if TYPE_CHECKING:
    import httpx

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
TIMEOUT = 30.0


def fingerprint_tag(fingerprint: str) -> str:
    """The tag that names an image by its inputs: `fp-` and 16 hex digits of the fingerprint."""
    return "fp-" + fingerprint.split(":", 1)[-1][:16]


@dataclass(frozen=True, slots=True)
class Reference:
    """`host[:port]/path/name:tag`, split."""

    host: str
    repository: str
    tag: str

    @property
    def base_url(self) -> str:
        local = re.match(r"^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$", self.host)
        return f"{'http' if local else 'https'}://{self.host}"

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}:{self.tag}"


def parse(ref: str) -> Reference | None:
    """A registry reference, or None for a name without a registry host (Docker Hub's)."""
    name, _, tag = ref.rpartition(":")
    if "/" in tag or not name:
        name, tag = ref, "latest"
    host, _, repository = name.partition("/")
    if not repository or not ("." in host or ":" in host or host == "localhost"):
        return None
    return Reference(host, repository, tag)


@dataclass(frozen=True, slots=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str

    @property
    def layers(self) -> int:
        return len(json.loads(self.body).get("layers", []))

    @property
    def size(self) -> int:
        data = json.loads(self.body)
        return sum(int(layer.get("size", 0)) for layer in data.get("layers", []))

    @property
    def config_digest(self) -> str:
        return str(json.loads(self.body).get("config", {}).get("digest", self.digest))


def _docker_auth(host: str) -> str | None:
    """The `auth` (base64 user:password) the Docker config holds for *host*."""
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(config.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    entry = auths.get(host) or auths.get(f"https://{host}") or {}
    auth = entry.get("auth")
    return str(auth) if auth else None


class RegistryClient:
    """Manifests over the distribution API for one registry host."""

    def __init__(self, host: str, client: httpx.Client | None = None) -> None:
        import httpx

        self.host = host
        self._http = client or httpx.Client(timeout=TIMEOUT)
        self._headers: dict[str, str] = {}
        basic = _docker_auth(host)
        if basic:
            self._headers["Authorization"] = f"Basic {basic}"

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, ref: Reference, *, content: bytes | None = None,
                 headers: Mapping[str, str] | None = None) -> httpx.Response:
        import httpx

        url = f"{ref.base_url}/v2/{ref.repository}/manifests/{ref.tag}"
        merged = {**self._headers, **(headers or {})}
        try:
            response = self._http.request(method, url, content=content, headers=merged)
            if response.status_code == 401 and self._authenticate(response, ref):
                merged = {**self._headers, **(headers or {})}
                response = self._http.request(method, url, content=content, headers=merged)
        except httpx.HTTPError as exc:
            raise PublishError(f"the registry {ref.host} cannot be reached: {exc}",
                               hint="check that the registry is up and the name in "
                               "image.registry is right") from exc
        return response

    def _authenticate(self, response: httpx.Response, ref: Reference) -> bool:
        """Follow a Bearer challenge for a token with push and pull on the repository."""
        challenge = response.headers.get("www-authenticate", "")
        if not challenge.lower().startswith("bearer "):
            return False
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if "realm" not in fields:
            return False
        params = {"service": fields.get("service", ""),
                  "scope": f"repository:{ref.repository}:pull,push"}
        headers = {k: v for k, v in self._headers.items() if v.startswith("Basic ")}
        token = self._http.get(fields["realm"], params=params, headers=headers)
        if token.status_code != 200:
            return False
        data = token.json()
        value = data.get("token") or data.get("access_token")
        if not value:
            return False
        self._headers["Authorization"] = f"Bearer {value}"
        return True

    def manifest(self, ref: Reference) -> Manifest | None:
        """The manifest *ref* names, bytes untouched; None when the registry has none."""
        response = self._request("GET", ref, headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            # Cannot tell: build as if there were none (the push reports real problems).
            return None
        media_type = response.headers.get("content-type", MANIFEST_TYPES[0]).split(";")[0]
        digest = response.headers.get("docker-content-digest") or _digest(response.content)
        return Manifest(response.content, media_type, digest)

    def put(self, ref: Reference, manifest: Manifest) -> str:
        """Tag *manifest* as *ref* in the registry; returns the digest it reports."""
        response = self._request("PUT", ref, content=manifest.body,
                                 headers={"Content-Type": manifest.media_type})
        if response.status_code not in (200, 201):
            raise PublishError(
                f"tagging {ref} in the registry failed: HTTP {response.status_code} "
                f"{response.text[:200]}",
                hint="log in with `docker login` (orchestrator uses the Docker config's "
                "credentials) or check the registry's logs")
        return response.headers.get("docker-content-digest") or manifest.digest


def _digest(body: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class Reused:
    """An image the registry already had: where it came from, and what was tagged."""

    source: str  # the fingerprint tag's reference
    manifest: Manifest
    pushed: Mapping[str, str]  # ref -> digest


def reuse(repository: str, fingerprint: str, tags: Sequence[str]) -> Reused | None:
    """Re-tag the registry's image with *fingerprint* as every one of *tags*, if it has one."""
    source = parse(f"{repository}:{fingerprint_tag(fingerprint)}")
    if source is None:
        return None
    client = RegistryClient(source.host)
    try:
        found = client.manifest(source)
        if found is None:
            return None
        targets = [parse(tag) for tag in tags]
        if any(t is None or t.host != source.host for t in targets):
            return None  # a tag in another registry needs the image itself: build it
        pushed = {tag: client.put(t, found) for tag, t in zip(tags, targets, strict=True)
                  if t is not None}
        return Reused(str(source), found, pushed)
    finally:
        client.close()
