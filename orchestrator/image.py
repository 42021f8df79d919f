"""Plan a service's image and write its build context: Dockerfile plus locked wheels.

The plan is engine-neutral: ``write_context`` produces a directory that
``docker build`` accepts unchanged (``orchestrator dockerfile --context``),
and ``engine.py`` builds the same directory through the Docker SDK.

Layers, bottom to top: base; an empty venv at /opt/venv; third-party
dependencies from the lock (each large wheel in a layer of its own, so it is
shared between services and survives lock changes that do not touch it; the
rest together); the workspace libraries the service uses; the service. Each
layer is a directory of wheels in the context with a hash-pinned
requirements.txt, so Docker's cache reuses a layer whenever its wheels are
unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import BuildError, LockError
from orchestrator.lock import read_lock, select, staleness
from orchestrator.models import Member, Target, Workspace

if TYPE_CHECKING:
    from docker import DockerClient

    from orchestrator.engine import BuildOutcome
    from orchestrator.session import Session

VENV = "/opt/venv"
LARGE_WHEEL = 8 * 1024 * 1024  # bytes; wheels at least this big get a layer of their own
LABEL_PREFIX = "dev.orchestrator"
FINGERPRINT_LABEL = f"{LABEL_PREFIX}.fingerprint"
SERVICE_LABEL = f"{LABEL_PREFIX}.service"
SBOM_LABEL = f"{LABEL_PREFIX}.sbom-digest"  # sha256 of the SBOM file the image holds
SBOM_FILE = "sbom.cdx.json"  # in the context, and at /opt/venv/ in the image
# Bump when the image recipe changes in a way the fingerprint inputs do not show.
RECIPE_VERSION = 2  # 2: every image holds its SBOM


@dataclass(frozen=True, slots=True)
class Wheel:
    name: str
    version: str
    sha256: str
    path: Path

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass(frozen=True, slots=True)
class Layer:
    """One directory of the context, installed by one stage and copied as one layer."""

    name: str  # "deps-numpy", "deps", "libs", "service"
    wheels: tuple[Wheel, ...]


@dataclass(frozen=True, slots=True)
class ImagePlan:
    service: str
    repository: str
    tags: tuple[str, ...]  # full references: repo:tag
    base: str
    fingerprint: str
    layers: tuple[Layer, ...]
    command: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    version: str = "0"  # the service's, as its built wheel says


# -- inputs ----------------------------------------------------------------------------


def command_for(service: Member) -> tuple[str, ...]:
    """The container command: [tool.orchestrator] command, else the only script."""
    if service.options.command:
        return service.options.command
    if len(service.scripts) == 1:
        return (next(iter(service.scripts)),)
    found = ", ".join(sorted(service.scripts)) or "none"
    raise BuildError(
        f"{service.name} has no command for its image ([project.scripts]: {found})",
        hint=f"set `command = [...]` under [tool.orchestrator] in {service.relpath}/"
        "pyproject.toml, or define exactly one [project.scripts] entry")


def image_target(workspace: Workspace, platform: str) -> Target:
    if platform not in workspace.platforms:
        raise BuildError(f"the workspace does not target {platform} (platforms: "
                         f"{', '.join(workspace.platforms)})",
                         hint=f"add {platform} under `platforms` in workspace.yaml and re-lock")
    return Target(workspace.python, platform)


def runtime_members(workspace: Workspace, service: Member, target: Target) -> list[Member]:
    """The workspace libraries the service's main dependencies need on *target*."""
    lock = read_lock(service.lockfile)
    entries = [p for p in lock.packages if p.directory is not None]
    if all(p.marker is None for p in entries):
        # No marker on any member: each is installed on every target, as select() would
        # say; that skips the marker environment (and its imports) on the no-change path.
        names = [str(p.name) for p in entries]
    else:
        names = [s.name for s in select(lock, [target], ()) if s.is_member]
    found = [workspace.find(n) for n in names]
    return sorted((m for m in found if m is not None), key=lambda m: m.name)


def templates(workspace: Workspace) -> Path:
    """templates/docker/: the workspace's own if it has one, else orchestrator's bundled one."""
    from orchestrator.resources import templates_dir

    return templates_dir(workspace, "docker")


def image_name(workspace: Workspace, member: Member) -> str:
    """The image repository for a service: `<registry>/<name>`, or `<name>` alone."""
    registry = workspace.image.registry
    return f"{registry}/{member.name}" if registry else member.name


def fingerprint(workspace: Workspace, service: Member, base: str, base_id: str | None,
                target: Target, options: Mapping[str, str]) -> str:
    """Every input of the image, hashed: lock, sources, templates, base, options.

    Cheap by design (no wheel is built): `build` compares it with the label of
    an existing image to skip services whose inputs did not change.
    """
    from orchestrator.build import source_digest

    digest = hashlib.sha256()
    digest.update(json.dumps({"recipe": RECIPE_VERSION, "base": base, "base_id": base_id,
                              "target": [target.python, target.platform],
                              "options": dict(options)}, sort_keys=True).encode())
    for member in [service, *runtime_members(workspace, service, target)]:
        digest.update(f"member:{member.name}\0".encode())
        source_digest(member.path, digest)
    source_digest(templates(workspace), digest)
    return "sha256:" + digest.hexdigest()


# -- the context -------------------------------------------------------------------------


def check_lock(workspace: Workspace, service: Member) -> None:
    """Refuse to build *service* from a stale lock, or with a secret in its ``env``."""
    check_env_secrets(workspace, service)
    stale = staleness(workspace, service)
    if stale is not None:
        raise LockError(f"cannot build {service.name}: its lock is out of date ({stale.reason})",
                        hint=f"run `orchestrator lock {service.name}` first",
                        member=service.name)


def check_env_secrets(workspace: Workspace, service: Member) -> None:
    """Refuse an ``env`` value that looks like a secret: an ENV is readable in every layer.

    The detector is the governance check's; ``image.allow-env-secrets`` lists
    the keys a workspace bakes in on purpose.
    """
    from orchestrator.governance.secrets import scan_file, secret_in

    # [project] goes into the service wheel's METADATA, and so into the image
    for found_in_project in scan_file(service.pyproject):
        if found_in_project.key and found_in_project.key.startswith("project."):
            raise BuildError(
                f"cannot build {service.name}: {found_in_project.key} holds a "
                f"{found_in_project.kind} ({found_in_project.masked}), which the service "
                "wheel's METADATA would carry into the image",
                hint="remove it from pyproject.toml and rotate it",
                file=service.pyproject, key=found_in_project.key, member=service.name,
            )
    allowed = set(workspace.image.allow_env_secrets)
    for key, value in sorted(service.options.env.items()):
        found = None if key in allowed else secret_in(key, str(value))
        if found is not None:
            kind, masked = found
            raise BuildError(
                f"cannot build {service.name}: tool.orchestrator.env.{key} holds a {kind} "
                f"({masked}), which the image would carry in every layer",
                hint="pass it at run time (docker run -e, a secret manager) or as a build "
                "secret; if it is not a secret, list it under image.allow-env-secrets in "
                "workspace.yaml",
                file=service.pyproject, key=f"tool.orchestrator.env.{key}",
                member=service.name,
            )


def third_party_wheels(session: Session, service: Member, target: Target) -> list[Wheel]:
    """The service's locked runtime wheels for *target*, from the shared cache."""
    from orchestrator.sync import plan

    wanted = plan(session, service, target, (), editable_members=False, include_self=False)
    # Without editable members every entry is a hash-checked wheel from the cache.
    return [Wheel(w.name, w.version, w.sha256, w.wheel) for w in wanted
            if w.wheel is not None and w.sha256 is not None]


def member_wheels(session: Session, members: Iterable[Member], target: Target) -> list[Wheel]:
    """Wheels of workspace members, built reproducibly through their own backends.

    Each is pinned to the version in its built wheel's name: the truth for a
    dynamic version (``Member.version`` is None then), and for a static one too.
    """
    from packaging.utils import parse_wheel_filename

    wheels = []
    for member in members:
        path, sha256 = session.member_builder.build(member.path, target)
        version = str(parse_wheel_filename(path.name)[1])
        wheels.append(Wheel(member.name, version, sha256, path))
    return wheels


def split_layers(deps: Sequence[Wheel], libs: Sequence[Wheel],
                 service: Sequence[Wheel]) -> tuple[Layer, ...]:
    large = sorted((w for w in deps if w.size >= LARGE_WHEEL), key=lambda w: w.name)
    rest = tuple(sorted((w for w in deps if w.size < LARGE_WHEEL), key=lambda w: w.name))
    layers = [Layer(f"deps-{w.name}", (w,)) for w in large]
    if rest:
        layers.append(Layer("deps", rest))
    if libs:
        layers.append(Layer("libs", tuple(libs)))
    layers.append(Layer("service", tuple(service)))
    return tuple(layers)


def write_layer(layer: Layer, context: Path) -> None:
    directory = context / layer.name
    directory.mkdir(parents=True)
    lines = []
    for wheel in layer.wheels:
        dest = directory / wheel.path.name
        try:
            os.link(wheel.path, dest)  # the cache and the context share one filesystem
        except OSError:
            shutil.copyfile(wheel.path, dest)
        lines.append(f"{wheel.name}=={wheel.version} --hash=sha256:{wheel.sha256}")
    (directory / "requirements.txt").write_text("\n".join(lines) + "\n")


def render(workspace: Workspace, service: Member, plan: ImagePlan) -> str:
    """The Dockerfile for *plan*, from templates/docker/."""
    tpl = templates(workspace)
    main = string.Template((tpl / "Dockerfile.tmpl").read_text())
    stage = string.Template((tpl / "install-stage.tmpl").read_text())
    copy = string.Template((tpl / "copy-layer.tmpl").read_text())
    stages = "".join(stage.substitute(stage=f"layer-{layer.name}", dir=layer.name)
                     for layer in plan.layers)
    copies = [copy.substitute(stage=f"layer-{layer.name}") for layer in plan.layers]
    env = "".join(f" \\\n    {k}={json.dumps(v)}" for k, v in sorted(service.options.env.items()))
    expose = "".join(f"EXPOSE {p}\n" for p in service.options.ports)
    labels = "LABEL " + " \\\n      ".join(f"{json.dumps(k)}={json.dumps(v)}"
                                          for k, v in sorted(plan.labels.items()))
    deps = [layer for layer in plan.layers if layer.name.startswith("deps")]
    return main.substitute(
        service=service.name, version=plan.version, base=plan.base,
        dep_layers=f"{len(deps)} layer{'s' if len(deps) != 1 else ''}",
        install_stages=stages, copy_dependency_layers="".join(copies[:-1]).rstrip("\n"),
        copy_service_layer=copies[-1].rstrip("\n"), env=env, expose=expose,
        command=json.dumps(list(plan.command)), labels=labels,
        copy_sbom=f"COPY {SBOM_FILE} {VENV}/{SBOM_FILE}" if SBOM_LABEL in plan.labels else "",
    )


def labels_for(workspace: Workspace, service: Member, fingerprint_value: str,
               git: Mapping[str, str], version: str) -> dict[str, str]:
    """OCI labels.

    *git* holds the revision facts (``Session.revision()``), *version* the
    service's version as its built wheel names it.
    """
    lock_digest = hashlib.sha256(service.lockfile.read_bytes()).hexdigest()
    labels = {
        "org.opencontainers.image.title": service.name,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.source": git.get("source",
                                                   f"{workspace.name}/{service.relpath}"),
        f"{LABEL_PREFIX}.lock-digest": f"sha256:{lock_digest}",
        FINGERPRINT_LABEL: fingerprint_value,
        SERVICE_LABEL: service.name,
    }
    if service.description:
        labels["org.opencontainers.image.description"] = service.description
    if "revision" in git:
        labels["org.opencontainers.image.revision"] = git["revision"]
    if "created" in git:  # the commit's time, not the build's: rebuilds stay identical
        labels["org.opencontainers.image.created"] = git["created"]
    return labels


def service_sbom(session: Session, service: Member, target: Target,
                 members: Sequence[Wheel]) -> str:
    """The CycloneDX SBOM of what the image holds: the main dependencies on *target*.

    Reproducible (no timestamp, no member wheel hashes; see governance.sbom),
    so a code-only change leaves its layer, below the service's, cached.
    """
    from orchestrator.governance.sbom import collect, cyclonedx_json

    versions = {w.name: w.version for w in members}
    return cyclonedx_json(collect(session, service, target=target, versions=versions))


def _copies_sbom(workspace: Workspace) -> bool:
    text = (templates(workspace) / "Dockerfile.tmpl").read_text()
    return "${copy_sbom}" in text or "$copy_sbom" in text


def write_context(session: Session, service: Member, context: Path, *, base: str,
                  fingerprint_value: str, target: Target,
                  repository: str, tags: Sequence[str]) -> ImagePlan:
    """Write a complete build context for *service* into the empty directory *context*."""
    workspace = session.workspace
    check_lock(workspace, service)
    command = command_for(service)
    context.mkdir(parents=True, exist_ok=True)
    if any(context.iterdir()):
        raise BuildError(f"{context} is not empty", hint="pass a new or empty directory")
    deps = third_party_wheels(session, service, target)
    libs = member_wheels(session, runtime_members(workspace, service, target), target)
    own = member_wheels(session, [service], target)
    version = own[0].version
    labels = labels_for(workspace, service, fingerprint_value, session.revision, version)
    if _copies_sbom(workspace):  # a workspace's own older template may not
        sbom = service_sbom(session, service, target, [*libs, *own])
        (context / SBOM_FILE).write_text(sbom)
        labels[SBOM_LABEL] = "sha256:" + hashlib.sha256(sbom.encode()).hexdigest()
    plan = ImagePlan(
        service=service.name, repository=repository, tags=tuple(tags), base=base,
        fingerprint=fingerprint_value, layers=split_layers(deps, libs, own), command=command,
        labels=labels, version=version)
    for layer in plan.layers:
        write_layer(layer, context)
    (context / "Dockerfile").write_text(render(workspace, service, plan))
    (context / ".dockerignore").write_text("# the context holds only what the image needs\n")
    return plan


# -- a service, end to end, through the Docker engine ----------------------------------------


@dataclass(frozen=True, slots=True)
class BuildRequest:
    base: str | None = None  # overrides image.base
    extra_tags: tuple[str, ...] = ()
    push: bool = False
    rebuild: bool = False  # ignore an existing image with the same fingerprint


@dataclass(frozen=True, slots=True)
class BuildResult:
    """One service's image: what the engine reports, and ref -> digest of what was pushed."""

    outcome: BuildOutcome
    pushed: Mapping[str, str]
    reused_from: str | None = None  # the registry reference re-tagged instead of building

    def as_dict(self) -> dict[str, object]:
        o = self.outcome
        return {"service": o.service, "image_id": o.image_id, "tags": list(o.tags),
                "size": o.size, "layers": o.layers, "built": o.built,
                "steps_cached": o.layers_reused, "seconds": round(o.seconds, 3),
                "pushed": dict(self.pushed), "reused_from": self.reused_from}


def image_tags(session: Session, service: Member, extra: Sequence[str]) -> list[str]:
    """`repo:version`, `repo:<short git sha>` when in git, then *extra* (a bare tag or a ref).

    A dynamic version is the one the service's build backend reports; a tag
    cannot hold PEP 440's `+` (a local version), which becomes `-`.
    """
    from orchestrator.versions import member_version

    repository = image_name(session.workspace, service)
    version = (member_version(session, service) or "0").replace("+", "-")
    tags = [f"{repository}:{version}"]
    revision = session.revision.get("revision")
    if revision:
        tags.append(f"{repository}:{revision[:12]}")
    tags += [t if ":" in t.rsplit("/", 1)[-1] else f"{repository}:{t}" for t in extra]
    return tags


def build_service(session: Session, client: DockerClient, service: Member,
                  request: BuildRequest, *, log: Callable[[str], None] | None = None,
                  note: Callable[[str], None] | None = None) -> BuildResult:
    """Build (unless an identical image exists), tag and optionally push one service.

    *log* receives the engine's output lines, *note* one line per stage.
    """
    import tempfile

    from orchestrator import engine

    def say(text: str) -> None:
        if note is not None:
            note(f"{service.name}: {text}")

    workspace = session.workspace
    check_lock(workspace, service)
    command_for(service)  # fail on a missing command before any work
    target = image_target(workspace, engine.engine_platform(client))
    base = request.base or workspace.image.base
    fp = fingerprint(workspace, service, base, engine.base_image_id(client, base), target, {})
    repository = image_name(workspace, service)
    tags = tuple(image_tags(session, service, request.extra_tags))
    existing = (None if request.rebuild
                else engine.find_existing(client, repository, FINGERPRINT_LABEL, fp))
    if existing is None and request.push and not request.rebuild:
        remote = _reuse_from_registry(service, repository, fp, tags)
        if remote is not None:
            say(f"reused from {remote.reused_from}")
            return remote
    if existing is not None:
        engine.tag(client, str(existing.id), tags)
        outcome = engine.outcome_of(service.name, existing, tags)
    else:
        say("inputs changed; writing the build context")
        session.cache.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"orchestrator-{service.name}-",
                                         dir=session.cache.root) as tmp:
            plan = write_context(session, service, Path(tmp) / "context", base=base,
                                 fingerprint_value=fp, target=target,
                                 repository=repository, tags=tags)
            say(f"building {len(plan.layers)} layers on {base}")
            outcome = engine.build(client, Path(tmp) / "context", service=service.name,
                                   tags=tags, base=base, log=log)
    if request.push:
        say(f"pushing {len(tags)} tag(s)")
    pushed = {ref: engine.push(client, ref) for ref in tags} if request.push else {}
    if request.push:  # the tag other runners look for before they build (registry.py)
        from orchestrator.registry import fingerprint_tag

        fp_ref = f"{repository}:{fingerprint_tag(fp)}"
        engine.tag(client, outcome.image_id, [fp_ref])
        engine.push(client, fp_ref)
    return BuildResult(outcome, pushed)


def _reuse_from_registry(service: Member, repository: str, fp: str,
                         tags: Sequence[str]) -> BuildResult | None:
    """The registry's image with fingerprint *fp*, re-tagged as *tags*, if it has one."""
    from orchestrator.engine import BuildOutcome
    from orchestrator.registry import reuse

    found = reuse(repository, fp, tags)
    if found is None:
        return None
    m = found.manifest
    # A Docker image's ID is its config's digest: the same on every runner.
    outcome = BuildOutcome(service.name, m.config_digest, tuple(tags), m.size, m.layers, 0,
                           0.0, False)
    return BuildResult(outcome, found.pushed, reused_from=found.source)
