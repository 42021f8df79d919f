"""A service's OCI image, end to end, with no daemon: plan, layers, config, outputs.

The layer plan is the engine path's (``image.split_layers``): the venv, one
layer per large wheel, the other dependencies, the workspace libraries, the
service. Each layer blob is remembered in ``oci-v1/layers/<key>.json`` under a
key of its wheels' hashes, the interpreter and the mtime, so a code-only
rebuild writes one small tar, and a new commit only a new config; an image
whose fingerprint was built before is found in ``oci-v1/images/`` without
building any wheel.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator import atomic
from orchestrator.errors import BuildError
from orchestrator.image import (
    SBOM_FILE,
    SBOM_LABEL,
    VENV,
    Layer,
    Wheel,
    check_lock,
    command_for,
    fingerprint,
    image_name,
    image_tags,
    image_target,
    labels_for,
    member_wheels,
    runtime_members,
    service_sbom,
    split_layers,
    third_party_wheels,
)
from orchestrator.oci.layers import (
    COMPRESSIONS,
    Blob,
    Bytecode,
    BytecodeCompiler,
    Interpreter,
    can_compile,
    compressor_identity,
    stage_venv,
    stage_wheels,
    write_tar,
    zstd_compressor,
)
from orchestrator.oci.layout import CONFIG, INDEX, MANIFEST, BlobStore, Descriptor

if TYPE_CHECKING:
    from orchestrator.models import Member, Target
    from orchestrator.oci.base import BaseImage
    from orchestrator.session import Session

STORE = "oci-v1"
LAYER_RECIPE = 3  # bump when the bytes of a layer for the same inputs change
BASE_DIGEST_LABEL = "org.opencontainers.image.base.digest"
BASE_NAME_LABEL = "org.opencontainers.image.base.name"
MAX_LAYERS = 100  # the whole image's, base included


@dataclass(frozen=True, slots=True)
class OciRequest:
    base: str | None = None  # overrides image.base
    platforms: tuple[str, ...] = ()  # default: this machine's
    layout: Path | None = None  # add the image to this OCI layout directory
    archive: Path | None = None  # write a `docker load` archive (one per service: {service})
    push: bool = False
    extra_tags: tuple[str, ...] = ()
    rebuild: bool = False  # ignore an image recorded with the same fingerprint
    compression: str | None = None  # of the layers: gzip or zstd; None: image.compression
    pull: bool = False  # ask the registry for the base tag even if resolved a moment ago


@dataclass(frozen=True, slots=True)
class PlatformImage:
    platform: str
    manifest: Descriptor
    layers: tuple[tuple[str, str, int], ...]  # (what, digest, size) of our layers
    layers_written: int


@dataclass(frozen=True, slots=True)
class OciResult:
    service: str
    digest: str  # the manifest's, or the index's for several platforms
    tags: tuple[str, ...]
    images: tuple[PlatformImage, ...]
    built: bool
    seconds: float
    pushed: Mapping[str, str] = field(default_factory=dict)
    reused_from: str | None = None  # the registry's fingerprint tag re-tagged, nothing built

    def as_dict(self) -> dict[str, object]:
        return {"service": self.service, "digest": self.digest, "tags": list(self.tags),
                "built": self.built, "seconds": round(self.seconds, 3),
                "reused_from": self.reused_from,
                "platforms": {i.platform: {
                    "manifest": i.manifest.digest, "layers_written": i.layers_written,
                    "layers": [{"holds": w, "digest": d, "size": s} for w, d, s in i.layers]}
                    for i in self.images},
                "pushed": dict(self.pushed)}


def layer_mtime() -> int:
    """The mtime of every file in a layer: SOURCE_DATE_EPOCH when set, else 0.

    Not the commit time: that would change every layer's digest at every
    commit, so no layer would be shared between commits and each would be
    pushed again. The commit time goes into the config (``created``).
    """
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return int(value) if value.isdigit() else 0


def created_epoch(git: Mapping[str, str]) -> int:
    """SOURCE_DATE_EPOCH, else the commit's time, else 0: never the wall clock."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if value.isdigit():
        return int(value)
    created = git.get("created")
    if created:
        return int(datetime.datetime.fromisoformat(created).timestamp())
    return 0


def _iso(epoch: int) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- layers --------------------------------------------------------------------


def _layer_key(name: str, wheels: Sequence[tuple[str, str]], python: Interpreter,
               mtime: int, pyc: str = "", compression: str = "gzip") -> str:
    # The compressor's identity (igzip or zlib, version, level): a store shared by two
    # installs, one without python-isal, never takes one's blob for the other's.
    fields: dict[str, object] = {"recipe": LAYER_RECIPE, "name": name, "wheels": list(wheels),
                                 "python": [python.path, python.version], "mtime": mtime,
                                 "pyc": pyc, "compression": compressor_identity(compression)}
    text = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _cached_layer(store: BlobStore, key: str) -> Blob | None:
    record = store.root / "layers" / f"{key}.json"
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    blob = Blob(data["digest"], data["size"], data["diff_id"], data["media_type"])
    return blob if store.has(blob.digest) else None


def _has_layer(store: BlobStore, key: str) -> bool:
    return (store.root / "layers" / f"{key}.json").is_file()


def write_layer(store: BlobStore, key: str, stage: Callable[[Path], Bytecode | None],
                mtime: int, compression: str = "gzip") -> tuple[Blob, bool]:
    """The layer blob for *key*: cached, or staged by *stage* and tarred; (blob, written).

    *stage* may hand back the layer's pycs, compiling: they are written into the
    tar as they come.
    """
    cached = _cached_layer(store, key)
    if cached is not None:
        return cached, False
    (store.root / "tmp").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=store.root / "tmp", prefix=".stage-"))
    try:
        bytecode = stage(staging)
        fd, tmp = store.temp()
        with open(fd, "wb") as out:
            blob = write_tar(staging, out, mtime=mtime, compression=compression,
                             bytecode=bytecode)
        store.adopt(tmp, blob.digest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    record = store.root / "layers" / f"{key}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(record, json.dumps({"digest": blob.digest, "size": blob.size,
                                          "diff_id": blob.diff_id,
                                          "media_type": blob.media_type}))
    return blob, True


def cap_layers(plan: Sequence[Layer], limit: int) -> tuple[Layer, ...]:
    """*plan* with at most *limit* layers: the smallest big-wheel layers join ``deps``.

    overlayfs stacks at most ~128 layers; the base's count against it too.
    """
    layers = list(plan)
    while len(layers) > max(limit, 1):
        single = [x for x in layers if x.name.startswith("deps-")]
        if not single:
            break
        smallest = min(single, key=lambda x: (sum(w.size for w in x.wheels), x.name))
        layers.remove(smallest)
        rest = next((x for x in layers if x.name == "deps"), None)
        wheels = tuple(sorted([*(rest.wheels if rest else ()), *smallest.wheels],
                              key=lambda w: w.name))
        merged = Layer("deps", wheels)
        if rest is None:
            at = next(i for i, x in enumerate(layers) if not x.name.startswith("deps-"))
            layers.insert(at, merged)
        else:
            layers[layers.index(rest)] = merged
    return tuple(layers)


def _holds(layer: Layer) -> str:
    listed = ", ".join(f"{w.name} {w.version}" for w in layer.wheels)
    return f"{layer.name}: {listed}"


def _sbom_layer(session: Session, service: Member, target: Target, members: Sequence[Wheel],
               store: BlobStore, labels: dict[str, str], mtime: int,
               compression: str = "gzip") -> tuple[str, Blob, bool]:
    """The CycloneDX SBOM at /opt/venv/sbom.cdx.json, as the engine path puts it there.

    Its inputs are the lock, the members' versions and every member's pyproject.toml
    (licenses): a code-only change finds the SBOM written before (``oci-v1/sboms/``)
    without reading the locked wheels' metadata again.
    """
    from orchestrator import __version__

    inputs = hashlib.sha256(json.dumps({
        "recipe": LAYER_RECIPE, "orchestrator": __version__, "mtime": mtime,
        "target": [target.python, target.platform],
        "lock": hashlib.sha256(service.lockfile.read_bytes()).hexdigest(),
        "versions": sorted((w.name, w.version) for w in members),
        "pyprojects": sorted((m.name, hashlib.sha256(m.pyproject.read_bytes()).hexdigest())
                             for m in session.workspace.members)},
        sort_keys=True).encode()).hexdigest()
    record = store.root / "sboms" / f"{inputs}.json"
    try:
        digest = str(json.loads(record.read_text())["digest"])
    except (OSError, ValueError, KeyError):
        digest = ""

    def sbom_key(digest: str) -> str:
        text = f"sbom\0{LAYER_RECIPE}\0{mtime}\0{digest}\0{compressor_identity(compression)}"
        return hashlib.sha256(text.encode()).hexdigest()

    cached = _cached_layer(store, sbom_key(digest)) if digest else None
    if cached is not None:
        labels[SBOM_LABEL] = f"sha256:{digest}"
        return (f"sbom: {VENV}/{SBOM_FILE}", cached, False)
    text = service_sbom(session, service, target, members)
    digest = hashlib.sha256(text.encode()).hexdigest()
    labels[SBOM_LABEL] = f"sha256:{digest}"
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(record, json.dumps({"digest": digest}))

    def stage(root: Path) -> None:
        venv = root / VENV.lstrip("/")
        venv.mkdir(parents=True)
        (venv / SBOM_FILE).write_text(text)
        return None

    return (f"sbom: {VENV}/{SBOM_FILE}",
            *write_layer(store, sbom_key(digest), stage, mtime, compression))


# -- config --------------------------------------------------------------------


def image_config(base: BaseImage, service: Member, command: Sequence[str],
                 labels: Mapping[str, str], diff_ids: Sequence[str],
                 history: Sequence[str], created: str, platform: str) -> dict[str, object]:
    """The image config: the base's, with the venv on PATH and the service's settings."""
    inner = base.config.get("config")
    base_inner: dict[str, object] = dict(inner) if isinstance(inner, dict) else {}
    env: dict[str, str] = {}
    for item in base_inner.get("Env") or []:  # type: ignore[attr-defined]
        key, _, value = str(item).partition("=")
        env[key] = value
    env["PATH"] = f"{VENV}/bin:" + env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["VIRTUAL_ENV"] = VENV
    env["PYTHONUNBUFFERED"] = "1"
    env.update(sorted(service.options.env.items()))
    config: dict[str, object] = {
        "Env": [f"{k}={v}" for k, v in env.items()],
        "User": "10001:10001", "WorkingDir": "/tmp", "Cmd": list(command),
        "Labels": dict(sorted(labels.items())),
    }
    if base_inner.get("Entrypoint"):
        config["Entrypoint"] = base_inner["Entrypoint"]
    if service.options.ports:
        config["ExposedPorts"] = {f"{p}/tcp": {} for p in service.options.ports}
    os_name, _, arch = platform.partition("/")
    base_history = base.config.get("history")
    return {
        "created": created, "architecture": arch, "os": os_name, "config": config,
        "rootfs": {"type": "layers", "diff_ids": [*base.diff_ids, *diff_ids]},
        "history": [*(base_history if isinstance(base_history, list) else []),
                    *({"created": created, "created_by": f"orchestrator: {h}"}
                      for h in history)],
    }


# -- one platform --------------------------------------------------------------


def build_platform(session: Session, service: Member, store: BlobStore, base: BaseImage,
                   platform: str, labels: dict[str, str], mtime: int, created: str,
                   note: Callable[[str], None] | None = None,
                   compression: str = "gzip") -> PlatformImage:
    """Assemble the manifest of *service* for *platform* into *store*."""
    workspace = session.workspace
    target = image_target(workspace, platform)
    deps = third_party_wheels(session, service, target)
    libs = member_wheels(session, runtime_members(workspace, service, target), target)
    own = member_wheels(session, [service], target)
    labels["org.opencontainers.image.version"] = own[0].version
    python = base.python
    # The venv and the SBOM are two layers more than the plan.
    plan = cap_layers(split_layers(deps, libs, own), MAX_LAYERS - len(base.layers) - 2)
    venv_key = _layer_key("venv", [], python, mtime, compression=compression)
    jobs: list[tuple[str, str, Callable[[Path], Bytecode | None]]] = [
        (f"venv at {VENV} for {python.path}", venv_key,
         lambda root: stage_venv(root, python))]
    sizes = [0]  # of each job's wheels: the biggest layers are started first
    pyc = can_compile(python)
    if not pyc and note is not None:
        note(f"{service.name}: no bytecode in the image: this python is not {python.minor}")
    # Pycs depend on the compiling CPython's exact version: it is part of the key.
    pyc_key = sys.version.split()[0] if pyc else ""
    sbom: tuple[str, Blob, bool] | None = None
    keys = [_layer_key(layer.name, [(w.name, w.sha256) for w in layer.wheels], python, mtime,
                       pyc_key, compression) for layer in plan]
    compiler: BytecodeCompiler | None = None
    if pyc and any(not _has_layer(store, key) for key in keys):
        compiler = BytecodeCompiler()  # one pool of interpreters for every layer's modules
    for layer, key in zip(plan, keys, strict=True):
        if layer.name == "service":  # the SBOM sits below: a code-only change leaves it
            sbom = _sbom_layer(session, service, target, [*libs, *own], store, labels, mtime,
                               compression)
            jobs.append((sbom[0], "", lambda root: None))
            sizes.append(0)
        stage = functools.partial(stage_wheels, layer, python=python, cache=session.cache,
                                  compiler=compiler)
        jobs.append((_holds(layer), key, stage))
        sizes.append(sum(w.size for w in layer.wheels))

    def one(i: int) -> tuple[str, Blob, bool]:
        holds, key, stage = jobs[i]
        if not key:
            assert sbom is not None
            return sbom
        return (holds, *write_layer(store, key, stage, mtime, compression))

    # Layers are written side by side, the biggest first (the last to finish are then
    # small): one thread stages a layer, whose modules the compiler's interpreters take in
    # batches, and writes its tar as the pycs come (igzip, zlib and sha256 release the
    # GIL); the order in the image stays the plan's.
    order = sorted(range(len(jobs)), key=lambda i: -sizes[i])
    workers = min(len(jobs), max(1, os.cpu_count() or 1))
    try:
        if workers > 1 and sum(1 for _, key, _ in jobs
                               if key and not _has_layer(store, key)) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers) as pool:
                done = dict(zip(order, pool.map(one, order), strict=True))
        else:
            done = {i: one(i) for i in order}
    finally:
        if compiler is not None:
            compiler.close()
    blobs = [done[i] for i in range(len(jobs))]
    for holds, blob, written in blobs:
        if written and note is not None:  # progress: what each new layer holds, its bytes
            note(f"{service.name}: {platform} layer {holds.split(':')[0]}: {blob.size} bytes")
    config = image_config(base, service, command_for(service), labels,
                          [b.diff_id for _, b, _ in blobs], [h for h, _, _ in blobs],
                          created, platform)
    config_desc = store.put_json(config, CONFIG)
    layers = [*base.layers, *(Descriptor(b.media_type, b.digest, b.size) for _, b, _ in blobs)]
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config_desc.as_dict(),
                "layers": [d.as_dict() for d in layers],
                "annotations": {"org.opencontainers.image.base.digest": base.digest}}
    desc = store.put_json(manifest, MANIFEST)
    os_name, _, arch = platform.partition("/")
    return PlatformImage(platform, Descriptor(MANIFEST, desc.digest, desc.size,
                                              platform={"os": os_name, "architecture": arch}),
                         tuple((h, b.digest, b.size) for h, b, _ in blobs),
                         sum(1 for _, _, written in blobs if written))


# -- a service -----------------------------------------------------------------


def oci_store(session: Session) -> BlobStore:
    return BlobStore(session.cache.root / STORE)


def _platforms(session: Session, request: OciRequest) -> tuple[str, ...]:
    return request.platforms or (session.host_target().platform,)


def build_service(session: Session, service: Member, request: OciRequest, *,
                  note: Callable[[str], None] | None = None) -> OciResult:
    """Build *service*'s image for every requested platform and write the outputs."""
    started = time.monotonic()
    workspace = session.workspace
    check_lock(workspace, service)
    command_for(service)
    compression = request.compression or workspace.image.compression  # the option wins
    if compression not in COMPRESSIONS:
        raise BuildError(f"unknown layer compression {compression}",
                         hint=f"use one of {', '.join(COMPRESSIONS)}",
                         actual=compression)
    if compression == "zstd":
        zstd_compressor()  # the missing extra is said before any work
    store = oci_store(session)
    platforms = _platforms(session, request)
    if request.archive is not None and len(platforms) > 1:
        raise BuildError("a docker archive holds one platform, not "
                         f"{len(platforms)} ({', '.join(platforms)})",
                         hint="pass one --platform with --archive, or use --oci-layout")
    reference = request.base or workspace.image.base
    bases = {p: _base(reference, store, p, workspace.python, fresh=request.pull)
             for p in platforms}
    revision = session.revision
    mtime = layer_mtime()
    created = _iso(created_epoch(revision))
    tags = tuple(image_tags(session, service, request.extra_tags))
    # The revision is an input: at a new commit the config (labels, created) is new, while
    # every layer whose inputs did not change is found in oci-v1/layers/ and reused.
    fp = fingerprint(workspace, service, reference, ",".join(b.digest for b in bases.values()),
                     image_target(workspace, platforms[0]),
                     {"engine": "oci", "platforms": ",".join(platforms), "mtime": str(mtime),
                      "created": created, "revision": revision.get("revision", ""),
                      "layers": str(LAYER_RECIPE), "compiler": sys.version.split()[0],
                      # the layers' bytes depend on it: an image recorded with zlib's gzip
                      # is not what igzip writes, so it is not this build's
                      "compression": compressor_identity(compression)})
    found = None if request.rebuild else _known(store, fp)
    if found is None and request.push and not request.rebuild and request.layout is None \
            and request.archive is None:
        # Another runner pushed an image of the same inputs: tag it, build nothing.
        from orchestrator.registry import reuse

        remote = reuse(image_name(workspace, service), fp, tags)
        if remote is not None:
            if note is not None:
                note(f"{service.name}: reused from {remote.source}")
            return OciResult(service.name, remote.manifest.digest, tags, (), False,
                             time.monotonic() - started, remote.pushed, remote.source)
    built = found is None
    if found is None:
        images = []
        for platform in platforms:
            if note is not None:
                note(f"{service.name}: assembling {platform} on {reference}")
            labels = labels_for(workspace, service, fp, revision, "0")
            labels[BASE_DIGEST_LABEL] = bases[platform].digest
            labels[BASE_NAME_LABEL] = reference
            images.append(build_platform(session, service, store, bases[platform], platform,
                                         labels, mtime, created, note, compression))
        found = (_top(store, images), tuple(images))
        _remember(store, fp, found[0], found[1])
    top, images_t = found
    if request.layout is not None:
        from orchestrator.oci.layout import write_layout

        write_layout(store, request.layout, top, [t.rsplit(":", 1)[1] for t in tags])
    if request.archive is not None:
        from orchestrator.oci.layout import write_archive

        dest = Path(str(request.archive).replace("{service}", service.name))
        write_archive(store, dest, top, tags)
    pushed: dict[str, str] = {}
    if request.push:
        from orchestrator.oci.registry import push
        from orchestrator.registry import fingerprint_tag

        repository = image_name(workspace, service)
        for i, ref in enumerate(tags):
            # The first push also tags the image by its inputs: the tag other runners look
            # for before they build (orchestrator/registry.py).
            also = (fingerprint_tag(fp),) if i == 0 and ref.startswith(f"{repository}:") \
                else ()
            pushed[ref] = push(store, top, ref, note=note, also=also)
    return OciResult(service.name, top.digest, tags, images_t, built,
                     time.monotonic() - started, pushed)


_BASES: dict[tuple[str, Path, str, str], BaseImage] = {}


def _base(reference: str, store: BlobStore, platform: str, python: str, *,
          fresh: bool = False) -> BaseImage:
    """The base for *platform*, resolved once per process: every service of one `build`
    asks the registry for the tag once, not once each."""
    from orchestrator.oci.base import load_base

    key = (reference, store.root, platform, python)
    if key not in _BASES:
        _BASES[key] = load_base(reference, store, platform, python, fresh=fresh)
    return _BASES[key]


def _top(store: BlobStore, images: Sequence[PlatformImage]) -> Descriptor:
    if len(images) == 1:
        m = images[0].manifest
        return Descriptor(m.media_type, m.digest, m.size)
    index = {"schemaVersion": 2, "mediaType": INDEX,
             "manifests": [i.manifest.as_dict() for i in images]}
    return store.put_json(index, INDEX)


def _known(store: BlobStore, fp: str) -> tuple[Descriptor, tuple[PlatformImage, ...]] | None:
    record = store.root / "images" / f"{fp.replace(':', '-')}.json"
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    top = Descriptor(data["media_type"], data["digest"], data["size"])
    if not store.has(top.digest):
        return None
    images = tuple(PlatformImage(i["platform"], Descriptor(MANIFEST, i["digest"], i["size"],
                                                            platform=i["os_arch"]),
                                 tuple((a, b, c) for a, b, c in i["layers"]), 0)
                   for i in data["images"])
    return top, images


def _remember(store: BlobStore, fp: str, top: Descriptor,
              images: Sequence[PlatformImage]) -> None:
    record = store.root / "images" / f"{fp.replace(':', '-')}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(record, json.dumps({
        "media_type": top.media_type, "digest": top.digest, "size": top.size,
        "images": [{"platform": i.platform, "digest": i.manifest.digest,
                    "size": i.manifest.size, "os_arch": dict(i.manifest.platform or {}),
                    "layers": [list(x) for x in i.layers]} for i in images]}))
