"""A content-addressed blob store, OCI image layouts and ``docker load`` archives.

Blobs live once in the store (``oci-v1/blobs/sha256/<hex>`` of the wheel
cache); a layout or an archive is written from it. JSON documents are
serialized canonically (sorted keys, no spaces), so their digests depend only
on their content.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator import atomic

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


def canonical(document: Mapping[str, object]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Mapping[str, str] | None = None
    annotations: Mapping[str, str] | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"mediaType": self.media_type, "digest": self.digest,
                                  "size": self.size}
        if self.platform:
            out["platform"] = dict(self.platform)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


class BlobStore:
    """Blobs by digest under *root* (``blobs/sha256/<hex>``, the OCI layout's own shape)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.root / "blobs" / algorithm / hexdigest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put_bytes(self, data: bytes, media_type: str) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        dest = self.path(digest)
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_bytes(dest, data)
        return Descriptor(media_type, digest, len(data))

    def put_json(self, document: Mapping[str, object], media_type: str) -> Descriptor:
        return self.put_bytes(canonical(document), media_type)

    def temp(self) -> tuple[int, Path]:
        """A temporary file in the store, to be moved in by :meth:`adopt`."""
        directory = self.root / "tmp"
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".blob-")
        return fd, Path(name)

    def adopt(self, tmp: Path, digest: str) -> None:
        """Move *tmp*, whose content has *digest*, into place (a whole blob or none)."""
        dest = self.path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)

    def read_json(self, digest: str) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.path(digest).read_bytes())
        return data


def _place(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        return
    try:
        os.link(source, dest)  # store and output usually share one filesystem
    except OSError:
        shutil.copyfile(source, dest)


def blobs_of(store: BlobStore, manifest: Descriptor) -> list[str]:
    """Every digest an image (or an index) reaches: itself, configs, layers."""
    seen = [manifest.digest]
    document = store.read_json(manifest.digest)
    children = document.get("manifests")
    if isinstance(children, list):
        for child in children:
            seen += blobs_of(store, Descriptor(child["mediaType"], child["digest"],
                                               child["size"]))
        return seen
    config = document["config"]
    layers = document["layers"]
    assert isinstance(config, dict) and isinstance(layers, list)
    return seen + [config["digest"]] + [layer["digest"] for layer in layers]


def write_layout(store: BlobStore, directory: Path, image: Descriptor,
                 tags: Sequence[str]) -> None:
    """Add *image* (a manifest or an index) to the OCI layout *directory*, one entry per tag.

    An existing layout keeps its other entries, so several services can share one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    atomic.write_text(directory / "oci-layout", '{"imageLayoutVersion":"1.0.0"}')
    for digest in blobs_of(store, image):
        _place(store.path(digest), directory / "blobs" / digest.replace(":", "/"))
    index_path = directory / "index.json"
    entries: list[dict[str, object]] = []
    if index_path.is_file():
        old = json.loads(index_path.read_text())
        entries = [e for e in old.get("manifests", [])
                   if e.get("annotations", {}).get(REF_NAME) not in tags]
    names = list(tags) or [""]
    for tag in names:
        annotations = {REF_NAME: tag} if tag else None
        entries.append(Descriptor(image.media_type, image.digest, image.size,
                                  annotations=annotations).as_dict())
    document = {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}
    atomic.write_bytes(index_path, canonical(document))


def write_archive(store: BlobStore, path: Path, image: Descriptor, tags: Sequence[str]) -> None:
    """A ``docker load`` archive (Docker 20.10's ``manifest.json``) of the manifest *image*.

    It is an OCI layout as well (``oci-layout``, ``index.json``), as Docker 25
    writes them; entries have fixed metadata, so the archive is reproducible.
    """
    manifest = store.read_json(image.digest)
    config = manifest["config"]
    layers = manifest["layers"]
    assert isinstance(config, dict) and isinstance(layers, list)
    blob = "blobs/sha256/"
    docker_manifest = [{"Config": blob + config["digest"].split(":")[1],
                        "RepoTags": list(tags),
                        "Layers": [blob + layer["digest"].split(":")[1] for layer in layers]}]
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        Descriptor(image.media_type, image.digest, image.size,
                   annotations={REF_NAME: t} if t else None).as_dict()
        for t in (list(tags)[:1] or [""])]}
    members: list[tuple[str, Path | bytes]] = [
        ("blobs", b""), ("blobs/sha256", b""),
        *((blob + d.split(":")[1], store.path(d)) for d in sorted(set(blobs_of(store, image)))),
        ("index.json", canonical(index)),
        ("manifest.json", json.dumps(docker_manifest, separators=(",", ":")).encode()),
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w|",
                                                      format=tarfile.PAX_FORMAT) as tar:
            for name, content in members:
                _add(tar, name, content)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 is for the temporary name only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _add(tar: tarfile.TarFile, name: str, content: Path | bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uname = info.gname = ""
    if isinstance(content, bytes) and name.startswith("blobs") and not content:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        return
    info.mode = 0o644
    if isinstance(content, Path):
        info.size = content.stat().st_size
        with content.open("rb") as f:
            tar.addfile(info, f)
    else:
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
