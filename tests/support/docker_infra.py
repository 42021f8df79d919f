"""Find the real docker engine, base image and OCI registry that tests may use.

``scripts/infra-up.sh`` starts them and records them in ``.orchestrator-infra/env``
at the repository root (``KEY=value`` lines). Each value is taken from the
process environment first, then from that file:

- ``DOCKER_HOST``: the engine (``unix:///run/orchestrator-docker.sock`` when the
  project's script started it);
- ``ORCHESTRATOR_TEST_BASE_IMAGE``: a local python base image tag;
- ``ORCHESTRATOR_TEST_REGISTRY``: a loopback registry address, ``127.0.0.1:PORT``.

``ORCHESTRATOR_INFRA_ENV_FILE`` points at another env file. Every check talks to
the component (a ping, an image lookup, ``GET /v2/``), so a stale file never makes
a test run against something that is gone. Typical use in a conftest::

    from tests.support import docker_infra

    @pytest.fixture
    def registry() -> str:
        addr = docker_infra.registry()
        if addr is None:
            pytest.skip(docker_infra.skip_reason("registry"))
        return addr
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import urllib.parse
from pathlib import Path
from typing import Literal

ENV_FILE_VAR = "ORCHESTRATOR_INFRA_ENV_FILE"
DOCKER_HOST_VAR = "DOCKER_HOST"
BASE_IMAGE_VAR = "ORCHESTRATOR_TEST_BASE_IMAGE"
REGISTRY_VAR = "ORCHESTRATOR_TEST_REGISTRY"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

_REPO_ROOT = Path(__file__).resolve().parents[2]
_TIMEOUT = 5.0

Component = Literal["docker", "base_image", "registry"]


def env_file() -> Path:
    """The env file written by ``scripts/infra-up.sh``."""
    override = os.environ.get(ENV_FILE_VAR)
    return Path(override) if override else _REPO_ROOT / ".orchestrator-infra" / "env"


def read_env_file(path: Path | None = None) -> dict[str, str]:
    """``KEY=value`` pairs of the env file; empty when it does not exist."""
    target = env_file() if path is None else path
    try:
        text = target.read_text(encoding="utf-8")
    except OSError:
        return {}
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def setting(name: str) -> str | None:
    """A setting from the environment, else from the env file; None when unset."""
    value = os.environ.get(name)
    if value:
        return value
    return read_env_file().get(name) or None


def docker_host() -> str:
    """The engine address tests should use (the docker default when unset)."""
    return setting(DOCKER_HOST_VAR) or DEFAULT_DOCKER_HOST


def docker_env() -> dict[str, str]:
    """A copy of ``os.environ`` with ``DOCKER_HOST`` set, for subprocesses."""
    env = dict(os.environ)
    env[DOCKER_HOST_VAR] = docker_host()
    return env


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _engine_get(path: str) -> int | None:
    """HTTP status of ``GET path`` on the engine; None when it cannot be reached.

    Plain ``unix://`` and ``tcp://`` engines are asked directly; for anything else
    (TLS, ``ssh://``) the caller falls back to the docker CLI.
    """
    url = urllib.parse.urlsplit(docker_host())
    conn: http.client.HTTPConnection
    if url.scheme == "unix":
        conn = _UnixHTTPConnection(url.path, _TIMEOUT)
    else:
        assert url.hostname is not None
        conn = http.client.HTTPConnection(url.hostname, url.port or 2375, timeout=_TIMEOUT)
    try:
        conn.request("GET", path, headers={"Host": "docker"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _direct() -> bool:
    url = urllib.parse.urlsplit(docker_host())
    if url.scheme == "unix":
        return True
    tls = bool(os.environ.get("DOCKER_TLS_VERIFY") or setting("DOCKER_TLS_VERIFY"))
    return url.scheme in ("tcp", "http") and bool(url.hostname) and not tls


def _cli_ok(*args: str) -> bool:
    try:
        done = subprocess.run(
            ["docker", *args],
            env=docker_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def docker_available() -> bool:
    """True when a docker engine answers at :func:`docker_host`."""
    if _direct():
        return _engine_get("/_ping") == 200
    return _cli_ok("version")


def base_image() -> str | None:
    """The local python base image tag, if set and present in the engine."""
    tag = setting(BASE_IMAGE_VAR)
    if tag is None:
        return None
    if _direct():
        found = _engine_get(f"/images/{urllib.parse.quote(tag, safe='')}/json") == 200
    else:
        found = _cli_ok("image", "inspect", tag)
    return tag if found else None


def registry() -> str | None:
    """The loopback registry address (``127.0.0.1:PORT``), if set and answering."""
    addr = setting(REGISTRY_VAR)
    if addr is None:
        return None
    host, _, port_text = addr.rpartition(":")
    if not host or not port_text.isdigit():
        return None
    conn = http.client.HTTPConnection(host.strip("[]"), int(port_text), timeout=_TIMEOUT)
    try:
        conn.request("GET", "/v2/")
        response = conn.getresponse()
        response.read()
        # 401 is a registry that wants credentials: still a registry.
        api = response.getheader("Docker-Distribution-Api-Version", "") or ""
        ok = response.status in (200, 401) and api.startswith("registry/2")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    return addr if ok else None


def skip_reason(component: Component) -> str:
    """Why ``component`` is unavailable, and what to run to make it available."""
    hint = "run scripts/infra-up.sh (as root) or set the variable"
    if component == "docker":
        return f"no docker engine answers at {docker_host()}; {hint} {DOCKER_HOST_VAR}"
    if component == "base_image":
        tag = setting(BASE_IMAGE_VAR)
        if tag is None:
            return f"{BASE_IMAGE_VAR} is not set; {hint}"
        if not docker_available():
            return f"no docker engine answers at {docker_host()}; {hint} {DOCKER_HOST_VAR}"
        return (
            f"base image {tag} is not in the engine at {docker_host()}; run scripts/base-image.sh"
        )
    addr = setting(REGISTRY_VAR)
    if addr is None:
        return f"{REGISTRY_VAR} is not set; {hint}"
    return f"no registry answers at http://{addr}/v2/; run scripts/registry-up.sh"
