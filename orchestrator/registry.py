"""The registry as the remote build cache: find an image by its input fingerprint, re-tag it.

``build --push`` pushes every image with one more tag, ``fp-<16 hex of the
fingerprint>``. A runner that has none of the images locally asks the
registry for that tag (the distribution API: GET of the manifest) before it
builds; when the registry has it, the runner PUTs the same manifest bytes
under the new tags and builds nothing, since identical inputs give an
identical image. The manifest bytes are kept as they are, so the digests stay
equal.

The connection (plain http for a loopback registry, https otherwise; Docker
config credentials; the Bearer token flow) is ``oci.registry.Client``, the
same one the daemonless builder pushes with.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.errors import PublishError
from orchestrator.oci.registry import (
    Client,
    Reference,
    get_manifest,
    has_registry_host,
    parse_reference,
    put_manifest,
)

if TYPE_CHECKING:
    import httpx

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def fingerprint_tag(fingerprint: str) -> str:
    """The tag that names an image by its inputs: `fp-` and 16 hex digits of the fingerprint."""
    return "fp-" + fingerprint.split(":", 1)[-1][:16]


def parse(ref: str) -> Reference | None:
    """A registry reference, or None for a name without a registry host (Docker Hub's)."""
    return parse_reference(ref) if has_registry_host(ref) else None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest's bytes as the registry sent them, and what is read from them (parsed once).

    Bytes that are not a manifest's JSON raise ValueError, AttributeError or TypeError.
    """

    body: bytes
    media_type: str
    digest: str
    layers: int = field(init=False, compare=False)  # 0 for an index
    size: int = field(init=False, compare=False)  # of the layers, compressed
    config_digest: str = field(init=False, compare=False)  # an index's own digest

    def __post_init__(self) -> None:
        data = json.loads(self.body)
        layers = data.get("layers", [])
        object.__setattr__(self, "layers", len(layers))
        object.__setattr__(self, "size", sum(int(layer.get("size", 0)) for layer in layers))
        object.__setattr__(self, "config_digest",
                           str(data.get("config", {}).get("digest", self.digest)))


class RegistryClient:
    """Manifests of one registry host, through the distribution client of ``oci.registry``.

    One authenticated client per repository, since a Bearer token is scoped to one.
    """

    def __init__(self, host: str) -> None:
        self.host = host
        self._clients: dict[str, Client] = {}

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def client(self, ref: Reference) -> Client:
        if ref.repository not in self._clients:
            self._clients[ref.repository] = Client(ref)
        return self._clients[ref.repository]

    def _call(self, ref: Reference, send: Callable[[Client], httpx.Response]) -> httpx.Response:
        import httpx

        try:
            return send(self.client(ref))
        except httpx.HTTPError as exc:
            raise PublishError(f"the registry {ref.host} cannot be reached: {exc}",
                               hint="check that the registry is up and the name in "
                               "image.registry is right") from exc

    def manifest(self, ref: Reference) -> Manifest | None:
        """The manifest *ref* names, bytes untouched; None when the registry has none."""
        response = self._call(ref, lambda c: get_manifest(c, ref.ref))
        if response.status_code != 200:
            # 404, or cannot tell: build as if there were none (the push reports real problems).
            return None
        media_type = response.headers.get("content-type", MANIFEST_TYPES[0]).split(";")[0]
        digest = response.headers.get("docker-content-digest") or _digest(response.content)
        try:
            return Manifest(response.content, media_type, digest)
        except (ValueError, AttributeError, TypeError):  # not a manifest: cannot tell either
            return None

    def put(self, ref: Reference, manifest: Manifest) -> str:
        """Tag *manifest* as *ref* in the registry; returns the digest it reports."""
        response = self._call(ref, lambda c: put_manifest(c, ref.ref, manifest.body,
                                                          manifest.media_type))
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
