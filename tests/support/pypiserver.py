"""A real pypiserver on 127.0.0.1 for the publish tests, and the wheels it serves.

``PypiServer`` runs the ``pypiserver`` package (a dev extra) as a subprocess
on a free loopback port, uploads behind one htpasswd user, with the fallback
redirect to PyPI disabled, so an install from it sees only what a test put
there. It is stopped when the ``with`` block ends::

    with PypiServer(tmp_path / "pypi") as server:
        server.add(wheel)
        ... upload to server.upload_url as server.username / server.password ...
        ... pip install --index-url server.simple_url ...

``wheelhouse`` gathers real wheels (hatchling and what it needs, for the
example workspace's builds; click, for its worker) from the wheel
directories on this machine when they hold them, else with pip from its
configured index; None when neither works, and the tests that need them skip.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

# Wheel directories a machine may already hold ($ORCHESTRATOR_TEST_WHEELHOUSE first).
LOCAL_WHEELS = (os.environ.get("ORCHESTRATOR_TEST_WHEELHOUSE", ""), "/opt/wheels",
                "/opt/pypi/files")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def htpasswd_line(username: str, password: str) -> str:
    """An Apache htpasswd entry in the ``{SHA}`` scheme, which passlib verifies."""
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    return f"{username}:{{SHA}}{digest}\n"


class PypiServer:
    """pypiserver serving *root*/packages; uploads need *username* and *password*."""

    def __init__(self, root: Path, *, username: str = "uploader",
                 password: str = "pw-Vq7-secret-9f3") -> None:
        self.root = root
        self.packages = root / "packages"
        self.username = username
        self.password = password
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/"

    @property
    def upload_url(self) -> str:
        return f"{self.url}/"

    def add(self, path: Path) -> None:
        """Serve the distribution file *path* (copied in)."""
        shutil.copy2(path, self.packages / path.name)

    def files(self) -> list[str]:
        """The names of the files the server holds, sorted."""
        return sorted(p.name for p in self.packages.iterdir() if p.is_file())

    def __enter__(self) -> PypiServer:
        self.packages.mkdir(parents=True, exist_ok=True)
        htpasswd = self.root / "htpasswd"
        htpasswd.write_text(htpasswd_line(self.username, self.password))
        for _attempt in range(3):  # a free port can be taken before the server binds it
            self.port = free_port()
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1",
                 "-p", str(self.port), "-a", "update", "-P", str(htpasswd),
                 "--disable-fallback", "--hash-algo", "sha256", str(self.packages)],
                stdout=subprocess.DEVNULL, stderr=(self.root / "server.log").open("wb"))
            if self._wait_ready():
                return self
            self._stop()
        log = (self.root / "server.log").read_text(errors="replace")
        raise RuntimeError(f"pypiserver did not start:\n{log[-2000:]}")

    def _wait_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def _stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()


def wheelhouse(dest: Path, requirements: Sequence[str]) -> Path | None:
    """*dest* holding wheels of *requirements* and their dependencies, or None.

    The machine's wheel directories are tried first (no index at all), then
    pip's configured index.
    """
    dest.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
            "--disable-pip-version-check", "--dest", str(dest)]
    local = [arg for place in LOCAL_WHEELS if place and Path(place).is_dir()
             for arg in ("--find-links", place)]
    for args in ([*base, "--no-index", *local] if local else None, base):
        if args is None:
            continue
        proc = subprocess.run([*args, *requirements], capture_output=True, check=False)
        if proc.returncode == 0:
            return dest
    return None
