"""Time `orchestrator build --engine oci` (no daemon) on the example workspace.

Usage (from the repository root; the registry and base image of scripts/infra-up.sh):

    DOCKER_HOST=unix:///run/orchestrator-docker.sock .venv/bin/python bench/oci_images.py \
        [--reps 3] [--service orders]

What it does: copies the example workspace into a temp git repository with a registry
prefix of its own, locks it, writes the base image out once with ``docker save`` (the
only daemon use), and warms a private wheel cache with one untimed build. Then, per round:

- **cold, warm wheel cache**: ``oci-v1/`` (layer blobs, image records) is emptied, the
  wheel cache and built member wheels stay; ``build SERVICE --engine oci --oci-layout``;
- **code-only**: a comment appended to one source file of the service, ``build SERVICE``;
- **no-change**: ``build`` of every service right after all were built;
- **bytes pushed after a code-only change in one library**: every service pushed, a
  comment appended to ``libs/common``, every service built and pushed again: the bytes
  uploaded (the ``pushed ...: N bytes uploaded`` notes), blobs already in the registry
  being skipped by HEAD or mounted.

Prints a markdown table and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, Summary, machine_info, orchestrator_cmd, write_results

sys.path.insert(0, str(REPO_ROOT))

from tests.support import docker_infra  # stdlib only: finds the engine, base and registry


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@example.com", *args],
                   cwd=root, check=True, capture_output=True)


def orch(root: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    """Run orchestrator; (wall seconds, stderr)."""
    start = time.perf_counter()
    proc = subprocess.run([*orchestrator_cmd(), "-w", str(root), *args], env=env,
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"orchestrator {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed, proc.stderr


def append_comment(path: Path, note: str) -> None:
    path.write_text(path.read_text() + f"\n# {note}\n")


def pushed_bytes(stderr: str) -> int:
    return sum(int(n) for n in re.findall(r"pushed \S+: (\d+) bytes uploaded", stderr))


def prepare(work: Path, registry: str) -> Path:
    root = work / "ws"
    root.mkdir()
    shutil.copy(REPO_ROOT / "workspace.yaml", root)
    for part in ("services", "libs", "templates"):
        shutil.copytree(REPO_ROOT / part, root / part,
                        ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    manifest = (root / "workspace.yaml").read_text()
    (root / "workspace.yaml").write_text(re.sub(
        r"(?m)^(\s*registry:).*$", rf"\1 {registry}/bench-oci/{os.getpid()}", manifest))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "bench")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--service", default="orders")
    args = parser.parse_args(argv)
    base_ref = docker_infra.base_image()
    registry = docker_infra.registry()
    if base_ref is None or registry is None:
        print("needs the base image and the registry: run scripts/infra-up.sh", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-oci-") as tmp:
        work = Path(tmp)
        root = prepare(work, registry)
        cache = work / "cache"
        env = {**docker_infra.docker_env(), "ORCHESTRATOR_CACHE_DIR": str(cache)}
        archive = work / "base.tar"
        subprocess.run(["docker", "save", base_ref, "-o", str(archive)], env=env, check=True)
        base = ["--engine", "oci", "--base", f"docker-archive:{archive}"]
        orch(root, env, "lock")
        orch(root, env, "build", *base)  # warm-up: wheels, hatchling environment
        samples: dict[str, list[float]] = {"cold": [], "code": [], "nochange": []}
        source = root / "services" / args.service / "src" / args.service.replace("-", "_")
        app = sorted(source.glob("*.py"))[-1]
        for rep in range(args.reps):
            shutil.rmtree(cache / "oci-v1", ignore_errors=True)
            layout = work / f"layout-{rep}"
            samples["cold"].append(orch(root, env, "build", args.service, *base,
                                        "--oci-layout", str(layout))[0])
            append_comment(app, f"code-only change {rep}")
            samples["code"].append(orch(root, env, "build", args.service, *base,
                                        "--oci-layout", str(layout))[0])
            orch(root, env, "build", *base)  # the other services, after the wiped store
            samples["nochange"].append(orch(root, env, "build", *base)[0])
        orch(root, env, "build", *base, "--push")
        append_comment(root / "libs" / "common" / "src" / "common" / "__init__.py",
                       "a library change")
        seconds, stderr = orch(root, env, "build", *base, "--push")
        pushed = pushed_bytes(stderr)
    stats = {k: Summary.of(v) for k, v in samples.items()}
    rows = [("cold build of " + args.service + ", warm wheel cache", stats["cold"].cell()),
            ("code-only rebuild of " + args.service, stats["code"].cell()),
            ("no-change build of all services", stats["nochange"].cell()),
            ("all services after a change in acme-common: build + push",
             f"{seconds:.3f} s, {pushed} bytes uploaded")]
    print("| scenario | `--engine oci` |\n|---|---:|")
    for name, cell in rows:
        print(f"| {name} | {cell} |")
    path = write_results("oci-images", {
        "machine": machine_info(), "reps": args.reps, "service": args.service,
        "samples": samples, "library_change_push": {"seconds": seconds, "bytes": pushed}})
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
