"""Build and push images through the Docker engine (the Docker SDK).

Errors the engine reports inside its JSON streams (a failing RUN, a refused
push) are turned into BuildError/PublishError naming the step; a missing
daemon is a DockerError with what to do.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import BuildError, DockerError, PublishError
from orchestrator.image import FINGERPRINT_LABEL

_STEP = re.compile(r"^Step (\d+/\d+) : (.*)$")


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    service: str
    image_id: str
    tags: tuple[str, ...]
    size: int
    layers: int
    layers_reused: int  # steps answered from the build cache
    seconds: float
    built: bool  # False: an image with the same fingerprint already existed


def connect() -> Any:
    """A Docker client for DOCKER_HOST (or the default socket) that answers a ping."""
    import docker
    from docker.errors import DockerException

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except DockerException as exc:
        raise DockerError(
            f"no Docker engine answers at {where}: {_short(exc)}",
            hint="start one (scripts/docker-up.sh does, as root) and set DOCKER_HOST to its "
            "socket") from exc
    return client


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def base_image_id(client: Any, base: str, *, pull: bool = True) -> str:
    """The local image ID of *base*, pulling it if absent; a clear error if impossible."""
    from docker.errors import APIError, ImageNotFound

    try:
        return str(client.images.get(base).id)
    except ImageNotFound:
        pass
    if pull:
        try:
            return str(client.images.pull(base).id)
        except APIError as exc:
            detail = _short(exc)
        else:  # pragma: no cover - pull returns or raises
            detail = "unknown"
    else:
        detail = "pulling is disabled"
    raise BuildError(
        f"the base image {base} is not on this engine and cannot be pulled ({detail})",
        hint="set image.base in workspace.yaml (or --base) to an image the engine has; "
        "scripts/base-image.sh builds a local Debian one")


def find_existing(client: Any, repository: str, fingerprint: str) -> Any | None:
    """An image of *repository* carrying the fingerprint label, if the engine has one."""
    images = client.images.list(name=repository,
                                filters={"label": f"{FINGERPRINT_LABEL}={fingerprint}"})
    return images[0] if images else None


def build(client: Any, context: Path, plan: Any, *,
          log: Callable[[str], None] | None = None) -> BuildOutcome:
    """Build the context's Dockerfile, tag it with every tag of *plan*."""
    started = time.monotonic()
    stream = client.api.build(
        path=str(context), tag=plan.tags[0], rm=True, forcerm=True, decode=True, pull=False,
        network_mode="none", buildargs={"BASE_IMAGE": plan.base})
    image_id, reused = _follow_build(stream, plan.service, log)
    for ref in plan.tags[1:]:
        repo, tag = ref.rsplit(":", 1)
        client.api.tag(image_id, repo, tag)
    image = client.images.get(image_id)
    layers = len(image.attrs.get("RootFS", {}).get("Layers", []))
    return BuildOutcome(plan.service, image_id, plan.tags, int(image.attrs.get("Size", 0)),
                        layers, reused, time.monotonic() - started, True)


def _follow_build(stream: Iterable[Mapping[str, Any]], service: str,
                  log: Callable[[str], None] | None) -> tuple[str, int]:
    step = "the build"
    reused = 0
    image_id = ""
    tail: list[str] = []
    for item in stream:
        if "error" in item:
            detail = item.get("errorDetail", {}).get("message") or item["error"]
            output = "\n".join(f"    {line}" for line in tail[-15:])
            raise BuildError(
                f"building {service} failed at {step}: {detail.strip()}"
                + (f"\n  last output:\n{output}" if output else ""),
                hint="fix the cause above and run `orchestrator build` again")
        text = str(item.get("stream", ""))
        for line in text.splitlines():
            match = _STEP.match(line.strip())
            if match:
                step = f"step {match.group(1)} ({match.group(2)})"
            elif "Using cache" in line:
                reused += 1
            if line.strip():
                tail.append(line.rstrip())
                if log:
                    log(f"{service}: {line.rstrip()}")
        aux = item.get("aux")
        if isinstance(aux, dict) and "ID" in aux:
            image_id = str(aux["ID"])
    if not image_id:
        raise BuildError(f"building {service} ended without an image",
                         hint="run with --verbose to see the engine's output")
    return image_id, reused


def push(client: Any, ref: str) -> str:
    """Push *ref* (repo:tag) with the Docker config's credentials; returns the digest."""
    repo, tag = ref.rsplit(":", 1)
    digest = ""
    for item in client.api.push(repo, tag=tag, stream=True, decode=True):
        if "error" in item:
            detail = item.get("errorDetail", {}).get("message") or item["error"]
            hint = ("log in with `docker login` (orchestrator uses the Docker config's "
                    "credentials)" if re.search(r"auth|denied|401|403", str(detail), re.I)
                    else "check that the registry is reachable and the name is right")
            raise PublishError(f"pushing {ref} failed: {detail}", hint=hint)
        aux = item.get("aux")
        if isinstance(aux, dict) and "Digest" in aux:
            digest = str(aux["Digest"])
    if not digest:
        raise PublishError(f"pushing {ref} reported no digest",
                           hint="check the registry's logs")
    return digest


# -- a service, end to end -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildRequest:
    base: str | None = None  # overrides image.base
    extra_tags: tuple[str, ...] = ()
    push: bool = False
    rebuild: bool = False  # ignore an existing image with the same fingerprint


def engine_platform(client: Any) -> str:
    from orchestrator.models import platform_for

    version = client.version()
    return platform_for(str(version.get("Os", "linux")), str(version.get("Arch", "amd64")))


def build_service(workspace: Any, service: Any, client: Any, clients: Any,
                  request: BuildRequest, *, log: Callable[[str], None] | None = None,
                  note: Callable[[str], None] | None = None,
                  ) -> tuple[BuildOutcome, dict[str, str]]:
    """Build (unless an identical image exists), tag and optionally push one service.

    *log* receives the engine's output lines, *note* one line per stage.
    Returns the outcome and, when pushed, ref -> digest.
    """
    def say(text: str) -> None:
        if note is not None:
            note(f"{service.name}: {text}")

    import tempfile

    from orchestrator.image import (
        check_lock,
        command_for,
        fingerprint,
        image_target,
        write_context,
    )
    from orchestrator.report import image_name
    from orchestrator.vcs import short_revision

    check_lock(workspace, service)
    command_for(service)  # fail on a missing command before any work
    target = image_target(workspace, engine_platform(client))
    base = request.base or workspace.image.base
    base_id = base_image_id(client, base)
    fp = fingerprint(workspace, service, base, base_id, target, {})
    repository = image_name(workspace, service)
    tags = [f"{repository}:{service.version or '0'}"]
    revision = short_revision(workspace.root)
    if revision:
        tags.append(f"{repository}:{revision}")
    tags += [t if ":" in t.rsplit("/", 1)[-1] else f"{repository}:{t}"
             for t in request.extra_tags]
    existing = None if request.rebuild else find_existing(client, repository, fp)
    if existing is not None:
        for ref in tags:
            repo, tag = ref.rsplit(":", 1)
            client.api.tag(existing.id, repo, tag)
        outcome = BuildOutcome(service.name, str(existing.id), tuple(tags),
                               int(existing.attrs.get("Size", 0)),
                               len(existing.attrs.get("RootFS", {}).get("Layers", [])), 0, 0.0,
                               False)
    else:
        say("inputs changed; writing the build context")
        clients.cache.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"orchestrator-{service.name}-",
                                         dir=clients.cache.root) as tmp:
            plan = write_context(workspace, service, Path(tmp) / "context", base=base,
                                 fingerprint_value=fp, target=target, clients=clients,
                                 repository=repository, tags=tags)
            say(f"building {len(plan.layers)} layers on {base}")
            outcome = build(client, Path(tmp) / "context", plan, log=log)
    if request.push:
        say(f"pushing {len(tags)} tag(s)")
    digests = {ref: push(client, ref) for ref in tags} if request.push else {}
    return outcome, digests
