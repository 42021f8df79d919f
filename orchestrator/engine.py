"""Build and push images through the Docker engine (the Docker SDK).

This module is the transport: it knows the engine's API and its streams,
not what an image of a service holds (that is ``image.py``).

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
from typing import TYPE_CHECKING, Any

from orchestrator.errors import BuildError, DockerError, PublishError
from orchestrator.models import platform_for

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.images import Image

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


def connect() -> DockerClient:
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


def base_image_id(client: DockerClient, base: str, *, pull: bool = True) -> str:
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


def find_existing(client: DockerClient, repository: str, label: str,
                  value: str) -> Image | None:
    """An image of *repository* whose *label* is *value*, if the engine has one."""
    images = client.images.list(name=repository, filters={"label": f"{label}={value}"})
    return images[0] if images else None


def outcome_of(service: str, image: Image, tags: tuple[str, ...], *, reused: int = 0,
               seconds: float = 0.0, built: bool = False) -> BuildOutcome:
    """What `build` reports for *image*: its size and number of layers."""
    layers = len(image.attrs.get("RootFS", {}).get("Layers", []))
    return BuildOutcome(service, str(image.id), tags, int(image.attrs.get("Size", 0)), layers,
                        reused, seconds, built)


def build(client: DockerClient, context: Path, *, service: str, tags: tuple[str, ...],
          base: str, log: Callable[[str], None] | None = None) -> BuildOutcome:
    """Build the context's Dockerfile (no network) and tag it with every one of *tags*."""
    started = time.monotonic()
    stream = client.api.build(
        path=str(context), tag=tags[0], rm=True, forcerm=True, decode=True, pull=False,
        network_mode="none", buildargs={"BASE_IMAGE": base})
    image_id, reused = _follow_build(stream, service, log)
    tag(client, image_id, tags[1:])
    return outcome_of(service, client.images.get(image_id), tags, reused=reused,
                      seconds=time.monotonic() - started, built=True)


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
        image_id = _aux(item, "ID") or image_id
    if not image_id:
        raise BuildError(f"building {service} ended without an image",
                         hint="run with --verbose to see the engine's output")
    return image_id, reused


def _aux(item: Mapping[str, Any], key: str) -> str | None:
    """*key* of a stream item's `aux` object (the image ID, the pushed digest), if present."""
    aux = item.get("aux")
    return str(aux[key]) if isinstance(aux, dict) and key in aux else None


def push(client: DockerClient, ref: str) -> str:
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
        digest = _aux(item, "Digest") or digest
    if not digest:
        raise PublishError(f"pushing {ref} reported no digest",
                           hint="check the registry's logs")
    return digest


def engine_platform(client: DockerClient) -> str:
    """The engine's own platform (`linux/amd64`): what it builds without emulation."""
    version = client.version()
    return platform_for(str(version.get("Os", "linux")), str(version.get("Arch", "amd64")))


def tag(client: DockerClient, image_id: str, refs: Iterable[str]) -> None:
    """Tag *image_id* with every `repo:tag` in *refs*."""
    for ref in refs:
        repo, name = ref.rsplit(":", 1)
        client.api.tag(image_id, repo, name)
