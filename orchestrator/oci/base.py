"""The base image: from an OCI layout, a ``docker save`` archive or a registry.

Spellings: ``oci:DIR`` or ``oci:DIR:TAG`` (an OCI image layout),
``docker-archive:FILE`` (``docker save``), anything else a registry reference
(``registry.py``). Blobs go into the shared store; an archive's plain-tar layers
are gzipped once on import (``oci-v1/compressed/`` maps a diff id and compressor
to the gzip blob), so it is stored and pushed compressed; what was learnt about a base
(its layers, and where its python is, found by reading the layer tars) is kept
in ``oci-v1/bases/<config digest>.json`` so the next build reads nothing big.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from orchestrator import atomic
from orchestrator.errors import BuildError
from orchestrator.oci.layers import LAYER_GZIP, Interpreter, compressor_identity, gzip_stream
from orchestrator.oci.layout import (
    CONFIG,
    INDEX,
    MANIFEST,
    REF_NAME,
    BlobStore,
    Descriptor,
    blobs_of,
)

_PYTHON = re.compile(r"^(?:\./)?(usr/local/bin|usr/bin|bin)/python(\d+\.\d+)$")
_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class BaseImage:
    reference: str
    digest: str  # of its manifest, for org.opencontainers.image.base.digest
    config: dict[str, object]  # the base's image config document
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]
    python: Interpreter


def load_base(reference: str, store: BlobStore, platform: str, python_minor: str,
              *, fresh: bool = False) -> BaseImage:
    """The base image *reference* for *platform*, its blobs in *store*, checked for python.

    A registry tag resolved a short while ago is trusted unless *fresh* (``build --pull``).
    """
    if reference.startswith("docker-archive:"):
        manifest = _import_archive(Path(reference.removeprefix("docker-archive:")), store)
    elif reference.startswith("oci:"):
        manifest = _import_layout(reference.removeprefix("oci:"), store, platform)
    else:
        from orchestrator.oci.registry import pull

        manifest = pull(reference, store, platform, fresh=fresh)
    return _describe(reference, manifest, store, platform, python_minor)


def _describe(reference: str, manifest: Descriptor, store: BlobStore, platform: str,
              python_minor: str) -> BaseImage:
    document = store.read_json(manifest.digest)
    config_ref = document["config"]
    assert isinstance(config_ref, dict)
    config = store.read_json(config_ref["digest"])
    layers = tuple(Descriptor(d["mediaType"], d["digest"], d["size"])
                   for d in document["layers"])  # type: ignore[attr-defined]
    rootfs = config.get("rootfs")
    diff_ids = tuple(rootfs["diff_ids"]) if isinstance(rootfs, dict) else ()
    arch = config.get("architecture")
    wanted = platform.partition("/")[2]
    if isinstance(arch, str) and arch != wanted:
        raise BuildError(f"the base image {reference} is for {arch}, not {platform}",
                         hint="pick a multi-platform base (an image index), or one built for "
                         f"{platform}", expected=wanted, actual=arch)
    python = _python(reference, config, layers, store, config_ref["digest"])
    if python.minor != python_minor:
        raise BuildError(
            f"the base image {reference} has python {python.version} ({python.path}), "
            f"the workspace targets python {python_minor}",
            hint="pick a base with the workspace's python (--base or image.base)",
            expected=python_minor, actual=python.version)
    return BaseImage(reference, manifest.digest, config, layers, diff_ids, python)


# -- python --------------------------------------------------------------------


def _python(reference: str, config: dict[str, object], layers: Iterable[Descriptor],
            store: BlobStore, config_digest: str) -> Interpreter:
    record = store.root / "bases" / f"{config_digest.replace(':', '-')}.json"
    if record.is_file():
        data = json.loads(record.read_text())
        if data.get("version") == RECORD_VERSION:
            return Interpreter(data["path"], data["python"])
    found: dict[str, str] = {}
    for layer in layers:
        with store.path(layer.digest).open("rb") as f:
            found.update(_pythons_in(f))
    if not found:
        raise BuildError(f"the base image {reference} holds no python3.X in /usr/local/bin "
                         "or /usr/bin", hint="pick a python base image (--base or image.base)")
    order = ["usr/local/bin", "usr/bin", "bin"]
    where = min(found, key=order.index)
    path = f"/{where}/python{found[where]}"
    version = found[where]
    for item in _env(config):
        if item.startswith("PYTHON_VERSION=") and item[15:].startswith(version + "."):
            version = item[15:]
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(record, json.dumps({"version": RECORD_VERSION, "path": path,
                                          "python": version}))
    return Interpreter(path, version)


def _pythons_in(stream: IO[bytes]) -> dict[str, str]:
    found: dict[str, str] = {}
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for info in tar:
            match = _PYTHON.match(info.name)
            if match:
                found[match.group(1)] = match.group(2)
    return found


def _env(config: dict[str, object]) -> list[str]:
    inner = config.get("config")
    env = inner.get("Env") if isinstance(inner, dict) else None
    return [str(e) for e in env] if isinstance(env, list) else []


# -- sources -------------------------------------------------------------------


def _copy_in(stream: IO[bytes], store: BlobStore) -> tuple[str, int]:
    fd, tmp = store.temp()
    sha = hashlib.sha256()
    size = 0
    with open(fd, "wb") as out:
        while chunk := stream.read(1024 * 1024):
            sha.update(chunk)
            size += len(chunk)
            out.write(chunk)
    digest = f"sha256:{sha.hexdigest()}"
    store.adopt(tmp, digest)
    return digest, size


def _import_archive(path: Path, store: BlobStore) -> Descriptor:
    """A ``docker save`` archive: its config, its layers (plain tars) and a manifest for them."""
    if not path.is_file():
        raise BuildError(f"no docker archive at {path}", file=path,
                         hint="write one with `docker save IMAGE -o FILE`")
    with tarfile.open(path) as tar:
        def read(name: str) -> bytes:
            member = tar.extractfile(name)
            if member is None:
                raise BuildError(f"{path} has no {name}", file=path,
                                 hint="pass an archive written by `docker save`")
            return member.read()

        entries = json.loads(read("manifest.json"))
        if len(entries) != 1:
            raise BuildError(f"{path} holds {len(entries)} images, not one", file=path,
                             hint="save exactly one image: `docker save IMAGE -o FILE`")
        config = store.put_bytes(read(entries[0]["Config"]), CONFIG)
        diff_ids = json.loads(store.path(config.digest).read_bytes())["rootfs"]["diff_ids"]
        layers = []
        for name, diff_id in zip(entries[0]["Layers"], diff_ids, strict=True):
            known = _compressed(store, diff_id)
            if known is None:  # not imported before with this compressor
                member = tar.extractfile(name)
                if member is None:
                    raise BuildError(f"{path} has no {name}", file=path,
                                     hint="pass an archive written by `docker save`")
                known = _compress_in(member, store, diff_id, path)
            layers.append(known)
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config.as_dict(),
                "layers": [d.as_dict() for d in layers]}
    return store.put_json(manifest, MANIFEST)


def _record(store: BlobStore, diff_id: str) -> Path:
    identity = hashlib.sha256(compressor_identity("gzip").encode()).hexdigest()[:16]
    return store.root / "compressed" / f"{diff_id.replace(':', '-')}-{identity}.json"


def _compressed(store: BlobStore, diff_id: str) -> Descriptor | None:
    """The gzip blob of the plain layer *diff_id*, written by this compressor before."""
    try:
        data = json.loads(_record(store, diff_id).read_text())
    except (OSError, ValueError):
        return None
    desc = Descriptor(LAYER_GZIP, str(data["digest"]), int(data["size"]))
    return desc if store.has(desc.digest) else None


def _compress_in(stream: IO[bytes], store: BlobStore, diff_id: str, path: Path) -> Descriptor:
    """Gzip the plain layer *stream* into *store* (igzip or zlib, the layers' own
    deterministic stream), checking that the tar is the one *diff_id* names."""

    class Hashing:
        def __init__(self, out: IO[bytes]) -> None:
            self.out, self.sha, self.size = out, hashlib.sha256(), 0

        def write(self, data: bytes) -> None:
            self.sha.update(data)
            self.size += len(data)
            self.out.write(data)

    class Plain:
        def __init__(self) -> None:
            self.sha = hashlib.sha256()

        def read(self, size: int) -> bytes:
            data = stream.read(size)
            self.sha.update(data)
            return data

    fd, tmp = store.temp()
    plain = Plain()
    try:
        with open(fd, "wb") as out:
            stored = Hashing(out)
            gzip_stream(plain, stored)
        if f"sha256:{plain.sha.hexdigest()}" != diff_id:
            raise BuildError(f"a layer of {path} is not the one its config names ({diff_id})",
                             file=path, hint="save the image again with `docker save`")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    digest = f"sha256:{stored.sha.hexdigest()}"
    store.adopt(tmp, digest)
    record = _record(store, diff_id)
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(record, json.dumps({"digest": digest, "size": stored.size,
                                          "diff_id": diff_id,
                                          "compressor": compressor_identity("gzip")}))
    return Descriptor(LAYER_GZIP, digest, stored.size)


def _import_layout(spec: str, store: BlobStore, platform: str) -> Descriptor:
    directory, _, tag = spec.rpartition(":") if not Path(spec).is_dir() else (spec, "", "")
    root = Path(directory)
    index_path = root / "index.json"
    if not index_path.is_file():
        raise BuildError(f"{root} is not an OCI image layout (no index.json)", file=index_path,
                         hint="pass oci:DIR of a layout, e.g. from `skopeo copy ... oci:DIR`")
    source = BlobStore(root)
    entries = json.loads(index_path.read_text())["manifests"]
    if tag:
        entries = [e for e in entries if e.get("annotations", {}).get(REF_NAME) == tag]
    if not entries:
        raise BuildError(f"{root} has no image tagged {tag}", file=index_path,
                         hint="list its tags in index.json (org.opencontainers.image.ref.name)")
    chosen = _for_platform(entries[0], source, platform)
    for digest in blobs_of(source, chosen):
        if not store.has(digest):
            with source.path(digest).open("rb") as f:
                _copy_in(f, store)
    return chosen


def _for_platform(entry: dict[str, object], source: BlobStore, platform: str) -> Descriptor:
    media = str(entry.get("mediaType", MANIFEST))
    desc = Descriptor(media, str(entry["digest"]), int(entry["size"]))  # type: ignore[call-overload]
    if media not in (INDEX, _DOCKER_LIST):
        return desc
    os_name, _, arch = platform.partition("/")
    for child in source.read_json(desc.digest)["manifests"]:  # type: ignore[attr-defined]
        plat = child.get("platform", {})
        if plat.get("os") == os_name and plat.get("architecture") == arch:
            return _for_platform(child, source, platform)
    raise BuildError(f"the base image has no {platform} variant", actual=platform,
                     hint="pick a multi-platform base, or one built for this platform")

