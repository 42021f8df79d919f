"""registry.py on the real loopback registry, without an engine: find by fingerprint, re-tag."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx

from orchestrator.registry import RegistryClient, fingerprint_tag, parse, reuse

FINGERPRINT = "sha256:" + hashlib.sha256(b"inputs").hexdigest()


def upload_blob(http: httpx.Client, base: str, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = http.post(f"{base}/v2/{repository}/blobs/uploads/")
    assert start.status_code == 202, start.text
    location = start.headers["location"]
    url = location if location.startswith("http") else base + location
    url += ("&" if "?" in url else "?") + f"digest={digest}"  # the upload's state stays
    done = http.put(url, content=data,
                    headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, done.text
    return digest


def push_image(registry: str, repository: str, tag: str) -> str:
    """A minimal OCI image (one config, one layer) under *tag*; returns its digest."""
    base = f"http://{registry}"
    with httpx.Client(timeout=30) as http:
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        layer = b"not really a tar, the registry does not look"
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": upload_blob(http, base, repository, config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": upload_blob(http, base, repository, layer),
                        "size": len(layer)}]}).encode()
        put = http.put(f"{base}/v2/{repository}/manifests/{tag}", content=manifest,
                       headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert put.status_code == 201, put.text
        return str(put.headers["docker-content-digest"])


def test_reuse_retags_the_fingerprint_image_with_the_same_digest(registry: str) -> None:
    repository = f"ci{uuid.uuid4().hex[:8]}/orders"
    digest = push_image(registry, repository, fingerprint_tag(FINGERPRINT))
    tags = [f"{registry}/{repository}:0.4.1", f"{registry}/{repository}:abcdef123456"]
    found = reuse(f"{registry}/{repository}", FINGERPRINT, tags)
    assert found is not None
    assert found.source == f"{registry}/{repository}:{fingerprint_tag(FINGERPRINT)}"
    assert found.pushed == {tag: digest for tag in tags}
    assert found.manifest.layers == 1
    client = RegistryClient(registry)
    for tag in tags:
        ref = parse(tag)
        assert ref is not None
        again = client.manifest(ref)
        assert again is not None and again.digest == digest
    client.close()


def test_no_image_with_the_fingerprint_means_build(registry: str) -> None:
    repository = f"ci{uuid.uuid4().hex[:8]}/worker"
    assert reuse(f"{registry}/{repository}", FINGERPRINT,
                 [f"{registry}/{repository}:1.0.0"]) is None


def test_a_tag_in_another_registry_is_not_retagged(registry: str) -> None:
    repository = f"ci{uuid.uuid4().hex[:8]}/gateway"
    push_image(registry, repository, fingerprint_tag(FINGERPRINT))
    tags = [f"{registry}/{repository}:1.2.0", f"ghcr.io/acme/{repository}:1.2.0"]
    assert reuse(f"{registry}/{repository}", FINGERPRINT, tags) is None
    client = RegistryClient(registry)
    ref = parse(tags[0])
    assert ref is not None and client.manifest(ref) is None  # nothing was half-tagged
    client.close()
